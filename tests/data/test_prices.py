"""Long/wide price loaders and sector maps: the real S&P 500 file and every bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.data.prices import (
    load_prices_long,
    load_prices_wide,
    load_sectors,
    read_ohlcv_long,
    read_wide,
)
from keel.data.spreads import abdi_ranaldo_spread
from keel.errors import DataError

SP500 = "daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz"
SECTORS = "daily/sp500_constituents/constituents_2018-04-02.csv"


@pytest.fixture(scope="module")
def sp500(shared_data: Path):
    return read_ohlcv_long(shared_data / SP500, on_missing="ffill")


def test_sp500_long_file_loads_with_sectors(sp500, shared_data):
    rep = sp500.report
    assert rep.symbols == 505
    assert rep.rows == 619_040 - 2  # two leading NaN rows had nothing to ffill from
    assert any("forward-filled" in a and "'open': 11" in a for a in rep.actions)
    assert sp500.close.shape == (1259, 505)
    assert sp500.close.index[0] == pd.Timestamp("2013-02-08 21:00", tz="UTC")
    assert sp500.close.index[-1] == pd.Timestamp("2018-02-07 21:00", tz="UTC")
    # A value read straight from the file (first AAL row: 2013-02-08 close 14.75).
    assert sp500.close.loc["2013-02-08", "AAL"].iloc[0] == 14.75
    assert sp500.volume.loc["2013-02-08", "AAL"].iloc[0] == 8_407_500
    sectors = load_sectors(shared_data / SECTORS)
    md = sp500.to_market(sectors, on_missing="ffill")
    assert md.missing_report.changed and len(md.missing_report.dropped_symbols) == 29
    assert md.sectors["AAPL"] == "Information Technology"
    assert md.sectors["JPM"] == "Financials"
    assert (md.sectors != "Unknown").mean() > 0.98
    assert md.spreads is not None and (md.spreads.iloc[1:] > 0).all().all()
    # Point-in-time: the DST change on 2013-03-10 moves the UTC close stamp.
    assert md.prices.index[md.prices.index.normalize() == "2013-03-11"].hour[0] == 20


def test_sp500_default_policy_raises_naming_the_nan(shared_data):
    with pytest.raises(DataError) as e:
        read_ohlcv_long(shared_data / SP500)
    assert e.value.field == "open" and e.value.symbol == "BHF"
    assert e.value.context["file"].endswith("all_stocks_5yr.csv.gz")
    assert isinstance(e.value.context["row"], int)


def test_sp500_drop_policy_reports(shared_data):
    md = load_prices_long(shared_data / SP500, sectors=shared_data / SECTORS,
                          on_missing="drop", spreads=False)
    assert md.on_missing.value == "drop"
    assert md.n_assets < 505 and md.missing_report.dropped_symbols


def test_sector_map_variants(shared_data):
    s = load_sectors(shared_data / "daily/sp500_constituents/nyse_kaggle_securities_2016.csv")
    assert s["MMM"] == "Industrials" and len(s) == 505
    c = load_sectors(shared_data / "daily/sp500_constituents/constituents_current_56509dd.csv")
    assert c["AOS"] == "Industrials"


# ---------------------------------------------------------------- bad inputs (long)

GOOD = """date,open,high,low,close,volume,Name
2013-02-08,10,11,9,10.5,100,AAA
2013-02-11,10.5,11,10,10.8,200,AAA
2013-02-12,10.8,11.2,10.6,11.0,300,AAA
2013-02-08,20,21,19,20.5,100,BBB
2013-02-11,20.5,21,20,20.8,200,BBB
2013-02-12,20.8,21.2,20.6,21.0,300,BBB
"""


def _write(tmp_path: Path, text: str, name: str = "p.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _mutate(line: int, old: str, new: str) -> str:
    lines = GOOD.splitlines()
    lines[line] = lines[line].replace(old, new, 1)
    return "\n".join(lines) + "\n"


def test_good_small_file_round_trips(tmp_path):
    md = load_prices_long(_write(tmp_path, GOOD), spreads=True)
    assert list(md.symbols) == ["AAA", "BBB"]
    assert md.prices.loc[:, "BBB"].tolist() == [20.5, 20.8, 21.0]
    pq = tmp_path / "p.parquet"
    pd.read_csv(_write(tmp_path, GOOD)).to_parquet(pq)
    md2 = load_prices_long(pq)
    pd.testing.assert_frame_equal(md.prices, md2.prices)
    gz = tmp_path / "p.csv.gz"
    gz.write_bytes(gzip.compress(GOOD.encode()))
    pd.testing.assert_frame_equal(md.prices, load_prices_long(gz).prices)


@pytest.mark.parametrize("text, field, row, symbol, match", [
    (GOOD.replace(",close,", ",price,").replace("Name", "Name"), "close", None, None,
     "missing column"),
    (_mutate(2, "10.8,200", "-10.8,200"), "close", 2, "AAA", "non-positive"),
    (_mutate(5, "20.8,200", "20.8,-5"), "volume", 5, "BBB", "negative"),
    (_mutate(3, "2013-02-12", "2013-02-11"), "date", 3, "AAA", "duplicated"),
    (_mutate(6, "2013-02-12", "2013-02-10"), "date", 6, "BBB", "not sorted"),
    (_mutate(4, ",20,", ",,"), "open", 4, "BBB", "NaN"),
    (_mutate(2, "10.8,200", "abc,200"), "close", 2, None, "non-numeric"),
    (_mutate(2, "2013-02-11", "2013-02-31"), "date", 2, None, "date"),
    (_mutate(2, "2013-02-11", "2013-02-09"), "date", 2, None, "not a trading session"),
])
def test_bad_long_files_raise_naming_field_and_row(tmp_path, text, field, row, symbol, match):
    with pytest.raises(DataError, match=match) as e:
        read_ohlcv_long(_write(tmp_path, text))
    assert e.value.field == field
    assert e.value.context["file"].endswith("p.csv")
    if row is not None:
        assert e.value.context["row"] == row
    if symbol is not None:
        assert e.value.symbol == symbol


def test_mixed_time_zones_are_refused(tmp_path):
    text = GOOD.replace("2013-02-08,10,", "2013-02-08T21:00:00+00:00,10,").replace(
        "2013-02-11,10.5", "2013-02-11T16:00:00-05:00,10.5").replace(
        "2013-02-12,10.8", "2013-02-12T21:00:00+00:00,10.8").replace(
        "2013-02-08,20", "2013-02-08T21:00:00+00:00,20").replace(
        "2013-02-11,20.5", "2013-02-11T21:00:00+00:00,20.5").replace(
        "2013-02-12,20.8", "2013-02-12T21:00:00+00:00,20.8")
    with pytest.raises(DataError, match="mixed time zones") as e:
        read_ohlcv_long(_write(tmp_path, text))
    assert e.value.field == "date" and e.value.context["row"] == 2


def test_tz_aware_single_zone_is_kept_and_naive_intraday_refused(tmp_path):
    aware = GOOD
    for d in ("2013-02-08", "2013-02-11", "2013-02-12"):
        aware = aware.replace(f"{d},", f"{d}T21:00:00Z,")
    o = read_ohlcv_long(_write(tmp_path, aware))
    assert o.close.index[0] == pd.Timestamp("2013-02-08 21:00", tz="UTC")
    naive = GOOD.replace("2013-02-08,", "2013-02-08 16:00,")
    with pytest.raises(DataError, match="naive intraday") as e:
        read_ohlcv_long(_write(tmp_path, naive))
    assert e.value.field == "date"


def test_missing_policies_report_what_they_did(tmp_path):
    text = _mutate(5, "20.8,200", ",200")  # BBB close NaN on 2013-02-11
    p = _write(tmp_path, text)
    dropped = read_ohlcv_long(p, on_missing="drop")
    assert dropped.report.actions == ("dropped 1 rows with NaN ({'close': 1})",)
    filled = read_ohlcv_long(p, on_missing="ffill")
    assert filled.close.loc[:, "BBB"].tolist() == [20.5, 20.5, 21.0]
    assert "forward-filled" in filled.report.actions[0]
    md = dropped.to_market(on_missing="ffill")
    assert md.prices.loc[:, "BBB"].tolist() == [20.5, 20.5, 21.0]
    assert md.missing_report.filled_cells == {"BBB": 1}
    with pytest.raises(DataError) as e:
        dropped.to_market()  # hole after pivot, default raise
    assert e.value.symbol == "BBB"


@pytest.mark.parametrize("content, name, match", [
    (b"\x1f\x8b\x08garbage-not-gzip", "p.csv.gz", "unreadable or corrupt"),
    (b"", "p.csv", "empty"),
    (b"PAR1notreallyparquet", "p.parquet", "unreadable or corrupt"),
    (b"date,open,high,low,close,volume,Name\n", "p.csv", "no data rows"),
])
def test_unreadable_files(tmp_path, content, name, match):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(DataError, match=match) as e:
        read_ohlcv_long(p)
    assert e.value.context["file"] == str(p)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found") as e:
        read_ohlcv_long(tmp_path / "nope.csv")
    assert e.value.context["file"].endswith("nope.csv")


def test_sector_map_errors(tmp_path):
    with pytest.raises(DataError, match="missing column") as e:
        load_sectors(_write(tmp_path, "Symbol,Name\nAAA,A Inc\n", "s.csv"))
    assert e.value.field == "Sector"
    with pytest.raises(DataError, match="duplicated symbol") as e:
        load_sectors(_write(tmp_path, "Symbol,Sector\nAAA,Energy\nAAA,Utilities\n", "s.csv"))
    assert e.value.symbol == "AAA" and e.value.context["row"] == 2


# ---------------------------------------------------------------- wide files


def test_wide_files_to_market(tmp_path):
    px = "date,AAA,BBB\n2013-02-08,10,20\n2013-02-11,11,21\n2013-02-12,12,22\n"
    vol = "date,AAA,BBB\n2013-02-08,1,2\n2013-02-11,3,4\n2013-02-12,5,0\n"
    md = load_prices_wide(_write(tmp_path, px, "px.csv"), _write(tmp_path, vol, "v.csv"),
                          sectors=pd.Series({"AAA": "Energy"}))
    assert md.prices.shape == (3, 2) and md.volumes.iloc[-1, 1] == 0
    assert md.sectors.tolist() == ["Energy", "Unknown"]
    wide = md.prices.copy()
    wide.to_parquet(tmp_path / "w.parquet")
    pd.testing.assert_frame_equal(read_wide(tmp_path / "w.parquet"), md.prices,
                                  check_names=False)


@pytest.mark.parametrize("text, field, row, match", [
    ("date,AAA\n2013-02-08,10\n2013-02-11,0\n", "AAA", 2, "non-positive"),
    ("date,AAA\n2013-02-11,10\n2013-02-08,11\n", "date", 2, "not sorted"),
    ("date,AAA\n2013-02-08,10\n2013-02-08,11\n", "date", 2, "duplicated"),
    ("date\n2013-02-08\n", "prices", None, "no symbol columns"),
])
def test_bad_wide_files(tmp_path, text, field, row, match):
    with pytest.raises(DataError, match=match) as e:
        read_wide(_write(tmp_path, text, "w.csv"))
    assert e.value.field == field
    if row is not None:
        assert e.value.context["row"] == row


# ---------------------------------------------------------------- spread estimate


def test_abdi_ranaldo_matches_hand_computation():
    idx = pd.date_range("2020-01-01", periods=3, tz="UTC")
    high = pd.DataFrame({"A": [101.0, 102.0, 103.0]}, index=idx)
    low = pd.DataFrame({"A": [99.0, 100.0, 99.5]}, index=idx)
    close = pd.DataFrame({"A": [100.5, 101.5, 100.0]}, index=idx)
    s = abdi_ranaldo_spread(high, low, close, window=2, min_spread=0.0)
    eta = (np.log(high["A"]) + np.log(low["A"])) / 2
    c = np.log(close["A"])
    s2 = [max(4 * (c.iloc[i - 1] - eta.iloc[i - 1]) * (c.iloc[i - 1] - eta.iloc[i]), 0)
          for i in (1, 2)]
    assert np.isnan(s["A"].iloc[0])
    assert s["A"].iloc[1] == pytest.approx(np.sqrt(s2[0]))
    assert s["A"].iloc[2] == pytest.approx(np.sqrt((s2[0] + s2[1]) / 2))
    flat = abdi_ranaldo_spread(close, close, close, min_spread=1e-4)
    assert (flat.iloc[1:] == 1e-4).all().all()
