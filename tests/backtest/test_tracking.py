"""MLflow conventions against the real mlflow: MLFLOW_TRACKING_URI / --tracking-uri, one parent
run per backtest, a nested run per book with its metrics under their own names, the report as
an artifact of the parent, the run id printed."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

mlflow = pytest.importorskip("mlflow")

from keel.backtest.run import run_backtest  # noqa: E402
from keel.backtest.tracking import log_to_mlflow, resolve_tracking_uri  # noqa: E402
from keel.cli import app  # noqa: E402

from .test_run import BOOKS, small  # noqa: E402

pytestmark = pytest.mark.slow


def _toml(tmp_path, name="tracked"):
    cfg = tmp_path / "bt.toml"
    cfg.write_text(
        f'[general]\nname = "{name}"\nseed = 2\nout_dir = "{tmp_path / "out"}"\n'
        '[data]\nsource = "synthetic"\nn_assets = 12\nn_days = 300\n'
        '[risk]\nmodel = "pca"\nn_pca_factors = 2\nlookback_days = 60\n'
        '[tracking]\nrecord_runs = false\n'
        '[backtest]\nledger = "none"\nreport = true\n'
        '[[backtest.books]]\nname = "mv"\noptimize = { max_weight = 0.2 }\n'
        '[[backtest.books]]\nname = "ew"\noptimize = { engine = "equal_weight" }\n')
    return cfg


def _check_runs(uri: str, run_id: str, books: dict[str, float]) -> None:
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    parent = client.get_run(run_id)
    assert parent.info.status == "FINISHED"
    # no <book>.<metric> flattening on the parent
    assert not any("." in k for k in parent.data.metrics)
    assert parent.data.params["optimize.engine"] == "mean_variance"
    assert parent.data.params["general.name"] == "tracked"
    arts = {a.path for a in client.list_artifacts(run_id)}
    assert {"report.html", "metrics.csv", "nav.csv", "result.json"} <= arts
    exp = parent.info.experiment_id
    children = client.search_runs([exp], f"tags.mlflow.parentRunId = '{run_id}'")
    by_name = {r.info.run_name: r for r in children}
    assert set(by_name) == set(books)
    for book, sharpe in books.items():
        r = by_name[book]
        assert r.data.params["book"] == book
        assert r.data.metrics["sharpe"] == pytest.approx(sharpe, rel=1e-12)
        assert {"cagr", "max_drawdown", "cost_total_bps", "nav", "drawdown"} <= set(
            r.data.metrics)
        nav = client.get_metric_history(r.info.run_id, "nav")
        assert len(nav) > 10 and [m.step for m in nav] == sorted(m.step for m in nav)
    assert by_name["mv"].data.params["optimize.max_weight"] == "0.2"
    assert by_name["ew"].data.params["optimize.engine"] == "equal_weight"


def test_cli_logs_a_parent_and_nested_runs_and_prints_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is ./mlruns
    uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    r = CliRunner().invoke(app, ["backtest", "-c", str(_toml(tmp_path)), "--tracking-uri", uri,
                                 "--format", "json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)  # stdout is JSON alone; the run line is on stderr
    run = rep["mlflow"]
    assert run["tracking_uri"] == uri and run["run_id"] in r.stderr
    books = {b["book"]: b["sharpe"] for b in rep["books"]}
    assert set(books) == {"mv", "ew"}
    _check_runs(uri, run["run_id"], books)
    assert run["run_id.mv"] and run["run_id.ew"]


def test_mlflow_tracking_uri_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is ./mlruns
    uri = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert resolve_tracking_uri(None, tmp_path) == uri
    assert resolve_tracking_uri("sqlite:///x.db", tmp_path) == "sqlite:///x.db"
    cfg = small(general={"name": "tracked", "out_dir": str(tmp_path / "out")},
                backtest={"books": BOOKS})
    result, paths = run_backtest(cfg)
    run = log_to_mlflow(result, paths, out_dir=tmp_path / "out", run_name="tracked")
    assert run.tracking_uri == uri and not (tmp_path / "out" / "mlflow.db").exists()
    m = result.metrics()
    _check_runs(uri, run.run_id, {b: float(m.loc[b, "sharpe"]) for b in ("mv", "ew")})
