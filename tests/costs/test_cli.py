from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import app

runner = CliRunner()


def test_impact_fit_and_allocate(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "aapl.json"
    r = runner.invoke(app, ["impact", "fit", "--lobster",
                            str(shared_data / "lob/lobster_AAPL_2012-06-21_L10_head"),
                            "--out", str(out), "--buckets", "1", "--sizes", "8"])
    assert r.exit_code == 0, r.output
    model = json.loads(out.read_text())
    assert model["method"] == "book" and set(model["fits"]) == {"linear", "quadratic", "power"}
    assert out.with_suffix(".png").stat().st_size > 10_000
    r = runner.invoke(app, ["impact", "allocate", "--model", str(out), "--shares", "5000",
                            "--intervals", "10", "--cap", "0.2"])
    assert r.exit_code == 0, r.output
    assert "improvement" in r.output and (tmp_path / "aapl_split.png").exists()
    assert "extrapolated" not in r.output  # 500-1,000 shares an interval: inside the fit
    r = runner.invoke(app, ["impact", "allocate", "--model", str(out), "--shares", "50000",
                            "--intervals", "10"])
    assert r.exit_code == 0 and "extrapolated" in " ".join(r.output.split())
    lo, hi = model["size_range"]
    assert 1 <= lo < hi <= 2_000
    # the fitted curve used at 10x its largest size: a warning in the CLI output
    r = runner.invoke(app, ["costs", "estimate", "--shares", str(10 * hi), "--price", "50",
                            "--spread-bps", "5", "--vol", "0.02", "--adv", "5000000",
                            "--model", str(out)])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())  # any terminal width
    assert "warning" in text and "extrapolated" in text and "fitted curve" in text
    r = runner.invoke(app, ["impact", "allocate", "--model", str(out), "--shares", "5000",
                            "--intervals", "10", "--participation", "0.1"])
    assert r.exit_code == 2 and "field=participation" in r.output  # a book has no volume
    # S larger than the sum of the caps: one line, exit code 2, names the field
    r = runner.invoke(app, ["impact", "allocate", "--model", str(out), "--shares", "5000",
                            "--intervals", "4", "--cap", "0.2"])
    assert r.exit_code == 2 and "InfeasibleError" in r.output and "field=cap" in r.output


def test_impact_fit_synthetic_and_source_errors(tmp_path: Path) -> None:
    out = tmp_path / "syn.json"
    r = runner.invoke(app, ["impact", "fit", "--synthetic", "200", "--out", str(out),
                            "--buckets", "2", "--sizes", "8"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["symbol"] == "SYN"
    r = runner.invoke(app, ["impact", "fit", "--out", str(out)])
    assert r.exit_code == 2 and "field=lobster" in r.output
    r = runner.invoke(app, ["impact", "fit", "--synthetic", "50", "--method", "trades",
                            "--out", str(out)])
    assert r.exit_code == 2 and "field=method" in r.output


def test_costs_estimate_and_trajectory() -> None:
    r = runner.invoke(app, ["costs", "estimate", "--shares", "20000", "--price", "50",
                            "--spread-bps", "5", "--vol", "0.02", "--adv", "5000000"])
    assert r.exit_code == 0, r.output
    assert all(k in r.output for k in ("market", "limit", "twap"))
    r = runner.invoke(app, ["costs", "estimate", "--shares", "2000000", "--price", "50",
                            "--spread-bps", "5", "--vol", "0.02", "--adv", "5000000"])
    assert r.exit_code == 0, r.output
    assert "40% of ADV" in " ".join(r.output.split())  # beyond where the law is measured
    r = runner.invoke(app, ["costs", "trajectory", "--shares", "1000000", "--intervals", "5",
                            "--sigma", "0.95", "--eta", "2.5e-6", "--gamma", "2.5e-7",
                            "--epsilon", "0.0625", "--risk-aversion", "1e-6"])
    assert r.exit_code == 0 and "458,044" in r.output and "911,227" in r.output
    r = runner.invoke(app, ["costs", "estimate", "--shares", "-1", "--price", "50",
                            "--spread-bps", "5", "--vol", "0.02", "--adv", "5000000"])
    assert r.exit_code == 2 and "field=shares" in r.output


@pytest.mark.slow
def test_impact_fit_trades_on_amzn(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "amzn.json"
    r = runner.invoke(app, ["impact", "fit", "--lobster",
                            str(shared_data / "lob/lobster_AMZN_2012-06-21_L1"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    model = json.loads(out.read_text())
    assert model["method"] == "trades" and model["fits"]["quadratic"]["n_test"] > 2000
    r = runner.invoke(app, ["impact", "allocate", "--model", str(out), "--shares", "20000",
                            "--intervals", "390", "--participation", "0.1"])
    assert r.exit_code == 0 and "improvement" in r.output
