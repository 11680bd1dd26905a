"""`keel optimize --config FILE` end to end on files written to a temp folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from keel.cli import app


def _write_inputs(tmp: Path, n: int = 25, t: int = 300) -> None:
    rng = np.random.default_rng(0)
    import exchange_calendars as xc
    dates = xc.get_calendar("XNYS").sessions_in_range("2020-01-02", "2021-12-31")[:t]
    syms = [f"S{i:02d}" for i in range(n)]
    rets = rng.normal(0, 0.01, (t, n)) + rng.normal(0, 0.01, (t, 1))
    prices = pd.DataFrame(100 * np.exp(np.cumsum(rets, axis=0)), index=dates, columns=syms)
    prices.index.name = "date"
    prices.to_csv(tmp / "prices.csv")
    vols = pd.DataFrame(rng.uniform(1e5, 1e6, (t, n)), index=dates, columns=syms)
    vols.to_csv(tmp / "volumes.csv")
    pd.DataFrame({"symbol": syms, "alpha": rng.normal(0, 1e-3, n)}).to_csv(
        tmp / "alpha.csv", index=False)
    pd.DataFrame({"symbol": syms[:5], "weight": [0.2] * 5}).to_csv(tmp / "holdings.csv",
                                                                   index=False)
    pd.DataFrame({"Symbol": syms, "Sector": ["A", "B", "C", "D", "E"] * (n // 5)}).to_csv(
        tmp / "sectors.csv", index=False)


CONFIG = """
[inputs]
alpha = "alpha.csv"
holdings = "holdings.csv"
prices = "prices.csv"
volumes = "volumes.csv"
sectors = "sectors.csv"
lookback = 200
nav = 1e6

[risk]
model = "{model}"
n_factors = 3

[optimizer]
{optimizer}

[[constraints]]
type = "Budget"
[[constraints]]
type = "LongOnly"
[[constraints]]
type = "WeightBounds"
upper = 0.1
[[constraints]]
type = "SectorCaps"
long = 0.3
[[constraints]]
type = "Turnover"
max_total = 1.5
"""


@pytest.mark.parametrize("model,optimizer", [
    ("pca", 'kind = "mean_variance"\nrisk_aversion = 5.0'),
    ("pca", 'kind = "mean_variance"\nrisk_aversion = 5.0\n[costs]\ncommission_bps = 1.0\n'
            'impact_y = 0.5'),
    ("ledoit_wolf", 'kind = "mean_variance"\nrisk_aversion = 5.0'),
    ("pca", 'kind = "min_cvar"\nbeta = 0.9'),
])
def test_cli_writes_weights_and_explanation(tmp_path: Path, model: str, optimizer: str) -> None:
    _write_inputs(tmp_path)
    cfg = tmp_path / "opt.toml"
    cfg.write_text(CONFIG.format(model=model, optimizer=optimizer))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["optimize", "--config", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    w = pd.read_csv(out / "weights.csv", index_col=0)
    assert w["target"].sum() == pytest.approx(1.0, abs=1e-6)
    assert w["target"].max() <= 0.1 + 1e-7
    exp = json.loads((out / "explanation.json").read_text())
    assert exp["status"] in ("optimal", "optimal_inaccurate")
    assert {"alpha", "risk", "cost", "utility"} <= set(exp["objective_split"])
    assert "target weights" in res.output


@pytest.mark.parametrize("extra,error", [
    ('[[constraints]]\ntype = "MaxWidgets"\n', "ConfigError"),
    ('[[constraints]]\ntype = "MinCash"\nmin_cash = 0.5\n', "conflicting constraints: "),
])
def test_cli_errors_exit_2(tmp_path: Path, extra: str, error: str) -> None:
    _write_inputs(tmp_path)
    cfg = tmp_path / "opt.toml"
    cfg.write_text(CONFIG.format(model="pca", optimizer="kind = 'mean_variance'") + "\n" + extra)
    res = CliRunner().invoke(app, ["optimize", "--config", str(cfg), "--out",
                                   str(tmp_path / "o")])
    assert res.exit_code == 2
    assert error in res.output


@pytest.mark.slow
def test_cli_on_sp500(tmp_path: Path, shared_data: Path) -> None:
    px = shared_data / "daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz"
    raw = pd.read_csv(px, usecols=["Name"])
    names = sorted(raw["Name"].unique())
    rng = np.random.default_rng(1)
    pd.DataFrame({"symbol": names, "alpha": rng.normal(0, 5e-4, len(names))}).to_csv(
        tmp_path / "alpha.csv", index=False)
    cfg = tmp_path / "sp.toml"
    cfg.write_text(f"""
[inputs]
alpha = "alpha.csv"
prices = "{px}"
sectors = "{shared_data / 'daily/sp500_constituents/constituents_2018-04-02.csv'}"
on_missing = "drop"
nav = 1e8
[risk]
model = "pca"
[optimizer]
risk_aversion = 5.0
[[constraints]]
type = "Budget"
[[constraints]]
type = "LongOnly"
[[constraints]]
type = "WeightBounds"
upper = 0.05
""")
    res = CliRunner().invoke(app, ["optimize", "--config", str(cfg), "--out",
                                   str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    w = pd.read_csv(tmp_path / "o/weights.csv", index_col=0)
    assert w["target"].sum() == pytest.approx(1.0, abs=1e-6)


def test_missing_config_file_is_refused_cleanly(tmp_path):
    from typer.testing import CliRunner

    from keel.cli import app

    result = CliRunner().invoke(app, ["optimize", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "Traceback" not in result.output
