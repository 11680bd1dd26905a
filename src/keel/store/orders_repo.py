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
from typing import Any, cast

from sqlalchemy import Connection, Dialect, Table, select
from sqlalchemy.exc import IntegrityError

from keel.errors import DuplicateFillError, StoreError
from keel.store.db import Store
from keel.store.tables import ChildOrderRow, FillRow, OrderEventRow, OrderRow, UTCDateTime
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
            parents: list[tuple[object, ...]] = []
            kids: list[tuple[object, ...]] = []
            events: list[tuple[object, ...]] = []
            out: list[bool] = []
            for rec, reason, children in items:
                o = rec.order
                assert isinstance(o, Order)
                if o.client_order_id in known:
                    out.append(False)
                    continue
                known.add(o.client_order_id)
                out.append(True)
                parents.append((
                    o.client_order_id, o.symbol, o.side.value, o.qty, o.order_type.value,
                    o.tif.value, o.limit_price, o.stop_price, rec.status.value,
                    rec.filled_qty, rec.avg_price, o.strategy, rec.algo, rec.arrival_price,
                    rec.decision_price, o.created_at, now, 1))
                events.append((o.client_order_id, None, rec.status.value, reason, now))
                for c in children:
                    kids.append((
                        c.client_order_id, c.parent_id, c.slice_index, c.symbol, c.side.value,
                        c.qty, c.order_type.value, c.tif.value, c.limit_price, c.not_before,
                        c.expire_at, OrderStatus.NEW.value, ZERO, None, None, c.created_at,
                        now))
                    events.append((c.client_order_id, None, OrderStatus.NEW.value,
                                   "scheduled", now))
            _PARENTS.run(conn, parents)
            _CHILDREN.run(conn, kids)
            _EVENTS.run(conn, events)
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
        fills: list[tuple[object, ...]] = []
        kids: dict[str, list[object]] = {}  # one update per row: its last state in the batch
        parents: dict[str, list[object]] = {}
        events: list[tuple[object, ...]] = []
        seen: set[str] = set()
        repeated: list[str] = []
        for changes, fill, parent_id in ops:
            if fill is not None:
                if fill.exec_id in seen:
                    repeated.append(fill.exec_id)
                seen.add(fill.exec_id)
                fills.append((fill.exec_id, fill.client_order_id, parent_id, fill.symbol,
                              fill.side.value, fill.qty, fill.price, fill.commission,
                              fill.venue, fill.timestamp))
            for ch in changes:
                rec = ch.record
                coid = rec.client_order_id
                if rec.is_child:
                    voi = rec.venue_order_id or None
                    old = kids.get(coid)
                    kids[coid] = [rec.status.value, rec.order.qty, rec.filled_qty, now,
                                  voi if voi is not None or old is None else old[4], coid]
                else:
                    old = parents.get(coid)
                    writes = 1 if old is None else int(str(old[4])) + 1
                    parents[coid] = [rec.status.value, rec.filled_qty, now, rec.avg_price,
                                     writes, coid]
                if ch.from_status is not rec.status or ch.reason:
                    events.append((coid, ch.from_status.value if ch.from_status else None,
                                   rec.status.value, ch.reason, now))
        if repeated:
            raise DuplicateFillError("fill repeated within one batch", field="exec_id",
                                     value=repeated[0], exec_ids=tuple(repeated))
        try:
            with self.store.session() as s:
                conn = s.connection()
                _FILLS.run(conn, fills)
                for bulk, rows in ((_CHILD_STATE, kids), (_PARENT_STATE, parents)):
                    n = bulk.run(conn, [tuple(r) for r in rows.values()])
                    if 0 <= n < len(rows):
                        raise StoreError("order not in the store", field="client_order_id",
                                         value=next(iter(rows)))
                _EVENTS.run(conn, events)
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




def _table(row: type) -> Table:
    return cast(Table, row.__table__)  # type: ignore[attr-defined]


class _Bulk:
    """One write of many rows, the hot path of a group commit, built once per dialect.

    SQLite (in-process, no round trip): one ``executemany`` on the driver. PostgreSQL: one
    constant statement for the whole batch with one array parameter per column (``INSERT
    ... SELECT * FROM unnest(...)``, ``UPDATE ... FROM unnest(...)``), so a batch costs one
    round trip per kind of write instead of one per row, and the server prepares it once.
    Every value goes through its column type's own bind processor (the same conversion
    SQLAlchemy makes), without SQLAlchemy's per-row parameter machinery.

    ``columns`` name the row's values in order; for an update, ``key`` is the last one and
    ``set_exprs`` maps a column to its new value, ``{v}`` standing for the row's value and
    ``{t}`` for the table (by default the value itself). Returns the rows the database
    reports written (-1 when it does not say).
    """

    CHUNK = 5000

    def __init__(self, table: Table, columns: Sequence[str], *, key: str | None = None,
                 set_exprs: dict[str, str] | None = None) -> None:
        self.table, self.columns, self.key = table, list(columns), key
        self.set_exprs = set_exprs or {}
        self._memo_cols = {i for i, c in enumerate(self.columns)
                           if isinstance(table.c[c].type, UTCDateTime)}
        self._cache: dict[str, tuple[str, list[Any]]] = {}

    def _compiled(self, dialect: Dialect) -> tuple[str, list[Any]]:
        got = self._cache.get(dialect.name)
        if got is not None:
            return got
        q = dialect.identifier_preparer.quote
        t = q(self.table.name)
        cols = [self.table.c[c] for c in self.columns]
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        one = "(" + ", ".join([mark] * len(cols)) + ")"
        if mark == "?":
            if self.key is None:
                sql = f"INSERT INTO {t} ({', '.join(q(c) for c in self.columns)}) VALUES {one}"
            else:
                sets = ", ".join(f"{q(c)} = " + self.set_exprs.get(c, "{v}").format(
                    v="?", t=t) for c in self.columns[:-1])
                sql = f"UPDATE {t} SET {sets} WHERE {q(self.key)} = ?"
        else:  # one array per column: a constant statement, prepared once by the server
            arrays = ", ".join(f"%s::{c.type.dialect_impl(dialect).compile(dialect)}[]"
                               for c in cols)
            names = ", ".join(q(c) for c in self.columns)
            if self.key is None:
                sql = f"INSERT INTO {t} ({names}) SELECT * FROM unnest({arrays})"
            else:
                sets = ", ".join(f"{q(c)} = " + self.set_exprs.get(c, "{v}").format(
                    v=f"v.{q(c)}", t=t) for c in self.columns[:-1])
                sql = (f"UPDATE {t} SET {sets} FROM unnest({arrays}) AS v ({names}) "
                       f"WHERE {t}.{q(self.key)} = v.{q(self.key)}")
        procs = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in cols]
        got = self._cache[dialect.name] = (sql, procs)
        return got

    def run(self, conn: Connection, rows: Sequence[tuple[object, ...]]) -> int:
        if not rows:
            return 0
        sql, procs = self._compiled(conn.dialect)
        cols: list[list[object]] = [list(c) for c in zip(*rows, strict=True)]
        for i, (p, col) in enumerate(zip(procs, cols, strict=True)):
            if p is None:
                continue
            if i in self._memo_cols:  # timestamps: a batch repeats one or a few (its `now`)
                memo: dict[object, object] = {}
                cols[i] = [memo[v] if v in memo else memo.setdefault(v, p(v)) for v in col]
            else:
                cols[i] = [p(v) for v in col]
        if conn.dialect.paramstyle != "qmark":
            written = 0
            for i in range(0, len(rows), self.CHUNK):
                part = tuple(c[i:i + self.CHUNK] for c in cols)
                n = int(getattr(conn.exec_driver_sql(sql, part), "rowcount", -1))
                written = -1 if n < 0 or written < 0 else written + n
            return written
        data = list(zip(*cols, strict=True))
        res = conn.exec_driver_sql(sql, data)
        return int(getattr(res, "rowcount", -1))


_FILLS = _Bulk(_table(FillRow), (
    "exec_id", "client_order_id", "parent_id", "symbol", "side", "qty", "price", "commission",
    "venue", "timestamp"))
_EVENTS = _Bulk(_table(OrderEventRow), (
    "client_order_id", "from_status", "to_status", "reason", "timestamp"))
_CHILD_STATE = _Bulk(
    _table(ChildOrderRow),
    ("status", "qty", "filled_qty", "updated_at", "venue_order_id", "client_order_id"),
    key="client_order_id", set_exprs={"venue_order_id": "COALESCE({v}, {t}.venue_order_id)"})
_PARENT_STATE = _Bulk(
    _table(OrderRow),  # version counts the state changes written, as one write per change
    ("status", "filled_qty", "updated_at", "avg_fill_price", "version", "client_order_id"),
    key="client_order_id", set_exprs={"version": "{t}.version + {v}"})
_PARENTS = _Bulk(_table(OrderRow), (
    "client_order_id", "symbol", "side", "qty", "order_type", "tif", "limit_price",
    "stop_price", "status", "filled_qty", "avg_fill_price", "strategy", "algo",
    "arrival_price", "decision_price", "created_at", "updated_at", "version"))
_CHILDREN = _Bulk(_table(ChildOrderRow), (
    "client_order_id", "parent_id", "slice_index", "symbol", "side", "qty", "order_type",
    "tif", "limit_price", "not_before", "expire_at", "status", "filled_qty",
    "venue_order_id", "venue", "created_at", "updated_at"))
