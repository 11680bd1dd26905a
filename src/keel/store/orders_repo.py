"""Persistence of the order manager: parents, children (linked), fills and state changes.

Every write is one transaction, and there is one write path per kind: a batch
(:meth:`OrdersRepo.add_parents`, :meth:`OrdersRepo.apply_batch`); the single-row writers are a
batch of one. A fill, the order states it changes and their audit events are written together
or not at all, so a crash never leaves a fill without its state change. A fill's ``exec_id``
is unique in the table: a batch booking one twice is refused whole (``DuplicateFillError``
naming the exec ids); :meth:`OrdersRepo.apply` reports it as ``False``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from keel.errors import DuplicateFillError, StoreError
from keel.store.db import Store
from keel.store.tables import ChildOrderRow, FillRow, OrderEventRow, OrderRow
from keel.types import (
    ZERO,
    ChildOrder,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)


@dataclass(frozen=True)
class OrderRecord:
    """The order manager's view of one order (parent or child) and its state.

    ``order`` is the :class:`Order` (parent) or :class:`ChildOrder` (child); ``parent_id`` is
    None for a parent. Quantities in shares, prices in currency/share.
    """

    order: Order | ChildOrder
    status: OrderStatus
    filled_qty: Decimal = ZERO
    avg_price: Decimal | None = None
    algo: str | None = None
    arrival_price: Decimal | None = None
    decision_price: Decimal | None = None
    venue_order_id: str | None = None
    updated_at: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def client_order_id(self) -> str:
        return self.order.client_order_id

    @property
    def parent_id(self) -> str | None:
        return self.order.parent_id if isinstance(self.order, ChildOrder) else None

    @property
    def is_child(self) -> bool:
        return isinstance(self.order, ChildOrder)

    @property
    def leaves_qty(self) -> Decimal:
        return self.order.qty - self.filled_qty

    def with_changes(self, **changes: object) -> OrderRecord:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class StateChange:
    """A new state for one order, with the reason written to the audit trail."""

    record: OrderRecord
    from_status: OrderStatus | None
    reason: str = ""


def _parent_from_row(r: OrderRow) -> OrderRecord:
    order = Order(client_order_id=r.client_order_id, symbol=r.symbol, side=Side(r.side),
                  qty=r.qty, created_at=r.created_at, order_type=OrderType(r.order_type),
                  limit_price=r.limit_price, stop_price=r.stop_price, tif=TimeInForce(r.tif),
                  strategy=r.strategy)
    return OrderRecord(order, OrderStatus(r.status), r.filled_qty, r.avg_fill_price, r.algo,
                       r.arrival_price, r.decision_price, None, r.updated_at)


def _child_from_row(r: ChildOrderRow) -> OrderRecord:
    order = ChildOrder(client_order_id=r.client_order_id, parent_id=r.parent_id,
                       symbol=r.symbol, side=Side(r.side), qty=r.qty, created_at=r.created_at,
                       slice_index=r.slice_index, not_before=r.not_before,
                       expire_at=r.expire_at, order_type=OrderType(r.order_type),
                       limit_price=r.limit_price, tif=TimeInForce(r.tif))
    return OrderRecord(order, OrderStatus(r.status), r.filled_qty, None,
                       venue_order_id=r.venue_order_id, updated_at=r.updated_at)


class OrdersRepo:
    """Orders, children, fills and order events in a :class:`~keel.store.db.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------ writes

    def add_parent(self, rec: OrderRecord, now: datetime, reason: str = "",
                   children: Iterable[ChildOrder] = ()) -> bool:
        """Insert a parent and its NEW children in one transaction (False, nothing written,
        when the parent id already exists): :meth:`add_parents` with a batch of one."""
        return self.add_parents([(rec, reason, list(children))], now)[0]

    def add_parents(self, items: Sequence[tuple[OrderRecord, str, Sequence[ChildOrder]]],
                    now: datetime) -> list[bool]:
        """Every ``(record, reason, children)`` in one transaction (one fsync, one multi-row
        insert per table); False for a parent id that already exists or repeats an earlier
        one of the batch (not written). A parent id taken by a concurrent writer between the
        check and the insert fails the whole batch (``StoreError``, nothing written)."""
        ids = [rec.client_order_id for rec, _, _ in items]
        with self.store.session() as s:
            conn = s.connection()
            known = set(conn.execute(select(OrderRow.client_order_id).where(
                OrderRow.client_order_id.in_(ids))).scalars()) if ids else set()
            parents, kids, events, out = [], [], [], []
            for rec, reason, children in items:
                o = rec.order
                assert isinstance(o, Order)
                if o.client_order_id in known:
                    out.append(False)
                    continue
                known.add(o.client_order_id)
                out.append(True)
                parents.append(dict(
                    client_order_id=o.client_order_id, symbol=o.symbol, side=o.side.value,
                    qty=o.qty, order_type=o.order_type.value, tif=o.tif.value,
                    limit_price=o.limit_price, stop_price=o.stop_price,
                    status=rec.status.value, filled_qty=rec.filled_qty,
                    avg_fill_price=rec.avg_price, strategy=o.strategy, algo=rec.algo,
                    arrival_price=rec.arrival_price, decision_price=rec.decision_price,
                    created_at=o.created_at, updated_at=now))
                events.append(dict(client_order_id=o.client_order_id, from_status=None,
                                   to_status=rec.status.value, reason=reason, timestamp=now))
                for c in children:
                    kids.append(dict(
                        client_order_id=c.client_order_id, parent_id=c.parent_id,
                        slice_index=c.slice_index, symbol=c.symbol, side=c.side.value,
                        qty=c.qty, order_type=c.order_type.value, tif=c.tif.value,
                        limit_price=c.limit_price, not_before=c.not_before,
                        expire_at=c.expire_at, status=OrderStatus.NEW.value, filled_qty=ZERO,
                        venue_order_id=None, venue=None, created_at=c.created_at,
                        updated_at=now))
                    events.append(dict(client_order_id=c.client_order_id, from_status=None,
                                       to_status=OrderStatus.NEW.value, reason="scheduled",
                                       timestamp=now))
            for stmt, rows in ((_PARENT_INSERT, parents), (_CHILD_INSERT, kids),
                               (_EVENT_INSERT, events)):
                if rows:
                    conn.execute(stmt, rows)
            return out

    def apply(self, changes: Iterable[StateChange], now: datetime, fill: Fill | None = None,
              parent_id: str | None = None) -> bool:
        """Write ``changes`` (and ``fill``) atomically: :meth:`apply_batch` with a batch of
        one. False (nothing written) if the fill was already booked."""
        try:
            self.apply_batch([(list(changes), fill, parent_id)], now)
        except DuplicateFillError:
            return False
        return True

    def apply_batch(self, ops: Sequence[tuple[Sequence[StateChange], Fill | None, str | None]],
                    now: datetime) -> None:
        """Every ``(changes, fill, parent_id)`` in one transaction (one fsync; one multi-row
        statement per kind of write), all or nothing.

        Raises ``DuplicateFillError`` naming the ``exec_ids`` already booked (or repeated
        within the batch) and ``StoreError`` for an order the store does not have or any
        database failure; in every case nothing of the batch is written.
        """
        fills: list[dict[str, object]] = []
        kids: list[dict[str, object]] = []
        parents: list[dict[str, object]] = []
        events: list[dict[str, object]] = []
        seen: set[str] = set()
        repeated: list[str] = []
        for changes, fill, parent_id in ops:
            if fill is not None:
                if fill.exec_id in seen:
                    repeated.append(fill.exec_id)
                seen.add(fill.exec_id)
                fills.append(dict(
                    exec_id=fill.exec_id, client_order_id=fill.client_order_id,
                    parent_id=parent_id, symbol=fill.symbol, side=fill.side.value,
                    qty=fill.qty, price=fill.price, commission=fill.commission,
                    venue=fill.venue, timestamp=fill.timestamp))
            for ch in changes:
                rec = ch.record
                if rec.is_child:
                    kids.append({"b_coid": rec.client_order_id, "b_status": rec.status.value,
                                 "b_qty": rec.order.qty, "b_filled": rec.filled_qty,
                                 "b_now": now, "b_voi": rec.venue_order_id or None})
                else:
                    parents.append({"b_coid": rec.client_order_id,
                                    "b_status": rec.status.value,
                                    "b_filled": rec.filled_qty, "b_now": now,
                                    "b_avg": rec.avg_price})
                if ch.from_status is not rec.status or ch.reason:
                    events.append(dict(
                        client_order_id=rec.client_order_id,
                        from_status=ch.from_status.value if ch.from_status else None,
                        to_status=rec.status.value, reason=ch.reason, timestamp=now))
        if repeated:
            raise DuplicateFillError("fill repeated within one batch", field="exec_id",
                                     value=repeated[0], exec_ids=tuple(repeated))
        try:
            with self.store.session() as s:
                conn = s.connection()
                if fills:
                    conn.execute(_FILL_INSERT, fills)
                for stmt, rows in ((_CHILD_UPDATE, kids), (_PARENT_UPDATE, parents)):
                    if rows:
                        res = conn.execute(stmt, rows)
                        if 0 <= getattr(res, "rowcount", -1) < len(rows):
                            raise StoreError("order not in the store",
                                             field="client_order_id", value=rows[0]["b_coid"])
                if events:
                    conn.execute(_EVENT_INSERT, events)
        except StoreError as exc:
            if not fills or not isinstance(exc.__cause__, IntegrityError):
                raise
            booked = self.booked_exec_ids(seen)
            if not booked:
                raise
            first = sorted(booked)[0]
            raise DuplicateFillError("fill already booked", field="exec_id", value=first,
                                     exec_ids=tuple(sorted(booked))) from exc

    def booked_exec_ids(self, exec_ids: Iterable[str]) -> set[str]:
        """Which of ``exec_ids`` are booked (one query)."""
        ids = list(exec_ids)
        if not ids:
            return set()
        with self.store.session() as s:
            return set(s.scalars(select(FillRow.exec_id).where(FillRow.exec_id.in_(ids))))

    # ------------------------------------------------------------------ reads

    def get(self, client_order_id: str) -> OrderRecord | None:
        """A parent or child by id (None if unknown)."""
        with self.store.session() as s:
            r = s.scalar(select(OrderRow).where(OrderRow.client_order_id == client_order_id))
            if r is not None:
                return _parent_from_row(r)
            c = s.scalar(select(ChildOrderRow).where(
                ChildOrderRow.client_order_id == client_order_id))
            return _child_from_row(c) if c is not None else None

    def parents(self, *, open_only: bool = False) -> list[OrderRecord]:
        with self.store.session() as s:
            q = select(OrderRow).order_by(OrderRow.id)
            if open_only:
                q = q.where(OrderRow.status.in_([st.value for st in OrderStatus
                                                 if st.is_open]))
            return [_parent_from_row(r) for r in s.scalars(q)]

    def children(self, parent_id: str | None = None, *, open_only: bool = False
                 ) -> list[OrderRecord]:
        with self.store.session() as s:
            q = select(ChildOrderRow).order_by(ChildOrderRow.id)
            if parent_id is not None:
                q = q.where(ChildOrderRow.parent_id == parent_id)
            if open_only:
                q = q.where(ChildOrderRow.status.in_([st.value for st in OrderStatus
                                                      if st.is_open]))
            return [_child_from_row(r) for r in s.scalars(q)]

    def fills(self, *, parent_id: str | None = None, symbol: str | None = None
              ) -> list[tuple[Fill, str | None]]:
        """Fills in booking order, each with its parent id."""
        with self.store.session() as s:
            q = select(FillRow).order_by(FillRow.id)
            if parent_id is not None:
                q = q.where(FillRow.parent_id == parent_id)
            if symbol is not None:
                q = q.where(FillRow.symbol == symbol)
            return [(Fill(exec_id=r.exec_id, client_order_id=r.client_order_id,
                          symbol=r.symbol, side=Side(r.side), qty=r.qty, price=r.price,
                          timestamp=r.timestamp, commission=r.commission, venue=r.venue),
                     r.parent_id) for r in s.scalars(q)]

    def exec_ids(self, client_order_ids: Iterable[str]) -> set[str]:
        ids = list(client_order_ids)
        if not ids:
            return set()
        with self.store.session() as s:
            return set(s.scalars(select(FillRow.exec_id).where(
                FillRow.client_order_id.in_(ids))))

    def events(self, client_order_id: str | None = None
               ) -> list[tuple[str, str | None, str, str, datetime]]:
        """Audit trail rows ``(client_order_id, from, to, reason, timestamp)`` in order."""
        with self.store.session() as s:
            q = select(OrderEventRow).order_by(OrderEventRow.id)
            if client_order_id is not None:
                q = q.where(OrderEventRow.client_order_id == client_order_id)
            return [(r.client_order_id, r.from_status, r.to_status, r.reason, r.timestamp)
                    for r in s.scalars(q)]

    def known_ids(self, client_order_ids: Sequence[str]) -> set[str]:
        """Which of ``client_order_ids`` are stored (parents or children), in two queries."""
        ids = list(dict.fromkeys(client_order_ids))
        if not ids:
            return set()
        with self.store.session() as s:
            found = set(s.scalars(select(OrderRow.client_order_id).where(
                OrderRow.client_order_id.in_(ids))))
            found |= set(s.scalars(select(ChildOrderRow.client_order_id).where(
                ChildOrderRow.client_order_id.in_(ids))))
        return found

    def has_exec_id(self, exec_id: str) -> bool:
        """True when a fill with ``exec_id`` is booked."""
        with self.store.session() as s:
            return s.scalar(select(FillRow.id).where(FillRow.exec_id == exec_id)) is not None


_FILL_INSERT = insert(FillRow)
_PARENT_INSERT = insert(OrderRow)
_CHILD_INSERT = insert(ChildOrderRow)
_EVENT_INSERT = insert(OrderEventRow)
_C, _P = ChildOrderRow.__table__.c, OrderRow.__table__.c
_CHILD_UPDATE = update(ChildOrderRow).where(
    ChildOrderRow.client_order_id == bindparam("b_coid")).values(
    status=bindparam("b_status"), qty=bindparam("b_qty", type_=_C.qty.type),
    filled_qty=bindparam("b_filled", type_=_C.filled_qty.type),
    updated_at=bindparam("b_now", type_=_C.updated_at.type),
    venue_order_id=func.coalesce(bindparam("b_voi", type_=_C.venue_order_id.type),
                                 ChildOrderRow.venue_order_id))
_PARENT_UPDATE = update(OrderRow).where(OrderRow.client_order_id == bindparam("b_coid")).values(
    status=bindparam("b_status"), filled_qty=bindparam("b_filled", type_=_P.filled_qty.type),
    updated_at=bindparam("b_now", type_=_P.updated_at.type),
    avg_fill_price=bindparam("b_avg", type_=_P.avg_fill_price.type),
    version=OrderRow.version + 1)
