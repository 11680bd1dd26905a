"""Ledger: booking arithmetic, transactions, snapshots, persistence and optimistic locking."""

from __future__ import annotations

from decimal import Decimal

import pytest

from keel.clock import SimulatedClock
from keel.errors import ConcurrencyError, LedgerError, ValidationError
from keel.portfolio.ledger import Ledger, LedgerConfig
from keel.store.db import Store
from keel.store.ledger_repo import LedgerRepository
from keel.types import Fill, Side, utc

D = Decimal
T0 = utc(2024, 1, 2, 15)


def fill(i: int, sym: str, side: str, qty: str, px: str, fee: str = "0") -> Fill:
    return Fill(exec_id=f"x{i}", client_order_id=f"o{i}", symbol=sym, side=Side(side),
                qty=D(qty), price=D(px), timestamp=T0, commission=D(fee))


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


def test_long_round_trip_realises_pnl(clock: SimulatedClock) -> None:
    lg = Ledger(clock=clock)
    lg.deposit("10000")
    lg.apply_fill(fill(1, "AAA", "BUY", "10", "100", "1"))
    lg.apply_fill(fill(2, "AAA", "BUY", "10", "110"))
    assert lg.position("AAA").avg_price == D("105")
    lg.apply_fill(fill(3, "AAA", "SELL", "5", "120", "1"))
    st = lg.state
    assert st.realized_pnl == D("75")  # 5 x (120 - 105)
    assert st.qty("AAA") == D("15")
    assert st.fees == D("2")
    assert st.cash == D("10000") - D("1000") - 1 - D("1100") + D("600") - 1
    assert st.equity == st.cash + D("15") * D("120")
    lg.apply_fill(fill(4, "AAA", "SELL", "15", "100"))
    assert "AAA" not in lg.state.holdings  # no phantom zero position
    assert lg.state.realized_pnl == D("0")  # 75 + 15 x (100 - 105)


def test_short_and_close_through_zero(clock: SimulatedClock) -> None:
    lg = Ledger(clock=clock)
    lg.apply_fill(fill(1, "BBB", "SELL", "10", "50"))
    assert lg.position("BBB").qty == D("-10")
    assert lg.cash == D("500")
    lg.apply_fill(fill(2, "BBB", "BUY", "15", "40"))  # covers 10 (+100), opens 5 long @40
    p = lg.position("BBB")
    assert (p.qty, p.avg_price) == (D("5"), D("40"))
    assert lg.state.realized_pnl == D("100")


def test_duplicate_exec_id_is_booked_once(clock: SimulatedClock) -> None:
    lg = Ledger(clock=clock)
    f = fill(1, "AAA", "BUY", "1", "10")
    assert lg.apply_fill(f) is True
    assert lg.apply_fill(f) is False
    assert lg.version == 1


def test_transaction_rolls_back_everything(clock: SimulatedClock) -> None:
    lg = Ledger(clock=clock)
    lg.deposit("1000")
    before = lg.state
    with pytest.raises(RuntimeError), lg.transaction():
        lg.apply_fill(fill(1, "AAA", "BUY", "1", "10"))
        lg.deposit("5")
        raise RuntimeError("boom")
    assert lg.state == before


def test_config_refusals_leave_state(clock: SimulatedClock) -> None:
    lg = Ledger(clock=clock, config=LedgerConfig(allow_short=False, allow_negative_cash=False))
    lg.deposit("100")
    before = lg.state
    with pytest.raises(LedgerError) as e:
        lg.apply_fill(fill(1, "AAA", "SELL", "1", "10"))
    assert e.value.field == "qty" and e.value.symbol == "AAA"
    with pytest.raises(LedgerError) as e:
        lg.apply_fill(fill(2, "AAA", "BUY", "11", "10"))
    assert e.value.field == "cash"
    with pytest.raises(LedgerError):
        lg.withdraw("101")
    assert lg.state == before


@pytest.mark.parametrize("amount", ["0", "-5", "abc"])
def test_bad_amounts_are_refused(clock: SimulatedClock, amount: str) -> None:
    lg = Ledger(clock=clock)
    with pytest.raises(ValidationError) as e:
        lg.deposit(amount)
    assert e.value.field == "amount"
    assert lg.version == 0


def test_mark_negative_price_refused(clock: SimulatedClock) -> None:
    lg = Ledger(clock=clock)
    lg.apply_fill(fill(1, "AAA", "BUY", "1", "10"))
    with pytest.raises(ValidationError) as e:
        lg.mark({"AAA": -1})
    assert (e.value.field, e.value.symbol) == ("price", "AAA")
    lg.mark({"AAA": "12", "ZZZ": "1"})
    assert lg.state.holdings["AAA"].mark == D("12")
    assert set(lg.state.holdings) == {"AAA"}


def test_persisted_and_reopened(db_url: str, clock: SimulatedClock) -> None:
    store = Store.from_url(db_url)
    store.create_all()
    lg = Ledger(store, clock=clock)
    lg.deposit("1000")
    with lg.transaction():
        lg.apply_fill(fill(1, "AAA", "BUY", "3", "10.125", "0.01"))
        lg.apply_fill(fill(2, "BBB", "SELL", "2", "7.5"))
    lg.snapshot("eod")
    lg.charge_fee("0.5", memo="custody")
    lg.mark({"AAA": "11"})
    again = Ledger.open(store, clock=clock)
    assert again.state == lg.state
    assert again.state.to_json() == lg.state.to_json()
    # full replay from version 0 equals snapshot + tail
    full = Ledger.replay(LedgerRepository(store).entries_after(0))
    assert full.to_json() == lg.state.to_json()
    audits = LedgerRepository(store).audit_rows("ledger.")
    assert [a.action for a in audits].count("ledger.fill") == 2
    assert len([a for a in audits if a.action != "ledger.snapshot"]) == lg.version
    store.dispose()


def test_failed_transaction_writes_nothing(sqlite_url: str, clock: SimulatedClock) -> None:
    store = Store.from_url(sqlite_url)
    store.create_all()
    lg = Ledger(store, clock=clock)
    lg.deposit("10")
    with pytest.raises(RuntimeError), lg.transaction():
        lg.deposit("5")
        raise RuntimeError
    assert LedgerRepository(store).head_version() == 1
    assert Ledger.open(store, clock=clock).state == lg.state


def test_stale_writer_gets_concurrency_error(db_url: str, clock: SimulatedClock) -> None:
    store_a, store_b = Store.from_url(db_url), Store.from_url(db_url)
    store_a.create_all()
    a = Ledger.open(store_a, clock=clock)
    b = Ledger.open(store_b, clock=clock)
    a.deposit("100")
    before = b.state
    with pytest.raises(ConcurrencyError) as e:
        b.deposit("50")
    assert e.value.field == "version"
    assert b.state == before  # rolled back in memory
    b.refresh()
    assert b.state == a.state
    b.deposit("50")
    a.refresh()
    assert a.cash == D("150") == b.cash
    store_a.dispose()
    store_b.dispose()


def test_restore_books_a_version(sqlite_url: str, clock: SimulatedClock) -> None:
    store = Store.from_url(sqlite_url)
    store.create_all()
    lg = Ledger(store, clock=clock)
    lg.deposit("100")
    snap = lg.snapshot()
    lg.apply_fill(fill(1, "AAA", "BUY", "1", "10"))
    lg.restore(snap)
    assert lg.version == 3
    assert lg.cash == D("100") and not lg.state.holdings
    assert Ledger.open(store, clock=clock).state == lg.state


def test_racing_writers_lose_no_update(db_url: str) -> None:
    """Two ledgers on one database deposit concurrently, retrying on ConcurrencyError."""
    import threading

    stores = [Store.from_url(db_url) for _ in range(2)]
    stores[0].create_all()
    conflicts = [0, 0]

    def writer(k: int) -> None:
        lg = Ledger.open(stores[k], clock=SimulatedClock(T0), actor=f"w{k}")
        for _ in range(15):
            while True:
                try:
                    lg.deposit(k + 1)
                    break
                except ConcurrencyError:
                    conflicts[k] += 1
                    lg.refresh()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = Ledger.open(stores[0], clock=SimulatedClock(T0))
    assert final.version == 30
    assert final.cash == D(15 * 1 + 15 * 2)
    for s in stores:
        s.dispose()


def test_registry_multiplier_and_unknown_symbol(clock: SimulatedClock) -> None:
    from datetime import date

    from keel.portfolio.instruments import Future, InstrumentRegistry

    reg = InstrumentRegistry.of([Future("ESM4", multiplier=D(50), expiry=date(2024, 6, 21),
                                        initial_per_contract=D(12000))])
    lg = Ledger(clock=clock, registry=reg)
    lg.deposit("30000")
    lg.apply_fill(fill(1, "ESM4", "BUY", "2", "5000"))
    assert lg.cash == D(30000)  # a future is margined, not paid for
    lg.apply_fill(fill(2, "ESM4", "SELL", "1", "5010"))
    assert lg.state.realized_pnl == D(500)  # 1 x 10 points x 50
    assert lg.cash == D(31000)  # both contracts settled to 5010: 2 x 10 x 50
    lg.mark({"ESM4": "5020"})
    assert lg.equity == lg.cash + 1 * (D(5020) - D(5010)) * 50
    with pytest.raises(ValidationError) as e:
        lg.apply_fill(fill(3, "NQM4", "BUY", "1", "18000"))
    assert (e.value.field, e.value.symbol) == ("symbol", "NQM4")
    assert lg.version == 4


def test_snapshot_with_more_than_12_decimals(db_url: str, clock: SimulatedClock) -> None:
    store = Store.from_url(db_url)
    store.create_all()
    lg = Ledger(store, clock=clock)
    lg.apply_fill(fill(1, "BTC", "BUY", "0.00000001", "0.000123"))  # cash has 17 places
    lg.snapshot()
    again = Ledger.open(store, clock=clock)
    assert again.state.to_json() == lg.state.to_json()
    assert again.cash == D("-1.23E-12")
    store.dispose()


def test_rollback_of_a_restore_is_exact(clock: SimulatedClock) -> None:
    lg = Ledger(clock=clock)
    lg.apply_fill(fill(1, "AAA", "BUY", "2", "10"))
    snap = lg.state
    lg.apply_fill(fill(2, "AAA", "BUY", "1", "11"))
    before = lg.state
    with pytest.raises(RuntimeError), lg.transaction():
        lg.restore(snap)
        lg.apply_fill(fill(2, "AAA", "BUY", "1", "11"))  # x2 is unknown after the restore
        raise RuntimeError
    assert lg.state.to_json() == before.to_json()
    assert lg.apply_fill(fill(2, "AAA", "BUY", "1", "11")) is False


def test_bad_audit_rows_are_refused_and_nothing_is_booked(sqlite_url: str,
                                                          clock: SimulatedClock) -> None:
    store = Store.from_url(sqlite_url)
    store.upgrade()
    ledger = Ledger.open(store, clock=clock)
    ledger.deposit(Decimal(1000))
    version = ledger.version
    with pytest.raises(ValidationError) as exc, ledger.transaction():
        ledger.deposit(Decimal(5))
        ledger.note("x" * 80, {"why": "too long an action"})
    assert exc.value.field == "action"
    with pytest.raises(ValidationError) as exc:
        ledger.note("ok", {"px": float("nan")})
    assert exc.value.field is not None and "payload" in exc.value.field
    reopened = Ledger.open(store, clock=clock)
    assert reopened.version == version == ledger.version
    assert reopened.cash == Decimal(1000)
    store.dispose()
