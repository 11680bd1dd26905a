"""Governance: every rule approving and resizing/rejecting with its code; the chain."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.data.market import MarketData
from keel.errors import OrderRejected, ValidationError
from keel.policy.governance import (
    Action,
    CorrelationCluster,
    Drawdown,
    GovernanceChain,
    GovernanceContext,
    LiquidityParticipation,
    MarketHours,
    MinTradeValue,
    PositionLimit,
    Regime,
    RegimeDetector,
    RegimeSizing,
    SectorConcentration,
    VolatilityRegime,
    correlation_clusters,
)
from keel.portfolio.instruments import Crypto, Equity, InstrumentRegistry
from keel.types import Order, Side, utc

D = Decimal
OPEN = utc(2024, 5, 1, 15)  # Wednesday 11:00 New York
SAT = utc(2024, 5, 4, 15)
SYMS = ["A", "B", "C", "D"]
REG = InstrumentRegistry.of([Equity("A", sector="Tech"), Equity("B", sector="Tech"),
                             Equity("C", sector="Energy"), Equity("D"), Crypto("BTC")])


def order(sym: str, side: str, qty: str | int, i: int = 0) -> Order:
    return Order(client_order_id=f"o{i}-{sym}", symbol=sym, side=Side(side), qty=D(qty),
                 created_at=OPEN)


def ctx(**kw: object) -> GovernanceContext:
    base: dict = {"now": OPEN, "nav": D(1_000_000),
                  "prices": {s: D(100) for s in SYMS} | {"BTC": D(50_000)},
                  "registry": REG}
    base.update(kw)
    return GovernanceContext(**base)


def one(rule: object, o: Order, c: GovernanceContext) -> tuple[Action, D, str]:
    v = GovernanceChain([rule]).evaluate_one(o, c)  # type: ignore[list-item]
    return v.action, v.qty, v.reason_code


def test_market_hours() -> None:
    r = MarketHours()
    assert one(r, order("A", "BUY", 10), ctx()) == (Action.APPROVE, D(10), "APPROVED")
    assert one(r, order("A", "BUY", 10), ctx(now=SAT))[::2] == (Action.REJECT, "MARKET_CLOSED")
    assert one(r, order("A", "BUY", 10), ctx(now=utc(2024, 12, 25, 15)))[0] is Action.REJECT
    assert one(r, order("BTC", "BUY", "0.1"), ctx(now=SAT))[0] is Action.APPROVE  # 24/7


def test_min_trade_value() -> None:
    r = MinTradeValue(D(1))
    c = ctx(prices={"A": D("0.5")})
    assert one(r, order("A", "BUY", 1), c)[::2] == (Action.REJECT, "MIN_TRADE_VALUE")
    assert one(r, order("A", "BUY", 2), c)[0] is Action.APPROVE


def test_position_limit() -> None:
    r = PositionLimit(0.10)
    assert one(r, order("A", "BUY", 1500), ctx()) == (Action.RESIZE, D(1000), "POSITION_LIMIT")
    assert one(r, order("A", "BUY", 500), ctx())[0] is Action.APPROVE
    full = ctx(positions={"A": 1000})
    assert one(r, order("A", "BUY", 1), full)[::2] == (Action.REJECT, "POSITION_LIMIT")
    assert one(r, order("A", "SELL", 1000), full)[0] is Action.APPROVE
    # selling through zero: the reducing 1000 pass, the new short is capped at 1000
    assert one(r, order("A", "SELL", 2500), full) == (Action.RESIZE, D(2000), "POSITION_LIMIT")


def test_sector_concentration() -> None:
    r = SectorConcentration(0.30)
    c = ctx(positions={"A": 2000})  # Tech at 20%
    assert one(r, order("B", "BUY", 1500), c) == (Action.RESIZE, D(1000), "SECTOR_CAP")
    assert one(r, order("B", "BUY", 900), c)[0] is Action.APPROVE
    assert one(r, order("C", "BUY", 2900), c)[0] is Action.APPROVE  # Energy
    assert one(r, order("D", "BUY", 5000), c)[0] is Action.APPROVE  # Unknown is exempt


def corr_ab() -> pd.DataFrame:
    m = np.eye(4)
    m[0, 1] = m[1, 0] = 0.9
    m[2, 3] = m[3, 2] = 0.5
    return pd.DataFrame(m, index=SYMS, columns=SYMS)


def test_correlation_cluster() -> None:
    r = CorrelationCluster(0.7, 0.40)
    c = ctx(positions={"A": 3000}, correlation=corr_ab())
    assert one(r, order("B", "BUY", 2000), c) == (Action.RESIZE, D(1000), "CLUSTER_CAP")
    assert one(r, order("C", "BUY", 2000), c)[0] is Action.APPROVE  # own cluster
    assert one(r, order("D", "BUY", 3999), c)[0] is Action.APPROVE  # 0.5 < 0.7: separate
    assert one(r, order("B", "BUY", 1), ctx())[::2] == (Action.REJECT, "NO_CORRELATION")
    assert one(r, order("A", "SELL", 10), ctx(positions={"A": 10}))[0] is Action.APPROVE


def test_correlation_clusters_pairs_above_threshold() -> None:
    rng = np.random.default_rng(3)
    f = rng.normal(size=(500, 3))
    x = np.repeat(f, 4, axis=1) + rng.normal(scale=rng.uniform(0.2, 1.5, 12), size=(500, 12))
    corr = np.corrcoef(x, rowvar=False)
    labels = correlation_clusters(corr, 0.7)
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        sub = corr[np.ix_(idx, idx)]
        assert sub.min() >= 0.7 - 1e-9
    assert len(np.unique(labels)) < 12  # some names did merge


def test_liquidity_participation() -> None:
    r = LiquidityParticipation(0.05)
    c = ctx(adv_shares={"A": 10_000.0})
    assert one(r, order("A", "BUY", 800), c) == (Action.RESIZE, D(500), "LIQUIDITY")
    assert one(r, order("A", "SELL", 400), c)[0] is Action.APPROVE
    assert one(r, order("B", "BUY", 1), c)[::2] == (Action.REJECT, "NO_ADV")


def test_drawdown() -> None:
    r = Drawdown(0.10, 0.20)
    held = {"C": 4000}  # gross 40%
    assert one(r, order("A", "BUY", 2000), ctx(positions=held, drawdown=0.05))[0] \
        is Action.APPROVE
    # dd 15%: allowed gross 50% -> room 10% = 1000 shares
    assert one(r, order("A", "BUY", 2000), ctx(positions=held, drawdown=0.15)) == \
        (Action.RESIZE, D(1000), "DRAWDOWN_CUT")
    assert one(r, order("A", "BUY", 1), ctx(positions=held, drawdown=0.25))[::2] == \
        (Action.REJECT, "DRAWDOWN_HARD")
    assert one(r, order("C", "SELL", 4000), ctx(positions=held, drawdown=0.25))[0] \
        is Action.APPROVE


def test_volatility_regime() -> None:
    r = VolatilityRegime(0.20, 0.60)
    assert one(r, order("A", "BUY", 1000), ctx(market_vol=0.15))[0] is Action.APPROVE
    assert one(r, order("A", "BUY", 1000), ctx(market_vol=0.40)) == \
        (Action.RESIZE, D(500), "VOL_SCALE")
    assert one(r, order("A", "BUY", 1000), ctx(market_vol=0.70))[::2] == \
        (Action.REJECT, "VOL_HALT")
    assert one(r, order("A", "SELL", 10), ctx(positions={"A": 10}, market_vol=0.9))[0] \
        is Action.APPROVE


def regime_series(last: np.ndarray) -> pd.Series:
    hist = np.tile([0.01, -0.01], 140)
    r = np.concatenate([hist, last])
    return pd.Series(100 * np.exp(np.concatenate([[0.0], np.cumsum(r)])))


ALT = np.tile([1.0, -1.0], 10)
CASES = {
    Regime.TRENDING: np.full(20, 0.01),
    Regime.VOLATILE_TRENDING: np.tile([0.05, 0.01], 10),
    Regime.CHOPPY: 0.03 * ALT,
    Regime.QUIET_CHOPPY: 0.003 * ALT,
    Regime.MEAN_REVERTING: 0.01 * ALT,
}


@pytest.mark.parametrize("regime", list(CASES))
def test_regime_detector(regime: Regime) -> None:
    assert RegimeDetector().detect(regime_series(CASES[regime])).regime is regime


@pytest.mark.parametrize("regime,qty,expected", [
    (Regime.TRENDING, D(120), Action.RESIZE), (Regime.VOLATILE_TRENDING, D(100), Action.APPROVE),
    (Regime.MEAN_REVERTING, D(90), Action.RESIZE), (Regime.CHOPPY, D(70), Action.RESIZE),
    (Regime.QUIET_CHOPPY, D(50), Action.RESIZE)])
def test_regime_sizing(regime: Regime, qty: D, expected: Action) -> None:
    c = ctx(market_prices=regime_series(CASES[regime]))
    action, q, code = one(RegimeSizing(), order("A", "BUY", 100), c)
    assert (action, q) == (expected, qty)
    if expected is Action.RESIZE:
        assert code == f"REGIME_{regime.name}"
    assert one(RegimeSizing(), order("A", "BUY", 100), ctx())[0] is Action.APPROVE  # no data


def test_chain_projection_and_verdicts() -> None:
    chain = GovernanceChain([PositionLimit(0.10), MinTradeValue(D(500))])
    orders = [order("A", "BUY", 600, 1), order("A", "BUY", 600, 2), order("A", "BUY", 4, 3),
              order("ZZ", "BUY", 1, 4)]
    v = chain.evaluate(orders, ctx())
    assert [x.action for x in v] == [Action.APPROVE, Action.RESIZE, Action.REJECT,
                                     Action.REJECT]
    assert v[1].qty == D(400) and v[1].approved_order.qty == D(400)  # type: ignore[union-attr]
    assert v[2].reason_code == "POSITION_LIMIT"
    assert v[3].reason_code == "NO_PRICE"
    with pytest.raises(OrderRejected) as e:
        v[2].raise_if_rejected()
    assert e.value.reason_code == "POSITION_LIMIT" and e.value.symbol == "A"
    v[0].raise_if_rejected()
    # a resize that leaves dust is rejected by the min value rule placed last
    dust = GovernanceChain([PositionLimit(0.10), MinTradeValue(D(500))]).evaluate_one(
        order("A", "BUY", 10), ctx(positions={"A": 997}))
    assert (dust.action, dust.reason_code) == (Action.REJECT, "MIN_TRADE_VALUE")
    assert [o.rule for o in dust.outcomes] == ["PositionLimit", "MinTradeValue"]


def test_unknown_symbol_and_bad_context() -> None:
    reg = InstrumentRegistry.equities(["A"])
    v = GovernanceChain([]).evaluate_one(order("B", "BUY", 1), ctx(registry=reg))
    assert (v.action, v.reason_code) == (Action.REJECT, "UNKNOWN_SYMBOL")
    with pytest.raises(ValidationError) as e:
        ctx(prices={"A": D(-1)})
    assert (e.value.field, e.value.symbol) == ("price", "A")
    with pytest.raises(ValidationError) as e:
        ctx(positions={"Q": 5})
    assert (e.value.field, e.value.symbol) == ("prices", "Q")
    with pytest.raises(ValidationError) as e:
        ctx(nav=0)
    assert e.value.field == "nav"


def test_default_chain_from_market() -> None:
    idx = pd.date_range("2023-01-03 21:00", periods=300, freq="B", tz="UTC")
    rng = np.random.default_rng(1)
    px = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (300, 4)), axis=0)), idx,
                      columns=SYMS)
    md = MarketData(px, pd.DataFrame(1e6, index=idx, columns=SYMS),
                    sectors=pd.Series({"A": "Tech", "B": "Tech", "C": "Energy", "D": "Util"}))
    now = utc(2024, 2, 14, 15)  # a Wednesday within the data, market open
    prices = {s: D(str(round(float(px[s].asof(now)), 2))) for s in SYMS}
    c = GovernanceContext.from_market(now=now, nav=D(1_000_000), prices=prices, positions={},
                                      market=md, registry=REG)
    assert c.adv_shares is not None and c.adv_shares["A"] == pytest.approx(1e6)
    v = GovernanceChain.default().evaluate([order(s, "BUY", 100) for s in SYMS], c)
    assert all(x.approved for x in v)


@settings(max_examples=150, deadline=None)
@given(held=st.lists(st.integers(-1500, 1500), min_size=4, max_size=4),
       legs=st.lists(st.tuples(st.sampled_from(SYMS), st.sampled_from(["BUY", "SELL"]),
                               st.integers(1, 4000)), min_size=1, max_size=12))
def test_limits_hold_after_any_batch(held: list[int], legs: list[tuple]) -> None:
    """Whatever the batch, a name or sector that an approved order pushed up ends within its
    cap (or, if it started above, no higher than it started)."""
    positions = dict(zip(SYMS, held, strict=True))
    c = ctx(positions=positions, correlation=corr_ab())
    chain = GovernanceChain([PositionLimit(0.10), SectorConcentration(0.30),
                             CorrelationCluster(0.7, 0.40)])
    orders = [order(s, side, q, i) for i, (s, side, q) in enumerate(legs)]
    verdicts = chain.evaluate(orders, c)
    qty = {s: D(q) for s, q in positions.items()}
    nav, px = D(1_000_000), D(100)
    for v in verdicts:
        if not v.approved:
            continue
        s = v.order.symbol
        before_pos = abs(qty[s]) * px
        before_sec = sum(abs(qty[k]) * px for k in ("A", "B"))
        qty[s] += v.qty * v.order.side.sign
        after_pos = abs(qty[s]) * px
        if after_pos > before_pos:
            assert after_pos <= nav * D("0.10")
            if s in ("A", "B"):  # Tech sector and the A-B correlation cluster
                after_sec = sum(abs(qty[k]) * px for k in ("A", "B"))
                assert after_sec <= max(nav * D("0.30"), before_sec)


def test_context_accepts_ledger_positions() -> None:
    from keel.clock import SimulatedClock
    from keel.portfolio.ledger import Ledger
    from keel.types import Fill

    lg = Ledger(clock=SimulatedClock(OPEN))
    lg.apply_fill(Fill("e1", "o1", "A", Side.BUY, D(900), D(100), OPEN))
    c = ctx(positions=lg.positions)
    v = GovernanceChain([PositionLimit(0.10)]).evaluate_one(order("A", "BUY", 500), c)
    assert (v.action, v.qty) == (Action.RESIZE, D(100))
