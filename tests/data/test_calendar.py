"""ExchangeCalendar and stamp_at_close against known NYSE facts (half days, DST, holidays)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.data.calendar import ExchangeCalendar, stamp_at_close
from keel.data.market import MarketData
from keel.errors import CalendarError

UTC = "UTC"


@pytest.fixture(scope="module")
def nyse() -> ExchangeCalendar:
    return ExchangeCalendar("XNYS", "1998-01-01", "2026-12-31")


def test_range_covers_1998_to_2026(nyse):
    s = nyse.sessions()
    assert s[0] == pd.Timestamp("1998-01-02")  # Jan 1 is a holiday
    assert s[-1] == pd.Timestamp("2026-12-31")
    assert nyse.is_session("2001-09-10") and not nyse.is_session("2001-09-11")  # 9/11 closure


def test_half_days_close_at_1pm_eastern(nyse):
    for day in ("2013-11-29", "2013-12-24"):
        assert nyse.close(day) == pd.Timestamp(f"{day} 18:00", tz=UTC)  # 13:00 EST
        assert nyse.is_early_close(day)
        assert len(nyse.session_minutes(day)) == 210
    assert list(nyse.early_closes("2013-01-01", "2013-12-31").strftime("%m-%d")) == [
        "07-03", "11-29", "12-24"]
    assert not nyse.is_early_close("2013-11-27")


def test_dst_moves_the_utc_close(nyse):
    # US DST began 2013-03-10: close 16:00 ET is 21:00 UTC before, 20:00 UTC after.
    st_ = stamp_at_close(["2013-03-08", "2013-03-11", "2013-11-01", "2013-11-04"], nyse)
    assert list(st_.hour) == [21, 20, 20, 21]
    assert nyse.open("2013-03-11") == pd.Timestamp("2013-03-11 13:30", tz=UTC)
    assert len(nyse.session_minutes("2013-03-11")) == 390


def test_is_open_next_previous(nyse):
    t = pd.Timestamp("2013-11-29 17:59", tz=UTC)
    assert nyse.is_open(t)
    assert not nyse.is_open(pd.Timestamp("2013-11-29 18:00", tz=UTC))  # [open, close)
    assert not nyse.is_open(pd.Timestamp("2013-11-28 15:00", tz=UTC))  # Thanksgiving
    assert nyse.next_open(t) == pd.Timestamp("2013-12-02 14:30", tz=UTC)
    assert nyse.previous_open(t) == pd.Timestamp("2013-11-29 14:30", tz=UTC)
    assert nyse.previous_close(t) == pd.Timestamp("2013-11-27 21:00", tz=UTC)
    assert nyse.next_close(t) == pd.Timestamp("2013-11-29 18:00", tz=UTC)
    assert nyse.session_of(t) == pd.Timestamp("2013-11-29")
    times = pd.DatetimeIndex(["2013-11-29 17:59", "2013-11-29 18:00", "2013-12-02 15:00"],
                             tz=UTC)
    assert list(nyse.is_open_array(times)) == [True, False, True]
    with pytest.raises(CalendarError) as e:
        nyse.session_of(pd.Timestamp("2013-11-29 19:00", tz=UTC))
    assert e.value.field == "t"


def test_crypto_calendar_is_always_open():
    c = ExchangeCalendar("24/7", "2018-01-01", "2018-12-31")
    assert c.is_session("2018-04-07")  # a Saturday
    assert c.is_open(pd.Timestamp("2018-04-07 03:17", tz=UTC))
    assert len(c.session_minutes("2018-04-04")) == 1440
    assert c.close("2018-04-04") == pd.Timestamp("2018-04-05 00:00", tz=UTC)


def test_errors_name_the_culprit(nyse):
    with pytest.raises(CalendarError) as e:
        ExchangeCalendar("NOPE")
    assert e.value.field == "calendar" and e.value.value == "NOPE"
    with pytest.raises(CalendarError) as e:
        stamp_at_close(["2013-11-27", "2013-11-28"], nyse)
    assert e.value.field == "date" and e.value.value == "2013-11-28"
    with pytest.raises(CalendarError) as e:
        nyse.close("2030-01-02")
    assert "outside the calendar range" in e.value.message
    with pytest.raises(CalendarError) as e:
        nyse.is_open(pd.Timestamp("2013-11-29 17:00"))  # naive
    assert e.value.field == "t"
    with pytest.raises(CalendarError):
        ExchangeCalendar("XNYS", "2020-01-01", "2019-01-01")


def test_stamp_by_name_widens_the_range():
    st_ = stamp_at_close(["2027-01-04"], "XNYS")
    assert st_[0] == pd.Timestamp("2027-01-04 21:00", tz=UTC)


_SESSIONS = ExchangeCalendar("XNYS", "2012-01-01", "2014-12-31").sessions()


@settings(max_examples=40, deadline=None)
@given(i=st.integers(2, len(_SESSIONS) - 40), n=st.integers(3, 30),
       minutes=st.integers(-600, 600))
def test_as_of_sees_a_bar_exactly_from_its_close(i, n, minutes):
    """Stamped at close, a daily bar is invisible before its close and visible at/after it."""
    days = _SESSIONS[i - 2: i + n]
    idx = stamp_at_close(days, "XNYS")
    prices = pd.DataFrame({"A": np.linspace(10, 20, len(idx))}, index=idx)
    md = MarketData(prices=prices, volumes=prices * 0 + 1)
    k = len(idx) // 2
    t = idx[k] + pd.Timedelta(minutes=minutes)
    view = md.as_of(t)
    assert view.now <= t
    assert (view.now == idx[k]) == (minutes >= 0 and (k + 1 == len(idx) or t < idx[k + 1]))
    if minutes < 0:
        assert view.now == idx[k - 1]


def test_default_range_reaches_past_today_for_live_checks():
    from keel.data.calendar import ExchangeCalendar as Cal

    cal = Cal()
    assert cal.is_open(pd.Timestamp("2027-03-01 15:00", tz="UTC"))  # a Monday, 10:00 ET


def test_regular_hours_know_half_days_and_holidays():
    from keel.data.calendar import regular_hours

    t = pd.DatetimeIndex(["2024-11-29 14:00", "2024-11-29 17:59", "2024-11-29 18:00",
                          "2024-11-28 15:00", "2024-12-02 14:29", "2024-12-02 14:30",
                          "2024-12-02 20:59", "2024-12-02 21:00"], tz="UTC")
    ok, local = regular_hours(t)
    # half day closes 13:00 New York (18:00 UTC); Thanksgiving closed; 09:30-16:00 otherwise
    assert ok.tolist() == [False, True, False, False, False, True, True, False]
    assert str(local.tz) == "America/New_York"
