"""Session schedule (StartTime / EndTime / TimeZone / StartDay / EndDay), on a simulated clock.

The schedule's arithmetic is checked against an independent formulation (minute of the week
in the zone's wall-clock time), the session state machine by feeding it frames and timer ticks
at chosen instants: no sleeps, no sockets.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.venues.fix.test_session import Peer

from keel.errors import ConfigError
from keel.venues.fix.schedule import SessionSchedule, parse_day, parse_time
from keel.venues.fix.session import Session, SessionConfig
from keel.venues.fix.store import MemoryStore

NY = ZoneInfo("America/New_York")
WEEK = 7 * 1440


def at(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0, tz: ZoneInfo = NY) -> float:
    return datetime(y, mo, d, h, mi, s, tzinfo=tz).timestamp()


def _oracle_open(sched: SessionSchedule, t: float) -> bool:
    """Open or not, by minute of the week (daily: minute of the day) in wall-clock time."""
    local = datetime.fromtimestamp(t, UTC).astimezone(ZoneInfo(sched.time_zone))
    m = local.hour * 60 + local.minute + local.second / 60
    st_, en = (sched.start_time.hour * 60 + sched.start_time.minute,
               sched.end_time.hour * 60 + sched.end_time.minute)
    if sched.start_day is None or sched.end_day is None:
        if st_ == en:
            return True
        return st_ <= m <= en if st_ < en else (m >= st_ or m <= en)
    w = local.weekday() * 1440 + m
    a, b = sched.start_day * 1440 + st_, sched.end_day * 1440 + en
    return a <= w <= b if a < b else (w >= a or w <= b)


SCHEDULES = [
    SessionSchedule(time(8), time(17), "America/New_York"),
    SessionSchedule(time(18), time(17), "America/New_York"),  # over midnight
    SessionSchedule(time(0), time(0), "UTC"),  # all day, new session at midnight
    SessionSchedule(time(17), time(17), "America/New_York", start_day=6, end_day=4),
    SessionSchedule(time(9, 30), time(16), "Europe/London", start_day=0, end_day=4),
]


@settings(max_examples=300, deadline=None)
@given(i=st.integers(0, len(SCHEDULES) - 1),
       t=st.integers(int(at(2026, 1, 1, 0)), int(at(2027, 1, 1, 0))))
def test_open_hours_agree_with_minute_of_week_oracle(i: int, t: int) -> None:
    sched = SCHEDULES[i]
    period = sched.period(float(t))
    assert (period is not None) == _oracle_open(sched, float(t))
    if period is not None:
        start, end = period
        assert start <= t <= end
        local_start = datetime.fromtimestamp(start, UTC).astimezone(ZoneInfo(sched.time_zone))
        assert local_start.time() == sched.start_time  # a period starts at StartTime
        if sched.start_day is not None:
            assert local_start.weekday() == sched.start_day
        assert sched.same_session(start, float(t)) and sched.same_session(float(t), end)


def test_daily_session_in_new_york_time_across_daylight_saving() -> None:
    s = SCHEDULES[0]
    # 2026-03-08 is the spring-forward Sunday: 08:00 New York is 13:00 UTC before, 12:00 after
    assert s.session_start(at(2026, 3, 6, 9)) == at(2026, 3, 6, 13, tz=ZoneInfo("UTC"))
    assert s.session_start(at(2026, 3, 9, 9)) == at(2026, 3, 9, 12, tz=ZoneInfo("UTC"))
    assert not s.is_open(at(2026, 3, 9, 7, 59, 59)) and s.is_open(at(2026, 3, 9, 17))
    assert not s.is_open(at(2026, 3, 9, 17, 0, 1))
    assert not s.same_session(at(2026, 3, 9, 9), at(2026, 3, 10, 9))


def test_overnight_and_weekly_periods() -> None:
    over = SCHEDULES[1]  # 18:00 -> 17:00 next day
    assert over.session_start(at(2026, 6, 2, 10)) == at(2026, 6, 1, 18)
    assert over.session_start(at(2026, 6, 2, 19)) == at(2026, 6, 2, 18)
    assert not over.is_open(at(2026, 6, 2, 17, 30))
    fx = SCHEDULES[3]  # Sunday 17:00 -> Friday 17:00 New York
    sunday = at(2026, 6, 7, 17)
    for day in (7, 8, 10, 12):  # Sunday 17:30 .. Friday 16:00: one session
        assert fx.session_start(at(2026, 6, day, 16 if day == 12 else 17, 30 if day != 12
                                   else 0)) == sunday
    assert not fx.is_open(at(2026, 6, 12, 17, 0, 1))  # Friday after the close
    assert not fx.is_open(at(2026, 6, 13, 12))  # Saturday
    assert not fx.is_open(at(2026, 6, 14, 16, 59))  # Sunday before the open
    assert fx.session_start(at(2026, 6, 14, 17, 1)) == at(2026, 6, 14, 17)


def test_bad_schedule_values_are_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        parse_time("8:00", field="StartTime")
    assert info.value.field == "StartTime" and info.value.value == "8:00"
    with pytest.raises(ConfigError):
        parse_time("25:00:00")
    assert parse_day("Mo") == 0 and parse_day("sunday") == 6 and parse_day("FRI") == 4
    with pytest.raises(ConfigError) as info:
        parse_day("Funday", field="EndDay")
    assert info.value.field == "EndDay"
    with pytest.raises(ConfigError) as info:
        SessionSchedule(time(8), time(17), "Mars/Olympus")
    assert info.value.field == "TimeZone"
    with pytest.raises(ConfigError) as info:
        SessionSchedule(time(8), time(17), start_day=0)
    assert info.value.field == "EndDay"


# ---------------------------------------------------------------- the session state machine

DAILY = SessionSchedule(time(8), time(17), "America/New_York")


def _acceptor(dd, schedule: SessionSchedule, t: float) -> tuple[Session, Peer]:
    s = Session(SessionConfig("FIX.4.2", "ISLD", "TW42", schedule=schedule), dd, MemoryStore())
    s.on_connect(t)
    return s, Peer(s)


def _reconnect(s: Session, p: Peer, t: float) -> None:
    s.on_disconnect(t)
    s.take_output()
    s.on_connect(t)
    p.seq = s.next_target  # a peer that kept its numbers (or reset them with ours)


def test_logon_before_the_start_is_refused_without_an_answer(dd42) -> None:
    s, _ = _acceptor(dd42, DAILY, at(2026, 6, 2, 7, 59))
    assert s.disconnect_requested  # the connection itself is outside the hours
    assert s.take_output() == []
    s2 = Session(SessionConfig("FIX.4.2", "ISLD", "TW42", schedule=DAILY), dd42, MemoryStore())
    s2.on_connect(at(2026, 6, 2, 16, 59, 50))  # connected while open ...
    assert not s2.disconnect_requested
    Peer(s2).logon(at(2026, 6, 2, 17, 0, 5))  # ... the Logon arrives after the close
    assert s2.disconnect_requested and not s2.is_logged_on and s2.take_output() == []


def test_logout_at_the_end_and_sequence_reset_at_the_next_start(dd42) -> None:
    t = at(2026, 6, 2, 8, 0, 1)
    s, p = _acceptor(dd42, DAILY, t)
    p.logon(t)
    assert s.is_logged_on
    for k in range(3):  # three test requests answered: both sides move on
        p.send(f"35=1|112=T{k}|", t + 10 + k)
    assert (s.next_sender, s.next_target) == (5, 5)
    s.take_output()
    _reconnect(s, p, t + 60)  # a reconnect inside the same session keeps the numbers
    p.logon(t + 61)
    assert s.is_logged_on and (s.next_sender, s.next_target) == (6, 6)
    s.take_output()
    p.send("35=0|", at(2026, 6, 2, 16, 59, 58))  # a heartbeat just before the close
    s.on_timer(at(2026, 6, 2, 16, 59, 59))
    assert not s.disconnect_requested and s.is_logged_on
    s.take_output()
    s.on_timer(at(2026, 6, 2, 17, 0, 1))  # the hours end: Logout, then disconnect
    out = p.out()
    assert [m.msg_type for m in out] == ["5"] and out[0].body[58] == "Session end"
    assert s.disconnect_requested and not s.is_logged_on
    # next morning: a new session, both numbers start again at 1
    t2 = at(2026, 6, 3, 8, 0, 5)
    s.on_disconnect(t2)
    s.on_connect(t2)
    p.seq = 1
    p.logon(t2)
    (reply,) = p.out()
    assert s.is_logged_on and reply.msg_type == "A" and reply.seq_num == 1
    assert (s.next_sender, s.next_target) == (2, 2)


def test_initiator_sends_no_logon_outside_the_hours(dd42) -> None:
    cfg = SessionConfig("FIX.4.2", "TW42", "ISLD", initiator=True, schedule=DAILY)
    s = Session(cfg, dd42, MemoryStore())
    s.on_connect(at(2026, 6, 2, 18))
    assert s.take_output() == [] and s.disconnect_requested and not s.sent_logon
    s.on_disconnect(at(2026, 6, 2, 18))
    s.on_connect(at(2026, 6, 3, 9))
    (logon,) = s.take_output()
    assert b"35=A\x01" in logon and s.sent_logon


def test_weekly_session_resets_once_a_week(dd42) -> None:
    fx = SessionSchedule(time(17), time(17), "America/New_York", start_day=6, end_day=4)
    monday = at(2026, 6, 8, 9)
    s, p = _acceptor(dd42, fx, monday)
    p.logon(monday)
    p.send("35=1|112=A|", monday + 1)
    assert (s.next_sender, s.next_target) == (3, 3)
    s.take_output()
    thursday = at(2026, 6, 11, 9)  # same weekly session: numbers carry on
    _reconnect(s, p, thursday)
    p.logon(thursday)
    assert s.is_logged_on and (s.next_sender, s.next_target) == (4, 4)
    s.take_output()
    saturday = at(2026, 6, 13, 12)
    s.on_timer(saturday)  # first tick after Friday's close: Logout, disconnect
    assert [m.msg_type for m in p.out()] == ["5"]
    assert s.disconnect_requested and not s.is_logged_on
    s.on_disconnect(saturday)
    s.on_connect(saturday)  # refused: the market is closed
    assert s.disconnect_requested and s.take_output() == []
    sunday = at(2026, 6, 14, 17, 0, 30)
    s.on_disconnect(sunday)
    s.on_connect(sunday)
    p.seq = 1
    p.logon(sunday)
    (reply,) = p.out()
    assert s.is_logged_on and reply.seq_num == 1
    assert s.period is not None and s.period[0] == sunday - timedelta(seconds=30).total_seconds()


def test_a_restart_in_a_later_period_resets_a_file_store(dd42, tmp_path) -> None:
    """The store records the period its numbers belong to (QuickFIX's creation time): a
    process restarted the same day keeps them, one restarted the next day starts at 1."""
    from keel.venues.fix.store import FileStore

    cfg = SessionConfig("FIX.4.2", "ISLD", "TW42", schedule=DAILY)

    def run(t: float) -> tuple[int, int, int, int]:
        store = FileStore(tmp_path, cfg.session_id)
        try:
            s = Session(cfg, dd42, store)
            s.on_connect(t)
            p = Peer(s)
            p.seq = s.next_target
            p.logon(t)
            before = (s.next_sender, s.next_target)
            (reply,) = p.out()
            p.send("35=1|112=X|", t + 1)
            assert s.is_logged_on
            return reply.seq_num, before[1], s.next_sender, s.next_target
        finally:
            store.close()

    assert run(at(2026, 6, 2, 9)) == (1, 2, 3, 3)
    assert run(at(2026, 6, 2, 15)) == (3, 4, 5, 5)  # same day: the numbers carry on
    assert run(at(2026, 6, 3, 9)) == (1, 2, 3, 3)  # next day's session: reset to 1
    store = FileStore(tmp_path, cfg.session_id)
    assert store.period_start == at(2026, 6, 3, 8)
    store.close()
