"""`keel attribution`: a book or a history of targets from files; the printed and written
pieces add up to the active return."""

import json

import numpy as np
import pandas as pd
import pytest
from _synthetic import synthetic_market
from typer.testing import CliRunner

from keel.cli import app


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("attribution_cli")
    market, _ = synthetic_market(n_days=330, n_assets=25, n_sectors=3, seed=4)
    px = market.prices.stack().rename("close")
    vol = market.volumes.stack().rename("volume")
    long = pd.concat([px, vol], axis=1).reset_index()
    long.columns = ["date", "Name", "close", "volume"]
    long["date"] = long["date"].dt.strftime("%Y-%m-%d")
    long.to_csv(d / "prices.csv", index=False)
    pd.DataFrame({"Symbol": market.sectors.index, "Sector": market.sectors.values}).to_csv(
        d / "sectors.csv", index=False)
    syms = list(market.symbols[:10])
    pd.DataFrame({"symbol": syms, "weight": np.full(10, 0.1)}).to_csv(d / "w.csv", index=False)
    dates = [str(x.date()) for x in market.dates[[280, 300]]]
    rows = [(dates[0], s, 0.1) for s in syms] + [(dates[1], s, 0.05) for s in syms[:5]]
    pd.DataFrame(rows, columns=["date", "symbol", "weight"]).to_csv(d / "hist.csv", index=False)
    pd.DataFrame({"symbol": ["NOPE"], "weight": [1.0]}).to_csv(d / "bad.csv", index=False)
    (d / "start.txt").write_text(str(market.dates[250].date()))
    return d


@pytest.mark.parametrize("weights,extra", [("w.csv", ["--start", "START"]),
                                           ("hist.csv", [])])
def test_attribution_prints_and_adds_up(files, weights, extra):
    out = files / f"{weights}.json"
    extra = [(files / "start.txt").read_text() if x == "START" else x for x in extra]
    res = CliRunner().invoke(app, ["attribution", "--prices", str(files / "prices.csv"),
                                   "--weights", str(files / weights), "--sectors",
                                   str(files / "sectors.csv"), "--json", str(out), *extra])
    assert res.exit_code == 0, res.output
    assert "Brinson-Fachler" in res.output and "active" in res.output
    rep = json.loads(out.read_text())
    by = rep["brinson_by_sector"]
    assert by["total"]["total"] == pytest.approx(rep["active_return"], abs=1e-14)
    assert sum(v["total"] for k, v in by.items() if k != "total") == pytest.approx(
        rep["active_return"], abs=1e-14)
    assert set(rep["factor_groups_sum"]) >= {"market", "sector", "style", "specific"}


def test_attribution_refuses_unknown_symbols_and_bad_dates(files):
    res = CliRunner().invoke(app, ["attribution", "--prices", str(files / "prices.csv"),
                                   "--weights", str(files / "bad.csv"), "--no-factors"])
    assert res.exit_code != 0 and "NOPE" in res.output
    res = CliRunner().invoke(app, ["attribution", "--prices", str(files / "prices.csv"),
                                   "--weights", str(files / "w.csv"), "--start", "yesterday"])
    assert res.exit_code != 0 and "start" in res.output


def test_attribution_json_format_carries_the_same_numbers(files):
    args = ["attribution", "--prices", str(files / "prices.csv"), "--weights",
            str(files / "hist.csv"), "--sectors", str(files / "sectors.csv"), "--no-factors"]
    out = files / "fmt.json"
    res = CliRunner().invoke(app, [*args, "--json", str(out), "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)  # stdout is the JSON alone ("wrote ..." goes to stderr)
    rep = json.loads(out.read_text())
    assert doc["summary"]["active_return"] == pytest.approx(rep["active_return"], abs=1e-15)
    rows = {r["sector"]: r for r in doc["brinson_by_sector"]}
    assert set(rows) == set(rep["brinson_by_sector"])
    for sec, row in rep["brinson_by_sector"].items():
        assert rows[sec]["total"] == pytest.approx(row["total"], abs=1e-15)
    csv_out = CliRunner().invoke(app, [*args, "--format", "csv"])
    assert csv_out.exit_code == 0 and csv_out.stdout.startswith("section,key,value")


def test_keel_risk_points_to_attribution_and_runs_it(files):
    res = CliRunner().invoke(app, ["risk", "--help"])
    assert "--attribution" in res.output and "keel attribution" in res.output
    common = ["--prices", str(files / "prices.csv"), "--weights", str(files / "w.csv"),
              "--sectors", str(files / "sectors.csv")]
    out = files / "risk_att.json"
    res = CliRunner().invoke(app, ["risk", *common, "--attribution", "--json", str(out),
                                   "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    via_risk = json.loads(out.read_text())["attribution"]
    # the same numbers as `keel attribution` on the same book (held from the first session)
    ref = files / "att_ref.json"
    CliRunner().invoke(app, ["attribution", *common, "--json", str(ref)])
    direct = json.loads(ref.read_text())
    assert via_risk["active_return"] == pytest.approx(direct["active_return"], abs=1e-15)
    assert doc["attribution_summary"]["active_return"] == pytest.approx(
        direct["active_return"], abs=1e-15)
    assert {r["sector"] for r in doc["attribution_brinson_by_sector"]} == set(
        direct["brinson_by_sector"])
    assert sum(v["total"] for k, v in via_risk["brinson_by_sector"].items()
               if k != "total") == pytest.approx(via_risk["active_return"], abs=1e-14)
