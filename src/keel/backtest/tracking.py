"""MLflow tracking of a backtest (optional extra ``mlflow``), as MLflow users expect it.

* **Where**: the first of ``tracking_uri`` (``keel backtest --tracking-uri``, else
  ``[tracking] mlflow_uri`` / ``KEEL_TRACKING__MLFLOW_URI``), MLflow's own
  ``MLFLOW_TRACKING_URI`` environment variable, else a local store under the output folder:
  a SQLite tracking database ``<out_dir>/mlflow.db`` with artifacts in ``<out_dir>/mlruns``
  (MLflow 3 refuses the plain ``file:`` store unless ``MLFLOW_ALLOW_FILE_STORE`` is set).
  The experiment is ``keel-backtest`` unless ``MLFLOW_EXPERIMENT_NAME`` says otherwise.
* **What**: one parent run per backtest, named after ``general.name``: the effective
  configuration as params (dotted keys, ``optimize.engine``), the run's tags, the output files
  (report, metrics, NAV, costs, result) as artifacts. One nested run per book, named after the
  book: its overrides as params, its metrics under their own names (``sharpe``, ``cagr``,
  ``max_drawdown``, ...: never ``<book>.<metric>``) and its NAV and drawdown as metric
  histories (one step per session, timestamped at the session).
"""

from __future__ import annotations

import json
import math
import os
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import ConfigError

if TYPE_CHECKING:
    from keel.backtest.engine import BacktestResult

#: the experiment used when MLFLOW_EXPERIMENT_NAME is not set
DEFAULT_EXPERIMENT = "keel-backtest"
#: MLflow's limit on a param value (characters)
_PARAM_CHARS = 6000


@dataclass(frozen=True)
class TrackedRun:
    """Where a backtest was logged: the parent run, its nested book runs, the store."""

    run_id: str
    tracking_uri: str
    experiment_id: str
    experiment: str
    books: dict[str, str] = field(default_factory=dict)  # book -> nested run id

    @property
    def run_uri(self) -> str:
        """``runs:/<id>``: what ``mlflow.artifacts`` and ``mlflow ui`` links take."""
        return f"runs:/{self.run_id}"


def resolve_tracking_uri(tracking_uri: str | None, out_dir: Path | None) -> str:
    """The tracking URI: explicit, else ``MLFLOW_TRACKING_URI``, else the local default."""
    if tracking_uri:
        return tracking_uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    folder = Path(out_dir or ".").resolve()
    return f"sqlite:///{folder / 'mlflow.db'}"


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v if isinstance(v, str) else json.dumps(v, default=str)
            out[key] = out[key][:_PARAM_CHARS]
    return out


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def log_to_mlflow(result: BacktestResult, paths: dict[str, Path], *,
                  tracking_uri: str | None = None, out_dir: Path | None = None,
                  run_name: str = "backtest",
                  experiment: str | None = None) -> TrackedRun:
    """Log ``result`` to MLflow: a parent run with the config and the output files, a nested
    run per book with its metrics and NAV history (see the module doc); returns where.

    Raises:
        ConfigError: mlflow is not installed (``pip install 'keel[mlflow]'``).
    """
    try:
        import mlflow
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("tracking.mlflow needs the mlflow extra (pip install 'keel[mlflow]')",
                          field="tracking.mlflow") from None

    uri = resolve_tracking_uri(tracking_uri, out_dir)
    name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        local = not tracking_uri and "MLFLOW_TRACKING_URI" not in os.environ
        artifacts = ((Path(out_dir).resolve() / "mlruns").as_uri()
                     if local and out_dir is not None else None)
        exp_id = client.create_experiment(name, artifact_location=artifacts)
    else:
        exp_id = exp.experiment_id
    metrics = result.metrics().to_dict(orient="index")
    config_books = {str(b.get("name")): b for b in
                    (result.config.get("backtest", {}) or {}).get("books", []) or []}
    tags = {"keel.kind": "backtest", "keel.execution_lag": str(result.execution_lag),
            "keel.books": ",".join(result.books)}
    parent = client.create_run(exp_id, run_name=run_name, tags=tags)
    pid = parent.info.run_id
    books: dict[str, str] = {}
    try:
        params = _flatten({k: v for k, v in result.config.items() if k != "backtest"})
        params.update(_flatten({k: v for k, v in (result.config.get("backtest") or {}).items()
                                if k != "books"}, "backtest."))
        items = list(params.items())
        for i in range(0, len(items), 100):
            client.log_batch(pid, params=[mlflow.entities.Param(k, v)
                                          for k, v in items[i:i + 100]])
        for book, res in result.books.items():
            child = client.create_run(exp_id, run_name=book, tags={
                "mlflow.parentRunId": pid, "keel.book": book, "keel.kind": "backtest.book"})
            cid = child.info.run_id
            books[book] = cid
            overrides = {k: v for k, v in config_books.get(book, {}).items() if k != "name"}
            bparams = {"book": book, **_flatten(overrides)}
            client.log_batch(cid, params=[mlflow.entities.Param(k, v)
                                          for k, v in bparams.items()])
            now = int(parent.info.start_time or 0)
            row = [Metric(str(k).replace("/", "_"), x, now, 0)
                   for k, v in metrics.get(book, {}).items()
                   if (x := _finite(v)) is not None]
            nav = res.nav.dropna()
            peak = nav.cummax()
            for step, (t, v) in enumerate(nav.items()):
                ms = int(t.timestamp() * 1000)
                row.append(Metric("nav", float(v), ms, step))
                row.append(Metric("drawdown", float(v / peak.loc[t] - 1.0), ms, step))
            for i in range(0, len(row), 1000):
                client.log_batch(cid, metrics=row[i:i + 1000])
            client.set_terminated(cid, "FINISHED")
        for p in paths.values():
            client.log_artifact(pid, str(p))
        client.set_terminated(pid, "FINISHED")
    except BaseException:
        for rid in (*books.values(), pid):
            with suppress(Exception):  # the original error is the one to see
                client.set_terminated(rid, "FAILED")
        raise
    return TrackedRun(pid, uri, str(exp_id), name, books)
