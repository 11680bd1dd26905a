"""The policy's array fast paths equal the pandas formulations they replaced (issue 15 pt 6).

The references below are the previous implementations, kept here verbatim: drift over the
union of indexes by ``reindex``, names from a boolean Series, the exchange-local date through
``pd.Timestamp.tz_convert``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.policy import sessions
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
