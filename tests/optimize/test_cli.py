"""`keel optimize --config FILE` end to end: the one keel configuration, the desk pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from keel.cli import app

CONFIG = """
[general]
seed = 3
[data]
n_assets = 25
n_days = 300
[risk]
model = "{model}"
n_pca_factors = 3
lookback_days = 200
[optimize]
engine = "{engine}"
risk_aversion = 5.0
max_weight = 0.1
sector_cap = 0.3
"""


@pytest.mark.parametrize("model,engine", [
    ("pca", "mean_variance"), ("lw", "mean_variance"), ("fundamental", "mean_variance"),
    ("pca", "mean_cvar"), ("pca", "greedy"), ("pca", "risk_parity"),
])
def test_cli_writes_weights_and_explanation(tmp_path: Path, model: str, engine: str) -> None:
    cfg = tmp_path / "opt.toml"
    cfg.write_text(CONFIG.format(model=model, engine=engine))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["optimize", "--config", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    w = pd.read_csv(out / "weights.csv", index_col=0)
    if engine == "greedy":  # only names scoring above z_keep are bought, 1/k each
        assert w["target"].sum() <= 1.0 and np.allclose(w["target"], 1 / 20)
    else:
        assert w["target"].sum() == pytest.approx(1.0, abs=1e-6)
    if engine != "risk_parity":  # risk parity has no per-name cap
        assert w["target"].max() <= 0.1 + 1e-7
    exp = json.loads((out / "explanation.json").read_text())
    assert exp["engine"] == engine and exp["risk_model"] == model
    if engine in ("mean_variance", "mean_cvar"):
        assert exp["status"] in ("optimal", "optimal_inaccurate")
    assert "target weights" in res.output


def test_cli_holdings_and_turnover_cap(tmp_path: Path) -> None:
    cfg = tmp_path / "opt.toml"
    cfg.write_text(CONFIG.format(model="pca", engine="mean_variance")
                   + "max_turnover = 0.2\nturnover_funding = 'spread'\n")
    syms = [f"S{i:04d}" for i in range(5)]
    pd.DataFrame({"symbol": syms, "weight": [0.2] * 5}).to_csv(tmp_path / "h.csv", index=False)
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["optimize", "-c", str(cfg), "--holdings",
                                   str(tmp_path / "h.csv"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    w = pd.read_csv(out / "weights.csv", index_col=0)
    assert np.abs(w["trade"]).sum() == pytest.approx(0.2, abs=1e-9)
    assert "TURNOVER_CAP" in json.loads((out / "explanation.json").read_text())["codes"]


@pytest.mark.parametrize("text,key", [
    ("[optimizer]\nkind = 'mean_variance'\n", "optimize"),
    ("[inputs]\nalpha = 'a.csv'\n", "signals.path"),
    ("[[constraints]]\ntype = 'Budget'\n", "optimize (max_weight"),
    ("[risk]\nmodel = 'ledoit_wolf'\n", "risk.model = 'lw'"),
    ("[risk]\nn_factors = 3\n", "risk.n_pca_factors"),
])
def test_old_optimize_files_name_the_new_key(tmp_path: Path, text: str, key: str) -> None:
    cfg = tmp_path / "old.toml"
    cfg.write_text(text)
    res = CliRunner().invoke(app, ["optimize", "--config", str(cfg), "--out",
                                   str(tmp_path / "o")])
    assert res.exit_code == 2
    assert key in " ".join(res.output.split())


def test_missing_config_file_is_refused_cleanly(tmp_path):
    result = CliRunner().invoke(app, ["optimize", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "not found" in result.output and "Traceback" not in result.output
