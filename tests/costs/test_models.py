from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.costs.almgren_chriss import ACParams, AlmgrenChriss
from keel.costs.base import TradeContext
from keel.costs.models import Commission, SpreadCost, SpreadCurve, SquareRootImpact
from keel.data.lean import load_lean_minute_folder
from keel.errors import DataError, ValidationError

from .helpers import expr_value, make_ctx, numeric_nav

CTX = make_ctx()


def _models() -> list:
    curve = SpreadCurve(np.array([0.0, 30.0, 360.0, 390.0]), np.array([2.0, 0.8, 1.2]))
    return [
        Commission(per_share=0.005, bps=0.5),
        SpreadCost(),
        SpreadCost(curve, fraction=0.8),
        SquareRootImpact(y=0.8),
        SquareRootImpact(y=1.2, beta=0.6),
        AlmgrenChriss(ACParams(eta=2e-7, gamma=2e-8, epsilon=0.01), n_intervals=8,
                      interval=0.05, risk_aversion=1e-6),
        SpreadCost() + SquareRootImpact() + Commission(bps=1.0),
    ]


@pytest.mark.parametrize("model", _models(), ids=repr)
@given(w=st.lists(st.floats(-0.05, 0.05), min_size=5, max_size=5))
@settings(max_examples=25, deadline=None)
def test_expr_equals_numeric_cost(model, w) -> None:
    weights = np.array(w)
    for ctx in (CTX, make_ctx(time_of_day=10.0), make_ctx(time_of_day=200.0, horizon_days=0.5)):
        assert expr_value(model, weights, ctx) == pytest.approx(
            numeric_nav(model, weights, ctx), rel=1e-9, abs=1e-15)


def test_cost_is_zero_without_trades_and_symmetric() -> None:
    for model in _models():
        assert model.cost(np.zeros(5), CTX).total == 0.0
        t = np.array([1e5, -2e5, 0, 3e4, 5e5])
        np.testing.assert_allclose(model.cost(t, CTX).currency, model.cost(-t, CTX).currency)


def test_commission_min_max_per_ticket() -> None:
    ctx = TradeContext(pd.Index(["A", "B", "C", "D"]), np.array([50.0] * 4),
                       np.full(4, 1e8), np.full(4, 0.02), np.full(4, 1e-3))
    c = Commission(per_share=0.005, min_per_ticket=1.0, max_pct_notional=0.01)
    trades = np.array([0.0, 500.0, 50_000.0, 10.0])  # 0, 10 sh, 1000 sh, 0.2 sh
    fee = c.cost(trades, ctx).currency.to_numpy()
    # none; min $1; 1000 sh * 0.005 = $5; 0.2 sh: min $1 capped at 1% of $10 = $0.10
    np.testing.assert_allclose(fee, [0.0, 1.0, 5.0, 0.1])
    np.testing.assert_array_equal(c.binding(trades, ctx), [False, True, False, True])
    est = c.cost(trades, ctx)
    assert est.bps["C"] == pytest.approx(1.0)  # $5 on $50k
    assert Commission(bps=2, max_per_ticket=3.0).cost(trades, ctx).currency["C"] == 3.0


def test_spread_cost_closed_form_and_curve_lookup() -> None:
    curve = SpreadCurve(np.array([0.0, 30.0, 390.0]), np.array([2.0, 0.5]))
    assert curve.multiplier(None) == 1.0
    np.testing.assert_allclose(curve.multiplier(np.array([-5, 0, 29.9, 30, 389, 500])),
                               [2, 2, 2, 0.5, 0.5, 0.5])
    t = np.array([1e6, 0, 0, 0, -2e6])
    base = SpreadCost().cost(t, CTX).currency.to_numpy()
    np.testing.assert_allclose(base, 0.5 * CTX.spreads * np.abs(t))
    early = SpreadCost(curve).cost(t, make_ctx(time_of_day=5.0)).currency.to_numpy()
    np.testing.assert_allclose(early, 2 * base)
    assert SpreadCost(curve).cost(t, CTX).bps["S0"] == pytest.approx(1e4 * CTX.spreads[0] / 2)


def test_square_root_impact_closed_form() -> None:
    t = np.array([2e6, 0, -5e5, 0, 1e5])
    got = SquareRootImpact(y=0.9).cost(t, CTX).currency.to_numpy()
    want = 0.9 * CTX.volatility * np.sqrt(np.abs(t) / CTX.adv_notional) * np.abs(t)
    np.testing.assert_allclose(got, want)
    # beta=1/2 does not depend on the horizon; beta=1 is linear in participation
    slow = make_ctx(horizon_days=5.0)
    np.testing.assert_allclose(SquareRootImpact(y=0.9).cost(t, slow).currency.to_numpy(), want)
    lin = SquareRootImpact(beta=1.0)
    rho = lin.participation(t, slow)
    np.testing.assert_allclose(lin.cost(t, slow).currency.to_numpy(),
                               CTX.volatility * np.sqrt(5.0) * rho * np.abs(t))


def test_sqrt_impact_rejects_zero_adv_for_traded_name() -> None:
    ctx = TradeContext(pd.Index(["A", "B"]), np.array([10.0, 10.0]), np.array([1e6, 0.0]),
                       np.array([0.02, 0.02]), np.array([1e-3, 1e-3]))
    assert SquareRootImpact().cost(np.array([1e4, 0.0]), ctx).total > 0
    with pytest.raises(ValidationError) as e:
        SquareRootImpact().cost(np.array([1e4, 1e3]), ctx)
    assert e.value.field == "adv_notional" and e.value.symbol == "B"


def test_spread_curve_fit_on_lean_quotes(shared_data: Path) -> None:
    bars = load_lean_minute_folder(shared_data / "intraday/lean_minute/spy", "quote")
    curve = SpreadCurve.fit_quote_bars(bars, bucket_minutes=30)
    assert len(curve.multipliers) == 13
    assert curve.multipliers.mean() == pytest.approx(1.0)
    # independent recomputation with pandas
    local = pd.DatetimeIndex(bars["bar_start"]).tz_convert("America/New_York")
    minute = pd.Series((local.hour * 60 + local.minute - 570).to_numpy(), index=bars.index)
    q = bars.assign(day=local.date, minute=minute)
    q = q[q["ask_close"] > q["bid_close"]]
    rel = (q["ask_close"] - q["bid_close"]) / ((q["ask_close"] + q["bid_close"]) / 2)
    ratio = rel / rel.groupby(q["day"]).transform("mean")
    by_bucket = ratio.groupby(q["minute"] // 30).mean()
    np.testing.assert_allclose(curve.multipliers, by_bucket / by_bucket.mean(), rtol=1e-12)
    ibm = SpreadCurve.fit_quote_bars(
        load_lean_minute_folder(shared_data / "intraday/lean_minute/ibm", "quote"))
    assert ibm.multipliers[0] > 1.2 * np.median(ibm.multipliers)  # wide at the open
    rt = SpreadCurve.from_dict(curve.to_dict())
    np.testing.assert_array_equal(rt.multipliers, curve.multipliers)
    with pytest.raises(DataError) as e:
        SpreadCurve.fit_quote_bars(bars.drop(columns="ask_close"))
    assert e.value.field == "quotes"


def test_bad_inputs_name_the_field() -> None:
    cases = [
        (lambda: Commission(per_share=-1), "per_share"),
        (lambda: Commission(min_per_ticket=5, max_per_ticket=1), "max_per_ticket"),
        (lambda: SquareRootImpact(beta=1.5), "beta"),
        (lambda: SpreadCost(fraction=float("nan")), "fraction"),
        (lambda: SpreadCurve(np.array([0.0, 1.0]), np.array([-1.0])), "multipliers"),
        (lambda: SpreadCost().cost(np.array([1.0, np.inf, 0, 0, 0]), CTX), "trades"),
        (lambda: SpreadCost().cost(np.ones(3), CTX), "trades"),
        (lambda: AlmgrenChriss(ACParams(eta=-1.0)).cost(np.ones(5), CTX), "eta"),
        (lambda: SpreadCurve.fit(pd.DataFrame({"day": [1]})), "quotes"),
    ]
    for fn, fieldname in cases:
        with pytest.raises((ValidationError, DataError)) as e:
            fn()
        assert e.value.field == fieldname
