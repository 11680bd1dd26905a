"""MLflow tracking of a backtest (optional extra ``mlflow``): config as params, metrics, files.

Without ``tracking_uri`` the runs go to a local store under the output folder: a SQLite
tracking database ``<out_dir>/mlflow.db`` with artifacts in ``<out_dir>/mlruns`` (MLflow 3
refuses the plain ``file:`` tracking store).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import ConfigError

if TYPE_CHECKING:
    from keel.backtest.engine import BacktestResult


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = json.dumps(v, default=str)[:500]
    return out


def log_to_mlflow(result: BacktestResult, paths: dict[str, Path], *,
                  tracking_uri: str | None = None, out_dir: Path | None = None,
                  run_name: str = "backtest", experiment: str = "keel-backtest") -> str:
    """Log ``result`` (config params, per-book metrics, output files) to MLflow; returns the
    MLflow run id.

    Raises:
        ConfigError: mlflow is not installed (``pip install 'keel[mlflow]'``).
    """
    try:
        import mlflow
    except ImportError:
        raise ConfigError("output.mlflow needs the mlflow extra (pip install 'keel[mlflow]')",
                          field="output.mlflow") from None
    from keel.backtest.run import summary_metrics

    folder = Path(out_dir or ".").resolve()
    uri = tracking_uri or f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=(folder / "mlruns").as_uri())
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params(_flatten(result.config))
        mlflow.log_metrics({k.replace("/", "_"): v for k, v in summary_metrics(result).items()})
        for p in paths.values():
            mlflow.log_artifact(str(p))
        return str(run.info.run_id)
