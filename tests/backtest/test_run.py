import json
import re

import pytest
from typer.testing import CliRunner

from keel.backtest.config import parse_config
from keel.backtest.run import run_backtest
from keel.backtest.sweep import grid_points, run_sweep

SMALL = {
    "name": "small", "seed": 2,
    "data": {"source": "synthetic", "n_assets": 15, "n_days": 320},
    "risk": {"n_factors": 3, "window": 100, "refit_every": 20},
    "strategies": [{"name": "mv", "kind": "mean_variance", "max_weight": 0.2},
                   {"name": "ew", "kind": "equal_weight"}],
    "backtest": {"warmup": 260, "ledger": "none", "nav": 1e6},
}


def _app():
    import typer

    from keel.cli import backtest_cmd

    app = typer.Typer()
    backtest_cmd.register(app)

    @app.callback()
    def main() -> None:  # keep sub-commands named
        pass

    return app


def test_run_writes_outputs_and_records_the_run(tmp_path, sqlite_url):
    cfg = parse_config({**SMALL, "output": {"dir": str(tmp_path), "store_url": sqlite_url}})
    _, paths = run_backtest(cfg)
    html = paths["report"].read_text()
    # self-contained: plotly.js inlined exactly once, every section present with data
    assert html.count("<script type='text/javascript'>") == 1
    assert '<script src="http' not in html
    for section in ("Equity curves", "Drawdown", "Turnover", "Cost breakdown",
                    "Risk decomposition over time", "Execution quality"):
        assert section in html
    assert len(re.findall(r'"type":"scatter"', html)) >= 6
    doc = json.loads(paths["result"].read_text())
    assert doc["config"]["name"] == "small" and set(doc["metrics"]) == {"mv", "ew"}
    from keel.store.db import Store
    from keel.store.runs import RunRegistry, RunStatus

    runs = RunRegistry(Store.from_url(sqlite_url)).list_runs()
    assert len(runs) == 1 and runs[0].status is RunStatus.SUCCEEDED
    assert runs[0].config["name"] == "small" and "mv.sharpe" in runs[0].metrics


def test_cli_backtest_and_config_error(tmp_path):
    cfg = tmp_path / "bt.toml"
    cfg.write_text(
        'name = "cli"\n[data]\nsource = "synthetic"\nn_assets = 12\nn_days = 300\n'
        '[risk]\nn_factors = 2\nwindow = 60\n[backtest]\nledger = "none"\n'
        f'[output]\ndir = "{tmp_path / "out"}"\n'
        '[[strategies]]\nname = "ew"\nkind = "equal_weight"\n')
    r = CliRunner().invoke(_app(), ["backtest", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "report.html").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text("[costs]\nspread_bps = 3\n")
    r = CliRunner().invoke(_app(), ["backtest", "--config", str(bad)])
    assert r.exit_code == 2 and "costs.spread_bps" in r.output


def test_sweep_local_pool():
    cfg = parse_config({**SMALL, "sweep": {"grid": {"risk.n_factors": [2, 4]}, "workers": 2}})
    assert grid_points(cfg) == [{"risk.n_factors": 2}, {"risk.n_factors": 4}]
    table, nav = run_sweep(cfg, engine="local")
    assert len(table) == 4 and table["error"].isna().all()
    assert set(table["risk.n_factors"]) == {2, 4} and nav.shape[1] == 4
    # equal weight does not use the risk model: identical across the grid
    ew = table[table["book"] == "ew"]["sharpe"].to_numpy()
    assert ew[0] == pytest.approx(ew[1])


@pytest.mark.slow
def test_sweep_ray():
    pytest.importorskip("ray")
    cfg = parse_config({**SMALL, "sweep": {"grid": {"strategies.0.risk_aversion": [1.0, 20.0]},
                                           "workers": 2}})
    table, _ = run_sweep(cfg, engine="ray")
    local, _ = run_sweep(cfg, engine="local", workers=1)
    assert len(table) == 4 and table["error"].isna().all()
    assert table["sharpe"].to_numpy() == pytest.approx(local["sharpe"].to_numpy())


@pytest.mark.slow
def test_mlflow_tracking(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    cfg = parse_config({**SMALL, "output": {"dir": str(tmp_path), "mlflow": True}})
    run_backtest(cfg)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["keel-backtest"])
    assert len(runs) == 1
    row = runs.iloc[0]
    assert "metrics.mv.sharpe" in runs.columns and row["params.name"] == '"small"'
    client = mlflow.tracking.MlflowClient()
    names = {a.path for a in client.list_artifacts(row["run_id"])}
    assert {"report.html", "metrics.csv", "result.json"} <= names


def test_cli_sweep_local(tmp_path):
    cfg = tmp_path / "sw.toml"
    cfg.write_text(
        'name = "sw"\n[data]\nsource = "synthetic"\nn_assets = 12\nn_days = 300\n'
        '[risk]\nn_factors = 2\nwindow = 60\n[backtest]\nledger = "none"\n'
        '[[strategies]]\nname = "ew"\nkind = "equal_weight"\n'
        '[sweep]\ngrid = { "costs.spread_fraction" = [0.5, 1.0] }\nworkers = 1\n')
    r = CliRunner().invoke(_app(), ["sweep", "--config", str(cfg), "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s" / "sweep.html").exists()
    import pandas as pd

    table = pd.read_csv(tmp_path / "s" / "sweep.csv")
    assert len(table) == 2
    # paying half the spread costs less
    low, high = table.sort_values("costs.spread_fraction")["cost_spread_bps"]
    assert low == pytest.approx(high / 2, rel=0.05)
    r = CliRunner().invoke(_app(), ["sweep", "--config", str(cfg), "--engine", "spark"])
    assert r.exit_code == 2 and "engine" in r.output


@pytest.mark.slow
def test_sp500_real_data(shared_data, tmp_path):
    """The example config on the real S&P 500 file, cut to 40 names and a statistical model."""
    from keel.backtest.config import load_backtest_config, with_overrides

    cfg = load_backtest_config("examples/sp500.toml")
    cfg = with_overrides(cfg, {
        "data.path": str(shared_data / "daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz"),
        "data.sectors": str(shared_data / "daily/sp500_constituents/constituents_2018-04-02.csv"),
        "data.max_assets": 40, "risk.model": "statistical", "risk.n_factors": 5,
        "output.dir": str(tmp_path)})
    result, paths = run_backtest(cfg)
    m = result.metrics()
    assert len(m) == 12 and not m["failed"].any()
    assert m["sessions"].min() > 900
    assert max(b.ledger["rel_diff"] for b in result.books.values()) < 1e-9
    assert "Risk decomposition over time" in paths["report"].read_text()
