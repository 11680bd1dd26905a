"""The policy's array fast paths equal the pandas formulations they replaced (issue 15 pt 6).

The references below are the previous implementations, kept here verbatim: drift over the
union of indexes by ``reindex``, names from a boolean Series, the exchange-local date through
``pd.Timestamp.tz_convert``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.policy import sessions
from keel.policy.governance import (
    Action,
    BatchBook,
    Drawdown,
    GovernanceChain,
    GovernanceContext,
    MinTradeValue,
    PositionLimit,
    SectorConcentration,
    batch_is_screenable,
)
from keel.policy.triggers import (
    AbsoluteDrift,
    CalendarSchedule,
    Frequency,
    PolicyContext,
    RebalancePolicy,
    RelativeDrift,
    VolatilitySpike,
    _at_least_series,
)
from keel.types import Order, Rounding, Side, to_money, to_price, to_qty


def _ref_drift(ctx: PolicyContext) -> pd.Series:
    u = ctx.weights.index.union(ctx.targets.index)
    return ctx.weights.reindex(u, fill_value=0.0) - ctx.targets.reindex(u, fill_value=0.0)


def _ref_names(mask: pd.Series) -> tuple[str, ...]:
    return tuple(sorted(map(str, mask.index[mask.to_numpy()])))


def _ref_scale(ctx: PolicyContext, index: pd.Index) -> np.ndarray:
    w = ctx.weights.reindex(index, fill_value=0.0).abs().to_numpy()
    t = ctx.targets.reindex(index, fill_value=0.0).abs().to_numpy()
    return np.maximum(w, t)


def _ref_absolute(ctx: PolicyContext, band: float) -> tuple[str, ...]:
    d = _ref_drift(ctx).abs()
    scale = np.maximum(_ref_scale(ctx, d.index), band)
    return _ref_names(_at_least_series(d, band, scale) & (d > 0))


def _ref_relative(ctx: PolicyContext, band: float) -> tuple[str, ...]:
    d = _ref_drift(ctx).abs()
    t = ctx.targets.reindex(d.index, fill_value=0.0).abs()
    return _ref_names(_at_least_series(d, band * t, _ref_scale(ctx, d.index)) & (d > 0))


weights = st.floats(-0.3, 0.3, allow_nan=False).map(lambda x: round(x, 3))


@st.composite
def contexts(draw: st.DrawFn) -> PolicyContext:
    n = draw(st.integers(1, 12))
    syms = [f"S{i:02d}" for i in range(n)]
    w = draw(st.lists(weights, min_size=n, max_size=n))
    # targets: the same index (the backtest), a shifted one, or the same names reordered
    shape = draw(st.sampled_from(["same", "shifted", "reordered"]))
    t = draw(st.lists(weights, min_size=n, max_size=n))
    if shape == "same":
        tidx = syms
    elif shape == "shifted":
        tidx = [f"S{i + n // 2:02d}" for i in range(n)]
    else:
        tidx = syms[::-1]
    now = datetime(2024, 5, 1, 20, 0, tzinfo=UTC)
    return PolicyContext(now=now, weights=pd.Series(w, index=syms),
                         targets=pd.Series(t, index=tidx))


@settings(max_examples=300, deadline=None)
@given(contexts(), st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.25]))
def test_drift_rules_equal_the_pandas_formulation(ctx: PolicyContext, band: float) -> None:
    pd.testing.assert_series_equal(ctx.drift, _ref_drift(ctx))
    assert AbsoluteDrift(band).check(ctx).names == _ref_absolute(ctx, band)
    assert RelativeDrift(band).check(ctx).names == _ref_relative(ctx, band)
    spike = VolatilitySpike(2.0).check(PolicyContext(
        now=ctx.now, weights=ctx.weights, targets=ctx.targets, vol_ratio=3.0))
    assert spike.names == _ref_names(_ref_drift(ctx).abs() > 0)
    assert ctx.universe_names == tuple(map(str, _ref_drift(ctx).index))


@settings(max_examples=100, deadline=None)
@given(contexts())
def test_decision_names_cover_the_universe(ctx: PolicyContext) -> None:
    dec = RebalancePolicy([CalendarSchedule(Frequency.DAILY)]).decide(ctx)
    assert dec.trade
    assert dec.names == tuple(sorted(map(str, _ref_drift(ctx).index)))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 28 * 365 * 24 * 60 - 1))
def test_local_date_equals_pandas_tz_convert(minutes: int) -> None:
    # every minute of 1998-2025 is reachable: DST switches and midnights included
    now = datetime(1998, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    tz = sessions.calendar("XNYS").tz
    assert sessions.local_date(now) == pd.Timestamp(now).tz_convert(tz).date()


# --------------------------------------------------------------------------- governance screen

SECTORS = ("Tech", "Energy", "Health", "Unknown")


def _exact(chain: GovernanceChain, u: np.ndarray, px: np.ndarray, h: np.ndarray, nav: float,
           dd: float, sectors: list[str]) -> tuple[np.ndarray, list[Action]]:
    """The per-order Decimal review, built as the backtest builds it."""
    syms = [f"S{i:02d}" for i in range(len(u))]
    shares = h / px
    idx = np.flatnonzero(u)
    order = idx[np.argsort(u[idx] > 0, kind="stable")]
    held = np.flatnonzero(np.abs(shares) > 1e-9)
    prices = {syms[j]: to_price(px[j]) for j in sorted({*idx, *held})}
    now = datetime(2024, 5, 1, 20, 0, tzinfo=UTC)
    ctx = GovernanceContext(
        now=now, nav=to_money(nav), prices=prices,
        positions={syms[j]: to_qty(shares[j], rounding=Rounding.HALF_EVEN) for j in held},
        sectors=dict(zip(syms, sectors, strict=True)), drawdown=dd)
    orders = [Order(f"o{j}", syms[j], Side.BUY if u[j] > 0 else Side.SELL,
                    to_qty(abs(u[j]) / px[j]), now) for j in order]
    out = np.zeros_like(u)
    actions = []
    for v, j in zip(chain.evaluate(orders, ctx), order, strict=True):
        actions.append(v.action)
        if v.approved:
            out[j] = float(v.qty) * px[j] * np.sign(u[j])
    return out, actions


def _screen(chain: GovernanceChain, u: np.ndarray, px: np.ndarray, h: np.ndarray, nav: float,
            dd: float, sectors: list[str]) -> np.ndarray | None:
    """The backtest's fast path: None when the screen cannot vouch for the batch."""
    shares = h / px
    idx = np.flatnonzero(u)
    order = idx[np.argsort(u[idx] > 0, kind="stable")]
    qty = [to_qty(abs(u[j]) / px[j]) for j in order]
    held = np.where(np.abs(shares) > 1e-9, shares, 0.0)
    signed = np.array([float(q) for q in qty]) * np.sign(u[order])
    if not (batch_is_screenable(nav, px, held, order, signed, dd) and chain.clears(
            BatchBook(nav, px, held, sectors, dd, float(np.abs(u).sum())), order, signed)):
        return None
    out = np.zeros_like(u)
    for j, q in zip(order, qty, strict=True):
        out[j] = float(q) * px[j] * np.sign(u[j])
    return out


@st.composite
def batches(draw: st.DrawFn) -> tuple:
    n = draw(st.integers(1, 12))
    nav = draw(st.sampled_from([1e4, 1e6, 1e8]))
    px = np.array(draw(st.lists(st.floats(0.5, 900.0), min_size=n, max_size=n)))
    w_h = np.array(draw(st.lists(st.sampled_from([0.0, 0.0, 0.02, -0.03, 0.05, 0.1, 0.2]),
                                 min_size=n, max_size=n)))
    w_u = np.array(draw(st.lists(st.floats(-0.15, 0.15), min_size=n, max_size=n)))
    # some orders close a position exactly, some are dust
    for k in range(n):
        pick = draw(st.integers(0, 5))
        if pick == 0:
            w_u[k] = -w_h[k]
        elif pick == 1:
            w_u[k] = 0.0
        elif pick == 2:
            w_u[k] = draw(st.sampled_from([1.0, 0.999, 1.001])) / nav * np.sign(w_u[k] or 1)
    sectors = draw(st.lists(st.sampled_from(SECTORS), min_size=n, max_size=n))
    h, u = w_h * nav, w_u * nav
    u[np.abs(u) < 1e-9 * nav] = 0.0
    # limits near what the batch reaches: the post-trade max weight / sector gross, nudged
    post = np.abs(h + u) / nav
    eps = draw(st.sampled_from([-1e-3, -1e-9, 0.0, 1e-12, 1e-9, 1e-6, 1e-3, 0.5]))
    mw = float(min(max(post.max(initial=0.0) * (1 + eps), 1e-4), 1.0))
    sec_gross = max((post[[s == k for s in sectors]].sum() for k in SECTORS[:3]),
                    default=0.0)
    cap = float(min(max(sec_gross * (1 + eps), 1e-4), 1.0))
    dd = draw(st.sampled_from([0.0, 0.05, 0.1, 0.1 + 1e-12, 0.15, 0.2, 0.3]))
    gross = float(np.abs(h + u).sum() / nav)
    max_gross = draw(st.sampled_from([1.0, 2.0, max(gross * 2.0 * (1 + eps), 1e-3)]))
    chain = GovernanceChain([Drawdown(0.1, 0.2, max_gross), PositionLimit(mw),
                             SectorConcentration(cap), MinTradeValue(Decimal(1))])
    return chain, u, px, h, nav, dd, sectors


@settings(max_examples=400, deadline=None)
@given(batches())
def test_governance_screen_equals_the_per_order_review(batch: tuple) -> None:
    chain, u, px, h, nav, dd, sectors = batch
    if not np.any(u):
        return
    fast = _screen(chain, u, px, h, nav, dd, sectors)
    exact, actions = _exact(chain, u, px, h, nav, dd, sectors)
    if fast is not None:  # the screen vouched: every order approved unchanged, same trades
        assert all(a is Action.APPROVE for a in actions)
        np.testing.assert_array_equal(fast, exact)


def test_governance_screen_takes_the_fast_path_when_nothing_binds() -> None:
    rng = np.random.default_rng(3)
    n, nav = 50, 1e8
    px = rng.uniform(10, 500, n)
    h = rng.uniform(0, 0.02, n) * nav
    u = rng.normal(0, 0.005, n) * nav
    sectors = [SECTORS[k % 3] for k in range(n)]
    chain = GovernanceChain([Drawdown(), PositionLimit(0.06), SectorConcentration(0.5),
                             MinTradeValue(Decimal(1))])
    fast = _screen(chain, u, px, h, nav, 0.05, sectors)
    assert fast is not None
    np.testing.assert_array_equal(fast, _exact(chain, u, px, h, nav, 0.05, sectors)[0])
    # a binding position cap: the screen declines, the exact review resizes
    tight = GovernanceChain([PositionLimit(0.001)])
    assert _screen(tight, u, px, h, nav, 0.05, sectors) is None
    assert Action.RESIZE in _exact(tight, u, px, h, nav, 0.05, sectors)[1] or \
        Action.REJECT in _exact(tight, u, px, h, nav, 0.05, sectors)[1]


def test_policy_reuses_the_universe_names_of_the_same_index_only() -> None:
    pol = RebalancePolicy([CalendarSchedule(Frequency.DAILY)])
    now = datetime(2024, 5, 1, 20, 0, tzinfo=UTC)
    a = pd.Index(["B", "A", "C"])
    d1 = pol.decide(PolicyContext(now=now, weights=pd.Series([0.1, 0.2, 0.3], index=a),
                                  targets=pd.Series([0.1, 0.2, 0.3], index=a)))
    assert d1.names == ("A", "B", "C")
    b = pd.Index(["B", "D"])  # another universe: never the cached names
    d2 = pol.decide(PolicyContext(now=now, weights=pd.Series([0.1, 0.2], index=b),
                                  targets=pd.Series([0.1, 0.2], index=b)))
    assert d2.names == ("B", "D")
    d3 = pol.decide(PolicyContext(now=now, weights=pd.Series([0.0, 0.2, 0.3], index=a),
                                  targets=pd.Series([0.1, 0.2, 0.3], index=a)))
    assert d3.names == ("A", "B", "C")
