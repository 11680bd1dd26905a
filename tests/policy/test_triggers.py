"""Triggers: each rule firing and not firing with its reason code, and the combined decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.data.market import MarketData
from keel.errors import ValidationError
from keel.policy.triggers import (
    AbsoluteDrift,
    CalendarSchedule,
    Cooldown,
    Frequency,
    KillSwitch,
    NameDrift,
    PolicyContext,
    PortfolioDrift,
    ReasonCode,
    RebalancePolicy,
    RelativeDrift,
    SpreadBlowout,
    TradingWindows,
    VolatilitySpike,
)
from keel.types import utc

WED = utc(2024, 5, 1, 14, 35)  # Wednesday 10:35 New York, a session
TARGETS = {"A": 0.5, "B": 0.3, "C": 0.2}


def ctx(weights: dict, **kw: object) -> PolicyContext:
    return PolicyContext(now=kw.pop("now", WED), weights=pd.Series(weights),
                         targets=pd.Series(kw.pop("targets", TARGETS)), **kw)  # type: ignore


def test_absolute_drift() -> None:
    fired = AbsoluteDrift(0.05).check(ctx({"A": 0.56, "B": 0.27, "C": 0.17}))
    assert (fired.fired, fired.code, fired.names) == (True, ReasonCode.DRIFT_ABSOLUTE, ("A",))
    quiet = AbsoluteDrift(0.05).check(ctx({"A": 0.53, "B": 0.27, "C": 0.2}))
    assert (quiet.fired, quiet.code) == (False, ReasonCode.DRIFT_ABSOLUTE)


def test_relative_drift() -> None:
    c = RelativeDrift(0.10).check(ctx({"A": 0.5, "B": 0.3, "C": 0.23}))
    assert (c.fired, c.code, c.names) == (True, ReasonCode.DRIFT_RELATIVE, ("C",))
    assert not RelativeDrift(0.10).check(ctx({"A": 0.52, "B": 0.29, "C": 0.19})).fired
    # a held name with target 0 is always drift
    assert RelativeDrift(0.10).check(ctx({**TARGETS, "D": 0.01})).names == ("D",)


def test_portfolio_l1_drift() -> None:
    c = PortfolioDrift(0.05).check(ctx({"A": 0.53, "B": 0.27, "C": 0.2}))
    assert (c.fired, c.code, c.names) == (True, ReasonCode.DRIFT_L1, ("A", "B"))
    assert not PortfolioDrift(0.05).check(ctx({"A": 0.51, "B": 0.29, "C": 0.2})).fired


def test_name_drift() -> None:
    rule = NameDrift({"B": 0.01})
    c = rule.check(ctx({"A": 0.54, "B": 0.28, "C": 0.18}))
    assert (c.fired, c.code, c.names) == (True, ReasonCode.DRIFT_NAME, ("B",))
    assert not rule.check(ctx({"A": 0.54, "B": 0.295, "C": 0.165})).fired


@pytest.mark.parametrize("freq,last,fires", [
    (Frequency.DAILY, utc(2024, 4, 30, 20), True),
    (Frequency.DAILY, utc(2024, 5, 1, 13, 40), False),
    (Frequency.WEEKLY, utc(2024, 4, 29, 15), False),  # same ISO week (Mon)
    (Frequency.WEEKLY, utc(2024, 4, 26, 15), True),
    (Frequency.MONTHLY, utc(2024, 4, 30, 15), True),
    (Frequency.MONTHLY, utc(2024, 5, 1, 13, 31), False),
    (Frequency.QUARTERLY, utc(2024, 4, 2, 15), False),
    (Frequency.QUARTERLY, utc(2024, 3, 28, 15), True),
    (Frequency.MONTHLY, None, True),
])
def test_calendar_schedule(freq: Frequency, last: object, fires: bool) -> None:
    c = CalendarSchedule(freq).check(ctx(TARGETS, last_rebalance=last))
    assert (c.fired, c.code) == (fires, ReasonCode.CALENDAR)


def test_calendar_not_on_holiday_or_weekend() -> None:
    for day in (utc(2024, 5, 4, 15), utc(2024, 12, 25, 15)):
        assert not CalendarSchedule(Frequency.DAILY).check(ctx(TARGETS, now=day)).fired


def test_cooldown_counts_sessions() -> None:
    # Fri 2024-04-26 -> Wed 2024-05-01: 3 sessions (Mon, Tue, Wed)
    c = Cooldown(5).check(ctx(TARGETS, last_rebalance=utc(2024, 4, 26, 15)))
    assert (c.fired, c.code) == (True, ReasonCode.COOLDOWN)
    assert not Cooldown(3).check(ctx(TARGETS, last_rebalance=utc(2024, 4, 26, 15))).fired
    assert not Cooldown(5).check(ctx(TARGETS)).fired


@pytest.mark.parametrize("now,blocked", [
    (utc(2024, 5, 1, 14, 32), False),  # 10:32 EDT
    (utc(2024, 5, 1, 13, 36), False),  # 09:36 EDT
    (utc(2024, 5, 1, 19, 52), False),  # 15:52 EDT
    (utc(2024, 5, 1, 15, 0), True),  # 11:00 EDT
    (utc(2024, 5, 4, 14, 32), True),  # Saturday
    (utc(2024, 1, 3, 15, 32), False),  # 10:32 EST in winter
])
def test_trading_windows(now: object, blocked: bool) -> None:
    c = TradingWindows(width=5).check(ctx(TARGETS, now=now))
    assert (c.fired, c.code) == (blocked, ReasonCode.OUTSIDE_WINDOW)


def test_window_end_is_exclusive() -> None:
    late = ctx(TARGETS, now=utc(2024, 5, 1, 14, 35))  # 10:35 EDT: [10:30, 10:35) has closed
    assert TradingWindows(width=5).check(late).fired
    assert not TradingWindows(width=6).check(late).fired


def test_volatility_spike_and_spread_blowout() -> None:
    w = {"A": 0.6, "B": 0.3, "C": 0.1}
    c = VolatilitySpike(2.0).check(ctx(w, vol_ratio=2.5))
    assert (c.fired, c.code, c.names) == (True, ReasonCode.VOL_SPIKE, ("A", "C"))
    assert not VolatilitySpike(2.0).check(ctx(w, vol_ratio=1.2)).fired
    assert not VolatilitySpike(2.0).check(ctx(w)).fired
    s = SpreadBlowout(3.0).check(ctx(w, spread_ratio=pd.Series({"A": 4.0, "B": 1.0})))
    assert (s.fired, s.code, s.names) == (True, ReasonCode.SPREAD_BLOWOUT, ("A",))
    assert not SpreadBlowout(3.0).check(ctx(w, spread_ratio=pd.Series({"A": 2.0}))).fired


def test_kill_switch() -> None:
    k = KillSwitch()
    assert not k.check(ctx(TARGETS)).fired
    k.engage("ops halt")
    c = k.check(ctx(TARGETS))
    assert (c.fired, c.code, c.detail) == (True, ReasonCode.KILL_SWITCH, "ops halt")


def test_decision_precedence() -> None:
    k = KillSwitch()
    policy = RebalancePolicy([AbsoluteDrift(), Cooldown(5), VolatilitySpike(),
                              SpreadBlowout(), k])
    drifted = {"A": 0.6, "B": 0.3, "C": 0.1}
    d = policy.decide(ctx(drifted))
    assert d.trade and d.names == ("A", "C") and d.reasons == (ReasonCode.DRIFT_ABSOLUTE,)
    d = policy.decide(ctx(drifted, last_rebalance=utc(2024, 4, 30, 15)))
    assert not d.trade and d.reasons == (ReasonCode.COOLDOWN,)
    d = policy.decide(ctx(drifted, last_rebalance=utc(2024, 4, 30, 15), vol_ratio=3.0))
    assert d.trade and ReasonCode.VOL_SPIKE in d.reasons  # override beats cooldown
    d = policy.decide(ctx(drifted, spread_ratio=pd.Series({"A": 5.0})))
    assert d.names == ("C",) and ReasonCode.SPREAD_BLOWOUT in d.reasons
    d = policy.decide(ctx(drifted, spread_ratio=pd.Series({"A": 5.0, "C": 9.0})))
    assert not d.trade and ReasonCode.NO_TRADABLE_NAMES in d.reasons
    d = policy.decide(ctx(TARGETS))
    assert not d.trade and d.reasons == (ReasonCode.NO_TRIGGER,)
    k.engage()
    d = policy.decide(ctx(drifted, vol_ratio=3.0))
    assert not d.trade and d.reasons == (ReasonCode.KILL_SWITCH,)
    assert "HOLD" in d.explain()


def test_default_policy_and_market_context() -> None:
    idx = pd.date_range("2024-01-02 21:00", periods=120, freq="B", tz="UTC")
    rng = np.random.default_rng(0)
    r = np.concatenate([rng.normal(0, 0.005, 110), rng.normal(0, 0.05, 10)])
    px = pd.DataFrame({"A": 100 * np.cumprod(1 + r), "B": 50.0 + np.arange(120) * 0.01}, idx)
    vol = pd.DataFrame(1e6, index=idx, columns=["A", "B"])
    spreads = pd.DataFrame({"A": 0.001, "B": 0.001}, index=idx)
    spreads.iloc[-1, 0] = 0.01
    md = MarketData(px, vol, spreads=spreads)
    c = PolicyContext.from_market(idx[-1], {"A": 0.7, "B": 0.3}, {"A": 0.5, "B": 0.5}, md)
    assert c.vol_ratio is not None and c.vol_ratio > 2.0
    assert c.spread_ratio is not None and c.spread_ratio["A"] == pytest.approx(10.0)
    d = RebalancePolicy.default().decide(c)
    assert d.trade and d.names == ("B",)  # vol spike override; A filtered by its spread
    assert set(d.reasons) >= {ReasonCode.VOL_SPIKE, ReasonCode.SPREAD_BLOWOUT}


def test_bad_context() -> None:
    with pytest.raises(ValidationError) as e:
        ctx({"A": float("nan")})
    assert (e.value.field, e.value.symbol) == ("weights", "A")
