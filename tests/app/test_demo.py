"""`keel demo` end to end through the CLI, checking what it stored."""

import sqlite3

from typer.testing import CliRunner

from keel.cli import app


def test_demo_runs_and_stores_its_run(tmp_path, monkeypatch):
    monkeypatch.delenv("KEEL_STORE__URL", raising=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["demo", "--out-dir", str(out), "--assets", "30",
                                      "--days", "300", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "keel demo" in result.output and "n assets" in result.output
    con = sqlite3.connect(out / "keel.db")
    kind, status, metrics = con.execute("SELECT kind, status, metrics FROM runs").fetchone()
    assert (kind, status) == ("demo", "succeeded")
    assert '"n_assets": 30' in metrics
    actions = [a for (a,) in con.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions[0] == "demo.market"


def test_demo_bad_config_is_one_clean_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\nn_asets = 5\n")
    result = CliRunner().invoke(app, ["demo", "--config", str(bad)])
    assert result.exit_code == 2
    assert "ConfigError" in result.output and "data.n_asets" in result.output
