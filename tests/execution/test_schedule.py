"""Schedulers: exact sums, lot/min-size bounds, calendar and hours, AC closed form."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.clock import SimulatedClock
from keel.costs.almgren_chriss import ac_trajectory
from keel.data.calendar import get_calendar
from keel.errors import CalendarError, ValidationError
from keel.execution.profile import VolumeProfile
from keel.execution.schedule import (
    POV,
    TWAP,
    VWAP,
    ExecutionContext,
    ImplementationShortfall,
    ScheduleConfig,
    allocate,
    make_scheduler,
)
from keel.types import Order, OrderType, Side, utc

CTX = ExecutionContext(price=100.0, adv_shares=5e6, daily_volatility=0.02, spread_bps=2.0)


def _parent(qty: Decimal | int, side: Side = Side.BUY, ts=None) -> Order:
    return Order("P-1", "SPY", side, Decimal(qty), ts or utc(2013, 10, 8, 14, 0))


def _u_shaped() -> VolumeProfile:
    m = np.arange(390)
    w = 1.0 + 3.0 * ((m - 195) / 195.0) ** 2
    return VolumeProfile(np.concatenate([[0.0], np.cumsum(w) / w.sum()]), 1)


qtys = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(10_000_000), places=3)


@settings(max_examples=60, deadline=None)
@given(qty=qtys, n=st.integers(1, 40), lot=st.sampled_from([1, 10, 100]),
       min_lots=st.integers(1, 5), algo=st.sampled_from(["twap", "vwap", "is", "pov"]),
       start_min=st.integers(0, 600), side=st.sampled_from([Side.BUY, Side.SELL]))
def test_children_sum_exactly_and_respect_lots_hours(qty, n, lot, min_lots, algo, start_min,
                                                     side):
    cfg = ScheduleConfig(n_slices=n, lot_size=lot, min_child_qty=Decimal(lot * min_lots))
    start = utc(2013, 10, 8, 12, 0) + timedelta(minutes=start_min)  # may be before open
    sched = make_scheduler(algo, cfg, profile=_u_shaped(), participation=0.25)
    ctx = ExecutionContext(price=100.0, adv_shares=1e9)
    kids = sched.schedule(_parent(qty, side, start), ctx, SimulatedClock(start))
    assert sum(k.qty for k in kids) == qty
    assert all(k.qty > 0 and k.side is side and k.parent_id == "P-1" for k in kids)
    assert len({k.client_order_id for k in kids}) == len(kids)
    # whole lots except the last child (odd lot); min size unless the parent is smaller
    for k in kids[:-1]:
        assert k.qty % lot == 0
        assert k.qty >= cfg.min_child_qty
    if qty >= cfg.min_child_qty and len(kids) > 1:
        assert kids[-1].qty >= cfg.min_child_qty
    cal = get_calendar("XNYS")
    for k in kids:
        assert k.not_before is not None and k.expire_at is not None
        day = pd.Timestamp(k.not_before).tz_convert("America/New_York").date()
        o, c = cal.open(day), cal.close(day)
        assert o <= pd.Timestamp(k.not_before) < pd.Timestamp(k.expire_at) <= c
        assert k.not_before >= start
    times = [k.not_before for k in kids]
    assert times == sorted(times)


def test_quantity_smaller_than_slices_is_never_lost():
    kids = TWAP(ScheduleConfig(n_slices=10)).schedule(_parent(3), CTX,
                                                        SimulatedClock(utc(2013, 10, 8, 14)))
    assert [k.qty for k in kids] == [1, 1, 1]
    kids = TWAP(ScheduleConfig(n_slices=10, lot_size=100)).schedule(
        _parent(Decimal("250.5")), CTX, SimulatedClock(utc(2013, 10, 8, 14)))
    assert sum(k.qty for k in kids) == Decimal("250.5")
    assert [k.qty for k in kids] == [Decimal(100), Decimal("150.5")]


def test_allocate_largest_remainder_exact():
    assert allocate(Decimal(10), np.ones(3)) == [4, 3, 3]
    assert allocate(Decimal(7), np.array([1.0, 0, 1.0]), min_child_qty=Decimal(4)) == [7, 0, 0]
    with pytest.raises(ValidationError) as e:
        allocate(Decimal(1), np.array([0.0, 0.0]))
    assert e.value.field == "weights"


def test_weekend_start_moves_to_next_open_and_half_day_close():
    # Saturday 2013-10-05 -> Monday 2013-10-07 13:30 UTC
    kids = TWAP(ScheduleConfig(n_slices=4)).schedule(_parent(400), CTX,
                                                       SimulatedClock(utc(2013, 10, 5, 15)))
    assert kids[0].not_before == utc(2013, 10, 7, 13, 30)
    assert kids[-1].expire_at == utc(2013, 10, 7, 20, 0)
    # day after Thanksgiving 2013: close 13:00 ET = 18:00 UTC
    kids = TWAP(ScheduleConfig(n_slices=7)).schedule(_parent(700), CTX,
                                                       SimulatedClock(utc(2013, 11, 29, 14, 30)))
    assert kids[-1].expire_at == utc(2013, 11, 29, 18, 0)
    assert all((k.expire_at - k.not_before) == timedelta(minutes=30) for k in kids)


def test_multi_day_horizon_skips_the_night():
    cfg = ScheduleConfig(n_slices=2, horizon=timedelta(hours=19, minutes=30))
    kids = TWAP(cfg).schedule(_parent(200), CTX, SimulatedClock(utc(2013, 10, 8, 19, 0)))
    # 1 h on day one + 1 h on day two (13:30-14:30 UTC): the second slice starts at the open
    assert [k.not_before for k in kids] == [utc(2013, 10, 8, 19), utc(2013, 10, 9, 13, 30)]


def test_closed_calendar_range_raises():
    with pytest.raises(CalendarError) as e:
        TWAP().schedule(_parent(10, ts=utc(1990, 1, 2, 15)), CTX,
                        SimulatedClock(utc(1990, 1, 2, 15)))
    assert e.value.field == "t"


def test_vwap_follows_profile():
    prof = _u_shaped()
    kids = VWAP(prof, ScheduleConfig(n_slices=13)).schedule(
        _parent(1_000_000), CTX, SimulatedClock(utc(2013, 10, 8, 13, 30)))
    expected = prof.minute_weights(13) * 1_000_000
    np.testing.assert_allclose([float(k.qty) for k in kids], expected, atol=1.0)
    assert kids[0].qty > kids[6].qty < kids[-1].qty


def test_is_risk_neutral_is_twap_and_urgency_front_loads():
    clk = SimulatedClock(utc(2013, 10, 8, 13, 30))
    twap = [k.qty for k in TWAP(ScheduleConfig(n_slices=10)).schedule(_parent(10_000), CTX, clk)]
    is0 = [k.qty for k in ImplementationShortfall(0.0, ScheduleConfig(n_slices=10)).schedule(
        _parent(10_000), CTX, clk)]
    assert is0 == twap
    urgent = ImplementationShortfall(1e-6, ScheduleConfig(n_slices=10)).schedule(
        _parent(10_000), CTX, clk)
    q = [float(k.qty) for k in urgent]
    assert q[0] > q[-1] and all(a >= b for a, b in itertools.pairwise(q))


def test_ac_trajectory_matches_continuous_closed_form():
    # small tau: the discrete kappa tends to sqrt(lambda sigma^2 / eta)
    X, N, T, sigma, eta, lam = 1e6, 2000, 1.0, 0.95, 2.5e-6, 2e-6
    n = ac_trajectory(X, N, T / N, sigma, eta, 0.0, 0.0, lam)
    assert n.sum() == pytest.approx(X)
    kappa = np.sqrt(lam * sigma**2 / eta)
    t = np.linspace(0, T, N + 1)
    x = X * np.sinh(kappa * (T - t)) / np.sinh(kappa * T)
    np.testing.assert_allclose(X - np.cumsum(n), x[1:], rtol=1e-3, atol=1.0)
    with pytest.raises(ValidationError) as e:
        ac_trajectory(X, 10, 1.0, sigma, 1e-9, 1.0, 0.0, lam)
    assert e.value.field == "eta"


def test_pov_participation_and_bounds():
    ctx = ExecutionContext(price=100.0, adv_shares=1_000_000)
    pov = POV(0.1, ScheduleConfig(n_slices=13))
    kids = pov.schedule(_parent(20_000), ctx, SimulatedClock(utc(2013, 10, 8, 13, 30)))
    # flat profile: each 30-min slice forecasts 1e6/13 shares; 10% of it per slice
    assert [float(k.qty) for k in kids[:2]] == [7692.0, 7692.0]
    assert sum(k.qty for k in kids) == 20_000 and len(kids) == 3
    with pytest.raises(ValidationError) as e:
        POV(0.1, max_participation=0.2).schedule(_parent(300_000), ctx,
                                                 SimulatedClock(utc(2013, 10, 8, 13, 30)))
    assert e.value.field == "qty"
    with pytest.raises(ValidationError) as e:
        POV(0.5, max_participation=0.2)
    assert e.value.field == "participation"


def test_limit_offsets_and_bad_config():
    cfg = ScheduleConfig(n_slices=2, limit_offset_bps=10.0)
    clk = SimulatedClock(utc(2013, 10, 8, 13, 30))
    buy = TWAP(cfg).schedule(_parent(10), CTX, clk)
    sell = TWAP(cfg).schedule(_parent(10, Side.SELL), CTX, clk)
    assert buy[0].order_type is OrderType.LIMIT and buy[0].limit_price == Decimal("99.90")
    assert sell[0].limit_price == Decimal("100.10")
    for kwargs, fld in [({"n_slices": 0}, "n_slices"), ({"lot_size": 0}, "lot_size"),
                        ({"min_child_qty": 0}, "min_child_qty"),
                        ({"horizon": timedelta(0)}, "horizon")]:
        with pytest.raises(ValidationError) as e:
            ScheduleConfig(**kwargs)
        assert e.value.field == fld
    with pytest.raises(ValidationError) as e:
        make_scheduler("nope")
    assert e.value.field == "algo"
    with pytest.raises(ValidationError) as e:
        ExecutionContext(price=-1.0)
    assert e.value.field == "price"


def test_is_urgency_knob():
    clk = SimulatedClock(utc(2013, 10, 8, 13, 30))
    cfg = ScheduleConfig(n_slices=10)
    flat = [k.qty for k in ImplementationShortfall(config=cfg, urgency=0.0).schedule(
        _parent(10_000), CTX, clk)]
    assert flat == [1000] * 10
    mild = [float(k.qty) for k in ImplementationShortfall(config=cfg, urgency=1.0).schedule(
        _parent(10_000), CTX, clk)]
    hot = [float(k.qty) for k in ImplementationShortfall(config=cfg, urgency=5.0).schedule(
        _parent(10_000), CTX, clk)]
    assert hot[0] > mild[0] > 1000
    # urgency is kappa * T: the holdings decay like sinh(kappa (T - t)) / sinh(kappa T)
    x = 10_000 - np.cumsum(hot)
    t = np.arange(1, 11) / 10
    np.testing.assert_allclose(x, 10_000 * np.sinh(5 * (1 - t)) / np.sinh(5), atol=60)
    with pytest.raises(ValidationError) as e:
        ImplementationShortfall(urgency=-1.0)
    assert e.value.field == "urgency"


def test_context_from_market_data():
    from keel.data.synthetic import synthetic_market

    m = synthetic_market(n_assets=3, n_days=60, seed=1)
    sym = str(m.symbols[0])
    ctx = ExecutionContext.from_market(m, sym)
    assert ctx.price == pytest.approx(float(m.prices[sym].iloc[-1]))
    assert ctx.adv_shares == pytest.approx(float(m.adv_shares[sym].iloc[-1]))
    with pytest.raises(ValidationError) as e:
        ExecutionContext.from_market(m, "NOPE")
    assert e.value.field == "symbol"
