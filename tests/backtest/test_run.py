import json
import re

import pytest
from typer.testing import CliRunner

from keel.backtest.run import run_backtest
from keel.backtest.sweep import grid_points, run_sweep
from keel.config import parse_config

BOOKS = [{"name": "mv", "optimize": {"max_weight": 0.2}},
         {"name": "ew", "optimize": {"engine": "equal_weight"}}]
SMALL = {
    "general": {"name": "small", "seed": 2},
    "data": {"source": "synthetic", "n_assets": 15, "n_days": 320},
    "risk": {"model": "pca", "n_pca_factors": 3, "lookback_days": 100, "refit_every": 20},
    "tracking": {"record_runs": False},
    "backtest": {"warmup": 260, "ledger": "none", "nav": 1e6, "books": BOOKS},
}


def small(**sections):
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in SMALL.items()}
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    return parse_config(data)


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
    cfg = small(general={"name": "small", "seed": 2, "out_dir": str(tmp_path)},
                store={"url": sqlite_url}, tracking={"record_runs": True})
    _, paths = run_backtest(cfg)
    html = paths["report"].read_text()
    # self-contained: plotly.js inlined exactly once, every section present with data
    assert html.count("<script type='text/javascript'>") == 1
    assert '<script src="http' not in html
    for section in ("Equity curves", "Drawdown", "Turnover", "Cost breakdown",
                    "Risk decomposition over time", "Execution quality",
                    "Universe size over time", "executed through session t+1"):
        assert section in html
    assert len(re.findall(r'"type":"scatter"', html)) >= 6
    doc = json.loads(paths["result"].read_text())
    assert doc["config"]["general"]["name"] == "small" and set(doc["metrics"]) == {"mv", "ew"}
    assert doc["execution_lag"] == "next_session"
    from keel.store.db import Store
    from keel.store.runs import RunRegistry, RunStatus

    runs = RunRegistry(Store.from_url(sqlite_url)).list_runs()
    assert len(runs) == 1 and runs[0].status is RunStatus.SUCCEEDED
    assert runs[0].config["general"]["name"] == "small" and "mv.sharpe" in runs[0].metrics


def test_cli_backtest_and_config_error(tmp_path):
    cfg = tmp_path / "bt.toml"
    cfg.write_text(
        f'[general]\nname = "cli"\nout_dir = "{tmp_path / "out"}"\n'
        '[data]\nsource = "synthetic"\nn_assets = 12\nn_days = 300\n'
        '[risk]\nmodel = "pca"\nn_pca_factors = 2\nlookback_days = 60\n'
        '[tracking]\nrecord_runs = false\n'
        '[backtest]\nledger = "none"\n'
        '[[backtest.books]]\nname = "ew"\noptimize = { engine = "equal_weight" }\n')
    r = CliRunner().invoke(_app(), ["backtest", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "backtest" / "report.html").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text("[costs]\nspread_bps = 3\n")
    r = CliRunner().invoke(_app(), ["backtest", "--config", str(bad)])
    assert r.exit_code == 2 and "costs.spread_bps" in r.output
    # a file of the old backtest schema is told the new key
    bad.write_text("[risk]\nwindow = 60\n")
    r = CliRunner().invoke(_app(), ["backtest", "--config", str(bad)])
    assert r.exit_code == 2 and "risk.lookback_days" in r.output


def test_sweep_local_pool():
    cfg = small(backtest={"sweep": {"grid": {"risk.n_pca_factors": [2, 4]}, "workers": 2}})
    assert grid_points(cfg) == [{"risk.n_pca_factors": 2}, {"risk.n_pca_factors": 4}]
    table, nav = run_sweep(cfg, engine="local")
    assert len(table) == 4 and table["error"].isna().all()
    assert set(table["risk.n_pca_factors"]) == {2, 4} and nav.shape[1] == 4
    # equal weight does not use the risk model: identical across the grid
    ew = table[table["book"] == "ew"]["sharpe"].to_numpy()
    assert ew[0] == pytest.approx(ew[1])


@pytest.mark.slow
def test_sweep_ray():
    pytest.importorskip("ray")
    cfg = small(backtest={"sweep": {"grid": {"backtest.books.0.optimize.risk_aversion":
                                              [1.0, 20.0]}, "workers": 2}})
    table, _ = run_sweep(cfg, engine="ray")
    local, _ = run_sweep(cfg, engine="local", workers=1)
    assert len(table) == 4 and table["error"].isna().all()
    assert table["sharpe"].to_numpy() == pytest.approx(local["sharpe"].to_numpy())


@pytest.mark.slow
def test_mlflow_tracking(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    cfg = small(general={"name": "small", "out_dir": str(tmp_path)},
                tracking={"mlflow": True, "record_runs": False})
    run_backtest(cfg)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path.resolve() / 'backtest' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["keel-backtest"])
    assert len(runs) == 3  # the backtest and one nested run per book
    parent = runs[runs["tags.mlflow.parentRunId"].isna()].iloc[0]
    assert parent["params.general.name"] == "small"
    books = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"]]
    assert set(books["tags.mlflow.runName"]) == {"mv", "ew"}
    assert "metrics.sharpe" in runs.columns and "metrics.mv.sharpe" not in runs.columns
    client = mlflow.tracking.MlflowClient()
    names = {a.path for a in client.list_artifacts(parent["run_id"])}
    assert {"report.html", "metrics.csv", "result.json"} <= names


def test_cli_sweep_local(tmp_path):
    cfg = tmp_path / "sw.toml"
    cfg.write_text(
        '[general]\nname = "sw"\n[data]\nsource = "synthetic"\nn_assets = 12\nn_days = 300\n'
        '[risk]\nmodel = "pca"\nn_pca_factors = 2\nlookback_days = 60\n'
        '[backtest]\nledger = "none"\n'
        '[[backtest.books]]\nname = "ew"\noptimize = { engine = "equal_weight" }\n'
        '[backtest.sweep]\ngrid = { "costs.spread_fraction" = [0.5, 1.0] }\nworkers = 1\n')
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
    from pathlib import Path

    from keel.config import load_config, with_overrides

    cfg = load_config(Path(__file__).resolve().parents[2] / "examples" / "sp500.toml")
    cfg = with_overrides(cfg, {
        "data.prices_path": str(shared_data / "daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz"),
        "data.sectors_path": str(shared_data
                                 / "daily/sp500_constituents/constituents_2018-04-02.csv"),
        "data.max_assets": 40, "risk.model": "pca", "risk.n_pca_factors": 5,
        "general.out_dir": str(tmp_path), "tracking.record_runs": False})
    result, paths = run_backtest(cfg)
    m = result.metrics()
    assert len(m) == 5 and not m["failed"].any()
    assert m["sessions"].min() > 900
    assert max(b.ledger["rel_diff"] for b in result.books.values()) < 1e-9
    assert "Risk decomposition over time" in paths["report"].read_text()
    assert any("fixed 5 bps" in c for c in result.caveats)  # the example's fixed spread


def test_data_caveats_reach_result_report_and_cli(tmp_path):
    """Spreads that are not quotes are said wherever the figures are (issue 14.4)."""
    cfg = small(general={"name": "small", "seed": 2, "out_dir": str(tmp_path)},
                costs={"spread_source": "fixed", "default_spread_bps": 6.0})
    result, paths = run_backtest(cfg)
    assert len(result.caveats) == 1 and "fixed 6 bps" in result.caveats[0]
    assert json.loads(paths["result"].read_text())["caveats"] == list(result.caveats)
    assert "Data caveat:</b> spreads: a fixed 6 bps" in paths["report"].read_text()
    quoted, _ = run_backtest(small(general={"name": "q", "seed": 2,
                                            "out_dir": str(tmp_path / "q")}))
    assert quoted.caveats == ()  # the synthetic market's spreads are quotes
