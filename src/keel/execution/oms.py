"""`OrderManager`: the one risk gate every order passes, paper or live.

A parent :class:`~keel.types.Order` enters with :meth:`OrderManager.submit` (optionally with
its schedule of :class:`~keel.types.ChildOrder`\\ s); the manager checks it (pre-trade checks,
governance chain, kill switch, halted symbols), persists it with its children, and on each
:meth:`step` sends the children that are due, drains venue events, books fills and cancels
what expired. Only children ever reach the venue; a parent without a schedule gets one MARKET
child for its whole quantity.

Guarantees:

* the state machine of :mod:`keel.execution.states` is enforced for parents and children;
* idempotency: submitting a known ``client_order_id`` returns the stored order; a fill whose
  ``exec_id`` was seen is ignored; a child never fills beyond its quantity, and children never
  add up to more than their parent, so a parent never overfills;
* write-ahead: a child is persisted PENDING before the venue sees it; a fill and the states it
  changes are one transaction. :meth:`recover` rebuilds the open book from the store after a
  crash and reconciles it with ``broker.open_orders()``.

Events the state machine refuses (a fill on a cancelled order, an unknown order, an overfill)
are not booked; they are kept in :attr:`OrderManager.anomalies` with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import numpy as np

from keel.clock import Clock
from keel.errors import (
    IllegalTransitionError,
    OrderRejected,
    TransientVenueError,
    ValidationError,
    VenueError,
)
from keel.execution.broker import Broker
from keel.execution.checks import (
    GateContext,
    GovernanceRule,
    MoveBreaker,
    PreTradeCheck,
    PriceCollar,
    RejectRateBreaker,
    RestrictedList,
    run_checks,
    run_governance,
)
from keel.execution.retry import RetryPolicy, call_with_retry
from keel.execution.states import check_transition
from keel.store.orders_repo import OrderRecord, OrdersRepo, StateChange
from keel.types import (
    ZERO,
    ChildOrder,
    EventKind,
    Fill,
    Order,
    OrderEvent,
    OrderStatus,
    average_price,
    to_decimal,
)

S = OrderStatus
FillListener = Callable[[Fill, OrderRecord], None]


@dataclass
class ReconcileReport:
    """What :meth:`OrderManager.recover` found and did."""

    loaded: int = 0
    resubmitted: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    orphans_cancelled: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Anomaly:
    """An event or action the manager refused to apply, and why."""

    timestamp: datetime
    client_order_id: str
    kind: str
    detail: str


class OrderManager:
    """Order manager over a :class:`~keel.execution.broker.Broker` and an :class:`OrdersRepo`.

    Args:
        broker: the venue.
        repo: persistence.
        clock: time source (simulated in tests and backtests).
        checks: pre-trade checks run on every parent; ``PriceCollar`` and ``RestrictedList``
            also run on every child when it is sent.
        governance: objects with ``evaluate(order, ctx)`` (the policy layer's rules).
        move_breaker / reject_breaker: circuit breakers halting a symbol.
        retry: backoff policy for ``TransientVenueError`` on submit and cancel.
        sleep: how to wait between retries (seconds); inject a fake in tests.
        carry_remainder: move the unfilled part of an expired slice to the next unsent slice
            of the same parent (filled + still-open quantity never exceeds the parent).
        positions: initial signed positions per symbol (shares), updated by fills; or a
            callable returning the current positions (e.g. the ledger's), asked at each check.
        seed: seed of the retry jitter.
    """

    def __init__(self, broker: Broker, repo: OrdersRepo, clock: Clock, *,
                 checks: Sequence[PreTradeCheck] = (),
                 governance: Sequence[GovernanceRule] = (),
                 move_breaker: MoveBreaker | None = None,
                 reject_breaker: RejectRateBreaker | None = None,
                 retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 positions: Mapping[str, Decimal] | Callable[[], Mapping[str, Decimal]]
                 | None = None, carry_remainder: bool = False, seed: int = 0) -> None:
        self.broker, self.repo, self.clock = broker, repo, clock
        self.checks = list(checks)
        self.child_checks = [c for c in self.checks if isinstance(c, PriceCollar | RestrictedList)]
        self.governance = list(governance)
        self.move_breaker, self.reject_breaker = move_breaker, reject_breaker
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.carry_remainder = carry_remainder
        self._rng = np.random.default_rng(seed)
        self._position_source = positions if callable(positions) else None
        self.positions: dict[str, Decimal] = {} if callable(positions) else {
            k: to_decimal(v, "positions", symbol=k) for k, v in (positions or {}).items()}
        self.prices: dict[str, Decimal] = {}
        self.halted: dict[str, str] = {}
        self.killed: str | None = None
        self.anomalies: list[Anomaly] = []
        self._recs: dict[str, OrderRecord] = {}
        self._kids: dict[str, list[str]] = {}
        self._seen: set[str] = set()
        self._cancel_sent: set[str] = set()
        self._cancel_parents: set[str] = set()
        self._listeners: list[FillListener] = []

    # ------------------------------------------------------------------ queries

    def get(self, client_order_id: str) -> OrderRecord | None:
        """The current record of a parent or child (from memory, else the store)."""
        rec = self._recs.get(client_order_id)
        return rec if rec is not None else self.repo.get(client_order_id)

    def children(self, parent_id: str) -> list[OrderRecord]:
        return [self._recs[c] for c in self._kids.get(parent_id, [])]

    def open_parents(self) -> list[OrderRecord]:
        return [r for r in self._recs.values() if not r.is_child and r.status.is_open]

    def add_fill_listener(self, fn: FillListener) -> None:
        """Call ``fn(fill, parent_record)`` after each booked fill (ledger, TCA)."""
        self._listeners.append(fn)

    # ------------------------------------------------------------------ market state

    def on_price(self, symbol: str, price: Decimal | float, ts: datetime | None = None) -> None:
        """Record the latest price of ``symbol`` (reference for checks; feeds the breaker)."""
        px = to_decimal(price, "price", symbol=symbol)
        self.prices[symbol] = px
        if self.move_breaker is not None and self.move_breaker.on_price(
                symbol, float(px), ts or self.clock.now()):
            self.halt(symbol, "MOVE_BREAKER")

    def halt(self, symbol: str, reason: str) -> None:
        """Stop sending children in ``symbol`` until :meth:`resume`."""
        if symbol not in self.halted:
            self.halted[symbol] = reason
            self._anomaly(symbol, "HALT", reason)

    def resume(self, symbol: str) -> None:
        self.halted.pop(symbol, None)

    def _context(self, symbol: str) -> GateContext:
        open_qty = sum((r.order.signed_qty - r.filled_qty * r.order.side.sign
                        for r in self.open_parents() if r.order.symbol == symbol), ZERO)
        held = (self._position_source().get(symbol, ZERO) if self._position_source is not None
                else self.positions.get(symbol, ZERO))
        return GateContext(self.prices.get(symbol), to_decimal(held, "position", symbol=symbol),
                           open_qty, self.clock.now())

    # ------------------------------------------------------------------ submission

    def submit(self, order: Order, children: Sequence[ChildOrder] | None = None, *,
               algo: str | None = None, arrival_price: Decimal | float | None = None,
               decision_price: Decimal | float | None = None) -> OrderRecord:
        """Admit ``order`` through the gate and persist it with its schedule.

        Returns the stored record when ``order.client_order_id`` is already known (nothing is
        re-checked or re-sent). Raises ``OrderRejected`` (the refusal is persisted as
        REJECTED) or ``ValidationError`` for a schedule that does not belong to the parent.
        """
        known = self.get(order.client_order_id)
        if known is not None:
            return known
        now = self.clock.now()
        kids = list(children) if children is not None else [ChildOrder(
            client_order_id=f"{order.client_order_id}-000", parent_id=order.client_order_id,
            symbol=order.symbol, side=order.side, qty=order.qty, created_at=now,
            not_before=now, order_type=order.order_type, limit_price=order.limit_price,
            tif=order.tif, strategy=algo or "market")]
        self._validate_schedule(order, kids)
        arrival = arrival_price if arrival_price is not None else self.prices.get(order.symbol)
        rec = OrderRecord(order, S.NEW, algo=algo or (kids[0].strategy if kids else None),
                          arrival_price=None if arrival is None else to_decimal(
                              arrival, "arrival_price", symbol=order.symbol),
                          decision_price=None if decision_price is None else to_decimal(
                              decision_price, "decision_price", symbol=order.symbol))
        try:
            self._gate(order, self.checks)
        except OrderRejected as exc:
            self.repo.add_parent(rec.with_changes(status=S.REJECTED), now,
                                 reason=f"{exc.reason_code}: {exc.message}")
            raise
        if not self.repo.add_parent(rec, now, reason="accepted", children=kids):
            return self.get(order.client_order_id) or rec  # lost a race: return the winner
        self._recs[order.client_order_id] = rec
        self._kids[order.client_order_id] = [k.client_order_id for k in kids]
        for k in kids:
            self._recs[k.client_order_id] = OrderRecord(k, S.NEW)
        return rec

    @staticmethod
    def _validate_schedule(order: Order, kids: Sequence[ChildOrder]) -> None:
        if not kids:
            raise ValidationError("a parent needs at least one child", field="children",
                                  symbol=order.symbol, value=order.client_order_id)
        total = ZERO
        for k in kids:
            if (k.parent_id != order.client_order_id or k.symbol != order.symbol
                    or k.side is not order.side):
                raise ValidationError("child does not belong to the parent", field="children",
                                      symbol=order.symbol, value=k.client_order_id)
            total += k.qty
        if total > order.qty:
            raise ValidationError("children add up to more than the parent (overfill)",
                                  field="children", symbol=order.symbol, value=total,
                                  parent_qty=order.qty)
        if len({k.client_order_id for k in kids}) != len(kids):
            raise ValidationError("duplicated child id", field="children", symbol=order.symbol)

    def _gate(self, order: Order | ChildOrder, checks: Iterable[PreTradeCheck]) -> None:
        if self.killed is not None:
            raise OrderRejected("kill switch is on", reason_code="KILL_SWITCH",
                                field="kill_switch", symbol=order.symbol, value=self.killed)
        if order.symbol in self.halted:
            raise OrderRejected("symbol is halted", reason_code="HALTED", field="symbol",
                                symbol=order.symbol, value=self.halted[order.symbol])
        ctx = self._context(order.symbol)
        run_checks(checks, order, ctx)
        run_governance(self.governance, order, ctx)

    # ------------------------------------------------------------------ the loop

    def step(self) -> None:
        """One turn: drain events, expire, send what is due, drain events again."""
        self.process_events()
        now = self.clock.now()
        for rec in [r for r in self._recs.values() if r.is_child and r.status.is_open]:
            kid = rec.order
            assert isinstance(kid, ChildOrder)
            if kid.expire_at is not None and now >= kid.expire_at:
                self._expire(rec)
            elif rec.status is S.NEW and (kid.not_before is None or kid.not_before <= now):
                self._send(rec)
        self.process_events()

    def _expire(self, rec: OrderRecord) -> None:
        if rec.status is S.NEW:
            self._set(rec, S.EXPIRED, "expired before it was sent")
        elif rec.client_order_id not in self._cancel_sent:
            self._cancel_at_venue(rec.client_order_id)

    def _send(self, rec: OrderRecord) -> None:
        kid = rec.order
        assert isinstance(kid, ChildOrder)
        try:
            self._gate(kid, self.child_checks)
        except OrderRejected as exc:
            self._set(rec, S.REJECTED, f"{exc.reason_code}: {exc.message}")
            return
        self._set(rec, S.PENDING, "sent")  # write-ahead: persisted before the venue sees it
        self._resend(self._recs[rec.client_order_id])

    def _resend(self, rec: OrderRecord) -> None:
        """Submit a PENDING child to the venue (retrying transient failures)."""
        kid = rec.order
        assert isinstance(kid, ChildOrder)
        try:
            call_with_retry(lambda: self.broker.submit(kid.as_order()), self.retry,
                            self.sleep, self._rng)
        except OrderRejected as exc:
            if exc.reason_code == "DUPLICATE_ID":
                return  # the venue already has it (resend after a crash)
            self._venue_reject(rec, f"{exc.reason_code}: {exc.message}")
        except TransientVenueError as exc:
            self._venue_reject(rec, f"RETRIES_EXHAUSTED: {exc.message}")
        except VenueError as exc:
            self._venue_reject(rec, f"VENUE_ERROR: {exc.message}")

    def _venue_reject(self, rec: OrderRecord, reason: str) -> None:
        self._set(self._recs[rec.client_order_id], S.REJECTED, reason)
        if self.reject_breaker is not None and self.reject_breaker.on_answer(
                rec.order.symbol, True):
            self.halt(rec.order.symbol, "REJECT_RATE")

    def _cancel_at_venue(self, coid: str) -> None:
        self._cancel_sent.add(coid)
        try:
            call_with_retry(lambda: self.broker.cancel(coid), self.retry, self.sleep, self._rng)
        except VenueError as exc:
            self._anomaly(coid, "CANCEL_FAILED", exc.message)

    # ------------------------------------------------------------------ events

    def process_events(self) -> int:
        """Apply every pending venue event; returns how many were applied."""
        n = 0
        for ev in self.broker.poll_events():
            try:
                n += self.apply_event(ev)
            except (IllegalTransitionError, OrderRejected) as exc:
                self._anomaly(ev.client_order_id, type(exc).__name__, str(exc))
        return n

    def apply_event(self, ev: OrderEvent) -> bool:
        """Apply one venue event; False when it changes nothing (duplicate, late ack).

        Raises ``IllegalTransitionError`` for an event the state machine refuses and
        ``OrderRejected`` (``OVERFILL``) for a fill beyond the order quantity.
        """
        rec = self._recs.get(ev.client_order_id)
        if rec is None or not rec.is_child:
            self._anomaly(ev.client_order_id, "UNKNOWN_ORDER", ev.kind.value)
            return False
        answer = ev.kind in (EventKind.ACK, EventKind.REJECTED)
        if (answer and self.reject_breaker is not None and rec.status is S.PENDING
                and self.reject_breaker.on_answer(rec.order.symbol,
                                                  ev.kind is EventKind.REJECTED)):
            self.halt(rec.order.symbol, "REJECT_RATE")
        if ev.kind is EventKind.FILL:
            assert ev.fill is not None
            return self._on_fill(rec, ev.fill)
        if ev.kind is EventKind.ACK:
            if rec.status is not S.PENDING:
                return False  # duplicate or overtaken by a fill
            self._set(rec, S.ACKNOWLEDGED, "ack", venue_order_id=ev.venue_order_id or None)
            return True
        target = {EventKind.CANCELLED: S.CANCELLED, EventKind.REJECTED: S.REJECTED,
                  EventKind.EXPIRED: S.EXPIRED}.get(ev.kind)
        if target is None:
            return False  # REPLACED / CANCEL_REJECTED: nothing changes here
        if rec.status is target:
            return False
        self._set(rec, target, ev.reason or ev.kind.value)
        return True

    def _on_fill(self, rec: OrderRecord, fill: Fill) -> bool:
        if fill.exec_id in self._seen:
            return False
        if fill.symbol != rec.order.symbol or fill.side is not rec.order.side:
            raise OrderRejected("fill does not match its order", reason_code="FILL_MISMATCH",
                                field="fill", symbol=fill.symbol, value=fill.exec_id)
        new_filled = rec.filled_qty + fill.qty
        if new_filled > rec.order.qty:
            raise OrderRejected("fill beyond the order quantity", reason_code="OVERFILL",
                                field="qty", symbol=fill.symbol, value=new_filled,
                                client_order_id=rec.client_order_id)
        parent = self._recs[rec.order.parent_id]  # type: ignore[union-attr]
        kid_status = S.FILLED if new_filled == rec.order.qty else S.PARTIALLY_FILLED
        check_transition(rec.status, kid_status, rec.client_order_id)
        p_filled = parent.filled_qty + fill.qty
        p_status = S.FILLED if p_filled == parent.order.qty else S.PARTIALLY_FILLED
        check_transition(parent.status, p_status, parent.client_order_id)
        kid_new = rec.with_changes(status=kid_status, filled_qty=new_filled,
                                   avg_price=_avg(rec, fill))
        par_new = parent.with_changes(status=p_status, filled_qty=p_filled,
                                      avg_price=_avg(parent, fill))
        changes = [StateChange(kid_new, rec.status, f"fill {fill.exec_id}"),
                   StateChange(par_new, parent.status, f"fill {fill.exec_id}")]
        booked = self.repo.apply(changes, self.clock.now(), fill=fill,
                                 parent_id=parent.client_order_id)
        self._seen.add(fill.exec_id)
        if not booked:
            return False
        self._recs[rec.client_order_id] = kid_new
        self._recs[parent.client_order_id] = par_new
        sym = fill.symbol
        self.positions[sym] = self.positions.get(sym, ZERO) + fill.signed_qty
        for fn in self._listeners:
            fn(fill, par_new)
        return True

    # ------------------------------------------------------------------ state changes

    def _set(self, rec: OrderRecord, status: OrderStatus, reason: str,
             venue_order_id: str | None = None) -> None:
        """Move a child (and, as a consequence, its parent) to ``status`` and persist."""
        check_transition(rec.status, status, rec.client_order_id)
        new = rec.with_changes(status=status,
                               venue_order_id=venue_order_id or rec.venue_order_id)
        changes = [StateChange(new, rec.status, reason)]
        carried = self._carry(new)
        if carried is not None:
            changes.append(carried)
        parent_new = self._parent_after(new) if new.is_child else None
        if parent_new is not None:
            old_parent = self._recs[parent_new.client_order_id]
            changes.append(StateChange(parent_new, old_parent.status, f"child {status.value}"))
        self.repo.apply(changes, self.clock.now())
        self._recs[new.client_order_id] = new
        if carried is not None:
            self._recs[carried.record.client_order_id] = carried.record
        if parent_new is not None:
            self._recs[parent_new.client_order_id] = parent_new

    def _carry(self, kid: OrderRecord) -> StateChange | None:
        """With ``carry_remainder``, the unfilled part of an expired or cancelled slice moves
        to the parent's next unsent slice (never for a cancelled parent or the kill switch)."""
        if (not self.carry_remainder or not kid.is_child
                or kid.status not in (S.EXPIRED, S.CANCELLED) or kid.leaves_qty <= 0
                or self.killed is not None):
            return None
        pid = kid.order.parent_id  # type: ignore[union-attr]
        if pid in self._cancel_parents:
            return None
        for coid in self._kids[pid]:
            sib = self._recs[coid]
            if coid != kid.client_order_id and sib.status is S.NEW and \
                    sib.order.slice_index > kid.order.slice_index:  # type: ignore[union-attr]
                bigger = sib.with_changes(order=sib.order.with_changes(
                    qty=sib.order.qty + kid.leaves_qty))
                return StateChange(bigger, S.NEW,
                                   f"carried {kid.leaves_qty} from {kid.client_order_id}")
        return None

    def _parent_after(self, kid: OrderRecord) -> OrderRecord | None:
        parent = self._recs[kid.order.parent_id]  # type: ignore[union-attr]
        if parent.status.is_terminal:
            return None
        target: OrderStatus | None = None
        if kid.status is S.PENDING and parent.status is S.NEW:
            target = S.PENDING
        elif kid.status is S.ACKNOWLEDGED and parent.status is S.PENDING:
            target = S.ACKNOWLEDGED
        elif kid.status.is_terminal:
            kids = [kid if c == kid.client_order_id else self._recs[c]
                    for c in self._kids[parent.client_order_id]]
            if all(k.status.is_terminal for k in kids):
                target = self._final_parent_status(parent, kids)
        if target is None or target is parent.status:
            return None
        check_transition(parent.status, target, parent.client_order_id)
        return parent.with_changes(status=target)

    def _final_parent_status(self, parent: OrderRecord, kids: list[OrderRecord]) -> OrderStatus:
        if parent.filled_qty == parent.order.qty:
            return S.FILLED
        if parent.client_order_id in self._cancel_parents:
            return S.CANCELLED
        if parent.filled_qty == 0 and all(k.status is S.REJECTED for k in kids) \
                and parent.status in (S.NEW, S.PENDING):
            return S.REJECTED
        return S.EXPIRED

    # ------------------------------------------------------------------ cancel, kill

    def cancel(self, client_order_id: str) -> None:
        """Cancel a parent (all its open children) or one working child.

        Raises ``IllegalTransitionError`` for an order that is already terminal.
        """
        rec = self._recs.get(client_order_id) or self.repo.get(client_order_id)
        if rec is None:
            raise ValidationError("unknown order", field="client_order_id",
                                  value=client_order_id)
        if rec.status.is_terminal:
            check_transition(rec.status, S.CANCELLED, client_order_id)
        if rec.is_child:
            if rec.status is S.NEW:
                self._set(rec, S.CANCELLED, "cancelled before it was sent")
            else:
                self._cancel_at_venue(client_order_id)
            return
        self._cancel_parents.add(client_order_id)
        kids = self.children(client_order_id)
        for k in kids:
            cur = self._recs[k.client_order_id]
            if cur.status is S.NEW:
                self._set(cur, S.CANCELLED, "parent cancelled")
            elif cur.status.is_open:
                self._cancel_at_venue(cur.client_order_id)
        if not kids:
            self.repo.apply([StateChange(rec.with_changes(status=S.CANCELLED), rec.status,
                                         "cancelled")], self.clock.now())
            self._recs[client_order_id] = rec.with_changes(status=S.CANCELLED)

    def kill_switch(self, reason: str = "manual") -> int:
        """Refuse every new order and cancel everything open; returns parents cancelled."""
        self.killed = reason
        parents = self.open_parents()
        for p in parents:
            self.cancel(p.client_order_id)
        self.process_events()
        return len(parents)

    def reset_kill_switch(self) -> None:
        self.killed = None

    def _anomaly(self, coid: str, kind: str, detail: str) -> None:
        self.anomalies.append(Anomaly(self.clock.now(), coid, kind, detail))

    # ------------------------------------------------------------------ recovery

    def recover(self) -> ReconcileReport:
        """Reload open orders from the store and reconcile them with the venue.

        PENDING children the venue does not know are resent under the same id (a venue
        refuses a duplicate id, so nothing is doubled); working children the venue no longer
        has are expired; venue orders the store does not know are cancelled.
        """
        report = ReconcileReport()
        for p in self.repo.parents(open_only=True):
            kids = self.repo.children(p.client_order_id)
            self._recs[p.client_order_id] = p
            self._kids[p.client_order_id] = [k.client_order_id for k in kids]
            for k in kids:
                self._recs[k.client_order_id] = k
            report.loaded += 1
        self._seen |= self.repo.exec_ids(self._recs)
        self.process_events()  # a venue's replay of what happened while we were down
        venue = {o.client_order_id: o for o in self.broker.open_orders()}
        for rec in [r for r in list(self._recs.values()) if r.is_child and r.status.is_open]:
            coid = rec.client_order_id
            rec = self._recs[coid]
            if rec.status is S.NEW or not rec.status.is_open:
                continue
            if coid in venue:
                if rec.status is S.PENDING and venue[coid].status is not S.PENDING:
                    self._set(rec, S.ACKNOWLEDGED, "reconciled: working at the venue",
                              venue_order_id=venue[coid].venue_order_id or None)
                report.adopted.append(coid)
            elif rec.status is S.PENDING:
                self._resend(rec)
                report.resubmitted.append(coid)
            else:
                self._set(rec, S.EXPIRED, "reconciled: no longer working at the venue")
                report.expired.append(coid)
        for coid in venue:
            if coid not in self._recs:
                self._cancel_at_venue(coid)
                report.orphans_cancelled.append(coid)
        self.process_events()
        return report


_AVG_QUANTUM = Decimal("1e-8")


def _avg(rec: OrderRecord, fill: Fill) -> Decimal:
    """Volume-weighted average fill price, to 1e-8 (stored exactly on every backend)."""
    if rec.avg_price is None or rec.filled_qty == 0:
        return fill.price
    return average_price(rec.avg_price * rec.filled_qty + fill.price * fill.qty,
                         rec.filled_qty + fill.qty, _AVG_QUANTUM)  # pinned Decimal context
