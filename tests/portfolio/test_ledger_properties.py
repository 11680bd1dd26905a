"""Hypothesis: ledger invariants over random fill sequences, rollback, and replay from store."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.clock import SimulatedClock
from keel.portfolio.ledger import Ledger
from keel.store.db import Store
from keel.store.ledger_repo import LedgerRepository
from keel.types import Fill, Side, utc

D = Decimal
T0 = utc(2024, 1, 2, 15)
SYMS = ("AAA", "BBB", "CCC")

qtys = st.decimals(min_value=D("0.001"), max_value=D("500"), places=3)
prices = st.decimals(min_value=D("0.01"), max_value=D("2000"), places=2)
fees = st.decimals(min_value=D("0"), max_value=D("5"), places=2)

op = st.one_of(
    st.tuples(st.just("fill"), st.sampled_from(SYMS), st.sampled_from(["BUY", "SELL"]), qtys,
              prices, fees),
    st.tuples(st.just("deposit"), prices),
    st.tuples(st.just("withdraw"), prices),
    st.tuples(st.just("fee"), fees.filter(lambda x: x > 0)),
    st.tuples(st.just("mark"), st.sampled_from(SYMS), prices),
    st.tuples(st.just("fail"), st.sampled_from(SYMS), qtys, prices),
)


def run(lg: Ledger, ops: list[tuple], ref: dict, start: int = 0) -> None:
    for i, o in enumerate(ops, start=start):
        kind = o[0]
        if kind == "fill":
            _, sym, side, q, px, fee = o
            lg.apply_fill(Fill(f"x{i}", f"o{i}", sym, Side(side), q, px, T0, commission=fee))
            ref["qty"][sym] += q if side == "BUY" else -q
            ref["cash"] += (-q if side == "BUY" else q) * px - fee
            ref["fees"] += fee
        elif kind == "deposit":
            lg.deposit(o[1])
            ref["cash"] += o[1]
        elif kind == "withdraw":
            lg.withdraw(o[1])
            ref["cash"] -= o[1]
        elif kind == "fee":
            lg.charge_fee(o[1])
            ref["cash"] -= o[1]
            ref["fees"] += o[1]
        elif kind == "mark":
            lg.mark({o[1]: o[2]})
        else:  # a transaction that fails half-way must leave no trace
            before = lg.state
            try:
                with lg.transaction():
                    lg.apply_fill(Fill(f"f{i}", f"o{i}", o[1], Side.BUY, o[2], o[3], T0))
                    lg.deposit(o[3])
                    raise KeyError("abort")
            except KeyError:
                pass
            assert lg.state == before
            assert lg.state.to_json() == before.to_json()


def check_invariants(lg: Ledger, ref: dict) -> None:
    s = lg.state
    assert s.cash == ref["cash"]
    assert s.fees == ref["fees"]
    assert all(h.qty != 0 for h in s.holdings.values())  # no phantom positions
    expected = {k: v for k, v in ref["qty"].items() if v != 0}
    assert {k: h.qty for k, h in s.holdings.items()} == expected
    assert s.equity == s.cash + sum((h.qty * h.mark for h in s.holdings.values()), D(0))
    # P&L identity: equity - net deposits = realised + unrealised - fees (avg price rounding)
    unreal = sum((h.unrealized_pnl for h in s.holdings.values()), D(0))
    gap = s.equity - s.net_deposits - (s.realized_pnl + unreal - s.fees)
    assert abs(gap) < D("1e-12")


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=40))
def test_invariants_in_memory(ops: list[tuple]) -> None:
    lg = Ledger(clock=SimulatedClock(T0))
    ref = {"cash": D(0), "fees": D(0), "qty": defaultdict(lambda: D(0))}
    run(lg, ops, ref)
    check_invariants(lg, ref)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=25), st.integers(min_value=0, max_value=25))
def test_replay_from_store_equals_live(ops: list[tuple], snap_at: int) -> None:
    store = Store.from_url("sqlite://")
    store.create_all()
    lg = Ledger(store, clock=SimulatedClock(T0))
    ref = {"cash": D(0), "fees": D(0), "qty": defaultdict(lambda: D(0))}
    run(lg, ops[:snap_at], ref)
    lg.snapshot()
    run(lg, ops[snap_at:], ref, start=snap_at)
    check_invariants(lg, ref)
    reopened = Ledger.open(store, clock=SimulatedClock(T0))
    assert reopened.state.to_json() == lg.state.to_json()
    full = Ledger.replay(LedgerRepository(store).entries_after(0))
    assert full.to_json() == lg.state.to_json()
    store.dispose()


# --------------------------------------------------------------------------- batch fast path

batch_fill = st.tuples(st.sampled_from(SYMS), st.sampled_from(["BUY", "SELL"]), qtys, prices,
                       fees, st.integers(0, 30))  # the last: exec id (repeats are dups)


def _fills(spec: list[tuple], ts_step: int = 0) -> list[Fill]:
    return [Fill(f"x{k}", f"o{i}", sym, Side(side), q, px,
                 utc(2024, 1, 2, 15, i * ts_step % 60), commission=fee)
            for i, (sym, side, q, px, fee, k) in enumerate(spec)]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(batch_fill, max_size=12), max_size=5))
def test_batch_booking_equals_fill_by_fill(batches: list[list[tuple]]) -> None:
    """apply_fills' one-pass path books exactly what apply_fill books one fill at a time:
    same cash, holdings, average prices, realised P&L, fees, exec ids, version, time."""
    fast, slow = Ledger(clock=SimulatedClock(T0)), Ledger(clock=SimulatedClock(T0))
    for lg in (fast, slow):
        lg.deposit("100000")
    for spec in batches:
        fills = _fills(spec, ts_step=7)
        n_fast = fast.apply_fills(fills)
        n_slow = sum(slow.apply_fill(f) for f in fills)
        assert n_fast == n_slow
        assert fast.state == slow.state
        assert fast.state.to_json() == slow.state.to_json()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(batch_fill, max_size=8), max_size=4))
def test_batch_booking_persists_the_same_entries(batches: list[list[tuple]]) -> None:
    """With a store the batch writes the entries fill-by-fill booking writes."""
    stores = [Store.from_url("sqlite://") for _ in range(2)]
    for s in stores:
        s.create_all()
    fast, slow = (Ledger(s, clock=SimulatedClock(T0)) for s in stores)
    for spec in batches:
        fills = _fills(spec)
        fast.apply_fills(fills)
        with slow.transaction():
            for f in fills:
                slow.apply_fill(f)
    a, b = (LedgerRepository(s).entries_after(0) for s in stores)
    assert [(e.version, e.kind, e.payload, e.timestamp) for e in a] == \
        [(e.version, e.kind, e.payload, e.timestamp) for e in b]
    assert Ledger.replay(a).to_json() == fast.state.to_json()
    for s in stores:
        s.dispose()


def test_batch_booking_refuses_negative_cash_like_fill_by_fill() -> None:
    from keel.errors import LedgerError
    from keel.portfolio.ledger import LedgerConfig

    lg = Ledger(clock=SimulatedClock(T0), config=LedgerConfig(allow_negative_cash=False))
    lg.deposit("1000")
    before = lg.state
    fills = _fills([("AAA", "BUY", D("5"), D("100"), D("0"), 1),
                    ("BBB", "BUY", D("6"), D("100"), D("0"), 2),
                    ("AAA", "SELL", D("5"), D("100"), D("0"), 3)])
    try:
        lg.apply_fills(fills)
    except LedgerError as exc:
        assert exc.field == "cash"
    else:
        raise AssertionError("negative cash accepted")
    assert lg.state == before  # the whole batch rolled back


# --------------------------------------------------------------------------- column batches


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(batch_fill, max_size=12), max_size=5))
def test_trade_columns_book_exactly_the_fills(batches: list[list[tuple]]) -> None:
    """apply_trades (columns, no Fill objects) books exactly what apply_fills books with the
    Fills those columns make: same state, count, versions and time."""
    cols, objs = Ledger(clock=SimulatedClock(T0)), Ledger(clock=SimulatedClock(T0))
    for lg in (cols, objs):
        lg.deposit("100000")
    ts = utc(2024, 1, 2, 15, 0)
    for spec in batches:
        ids = [f"x{k}" for *_, k in spec]
        n_obj = objs.apply_fills(Fill(e, "o", sym, Side(side), q, px, ts, commission=fee)
                                 for e, (sym, side, q, px, fee, _) in zip(ids, spec, strict=True))
        n_col = cols.apply_trades("o", ids, [s[0] for s in spec],
                                  [Side(s[1]) for s in spec], [s[2] for s in spec],
                                  [s[3] for s in spec], [s[4] for s in spec], ts)
        assert n_col == n_obj
        assert cols.state == objs.state
        assert cols.state.to_json() == objs.state.to_json()


def test_trade_columns_refuse_like_fills_before_any_write() -> None:
    import pytest

    from keel.errors import ValidationError

    lg = Ledger(clock=SimulatedClock(T0))
    lg.deposit("1000")
    before = lg.state
    ts = utc(2024, 1, 2, 15, 0)
    good = ("AAA", Side.BUY, D("1"), D("10"), D("0"))
    for field, bad in (("qty", ("AAA", Side.BUY, D("0"), D("10"), D("0"))),
                       ("price", ("AAA", Side.BUY, D("1"), D("-1"), D("0"))),
                       ("commission", ("AAA", Side.BUY, D("1"), D("10"), D("-0.01"))),
                       ("symbol", ("", Side.BUY, D("1"), D("10"), D("0")))):
        rows = [good, bad]
        with pytest.raises(ValidationError) as exc:
            lg.apply_trades("o", ["a", "b"], *[[r[i] for r in rows] for i in range(5)], ts)
        assert exc.value.field == field
        assert lg.state == before  # the good first row was not booked either


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), max_size=20))
def test_fine_decimals_equal_the_scalar_conversions(values: list[float]) -> None:
    """The batch float -> Decimal conversion the backtest books with equals to_qty,
    to_money and to_price one value at a time (value and representation)."""
    import numpy as np

    from keel.portfolio.ledger import fine_decimals
    from keel.types import Rounding, to_money, to_price, to_qty

    arr = np.asarray(values, dtype=np.float64)
    for rounding in (Rounding.HALF_EVEN, Rounding.DOWN):
        got = fine_decimals(arr, rounding, "qty")
        want = [to_qty(v, rounding=rounding) for v in arr]
        assert [str(g) for g in got] == [str(w) for w in want]
    assert [str(g) for g in fine_decimals(arr, Rounding.HALF_EVEN, "commission")] == \
        [str(to_money(v)) for v in arr]
    pos = np.abs(arr) + 1e-6
    assert [str(g) for g in fine_decimals(pos, Rounding.HALF_EVEN, "price")] == \
        [str(to_price(v)) for v in pos]


def test_fine_decimals_refuse_non_finite() -> None:
    import pytest

    from keel.errors import ValidationError
    from keel.portfolio.ledger import fine_decimals
    from keel.types import Rounding

    with pytest.raises(ValidationError) as exc:
        fine_decimals([1.0, float("nan")], Rounding.HALF_EVEN, "price")
    assert exc.value.field == "price"
