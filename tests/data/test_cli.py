"""`keel data ...` commands run through Typer's runner."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from keel.cli import app
from keel.data.prices import load_prices_long
from keel.data.synthetic import generate_market

runner = CliRunner()

GOOD = """date,open,high,low,close,volume,Name
2013-02-08,10,11,9,10.5,100,AAA
2013-02-11,10.5,11,10,10.8,200,AAA
2013-02-12,10.8,11.2,10.6,11.0,300,AAA
2013-02-11,20.5,21,20,20.8,200,BBB
2013-02-12,20.8,21.2,20.6,21.0,300,BBB
"""


def test_inspect_reports_and_fails_cleanly(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text(GOOD)
    ok = runner.invoke(app, ["data", "inspect", "--prices", str(p), "--on-missing", "ffill"])
    assert ok.exit_code == 0, ok.output
    assert "symbols" in ok.output and "BBB" in ok.output  # BBB misses the first session
    text = " ".join(ok.output.split())
    assert "ESTIMATE" in text and "Abdi-Ranaldo estimate from daily high/low/close" in text
    bad = runner.invoke(app, ["data", "inspect", "--prices", str(p)])
    assert bad.exit_code == 2
    assert "DataError" in bad.output and "symbol=BBB" in bad.output
    broken = tmp_path / "b.csv"
    broken.write_text(GOOD.replace("10.8,200", "-1,200"))
    out = runner.invoke(app, ["data", "inspect", "--prices", str(broken)])
    assert out.exit_code == 2 and "row=2" in out.output and "field=close" in out.output


def test_synth_writes_a_file_the_loader_reads_back(tmp_path):
    out = tmp_path / "syn.parquet"
    res = runner.invoke(app, ["data", "synth", "--assets", "12", "--days", "30", "--seed", "5",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    md = load_prices_long(out, sectors=tmp_path / "syn_sectors.csv", spreads=False)
    ref = generate_market(n_assets=12, n_days=30, seed=5).market
    pd.testing.assert_frame_equal(md.prices, ref.prices, check_names=False, check_freq=False)
    pd.testing.assert_series_equal(md.sectors, ref.sectors, check_names=False)


def test_calendar_command_marks_half_days():
    res = runner.invoke(app, ["data", "calendar", "--start", "2013-11-25", "--end",
                              "2013-11-29"])
    assert res.exit_code == 0 and "early close" in res.output and "18:00:00" in res.output
    bad = runner.invoke(app, ["data", "calendar", "--start", "2013-11-25", "--end",
                              "2013-11-29", "--calendar", "NOPE"])
    assert bad.exit_code == 2 and "CalendarError" in bad.output


def test_lobster_and_bars_commands(shared_data, tmp_path):
    res = runner.invoke(app, ["data", "lobster",
                              str(shared_data / "lob/lobster_AAPL_2012-06-21_L10_head")])
    assert res.exit_code == 0, res.output
    assert "AAPL" in res.output and "999" in res.output
    bars = runner.invoke(app, ["data", "bars", str(shared_data / "intraday/lean_minute/ibm")])
    assert bars.exit_code == 0, bars.output
    assert "2013-10-11" in bars.output
    empty = runner.invoke(app, ["data", "lobster", str(tmp_path)])
    assert empty.exit_code == 2 and "DataError" in empty.output


def test_inspect_reports_every_symbol_with_holes_before_refusing(tmp_path):
    # BBB misses a session, CCC has a NaN close in a row: both are listed, then exit 2
    p = tmp_path / "holes.csv"
    p.write_text(GOOD + "2013-02-08,30,31,29,30.5,100,CCC\n2013-02-11,30,31,29,,100,CCC\n"
                 "2013-02-12,30,31,29,30.9,100,CCC\n")
    import json

    r = runner.invoke(app, ["data", "inspect", "--prices", str(p), "--format", "json"])
    assert r.exit_code == 2
    assert "DataError" in r.stderr  # the refusal is a notice, stdout stays JSON
    rep = json.loads(r.stdout)
    missing = {row["symbol"]: row for row in rep["missing"]}
    assert set(missing) == {"BBB", "CCC"}
    assert missing["BBB"]["missing_close"] == 1 and missing["CCC"]["missing_close"] == 1
    assert missing["BBB"]["first_stamp"].startswith("2013-02-11T")
    assert rep["summary"]["symbols"] == 3
