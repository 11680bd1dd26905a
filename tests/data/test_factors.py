"""Fama-French daily factor files: header/footer handling, percent -> fraction, bad input."""

from __future__ import annotations

import pandas as pd
import pytest

from keel.data.factors import load_fama_french
from keel.errors import DataError

FF = "factors/fama_french"


def test_three_factor_daily_file(shared_data):
    ff = load_fama_french(shared_data / FF / "F-F_Research_Data_Factors_daily.CSV")
    assert list(ff.columns) == ["Mkt-RF", "SMB", "HML", "RF"]
    assert ff.shape == (25_754, 4)
    assert ff.index[0] == pd.Timestamp("1926-07-01")
    assert ff.index[-1] == pd.Timestamp("2024-05-31")
    # Row 1 of the file: 0.10, -0.25, -0.27, 0.009 percent.
    assert ff.iloc[0].tolist() == pytest.approx([0.0010, -0.0025, -0.0027, 0.00009])
    assert ff["Mkt-RF"].abs().max() < 0.25  # fractions, not percent


def test_five_factor_file_and_stamping(shared_data):
    ff5 = load_fama_french(shared_data / FF / "F-F_Research_Data_5_Factors_2x3_daily.CSV",
                           start="2013-01-01", stamp=True)
    assert list(ff5.columns) == ["Mkt-RF", "SMB", "HML", "RMW", "CMA", "RF"]
    assert str(ff5.index.tz) == "UTC"
    assert ff5.index[0] == pd.Timestamp("2013-01-02 21:00", tz="UTC")


HEAD = "Some description\n\n,Mkt-RF,SMB,RF\n"


@pytest.mark.parametrize("body, field, row, match", [
    ("19260701, 0.1, 0.2, 0.01\n19260701, 0.1, 0.2, 0.01\n", "date", 2, "duplicated"),
    ("19260702, 0.1, 0.2, 0.01\n19260701, 0.1, 0.2, 0.01\n", "date", 2, "not sorted"),
    ("19260701, 0.1, abc, 0.01\n", "SMB", 1, "non-numeric"),
    ("19260701, 0.1, , 0.01\n", "SMB", 1, "NaN"),
    ("1926-07-01, 0.1, 0.2, 0.01\n", "date", 1, "unparseable"),
])
def test_bad_factor_files(tmp_path, body, field, row, match):
    p = tmp_path / "ff.CSV"
    p.write_text(HEAD + body + "\n Copyright\n")
    with pytest.raises(DataError, match=match) as e:
        load_fama_french(p)
    assert e.value.field == field and e.value.context["row"] == row
    assert e.value.context["file"] == str(p)


def test_no_header_or_binary_garbage(tmp_path):
    p = tmp_path / "ff.CSV"
    p.write_text("just text\n1,2,3\n")
    with pytest.raises(DataError, match="no header") as e:
        load_fama_french(p)
    assert e.value.field == "header"
    p.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(DataError, match="unreadable"):
        load_fama_french(p)
