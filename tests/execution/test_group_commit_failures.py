"""Group commit under failure: memory = store after every call, nothing reaches a fill
listener (the ledger) before its batch is committed, a fill the store already has is refused
with a typed error and reaches no listener, and a batch the store could not write is applied
again at the next drain (no fill dropped).

Failures are injected at each point of a batch: the store refusing before anything is written,
the transaction failing at commit after every statement ran, and a fill already booked (by
another writer) inside a batch of good ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert
from sqlalchemy.orm import Session
from tests.execution.conftest import ScriptedBroker

from keel.clock import SimulatedClock
from keel.errors import DuplicateFillError, StoreError
from keel.execution.oms import OrderManager
from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo, StateChange
from keel.store.tables import FillRow
from keel.types import EventKind, Fill, Order, OrderEvent, OrderStatus, Side, utc

T0 = utc(2024, 1, 2, 15)
_RUN = itertools.count()


class FlakyStore(Store):
    """A store whose next writes fail: ``before`` (nothing runs) or ``commit`` (every
    statement runs, then the transaction fails and rolls back)."""

    fail: list[str]

    @contextmanager
    def session(self, *, immediate: bool = False) -> Iterator[Session]:
        mode = self.fail.pop(0) if getattr(self, "fail", None) else None
        if mode == "before":
            raise StoreError("injected: store unavailable", kind="unavailable")
        with super().session(immediate=immediate) as s:
            yield s
            if mode == "commit":
                s.flush()
                raise StoreError("injected: commit failed", kind="unavailable")


def _desk(url: str) -> tuple[OrderManager, ScriptedBroker, FlakyStore, list[str]]:
    store = FlakyStore.from_url(url)
    store.create_all()
    store.fail = []
    broker = ScriptedBroker()
    oms = OrderManager(broker, OrdersRepo(store), SimulatedClock(T0))
    heard: list[str] = []
    oms.add_fill_listener(lambda f, p: heard.append(f.exec_id))
    return oms, broker, store, heard


def _memory_is_store(oms: OrderManager, repo: OrdersRepo) -> None:
    for coid, rec in oms._recs.items():
        stored = repo.get(coid)
        assert stored is not None, coid
        assert (stored.status, stored.filled_qty) == (rec.status, rec.filled_qty), coid


def _book_elsewhere(store: Store, fill: Fill) -> None:
    """Another writer books ``fill`` (the store has it, this order manager does not)."""
    with Store.session(store) as s:
        s.connection().execute(insert(FillRow).values(
            exec_id=fill.exec_id, client_order_id=fill.client_order_id, parent_id=None,
            symbol=fill.symbol, side=fill.side.value, qty=fill.qty, price=fill.price,
            commission=fill.commission, venue=fill.venue, timestamp=fill.timestamp))


# a drain: for each fill, (child index, foreign?) and how the batch's commit goes
_DRAIN = st.tuples(st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1,
                            max_size=6),
                   st.sampled_from([None, None, "before", "commit"]))


@pytest.mark.slow
@pytest.mark.parametrize("n_parents", [4])
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drains=st.lists(_DRAIN, min_size=1, max_size=6))
def test_memory_equals_store_and_listeners_hear_only_committed_fills(
        db_url: str, n_parents: int, drains: list) -> None:
    run = next(_RUN)
    oms, broker, store, heard = _desk(db_url)
    repo = oms.repo
    for i in range(n_parents):
        oms.submit(Order(f"H{run}-{i}", "SPY", Side.BUY, Decimal(100), T0))
    oms.step()
    kids = [f"H{run}-{i}-000" for i in range(n_parents)]
    assert [o.client_order_id for o in broker.submitted] == kids
    ex = itertools.count()
    foreign: set[str] = set()
    sent: list[str] = []
    for fills, failure in drains:
        for k, is_foreign in fills:
            f = Fill(f"X{run}-{next(ex)}", kids[k], "SPY", Side.BUY, Decimal(5),
                     Decimal("400.25"), T0)
            if is_foreign:
                _book_elsewhere(store, f)
                foreign.add(f.exec_id)
            broker.events.append(OrderEvent(EventKind.FILL, kids[k], T0, fill=f))
            sent.append(f.exec_id)
        if failure is not None:
            store.fail = [failure]
        before = list(heard)
        try:
            oms.process_events()
        except StoreError as exc:
            assert failure is not None and not isinstance(exc, DuplicateFillError)
            assert heard == before  # nothing acknowledged from a batch that did not commit
        store.fail = []
        _memory_is_store(oms, repo)
        booked_here = {f.exec_id for f, _ in repo.fills()
                       if f.exec_id.startswith(f"X{run}-")} - foreign
        assert set(heard) == booked_here and len(heard) == len(set(heard))
        assert not set(heard) & foreign
        held = oms.positions.get("SPY", Decimal(0))
        assert held == Decimal(5) * len(heard)
    oms.process_events()  # the store is healthy again: what a failure left over is applied
    _memory_is_store(oms, repo)
    assert set(heard) == set(sent) - foreign
    refused = {a.detail for a in oms.anomalies if a.kind == "FILL_ALREADY_BOOKED"}
    assert foreign <= refused
    for k in kids:
        rec = oms.get(k)
        assert rec is not None
        assert rec.filled_qty == sum((f.qty for f, _ in repo.fills()
                                      if f.client_order_id == k
                                      and f.exec_id not in foreign), Decimal(0))


def test_a_refused_fill_is_a_typed_error_from_the_store(sqlite_url: str) -> None:
    oms, _, store, heard = _desk(sqlite_url)
    oms.submit(Order("R1", "SPY", Side.BUY, Decimal(10), T0))
    oms.step()
    f = Fill("XR", "R1-000", "SPY", Side.BUY, Decimal(10), Decimal(400), T0)
    _book_elsewhere(store, f)
    rec = oms.get("R1-000")
    assert rec is not None
    parent = oms.get("R1")
    assert parent is not None
    with pytest.raises(DuplicateFillError) as err:
        oms.repo.apply_batch([([StateChange(rec.with_changes(status=OrderStatus.FILLED,
                                                              filled_qty=Decimal(10)),
                                             rec.status)], f, "R1")], T0)
    assert err.value.exec_ids == ("XR",) and err.value.field == "exec_id"
    assert oms.repo.get("R1-000").status is rec.status  # type: ignore[union-attr]
    assert not oms.repo.apply([], T0, fill=f, parent_id="R1")  # single = batch of one
    oms.broker.events.append(OrderEvent(EventKind.FILL, "R1-000", T0, fill=f))  # type: ignore[attr-defined]
    oms.process_events()
    assert heard == [] and oms.get("R1-000").filled_qty == 0  # type: ignore[union-attr]
    assert [a.kind for a in oms.anomalies][-1] == "FILL_ALREADY_BOOKED"


@pytest.mark.parametrize("where", ["before", "commit"])
def test_a_failed_write_ahead_sends_nothing_and_keeps_memory(db_url: str, where: str) -> None:
    oms, broker, store, _ = _desk(db_url)
    oms.repo.known_ids = lambda ids: set()  # type: ignore[method-assign]  # no read first
    store.fail = [where]  # the parents' insert fails
    with pytest.raises(StoreError):
        oms.submit_many([(Order(f"W{i}", "SPY", Side.BUY, Decimal(10), T0), None)
                         for i in range(3)])
    assert oms.in_memory() == 0 and not oms.repo.parents()
    oms.submit_many([(Order(f"W{i}", "SPY", Side.BUY, Decimal(10), T0), None)
                     for i in range(3)])
    store.fail = [where]  # marking the due children PENDING fails: nothing may be sent
    with pytest.raises(StoreError):
        oms.step()
    assert broker.submitted == []
    _memory_is_store(oms, oms.repo)
    assert {r.status for r in oms.repo.children()} == {OrderStatus.NEW}
    oms.step()
    assert len(broker.submitted) == 3
    _memory_is_store(oms, oms.repo)
