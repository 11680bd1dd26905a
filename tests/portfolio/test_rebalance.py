"""Weights -> orders: ordering, rounding, min order, cash buffer, invest/raise cash, errors."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.clock import SimulatedClock
from keel.errors import ValidationError
from keel.portfolio.book import Book, Holding, LedgerState
from keel.portfolio.instruments import Crypto, Equity, Future, InstrumentRegistry
from keel.portfolio.ledger import Ledger
from keel.portfolio.rebalance import (
    RebalanceConfig,
    RebalanceMode,
    SkipReason,
    TargetSum,
    rebalance,
)
from keel.types import Fill, Side, utc

D = Decimal
NOW = utc(2024, 5, 1, 14, 35)


def make_state(cash: str, **pos: tuple[str, str]) -> LedgerState:
    b = Book()
    b.cash = D(cash)
    for s, (q, px) in pos.items():
        b.holdings[s] = Holding(D(q), D(px), D(px))
    return b.freeze()


REG = InstrumentRegistry.equities(["AAA", "BBB", "CCC"])


def test_from_cash_buys_whole_shares_within_cash() -> None:
    st_ = make_state("10000")
    plan = rebalance({"AAA": 0.5, "BBB": 0.5}, {"AAA": 33, "BBB": 70}, st_, REG, now=NOW)
    q = {o.symbol: o.qty for o in plan.orders}
    assert q == {"AAA": D(151), "BBB": D(71)}  # 5000/33 = 151.5, 5000/70 = 71.4
    assert all(o.side is Side.BUY for o in plan.orders)
    assert plan.cash_after == D(10000) - 151 * 33 - 71 * 70
    assert plan.cash_after >= 0


def test_sells_come_before_buys_and_exit_unwanted_names() -> None:
    st_ = make_state("0", AAA=("100", "10"), CCC=("7", "50"))
    plan = rebalance({"BBB": 1.0}, {"AAA": 10, "BBB": 20, "CCC": 50}, st_, REG, now=NOW)
    sides = [o.side for o in plan.orders]
    assert sides == [Side.SELL, Side.SELL, Side.BUY]
    assert {o.symbol: o.qty for o in plan.orders} == {"AAA": 100, "CCC": 7, "BBB": 67}


def test_fractional_and_lot_sizes() -> None:
    reg = InstrumentRegistry.of([Equity("AAA", lot_size=D("0.0001")),
                                 Equity("BBB", lot_size=D(100)), Crypto("BTC")])
    plan = rebalance({"AAA": 0.3, "BBB": 0.3, "BTC": 0.4},
                     {"AAA": 333, "BBB": 7, "BTC": 61234.5}, make_state("10000"), reg, now=NOW)
    q = {o.symbol: o.qty for o in plan.orders}
    assert q["AAA"] == D("9.0090")
    assert q["BBB"] == D(400)  # lots of 100: 428 -> 400
    assert q["BTC"] == D("0.06532265")  # 4000 / 61234.5 = 0.065322653


def test_min_order_value_and_deterministic_ids() -> None:
    st_ = make_state("1000.5", AAA=("10", "100"))
    cfg = RebalanceConfig(min_order_value=D(5))
    plan = rebalance({"AAA": 0.5, "BBB": 0.002}, {"AAA": 100, "BBB": 4}, st_, REG, now=NOW,
                     config=cfg)
    # AAA needs 0.0025 shares (rounds to 0); BBB needs 1 share worth $4 < $5
    assert plan.skipped == {"AAA": SkipReason.ROUNDS_TO_ZERO,
                            "BBB": SkipReason.BELOW_MIN_ORDER}
    again = rebalance({"AAA": 0.5, "BBB": 0.002}, {"AAA": 100, "BBB": 4}, st_, REG, now=NOW,
                      config=cfg)
    assert plan.orders == again.orders == ()
    plan = rebalance({"AAA": 0.9}, {"AAA": 100}, st_, REG, now=NOW)
    again = rebalance({"AAA": 0.9}, {"AAA": 100}, st_, REG, now=NOW)
    assert [o.client_order_id for o in plan.orders] == [o.client_order_id for o in again.orders]
    assert plan.orders[0].client_order_id.startswith("rb-")


def test_cash_buffer_is_kept() -> None:
    cfg = RebalanceConfig(cash_buffer=D("0.05"), target_sum=TargetSum.EXACTLY_ONE)
    plan = rebalance({"AAA": 1}, {"AAA": 1}, make_state("1000"), REG, now=NOW, config=cfg)
    assert plan.orders[0].qty == D(950)


def test_invest_cash_deploys_deposit_along_targets() -> None:
    # AAA is at target, BBB under: a 1000 deposit goes to BBB first then pro rata.
    st_ = make_state("1000", AAA=("50", "10"), BBB=("30", "10"))
    plan = rebalance({"AAA": 0.5, "BBB": 0.5}, {"AAA": 10, "BBB": 10}, st_, REG, now=NOW,
                     mode=RebalanceMode.INVEST_CASH)
    q = {o.symbol: o.qty for o in plan.orders}
    assert all(o.side is Side.BUY for o in plan.orders)
    # NAV 1800 -> targets 900 each: deficits AAA 400, BBB 600 = 1000 = spare
    assert q == {"AAA": D(40), "BBB": D(60)}


def test_raise_cash_funds_withdrawal_from_overweights() -> None:
    st_ = make_state("0", AAA=("80", "10"), BBB=("20", "10"))
    plan = rebalance({"AAA": 0.5, "BBB": 0.5}, {"AAA": 10, "BBB": 10}, st_, REG, now=NOW,
                     mode=RebalanceMode.RAISE_CASH, reserve=200)
    assert [(o.symbol, o.side, o.qty) for o in plan.orders] == [("AAA", Side.SELL, D(20))]
    assert plan.cash_after == D(200)


def test_future_multiplier() -> None:
    from datetime import date

    reg = InstrumentRegistry.of([Future("ESM4", multiplier=D(50), expiry=date(2024, 6, 21),
                                        initial_per_contract=D(1), tick_size=D("0.25"))])
    plan = rebalance({"ESM4": 1}, {"ESM4": 5000}, make_state("1000000"), reg, now=NOW)
    assert plan.orders[0].qty == D(4)


@pytest.mark.parametrize("targets,prices,field,symbol", [
    ({"ZZZ": 0.5}, {"ZZZ": 1}, "symbol", "ZZZ"),
    ({"AAA": 0.5}, {"AAA": -3}, "price", "AAA"),
    ({"AAA": 0.5}, {}, "prices", "AAA"),
    ({"AAA": 0.7, "BBB": 0.7}, {"AAA": 1, "BBB": 1}, "targets", None),
    ({"AAA": -0.1}, {"AAA": 1}, "weight", "AAA"),
])
def test_bad_input_is_typed_and_books_nothing(targets: dict, prices: dict, field: str,
                                              symbol: str | None) -> None:
    lg = Ledger(clock=SimulatedClock(NOW))
    lg.deposit("1000")
    before = lg.state
    with pytest.raises(ValidationError) as e:
        rebalance(targets, prices, lg.state, REG, now=NOW)
    assert e.value.field == field and e.value.symbol == symbol
    assert lg.state == before


def test_exactly_one_rule() -> None:
    cfg = RebalanceConfig(target_sum=TargetSum.EXACTLY_ONE)
    with pytest.raises(ValidationError) as e:
        rebalance({"AAA": 0.5}, {"AAA": 1}, make_state("10"), REG, now=NOW, config=cfg)
    assert e.value.field == "targets"


def test_plan_fills_book_into_ledger_without_negative_cash() -> None:
    lg = Ledger(clock=SimulatedClock(NOW))
    lg.deposit("5000")
    plan = rebalance({"AAA": 0.6, "BBB": 0.4}, {"AAA": 12.34, "BBB": 56.78}, lg.state, REG,
                     now=NOW)
    with lg.transaction():
        for i, o in enumerate(plan.orders):
            lg.apply_fill(Fill(f"e{i}", o.client_order_id, o.symbol, o.side, o.qty,
                               plan.trades[i].price, NOW))
    assert lg.cash == plan.cash_after >= 0


LOTS = [D(1), D("0.001"), D(10), D(100)]


@settings(max_examples=200, deadline=None)
@given(
    cash=st.decimals(min_value=0, max_value=10**6, places=2),
    held=st.lists(st.decimals(min_value=0, max_value=5000, places=0), min_size=4, max_size=4),
    px=st.lists(st.decimals(min_value=D("0.5"), max_value=D(3000), places=2), min_size=4,
                max_size=4),
    raw_w=st.lists(st.integers(min_value=0, max_value=100), min_size=4, max_size=4),
    lots=st.lists(st.sampled_from(LOTS), min_size=4, max_size=4),
    buffer=st.sampled_from([D(0), D("0.02"), D("0.1")]),
    bps=st.sampled_from([D(0), D(5), D(25)]),
    reserve=st.sampled_from([D(0), D(100), D(5000)]),
    mode=st.sampled_from(list(RebalanceMode)),
)
def test_never_overspends_cash(cash: D, held: list[D], px: list[D], raw_w: list[int],
                               lots: list[D], buffer: D, bps: D, reserve: D,
                               mode: RebalanceMode) -> None:
    syms = ["S0", "S1", "S2", "S3"]
    reg = InstrumentRegistry.of(Equity(s, lot_size=lot) for s, lot in zip(syms, lots, strict=True))
    b = Book()
    b.cash = cash
    for s, q, p in zip(syms, held, px, strict=True):
        if q:
            b.holdings[s] = Holding(q, p, p)
    state = b.freeze()
    if state.equity <= 0:
        return
    tot = sum(raw_w) or 1
    targets = {s: D(x) / tot for s, x in zip(syms, raw_w, strict=True)}
    prices = dict(zip(syms, px, strict=True))
    cfg = RebalanceConfig(cash_buffer=buffer, cost_buffer_bps=bps)
    plan = rebalance(targets, prices, state, reg, now=NOW, config=cfg, mode=mode,
                     reserve=reserve)
    sells = [o for o in plan.orders if o.side is Side.SELL]
    buys = [o for o in plan.orders if o.side is Side.BUY]
    assert plan.orders == tuple(sells + buys)  # sells first
    f = bps / D(10000)
    proceeds = sum((o.qty * prices[o.symbol] * (1 - f) for o in sells), D(0))
    spend = sum((o.qty * prices[o.symbol] * (1 + f) for o in buys), D(0))
    if buys:
        assert spend <= cash + proceeds - state.equity * buffer - reserve
    for o in plan.orders:
        assert o.qty * prices[o.symbol] >= cfg.min_order_value
        assert (o.qty / reg.get(o.symbol).lot_size) % 1 == 0 or o.qty == state.qty(o.symbol)
        if o.side is Side.SELL:
            assert o.qty <= state.qty(o.symbol)  # long only: never sells below zero
    if mode is RebalanceMode.INVEST_CASH:
        assert not sells
    if mode is RebalanceMode.RAISE_CASH:
        assert not buys
    ids = [o.client_order_id for o in plan.orders]
    assert len(set(ids)) == len(ids)


def test_targets_as_pandas_series_of_numpy_floats() -> None:
    import pandas as pd

    targets = pd.Series({"AAA": 0.5, "BBB": 0.5})  # values are numpy.float64
    plan = rebalance(targets, {"AAA": 10, "BBB": 10}, make_state("1000"), REG, now=NOW)
    assert {o.symbol: o.qty for o in plan.orders} == {"AAA": D(50), "BBB": D(50)}
