"""`keel accounts seed` and `keel accounts rebalance` end to end on a SQLite store."""

from __future__ import annotations

import csv
import json
import sqlite3

from typer.testing import CliRunner

from keel.cli import app


def test_seed_then_rebalance(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'k.db'}"
    cfg = tmp_path / "k.toml"
    cfg.write_text("[data]\nn_days = 300\n[risk]\nlookback_days = 200\nn_pca_factors = 3\n")
    runner = CliRunner()
    r = runner.invoke(app, ["accounts", "seed", "--n", "30", "--names", "40", "--url", url,
                            "-c", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "30 accounts" in r.output
    out = tmp_path / "orders.csv"
    r = runner.invoke(app, ["accounts", "rebalance", "--names", "40", "--url", url, "-c",
                            str(cfg), "--workers", "1", "--format", "json",
                            "--orders-out", str(out)])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout[r.stdout.index("{"):])
    assert s["accounts"] == 30 and s["errors"] == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == s["orders"]
    assert sum(int(x["qty"]) for x in rows) == s["shares"]


def test_rebalance_refuses_a_bad_format_and_an_unmigrated_store(tmp_path):
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    r = runner.invoke(app, ["accounts", "rebalance", "--url", url, "--format", "xml"])
    assert r.exit_code == 2 and "format" in r.output
    r = runner.invoke(app, ["accounts", "rebalance", "--url", url])
    assert r.exit_code == 2 and not (tmp_path / "empty.db").exists()  # a reader creates nothing
    sqlite3.connect(tmp_path / "empty.db").close()  # a database without keel's schema
    r = runner.invoke(app, ["accounts", "rebalance", "--url", url])
    assert r.exit_code == 2 and "revision" in r.output
    r = runner.invoke(app, ["accounts", "rebalance", "--url", url, "--batch-id", "b1"])
    assert r.exit_code == 2 and "--execute" in r.output


def test_rebalance_execute_books_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'k.db'}"
    cfg = tmp_path / "k.toml"
    cfg.write_text("[data]\nn_days = 300\n[risk]\nlookback_days = 200\nn_pca_factors = 3\n")
    runner = CliRunner()
    r = runner.invoke(app, ["accounts", "seed", "--n", "20", "--names", "40", "--url", url,
                            "-c", str(cfg)])
    assert r.exit_code == 0, r.output
    args = ["accounts", "rebalance", "--names", "40", "--url", url, "-c", str(cfg),
            "--workers", "1", "--format", "json", "--execute"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout[r.stdout.index("{"):])
    ex = s["execution"]
    assert not ex["already_booked"] and ex["blocks"] == s["blocks"]
    assert ex["shares_filled"] > 0 and ex["blocks_rejected"] == 0
    # a bad output path is refused before anything is sent or booked
    bad = runner.invoke(app, [*args, "--orders-out", str(tmp_path / "no-dir" / "o.csv")])
    assert bad.exit_code == 2 and "orders-out" in bad.output
    # the same batch (same time, prices, models) again: refused, nothing booked twice
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    s2 = json.loads(r.stdout[r.stdout.index("{"):])
    assert s2["execution"]["already_booked"]
