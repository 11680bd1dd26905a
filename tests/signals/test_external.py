"""External signals: validation, the point-in-time rule, and evaluation on a market view."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.data.calendar import get_calendar
from keel.data.synthetic import synthetic_market
from keel.errors import CalendarError, DataError, ValidationError
from keel.signals import ExternalSignal, SignalModel, SignalTable, read_signal_table

NY = "America/New_York"


def _ny(s):
    return pd.Timestamp(s, tz=NY)


def _frame(dates, symbols, seed=0, **extra):
    rng = np.random.default_rng(seed)
    rows = [(d, s) for d in dates for s in symbols]
    df = pd.DataFrame(rows, columns=["date", "symbol"])
    df["score"] = rng.normal(size=len(df))
    for k, v in extra.items():
        df[k] = v
    return df


# ---------------------------------------------------------------- point in time


@pytest.mark.parametrize("day, close", [("2024-01-02", "16:00"),      # full session
                                        ("2024-11-29", "13:00"),      # half day (Black Friday)
                                        ("2024-07-03", "13:00")])     # half day
def test_value_dated_d_is_usable_only_from_the_close(day, close):
    table = read_signal_table(_frame([day], ["A", "B", "C"]))
    close_t = _ny(f"{day} {close}")
    assert table.known_at(close_t - pd.Timedelta(minutes=1)).empty
    assert table.known_at(close_t - pd.Timedelta(microseconds=1)).empty
    seen = table.known_at(close_t)
    assert sorted(seen.index) == ["A", "B", "C"]
    assert (seen["available_at"] == close_t.tz_convert("UTC")).all()
    assert len(table.known_at(close_t + pd.Timedelta(hours=3))) == 3


def test_non_session_date_waits_for_the_next_close():
    # Saturday 2024-01-06 -> Monday 2024-01-08 16:00 New York
    table = read_signal_table(_frame(["2024-01-06"], ["A", "B", "C"]))
    assert table.known_at(_ny("2024-01-08 15:59")).empty
    assert len(table.known_at(_ny("2024-01-08 16:00"))) == 3


def test_stated_timestamp_rules_over_the_close():
    df = _frame(["2024-01-02"], ["A", "B", "C"],
                timestamp=["2024-01-02T08:30:00-05:00", "2024-01-02T14:30:00Z",
                           "2024-01-03T02:00:00+00:00"])
    table = read_signal_table(df)
    assert table.known_at(_ny("2024-01-02 08:29")).empty
    assert list(table.known_at(_ny("2024-01-02 08:30")).index) == ["A"]
    assert list(table.known_at(_ny("2024-01-02 09:29")).index) == ["A"]
    assert sorted(table.known_at(_ny("2024-01-02 09:30")).index) == ["A", "B"]
    assert sorted(table.known_at(_ny("2024-01-02 21:00")).index) == ["A", "B", "C"]


def test_newest_date_only_by_default_and_max_age_carries_forward():
    df = pd.DataFrame({"date": ["2024-01-02", "2024-01-02", "2024-01-02", "2024-01-03"],
                       "symbol": ["A", "B", "C", "A"], "score": [1.0, 2.0, 3.0, 9.0]})
    table = read_signal_table(df)
    t = _ny("2024-01-03 16:00")
    assert table.known_at(t)["score"].to_dict() == {"A": 9.0}
    carried = table.known_at(t, max_age=pd.Timedelta(days=2))
    assert carried["score"].to_dict() == {"A": 9.0, "B": 2.0, "C": 3.0}
    assert table.known_at(t, max_age=pd.Timedelta(hours=1))["score"].to_dict() == {"A": 9.0}


_SESSIONS = get_calendar("XNYS").sessions("2024-01-02", "2024-03-28")
_SYMS = [f"S{i}" for i in range(6)]


@st.composite
def _tables_and_perturbations(draw):
    n_days = draw(st.integers(4, 20))
    start = draw(st.integers(0, len(_SESSIONS) - n_days))
    days = _SESSIONS[start:start + n_days]
    k = draw(st.integers(1, n_days - 1))                     # t falls on day k-1 ...
    t = (pd.Timestamp(days[k - 1]).tz_localize(NY)
         + pd.Timedelta(minutes=draw(st.integers(0, 24 * 60 - 1))))
    stamped = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    df = _frame([d.strftime("%Y-%m-%d") for d in days], _SYMS, seed=seed)
    if stamped:                                               # a stated time on each value's date
        mins = rng.integers(0, 24 * 60 - 1, len(df))
        df["timestamp"] = [(pd.Timestamp(d).tz_localize(NY) + pd.Timedelta(minutes=int(m)))
                           .isoformat() for d, m in zip(df["date"], mins, strict=True)]
    after = pd.to_datetime(df["date"]) > pd.Timestamp(days[k - 1])
    pert = df.copy()
    pert.loc[after, "score"] = rng.normal(size=int(after.sum())) * 100
    drop = after & (rng.random(len(df)) < 0.3)
    pert = pert[~drop]
    return df, pert, t


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tables_and_perturbations(), st.sampled_from([None, pd.Timedelta(days=3)]))
def test_rows_dated_after_t_never_change_what_is_seen_at_t(case, max_age):
    df, pert, t = case
    a = read_signal_table(df).known_at(t, max_age=max_age)
    b = read_signal_table(pert).known_at(t, max_age=max_age)
    pd.testing.assert_frame_equal(a.sort_index(), b.sort_index())


def test_evaluation_is_point_in_time_on_a_market():
    market = synthetic_market(8, 60, seed=3)
    days = [d.tz_convert(NY).strftime("%Y-%m-%d") for d in market.dates]
    df = _frame(days, list(market.symbols), seed=1)
    model = ExternalSignal(read_signal_table(df), ic=0.1)
    assert isinstance(model, SignalModel)
    t = market.dates[40]
    snap = model.evaluate(market.as_of(t))
    later = df[pd.to_datetime(df["date"]) > pd.Timestamp(days[40])].index
    df2 = df.copy()
    df2.loc[later, "score"] = 1e6
    snap2 = ExternalSignal(read_signal_table(df2), ic=0.1).evaluate(market.as_of(t))
    pd.testing.assert_series_equal(snap.score, snap2.score)
    raw = df[df["date"] == days[40]].set_index("symbol")["score"].reindex(market.symbols)
    z = (raw - raw.mean()) / raw.std(ddof=1)
    assert (z.abs() < 3).all()                  # no winsorising in this sample
    np.testing.assert_allclose(snap.score.to_numpy(), z.to_numpy(), rtol=1e-12)
    vol = market.as_of(t).latest("volatility")
    np.testing.assert_allclose(snap.alpha.to_numpy(), (0.1 * vol * z).to_numpy(), rtol=1e-12)


def test_alpha_column_is_used_as_given_and_unknown_names_have_no_view():
    market = synthetic_market(5, 30, seed=2)
    day = market.dates[10].tz_convert(NY).strftime("%Y-%m-%d")
    syms = list(market.symbols)
    df = pd.DataFrame({"date": day, "symbol": [*syms[:3], "ZZZ"],
                       "alpha": [0.01, -0.02, 0.005, 0.5]})
    snap = ExternalSignal(read_signal_table(df)).evaluate(market.as_of(market.dates[12]))
    assert snap.alpha.to_dict() == {syms[0]: 0.01, syms[1]: -0.02, syms[2]: 0.005,
                                    syms[3]: 0.0, syms[4]: 0.0}
    assert snap.score.isna().sum() == 2 and snap.coverage == 0.6
    with pytest.raises(DataError, match="no external signal"):
        ExternalSignal(read_signal_table(df)).evaluate(market.as_of(market.dates[9]))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("change, field, row, value", [
    ({"extra": [1, 2, 3]}, "extra", None, None),
    ({"date": ["2024-01-02", "2024-13-02", "2024-01-02"]}, "date", 1, "2024-13-02"),
    ({"date": ["2024-01-02", "2024-01-02", "02/01/2024"]}, "date", 2, "02/01/2024"),
    ({"date": ["2024-01-02", "2024-01-02T10:00", "2024-01-02"]}, "date", 1,
     "2024-01-02T10:00"),
    ({"score": [1.0, np.nan, 2.0]}, "score", 1, None),
    ({"score": ["1", "2", "abc"]}, "score", 2, "abc"),
    ({"symbol": ["A", "A", "C"]}, "date,symbol", 1, "2024-01-02"),
    ({"symbol": ["A", "", "C"]}, "symbol", 1, ""),
    ({"timestamp": ["2024-01-02T10:00Z", "2024-01-02 10:00", "2024-01-02T10:00Z"]},
     "timestamp", 1, "2024-01-02 10:00"),
    ({"timestamp": ["2024-01-02T10:00Z", "2024-01-02T10:00Z", "yesterday+01:00"]},
     "timestamp", 2, "yesterday+01:00"),
    ({"timestamp": ["2024-01-01T10:00Z", "2024-01-02T10:00Z", "2024-01-02T10:00Z"]},
     "timestamp", 0, "2024-01-01T10:00Z"),
])
def test_bad_rows_are_refused_naming_row_field_value(change, field, row, value):
    df = pd.DataFrame({"date": ["2024-01-02"] * 3, "symbol": ["A", "B", "C"],
                       "score": [1.0, 2.0, 3.0]})
    for k, v in change.items():
        df[k] = v
    with pytest.raises(DataError) as err:
        read_signal_table(df)
    e = err.value
    assert e.field == field
    assert e.context.get("row") == row
    if value is not None:
        assert str(e.value) == value


def test_frame_level_errors():
    with pytest.raises(DataError, match="score' or an 'alpha"):
        read_signal_table(pd.DataFrame({"date": ["2024-01-02"], "symbol": ["A"]}))
    with pytest.raises(DataError, match="missing required column"):
        read_signal_table(pd.DataFrame({"symbol": ["A"], "score": [1.0]}))
    with pytest.raises(DataError, match="empty"):
        read_signal_table(pd.DataFrame(columns=["date", "symbol", "score"]))
    aware = pd.DataFrame({"date": pd.DatetimeIndex(["2024-01-02"], tz="UTC"),
                          "symbol": ["A"], "score": [1.0]})
    with pytest.raises(DataError, match="without a time zone"):
        read_signal_table(aware)
    naive = pd.DataFrame({"date": ["2024-01-02"], "symbol": ["A"], "score": [1.0],
                          "timestamp": pd.DatetimeIndex(["2024-01-02 10:00"])})
    with pytest.raises(DataError, match="ambiguous time zone"):
        read_signal_table(naive)
    with pytest.raises(CalendarError):
        read_signal_table(pd.DataFrame({"date": ["2024-01-02"], "symbol": ["A"],
                                        "score": [1.0]}), calendar="NOPE")
    with pytest.raises(ValidationError):
        ExternalSignal(read_signal_table(_frame(["2024-01-02"], ["A"])), max_age=pd.Timedelta(0))
    with pytest.raises(ValidationError):
        ExternalSignal("not a table")  # type: ignore[arg-type]


def test_csv_and_parquet_files_round_trip(tmp_path):
    df = _frame(["2024-01-02", "2024-01-03"], ["A", "B", "NA"], seed=4)
    csv, pq = tmp_path / "s.csv", tmp_path / "s.parquet"
    df.to_csv(csv, index=False)
    df.to_parquet(pq, index=False)
    a, b = read_signal_table(csv), read_signal_table(pq)
    assert isinstance(a, SignalTable) and len(a) == 6
    pd.testing.assert_frame_equal(a.to_frame(), b.to_frame())
    assert "NA" in set(a.symbols)                  # a ticker, not a missing value
    csv.write_text("date,symbol,score\n2024-01-02,A,1\n2024-01-02,B,\n")
    with pytest.raises(DataError) as err:
        read_signal_table(csv)
    assert err.value.context["file"] == str(csv) and err.value.context["row"] == 1
    with pytest.raises(DataError, match="unknown signal file type"):
        read_signal_table(tmp_path / "s.xlsx")
    with pytest.raises(DataError, match="cannot read"):
        read_signal_table(tmp_path / "missing.csv")
