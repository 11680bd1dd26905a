"""Futures variation margin and option expiry in the ledger: closed forms and hypothesis
invariants (the books balance after any sequence of fills, settlements and expiries)."""

from __future__ import annotations

import decimal
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal, localcontext
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.clock import SimulatedClock
from keel.errors import LedgerError
from keel.portfolio.instruments import Equity, Future, InstrumentRegistry, Option, Settlement
from keel.portfolio.ledger import Ledger, LedgerConfig
from keel.store.db import Store
from keel.types import Fill, Side, utc

D = Decimal
T0 = utc(2024, 6, 3, 15)
EXP = utc(2024, 6, 21, 20)
REG = InstrumentRegistry.of([
    Future("ESM4", multiplier=50, initial_per_contract=12000, maintenance_per_contract=11000,
           expiry=date(2024, 6, 21)),
    Equity("AAPL"),
    Option("AAPL240621C200", underlying="AAPL", strike=200, expiry=EXP),
    Option("AAPL240621P200", underlying="AAPL", strike=200, expiry=EXP, right="put"),
    Option("SPX240621C5000", underlying="SPX", strike=5000, expiry=EXP,
           settlement=Settlement.CASH),
    Equity("SPX"),
])
_seq = iter(range(10**9))


def fill(sym: str, side: str, qty: object, px: object, fee: object = 0) -> Fill:
    i = next(_seq)
    return Fill(f"x{i}", f"o{i}", sym, Side(side), qty, px, T0, commission=fee)


def ledger(cash: str = "0", **kw: object) -> Ledger:
    lg = Ledger(clock=SimulatedClock(T0), registry=REG, **kw)  # type: ignore[arg-type]
    if D(cash) > 0:
        lg.deposit(cash)
    return lg


# --------------------------------------------------------------------------- futures


def test_buying_es_is_margined_not_paid() -> None:
    lg = ledger("30000")
    lg.apply_fill(fill("ESM4", "BUY", 1, "5000.25", "2.25"))
    assert lg.cash == D("29997.75")  # only the commission, not 250,012.50
    assert lg.state.holdings["ESM4"].market_value == D("250012.50")  # exposure is notional
    assert lg.equity == D("29997.75")
    m = lg.settle({"ESM4": "5010"})  # +9.75 points x 50
    assert lg.cash == D("29997.75") + D("487.50")
    assert (m.initial, m.maintenance, m.call) == (D(12000), D(11000), D(0))
    lg.settle({"ESM4": "4990"})  # -20 points x 50
    assert lg.cash == D("29997.75") + D("487.50") - D(1000)
    lg.mark({"ESM4": "4995"})  # unsettled variation counts in equity, not in cash
    assert lg.equity == lg.cash + D(250)


def test_margin_call_at_the_maintenance_boundary() -> None:
    lg = ledger("12000")
    lg.apply_fill(fill("ESM4", "BUY", 1, 5000))
    assert lg.settle({"ESM4": 4980}).call == 0  # equity 11000 == maintenance: no call
    m = lg.settle({"ESM4": "4979.75"})  # equity 10987.50 < 11000
    assert m.equity == D("10987.50")
    assert m.call == D("1012.50")  # back to the initial margin
    assert m.excess == D("-1012.50")


def test_initial_margin_refuses_new_contracts_but_not_reductions() -> None:
    lg = ledger("20000")
    lg.apply_fill(fill("ESM4", "SELL", 1, 5000))
    before = lg.state.to_json()
    with pytest.raises(LedgerError) as e:
        lg.apply_fill(fill("ESM4", "SELL", 1, 5000))  # 2 x 12000 > 20000
    assert (e.value.field, e.value.symbol) == ("margin", "ESM4")
    assert lg.state.to_json() == before
    lg.settle({"ESM4": 5200})  # short loses 200 points x 50 = 10000
    assert lg.margin().call == D(2000)
    lg.apply_fill(fill("ESM4", "BUY", 1, 5200))  # closing is always allowed
    assert "ESM4" not in lg.state.holdings
    assert lg.cash == D(10000)
    off = ledger("1000", config=LedgerConfig(enforce_initial_margin=False))
    off.apply_fill(fill("ESM4", "BUY", 1, 5000))  # allowed when switched off


def test_future_expires_at_final_settlement() -> None:
    lg = ledger("50000")
    lg.apply_fill(fill("ESM4", "BUY", 2, 5000))
    lg.settle({"ESM4": 5020})
    with pytest.raises(LedgerError) as e:
        lg.expire("ESM4", final_price=5030, timestamp=utc(2024, 6, 20, 20))
    assert e.value.field == "timestamp"
    lg.expire("ESM4", final_price=5030, timestamp=utc(2024, 6, 21, 21))
    assert lg.state.holdings == {}
    assert lg.cash == D(50000) + 2 * 30 * 50
    assert lg.state.realized_pnl == 2 * 30 * 50


# --------------------------------------------------------------------------- options


def test_cash_settled_call() -> None:
    lg = ledger("100000")
    lg.apply_fill(fill("SPX240621C5000", "BUY", 2, 50))
    assert lg.cash == D(100000) - 2 * 50 * 100  # an option is paid in full
    lg.expire("SPX240621C5000", 5100, timestamp=EXP)
    assert lg.cash == D(100000) - 10000 + 2 * 100 * 100
    assert lg.state.realized_pnl == 2 * (100 - 50) * 100
    assert lg.state.holdings == {}


def test_out_of_the_money_expires_worthless() -> None:
    lg = ledger("100000")
    lg.apply_fill(fill("AAPL240621C200", "BUY", 1, 5))
    lg.expire("AAPL240621C200", 195, timestamp=EXP)
    assert lg.state.holdings == {}
    assert lg.cash == D(100000) - 500
    assert lg.state.realized_pnl == -500
    with pytest.raises(LedgerError) as e:
        lg.expire("AAPL240621C200", 195, timestamp=EXP)
    assert e.value.field == "symbol"


@pytest.mark.parametrize("opt, side, shares, cash_at_strike", [
    ("AAPL240621C200", "BUY", 100, -20000),   # exercise a call: buy 100 at 200
    ("AAPL240621P200", "BUY", -100, 20000),   # exercise a put: sell 100 at 200
    ("AAPL240621C200", "SELL", -100, 20000),  # assigned on a call: deliver 100, get 200
    ("AAPL240621P200", "SELL", 100, -20000),  # assigned on a put: take 100, pay 200
])
def test_physical_exercise_and_assignment(opt: str, side: str, shares: int,
                                          cash_at_strike: int) -> None:
    lg = ledger("100000")
    lg.apply_fill(fill(opt, side, 1, 5))
    premium = -500 if side == "BUY" else 500
    spot = 210 if opt.endswith("C200") else 190  # 10 in the money either way
    with pytest.raises(LedgerError):
        lg.expire(opt, spot, timestamp=EXP - timedelta(seconds=1))
    lg.expire(opt, spot, timestamp=EXP)
    st = lg.state
    assert set(st.holdings) == {"AAPL"}
    assert st.holdings["AAPL"].qty == shares
    assert st.holdings["AAPL"].avg_price == spot
    assert lg.cash == D(100000) + premium + cash_at_strike
    # the option's whole value (10 a share, long or short) is realised, less the premium
    long = side == "BUY"
    assert st.realized_pnl == (1 if long else -1) * (10 - 5) * 100
    assert st.equity == D(100000) + st.realized_pnl


def test_replay_from_the_store_equals_live(tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path / 'k.db'}")
    store.create_all()
    lg = Ledger(store, clock=SimulatedClock(T0), registry=REG)
    lg.deposit("100000")
    lg.apply_fill(fill("ESM4", "BUY", 2, "5000.25"))
    lg.settle({"ESM4": "5003.5"})
    lg.apply_fill(fill("ESM4", "SELL", 1, "5004"))
    lg.apply_fill(fill("AAPL240621P200", "SELL", 2, "3.15"))
    lg.expire("AAPL240621P200", "188.40", timestamp=EXP)
    lg.snapshot()
    lg.mark({"AAPL": "189"})
    again = Ledger.open(store, clock=SimulatedClock(T0), registry=REG)
    assert again.state.to_json() == lg.state.to_json()
    assert again.state.holdings["ESM4"].settle == D("5004")
    store.dispose()


def _book_three(lg: Ledger) -> Ledger:
    lg.apply_fill(fill("AAPL", "BUY", 3, "187.31"))
    lg.apply_fill(fill("AAPL", "BUY", 7, "190.07"))  # average 189.242: needs a division
    lg.apply_fill(fill("AAPL", "SELL", 4, "191.13"))
    return lg


def test_average_price_under_a_hostile_ambient_context() -> None:
    ref = _book_three(ledger("1000000"))
    with localcontext() as ctx:
        ctx.prec = 4
        ctx.rounding = decimal.ROUND_FLOOR
        lg = _book_three(ledger("1000000"))
    assert lg.state.to_json()["holdings"] == ref.state.to_json()["holdings"]
    assert ref.state.holdings["AAPL"].avg_price == D("189.242")
    assert (lg.cash, lg.state.realized_pnl) == (ref.cash, ref.state.realized_pnl)


# --------------------------------------------------------------------------- hypothesis

qtys = st.integers(1, 5)
es_px = st.decimals(min_value=D("4000"), max_value=D("6000"), places=2).map(
    lambda p: (p * 4).to_integral_value() / 4)
eq_px = st.decimals(min_value=D("150"), max_value=D("250"), places=2)
fees = st.decimals(min_value=D(0), max_value=D("3"), places=2)
op = st.one_of(
    st.tuples(st.just("fill"), st.sampled_from(["ESM4", "AAPL", "AAPL240621C200",
                                                "AAPL240621P200"]),
              st.sampled_from(["BUY", "SELL"]), qtys, eq_px, fees),
    st.tuples(st.just("esfill"), st.sampled_from(["BUY", "SELL"]), qtys, es_px, fees),
    st.tuples(st.just("settle"), es_px, eq_px),
    st.tuples(st.just("mark"), eq_px),
)
MULT = {"ESM4": D(50), "AAPL": D(1), "AAPL240621C200": D(100), "AAPL240621P200": D(100)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, max_size=25), spot=eq_px, final=es_px)
def test_books_balance_after_any_sequence(ops: list[tuple], spot: Decimal,
                                          final: Decimal) -> None:
    """Closed form, independent of how the ledger settles: equity = deposits - fees +
    sum over trades of signed qty x (current mark - trade price) x multiplier. Checked after
    fills, settlements, marks, and the expiry of every contract."""
    lg = ledger("10000000")
    trades: dict[str, list[tuple[Decimal, Decimal]]] = defaultdict(list)
    fees_paid = D(0)
    marks: dict[str, Decimal] = {}

    def check() -> None:
        st_ = lg.state
        pnl = sum((MULT[s] * sum((q * (marks.get(s, p) - p) for q, p in ts), D(0))
                   for s, ts in trades.items()), D(0))
        assert st_.equity == D(10000000) - fees_paid + pnl
        assert st_.fees == fees_paid
        unreal = sum((h.unrealized_pnl for h in st_.holdings.values()), D(0))
        assert abs(st_.equity - st_.net_deposits - (st_.realized_pnl + unreal - st_.fees)) \
            < D("1e-12")
        m = lg.margin()
        es = st_.holdings.get("ESM4")
        assert m.initial == (abs(es.qty) * 12000 if es else 0)

    def trade(sym: str, q: Decimal, p: Decimal) -> None:
        # a trade moves the mark of its symbol (the ledger marks at the fill price)
        trades[sym].append((q, p))
        marks[sym] = p

    for o in ops:
        if o[0] in ("fill", "esfill"):
            sym, side, q, px, fee = ("ESM4", *o[1:]) if o[0] == "esfill" else o[1:]
            if sym.startswith("AAPL2"):
                px = (px / 40).quantize(D("0.01"))  # an option premium
            lg.apply_fill(fill(sym, side, q, px, fee))
            trade(sym, D(q) if side == "BUY" else -D(q), px)
            fees_paid += fee
        elif o[0] == "settle":
            lg.settle({"ESM4": o[1], "AAPL": o[2]})
            for s, p in (("ESM4", o[1]), ("AAPL", o[2])):
                if s in lg.state.holdings:
                    marks[s] = p
        else:
            lg.mark({"AAPL": o[1]})
            if "AAPL" in lg.state.holdings:
                marks["AAPL"] = o[1]
        check()
    # expiry day: options settle against spot, the future at its final settlement
    for opt, call in (("AAPL240621C200", True), ("AAPL240621P200", False)):
        h = lg.state.holdings.get(opt)
        if h is None:
            continue
        intrinsic = max(spot - 200, D(0)) if call else max(200 - spot, D(0))
        lg.expire(opt, spot, timestamp=EXP)
        trade(opt, -h.qty, intrinsic)
        if intrinsic > 0:
            trade("AAPL", h.qty * 100 * (1 if call else -1), spot)
        check()
    if "ESM4" in lg.state.holdings:
        q = lg.state.holdings["ESM4"].qty
        lg.expire("ESM4", final_price=final, timestamp=EXP)
        trade("ESM4", -q, final)
        check()
    assert set(lg.state.holdings) <= {"AAPL"}
