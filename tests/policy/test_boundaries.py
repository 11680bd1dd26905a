"""Boundaries: thresholds fire at their value, windows and market hours share one calendar,
cooldowns count sessions or minutes, stale prices and unknown volatility are refused."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.errors import ValidationError
from keel.policy.governance import (
    Action,
    Drawdown,
    GovernanceChain,
    GovernanceContext,
    LiquidityParticipation,
    MarketHours,
    PriceFreshness,
    VolatilityRegime,
)
from keel.policy.triggers import (
    BOUNDARY_ULPS,
    AbsoluteDrift,
    Cooldown,
    NameDrift,
    PolicyContext,
    PortfolioDrift,
    RelativeDrift,
    SpreadBlowout,
    TradingWindows,
    VolatilitySpike,
    at_least,
)
from keel.types import Order, Side, utc

D = Decimal
NY = ZoneInfo("America/New_York")
WED = utc(2024, 5, 1, 14, 35)  # 10:35 New York, inside the 10:30 window
DOC = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


def pctx(weights: dict, targets: dict, **kw: object) -> PolicyContext:
    return PolicyContext(now=kw.pop("now", WED), weights=pd.Series(weights, dtype=float),
                         targets=pd.Series(targets, dtype=float), **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- drift bands


def test_seed_example_fires_at_the_band() -> None:
    # 0.30 - 0.25 is 0.04999999999999999 in floating point: the rule must absorb it
    c = AbsoluteDrift(0.05).check(pctx({"AAPL": 0.30}, {"AAPL": 0.25}))
    assert (c.fired, c.names) == (True, ("AAPL",))
    c = AbsoluteDrift(0.05).check(pctx({"AAPL": 0.20}, {"AAPL": 0.25}))
    assert c.fired
    assert not AbsoluteDrift(0.05).check(pctx({"AAPL": 0.2999}, {"AAPL": 0.25})).fired


def test_relative_l1_and_name_bands_fire_at_the_boundary() -> None:
    # 20% of a 25% target is 5 points: 25% -> 30% is at the relative band
    assert RelativeDrift(0.20).check(pctx({"A": 0.30}, {"A": 0.25})).fired
    assert not RelativeDrift(0.20).check(pctx({"A": 0.2999}, {"A": 0.25})).fired
    # L1 = 0.05 + 0.05 = 0.1 exactly in decimal, 0.09999999999999998 in binary
    c = PortfolioDrift(0.10).check(pctx({"A": 0.30, "B": 0.70}, {"A": 0.25, "B": 0.75}))
    assert (c.fired, c.names) == (True, ("A", "B"))
    assert not PortfolioDrift(0.10).check(pctx({"A": 0.2999, "B": 0.7001},
                                               {"A": 0.25, "B": 0.75})).fired
    assert NameDrift({"A": 0.05}).check(pctx({"A": 0.30}, {"A": 0.25})).names == ("A",)
    assert not NameDrift({"B": 0.05}).check(pctx({"A": 0.30}, {"A": 0.25})).fired


def test_ratio_overrides_and_filters_fire_at_the_ratio() -> None:
    ratio = 0.3 / 0.1  # 2.9999999999999996
    assert ratio < 3.0
    assert VolatilitySpike(3.0).check(pctx({"A": 0.3}, {"A": 0.2}, vol_ratio=ratio)).fired
    assert not VolatilitySpike(3.0).check(pctx({"A": 0.3}, {"A": 0.2}, vol_ratio=2.99)).fired
    sr = pd.Series({"A": ratio, "B": 2.9, "C": np.nan})
    c = SpreadBlowout(3.0).check(pctx({"A": 0.3}, {"A": 0.2}, spread_ratio=sr))
    assert c.names == ("A",)  # NaN (unknown) never counts as "at the boundary"


@settings(max_examples=300, deadline=None)
@given(t=st.floats(0.0, 0.9), band=st.floats(0.001, 0.5))
def test_absolute_band_boundary_property(t: float, band: float) -> None:
    w = t + band  # one rounding: |w - t| may land an ulp either side of band
    assert AbsoluteDrift(band).check(pctx({"A": w}, {"A": t})).fired
    w_in = t + band * (1 - 1e-9)  # clearly inside the band: far more than a few ulps
    assert not AbsoluteDrift(band).check(pctx({"A": w_in}, {"A": t})).fired


@settings(max_examples=200, deadline=None)
@given(x=st.floats(1e-6, 1e6), k=st.integers(-20, 20))
def test_at_least_tolerance_is_a_few_ulps(x: float, k: int) -> None:
    y = x + k * np.spacing(x)  # y is k ulps from x
    assert bool(at_least(y, x)) == (k >= -BOUNDARY_ULPS)


def _doc_examples() -> list[tuple[str, float, float, float, bool]]:
    """Rows of the boundary-examples table in docs/policy.md."""
    rows = []
    for line in DOC.read_text().splitlines():
        m = re.match(r"\|\s*`(\w+)\((\S+)\)`\s*\|\s*(\S+)\s*->\s*(\S+)\s*\|\s*(fires|holds)",
                     line)
        if m:
            rule, band, target, weight, verdict = m.groups()
            rows.append((rule, float(band), float(target), float(weight), verdict == "fires"))
    return rows


def test_every_documented_example() -> None:
    rows = _doc_examples()
    assert len(rows) >= 6
    rules = {"AbsoluteDrift": AbsoluteDrift, "RelativeDrift": RelativeDrift,
             "PortfolioDrift": PortfolioDrift}
    for rule, band, target, weight, fires in rows:
        c = rules[rule](band).check(pctx({"A": weight}, {"A": target}))
        assert c.fired is fires, (rule, band, target, weight)


# --------------------------------------------------------------------------- calendar


def ny(y: int, mo: int, d: int, h: int, mi: int) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=NY)


GCTX = {"nav": D(1_000_000), "prices": {"A": D(100)}}


def market_hours_ok(now: datetime) -> bool:
    c = GovernanceContext(now=now, **GCTX)  # type: ignore[arg-type]
    o = Order("o", "A", Side.BUY, D(1), now)
    return GovernanceChain([MarketHours()]).evaluate_one(o, c).approved


def window_open(now: datetime, rule: TradingWindows | None = None) -> bool:
    return not (rule or TradingWindows()).check(pctx({"A": 0.3}, {"A": 0.2}, now=now)).fired


@pytest.mark.parametrize("now, expected", [
    (ny(2024, 11, 29, 15, 51), False),  # half day: closed at 13:00
    (ny(2024, 11, 29, 14, 31), False),
    (ny(2024, 11, 29, 12, 2), True),    # half day, 12:00 window, market open
    (ny(2024, 11, 27, 15, 51), True),   # normal day
    (ny(2024, 11, 28, 10, 31), False),  # Thanksgiving
    (ny(2024, 12, 24, 15, 50), False),  # Christmas Eve half day
    (ny(2024, 7, 3, 12, 4), True),
    (ny(2024, 7, 3, 12, 5), False),     # window is [12:00, 12:05)
])
def test_windows_and_market_hours_agree(now: datetime, expected: bool) -> None:
    assert window_open(now) is expected
    if expected:
        assert market_hours_ok(now)
    if now.hour >= 13 and now.date().isoformat() in ("2024-11-29", "2024-12-24"):
        assert not market_hours_ok(now)


DAYS = [(2024, 11, 27), (2024, 11, 28), (2024, 11, 29), (2024, 12, 24), (2024, 12, 25),
        (2024, 7, 3), (2024, 7, 4), (2024, 5, 4)]
EVERY_MINUTE = TradingWindows(times=tuple(f"{h:02d}:{m:02d}" for h in range(9, 16)
                                          for m in range(60)), width=1)


@settings(max_examples=200, deadline=None)
@given(day=st.sampled_from(DAYS), minute=st.integers(8 * 60, 17 * 60))
def test_window_gate_is_market_hours_on_any_day(day: tuple[int, int, int], minute: int) -> None:
    now = ny(*day, minute // 60, minute % 60)
    # windows on every minute of the regular day: the gate is then exactly the market hours
    assert window_open(now, EVERY_MINUTE) is market_hours_ok(now)
    if window_open(now):
        assert market_hours_ok(now)


# --------------------------------------------------------------------------- cooldown


def test_cooldown_sessions_boundary() -> None:
    last = ny(2024, 11, 27, 10, 0)  # Wednesday; Thursday is a holiday
    c = Cooldown(days=1)
    assert c.check(pctx({}, {}, now=ny(2024, 11, 28, 10, 0), last_rebalance=last)).fired
    assert not c.check(pctx({}, {}, now=ny(2024, 11, 29, 10, 0), last_rebalance=last)).fired
    assert Cooldown().days == 5 and Cooldown().minutes is None


def test_cooldown_minutes_boundary() -> None:
    last = ny(2024, 5, 1, 10, 0)
    c = Cooldown(minutes=30)
    assert c.days is None
    at = last + timedelta(minutes=30)
    assert not c.check(pctx({}, {}, now=at, last_rebalance=last)).fired
    assert c.check(pctx({}, {}, now=at - timedelta(microseconds=1), last_rebalance=last)).fired
    both = Cooldown(days=1, minutes=30)
    assert both.check(pctx({}, {}, now=at, last_rebalance=last)).fired  # same session
    with pytest.raises(ValidationError) as e:
        Cooldown(minutes=-1)
    assert e.value.field == "minutes"


@settings(max_examples=200, deadline=None)
@given(minutes=st.integers(0, 600), elapsed_s=st.integers(0, 40_000))
def test_cooldown_minutes_property(minutes: int, elapsed_s: int) -> None:
    last = utc(2024, 5, 1, 14)
    now = last + timedelta(seconds=elapsed_s)
    fired = Cooldown(minutes=minutes).check(pctx({}, {}, now=now, last_rebalance=last)).fired
    assert fired == (elapsed_s < minutes * 60)


# --------------------------------------------------------------------------- governance


def verdict(rule: object, now: datetime, **kw: object) -> tuple[Action, str]:
    c = GovernanceContext(now=now, **GCTX, **kw)  # type: ignore[arg-type]
    v = GovernanceChain([rule]).evaluate_one(Order("o", "A", Side.BUY, D(10), now), c)  # type: ignore[list-item]
    return v.action, v.reason_code


def test_price_freshness() -> None:
    now = utc(2024, 5, 1, 15)
    rule = PriceFreshness(timedelta(minutes=15))
    assert verdict(rule, now)[0] is Action.APPROVE  # no times: the caller vouches
    at = {"A": now - timedelta(minutes=15)}
    assert verdict(rule, now, price_times=at)[0] is Action.APPROVE
    old = {"A": now - timedelta(minutes=15, microseconds=1)}
    assert verdict(rule, now, price_times=old) == (Action.REJECT, "STALE_PRICE")
    assert verdict(rule, now, price_times={}) == (Action.REJECT, "STALE_PRICE")
    # last night's close is not a price for this morning
    close = {"A": utc(2024, 4, 30, 20)}
    assert verdict(rule, now, price_times=close) == (Action.REJECT, "STALE_PRICE")
    assert "PriceFreshness" in [r.name for r in GovernanceChain.default().rules]


def test_unknown_volatility_is_not_calm_and_halts_at_the_limit() -> None:
    now = utc(2024, 5, 1, 15)
    r = VolatilityRegime(0.20, 0.60)
    assert verdict(r, now) == (Action.REJECT, "NO_VOLATILITY")
    assert verdict(r, now, market_vol=float("nan")) == (Action.REJECT, "NO_VOLATILITY")
    assert verdict(r, now, market_vol=0.3 * 2) == (Action.REJECT, "VOL_HALT")  # 0.6
    assert verdict(r, now, market_vol=0.1 * 6)[1] == "VOL_HALT"  # 0.6000000000000001
    assert verdict(r, now, market_vol=0.59)[1] == "VOL_SCALE"
    dd = Drawdown(0.10, 0.20)
    assert verdict(dd, now, drawdown=0.1 + 0.1)[1] == "DRAWDOWN_HARD"  # 0.2
    assert verdict(dd, now, drawdown=0.3 - 0.1)[1] == "DRAWDOWN_HARD"  # 0.19999999999999998


def test_participation_cap_is_exact_at_the_boundary() -> None:
    now = utc(2024, 5, 1, 15)
    assert 100 * 0.29 < 29  # the float product falls short
    rule = LiquidityParticipation(0.29)
    c = GovernanceContext(now=now, adv_shares={"A": 100.0}, **GCTX)  # type: ignore[arg-type]
    for qty, expected in ((29, Action.APPROVE), (30, Action.RESIZE)):
        v = GovernanceChain([rule]).evaluate_one(Order("o", "A", Side.BUY, D(qty), now), c)
        assert (v.action, v.qty) == (expected, D(29))
