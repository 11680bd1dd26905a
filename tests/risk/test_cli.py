import json

import numpy as np
import pandas as pd
import pytest
from _synthetic import synthetic_market
from typer.testing import CliRunner

from keel.cli import app


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("risk_cli")
    market, _ = synthetic_market(n_days=330, n_assets=25, n_sectors=3, seed=4)
    px = market.prices.stack().rename("close")
    vol = market.volumes.stack().rename("volume")
    long = pd.concat([px, vol], axis=1).reset_index()
    long.columns = ["date", "Name", "close", "volume"]
    long["date"] = long["date"].dt.strftime("%Y-%m-%d")
    long.to_csv(d / "prices.csv", index=False)
    market.prices.set_axis(market.prices.index.strftime("%Y-%m-%d")).rename_axis(
        "date").to_csv(d / "wide.csv")
    pd.DataFrame({"Symbol": market.sectors.index, "Sector": market.sectors.values}).to_csv(
        d / "sectors.csv", index=False)
    syms = market.symbols[:10]
    pd.DataFrame({"symbol": syms, "weight": np.full(10, 0.1)}).to_csv(d / "w.csv",
                                                                      index=False)
    pd.DataFrame({"symbol": ["NOPE"], "weight": [1.0]}).to_csv(d / "bad.csv", index=False)
    return d


@pytest.mark.parametrize("model", ["fundamental", "pca", "lw"])
def test_cli_prints_and_writes_json(files, model):
    out = files / f"{model}.json"
    res = CliRunner().invoke(app, ["risk", "--prices", str(files / "prices.csv"),
                                   "--weights", str(files / "w.csv"), "--sectors",
                                   str(files / "sectors.csv"), "--model", model,
                                   "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "VaR" in res.output and "Total" in res.output
    rep = json.loads(out.read_text())
    assert rep["model"] == model
    dec = rep["decomposition"]
    assert sum(dec["by_asset"].values()) == pytest.approx(dec["total"], rel=1e-9)
    assert set(rep["var_cvar"]) >= {"historical", "normal", "cornish_fisher"}
    for v in rep["var_cvar"].values():
        assert v["cvar"] >= v["var"] > 0
    if model != "lw":
        assert "monte_carlo" in rep["var_cvar"]
        assert dec["factor"] + dec["specific"] == pytest.approx(dec["total"])


def test_cli_wide_prices_and_errors(files):
    res = CliRunner().invoke(app, ["risk", "--prices", str(files / "wide.csv"),
                                   "--weights", str(files / "w.csv"), "--model", "pca"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["risk", "--prices", str(files / "prices.csv"),
                                   "--weights", str(files / "bad.csv"), "--model", "lw"])
    assert res.exit_code == 2 and "NOPE" in res.output
    res = CliRunner().invoke(app, ["risk", "--prices", str(files / "missing.csv"),
                                   "--weights", str(files / "w.csv")])
    assert res.exit_code == 2 and "file not found" in res.output
    res = CliRunner().invoke(app, ["risk", "--prices", str(files / "prices.csv"),
                                   "--weights", str(files / "w.csv"), "--model", "garch"])
    assert res.exit_code == 2 and "model" in res.output


@pytest.mark.slow
def test_cli_on_the_real_sp500_file(shared_data, tmp_path):
    d = shared_data / "daily"
    pd.DataFrame({"symbol": ["AAPL", "MSFT", "JPM", "XOM", "JNJ"], "weight": 0.2}).to_csv(
        tmp_path / "w.csv", index=False)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, [
        "risk", "--prices", str(d / "sp500_all_stocks_5yr/all_stocks_5yr.csv.gz"),
        "--sectors", str(d / "sp500_constituents/constituents_2018-04-02.csv"),
        "--weights", str(tmp_path / "w.csv"), "--fama-french",
        str(shared_data / "factors/fama_french/F-F_Research_Data_Factors_daily.CSV"),
        "--json", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["n_assets"] > 400
    assert 0.8 < rep["fama_french"]["betas"]["Mkt-RF"] < 1.3
    assert rep["decomposition"]["factor_share_of_variance"] > 0.5
