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
are not booked; they are kept in :attr:`OrderManager.anomalies` (the last ``max_anomalies``)
with the reason.

Survivable venue errors: every call into the broker sits behind a barrier. A failed submit
rejects the child, a failed cancel is recorded (and tried again on the next step for an
expired slice), a failed poll is recorded and the loop goes on; :meth:`kill_switch` always
finishes and reports in :attr:`OrderManager.last_kill` what it could not cancel. A broker
that counts reconnects (``connection_epoch``) triggers :meth:`reconcile` after each one.

Bounded memory: only open parents and their children live in memory (indexed by parent); a
parent that reaches a terminal state leaves memory with its children and their ExecIDs at the
end of the call that finished it, and is read back from the store by :meth:`get`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

import numpy as np

from keel.clock import Clock
from keel.errors import (
    DuplicateFillError,
    IllegalTransitionError,
    OrderRejected,
    StoreError,
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
from keel.execution.recovery import (
    Anomaly,
    KillReport,
    RecoveryMixin,
    describe,
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
    to_price,
)

S = OrderStatus
FillListener = Callable[[Fill, OrderRecord], None]


class OrderManager(RecoveryMixin):
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
                 | None = None, carry_remainder: bool = False, seed: int = 0,
                 max_anomalies: int = 10_000) -> None:
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
        self.last_kill: KillReport | None = None
        self.anomalies: deque[Anomaly] = deque(maxlen=max_anomalies)
        self._recs: dict[str, OrderRecord] = {}  # open parents and their children only
        self._open_qty: dict[str, Decimal] = {}  # symbol -> signed open qty of open parents
        self._open: dict[str, None] = {}  # open parent ids, in submission order
        self._kids: dict[str, list[str]] = {}
        self._seen: set[str] = set()
        self._exec_of: dict[str, list[str]] = {}  # parent id -> ExecIDs booked in memory
        self._finished: list[str] = []  # parents turned terminal, to leave memory
        self._cancel_sent: set[str] = set()
        self._cancel_parents: set[str] = set()
        self._listeners: list[FillListener] = []
        self._epoch: int | None = getattr(broker, "connection_epoch", None)
        self._batch: list[tuple[list[StateChange], Fill | None, str | None]] | None = None
        self._after_commit: list[Callable[[], None]] = []
        self._undo: list[Callable[[], None]] = []  # memory changes of the open batch
        self._unapplied: list[OrderEvent] = []  # drained events a failed commit left over

    # ------------------------------------------------------------------ queries

    def get(self, client_order_id: str) -> OrderRecord | None:
        """The current record of a parent or child (from memory, else the store)."""
        rec = self._recs.get(client_order_id)
        return rec if rec is not None else self.repo.get(client_order_id)

    def children(self, parent_id: str) -> list[OrderRecord]:
        if parent_id in self._kids:
            return [self._recs[c] for c in self._kids[parent_id]]
        return self.repo.children(parent_id)

    def open_parents(self) -> list[OrderRecord]:
        """Working parents, in submission order (an index: no scan of finished orders)."""
        return [r for r in (self._recs[p] for p in self._open) if r.status.is_open]

    def in_memory(self) -> int:
        """Order records held in memory (open parents and their children)."""
        return len(self._recs)

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
        open_qty = self._open_qty.get(symbol, ZERO)  # an index: no scan of open parents
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
        out = self.submit_many([(order, children)], algo=algo, arrival_price=arrival_price,
                               decision_price=decision_price, raise_rejected=True)
        return out[0]

    def submit_many(self, items: Sequence[tuple[Order, Sequence[ChildOrder] | None]], *,
                    algo: str | None = None, arrival_price: Decimal | float | None = None,
                    decision_price: Decimal | float | None = None,
                    raise_rejected: bool = False) -> list[OrderRecord]:
        """:meth:`submit` for many parents, persisted in one transaction (group commit).

        Each ``(order, children)`` goes through the same gate; a refused one is stored
        REJECTED and returned with that status (or, with ``raise_rejected``, its
        ``OrderRejected`` is raised after the commit). Known ids return their stored record.
        Every returned record is durable when this returns.
        """
        out: list[OrderRecord] = []
        writes: list[tuple[int, OrderRecord, str, list[ChildOrder]]] = []
        first_reject: OrderRejected | None = None
        batch_index: dict[str, int] = {}
        stored = self.repo.known_ids([o.client_order_id for o, _ in items
                                      if o.client_order_id not in self._recs])
        for order, children in items:
            coid = order.client_order_id
            known = (out[batch_index[coid]] if coid in batch_index
                     else self.get(coid) if coid in self._recs or coid in stored else None)
            if known is not None:
                out.append(known)
                continue
            try:
                rec, kids = self._admit(order, children, algo, arrival_price, decision_price)
            except OrderRejected as exc:
                first_reject = first_reject or exc
                rec = exc.record  # type: ignore[attr-defined]
                writes.append((len(out), rec, f"{exc.reason_code}: {exc.message}", []))
            else:
                writes.append((len(out), rec, "accepted", kids))
            batch_index[coid] = len(out)
            out.append(rec)
        if writes:
            done = self.repo.add_parents([(r, why, k) for _, r, why, k in writes],
                                         self.clock.now())
            for (i, rec, _, kids), ok in zip(writes, done, strict=True):
                if not ok:  # lost a race: return the winner
                    out[i] = self.get(rec.client_order_id) or rec
                elif rec.status is S.NEW:
                    self._track(rec, [OrderRecord(k, S.NEW) for k in kids])
        if raise_rejected and first_reject is not None:
            raise first_reject
        return out

    def _admit(self, order: Order, children: Sequence[ChildOrder] | None, algo: str | None,
               arrival_price: Decimal | float | None, decision_price: Decimal | float | None
               ) -> tuple[OrderRecord, list[ChildOrder]]:
        """The parent's record and schedule if the gate admits it; else ``OrderRejected``
        carrying the REJECTED record to store (``exc.record``)."""
        now = self.clock.now()
        kids = list(children) if children is not None else [ChildOrder(
            client_order_id=f"{order.client_order_id}-000", parent_id=order.client_order_id,
            symbol=order.symbol, side=order.side, qty=order.qty, created_at=now,
            not_before=now, order_type=order.order_type, limit_price=order.limit_price,
            tif=order.tif, strategy=algo or "market")]
        self._validate_schedule(order, kids)
        arrival = arrival_price if arrival_price is not None else self.prices.get(order.symbol)
        rec = OrderRecord(order, S.NEW, algo=algo or (kids[0].strategy if kids else None),
                          arrival_price=_px(arrival, "arrival_price", order.symbol),
                          decision_price=_px(decision_price, "decision_price", order.symbol))
        try:
            self._gate(order, self.checks)
        except OrderRejected as exc:
            exc.record = rec.with_changes(status=S.REJECTED)  # type: ignore[attr-defined]
            raise
        return rec, kids

    def _track(self, parent: OrderRecord, kids: Sequence[OrderRecord]) -> None:
        pid = parent.client_order_id
        self._reindex(self._recs.get(pid), parent)
        self._recs[pid] = parent
        self._open[pid] = None
        self._kids[pid] = [k.client_order_id for k in kids]
        for k in kids:
            self._recs[k.client_order_id] = k

    def _retire_finished(self) -> None:
        """Drop finished parents, their children and ExecIDs from memory (the store has them)."""
        while self._finished:
            pid = self._finished.pop()
            rec = self._recs.get(pid)
            if rec is None or rec.status.is_open:
                continue
            for coid in self._kids.pop(pid, []):
                self._recs.pop(coid, None)
                self._cancel_sent.discard(coid)
            for x in self._exec_of.pop(pid, []):
                self._seen.discard(x)
            self._recs.pop(pid, None)
            self._open.pop(pid, None)
            self._cancel_parents.discard(pid)

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
        """One turn: reconcile after a reconnect, drain events, expire, send what is due,
        drain events again."""
        self._check_reconnect()
        self.process_events()
        now = self.clock.now()
        due: list[str] = []
        with self.group_commit():  # every due child PENDING (or refused) in one commit
            for coid in [c for p in self._open for c in self._kids.get(p, ())]:
                rec = self._recs.get(coid)
                if rec is None or not rec.status.is_open:
                    continue
                kid = rec.order
                assert isinstance(kid, ChildOrder)
                if kid.expire_at is not None and now >= kid.expire_at:
                    if rec.status is S.NEW:
                        self._set(rec, S.EXPIRED, "expired before it was sent")
                    else:
                        due.append(coid)  # a cancel to send, after the commit
                elif rec.status is S.NEW and (kid.not_before is None or kid.not_before <= now
                                              ) and self._mark_pending(rec):
                    due.append(coid)
        with self.group_commit():  # the venue's refusals of this batch, one commit
            for coid in due:
                rec = self._recs.get(coid)
                if rec is None or not rec.status.is_open:
                    continue
                if rec.status is S.PENDING and rec.client_order_id not in self._cancel_sent \
                        and not self._expired(rec, now):
                    self._resend(rec)
                elif rec.client_order_id not in self._cancel_sent:
                    self._cancel_at_venue(coid)
        self.process_events()
        self._retire_finished()

    @staticmethod
    def _expired(rec: OrderRecord, now: datetime) -> bool:
        kid = rec.order
        assert isinstance(kid, ChildOrder)
        return kid.expire_at is not None and now >= kid.expire_at

    def _mark_pending(self, rec: OrderRecord) -> bool:
        """Gate a due child and mark it PENDING (write-ahead: committed before the venue
        sees it); False when the gate refuses it (REJECTED)."""
        kid = rec.order
        assert isinstance(kid, ChildOrder)
        try:
            self._gate(kid, self.child_checks)
        except OrderRejected as exc:
            self._set(rec, S.REJECTED, f"{exc.reason_code}: {exc.message}")
            return False
        self._set(rec, S.PENDING, "sent")
        return True

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
        except Exception as exc:  # barrier: a broker bug must not stop the desk
            self._anomaly(rec.client_order_id, "SUBMIT_FAILED", describe(exc))
            self._venue_reject(rec, f"VENUE_ERROR: {describe(exc)}")

    def _venue_reject(self, rec: OrderRecord, reason: str) -> None:
        self._set(self._recs[rec.client_order_id], S.REJECTED, reason)
        if self.reject_breaker is not None and self.reject_breaker.on_answer(
                rec.order.symbol, True):
            self.halt(rec.order.symbol, "REJECT_RATE")

    def _cancel_at_venue(self, coid: str) -> str | None:
        """Ask the venue to cancel ``coid``; None when the request went out, else why not.

        A refusal by the venue (the order filled meanwhile, or is unknown) arrives later as a
        ``CANCEL_REJECTED`` event; only a request that could not be sent is a failure here,
        and it is not remembered as sent, so the next step may try again."""
        self._cancel_sent.add(coid)
        try:
            call_with_retry(lambda: self.broker.cancel(coid), self.retry, self.sleep, self._rng)
        except Exception as exc:  # barrier: any venue failure is recorded, never raised
            self._cancel_sent.discard(coid)
            why = describe(exc)
            self._anomaly(coid, "CANCEL_FAILED", why)
            return why
        return None

    # ------------------------------------------------------------------ events

    def process_events(self) -> int:
        """Apply every pending venue event; returns how many were applied."""
        try:
            polled = self.broker.poll_events()
        except Exception as exc:  # barrier: the venue is down or answered nonsense
            self._anomaly("*", "POLL_FAILED", describe(exc))
            polled = []
        events, self._unapplied = self._unapplied + list(polled), []
        refused: set[str] = set()
        while True:
            try:
                return self._apply_events(events, refused)
            except DuplicateFillError as exc:
                # the store has some of these fills already (memory was rolled back): refuse
                # them, typed, and apply the rest again; they never reach a listener
                fresh = set(exc.exec_ids) - refused
                if not fresh:
                    self._unapplied = events
                    raise
                refused |= fresh
                for x in sorted(fresh):
                    self._anomaly(next((e.client_order_id for e in events if e.fill is not None
                                        and e.fill.exec_id == x), "*"),
                                  "FILL_ALREADY_BOOKED", x)
            except StoreError:
                self._unapplied = events  # nothing was written: apply them at the next drain
                raise

    def _apply_events(self, events: Sequence[OrderEvent], refused: set[str]) -> int:
        n = 0
        with self.group_commit():
            for ev in events:
                if ev.fill is not None and ev.fill.exec_id in refused:
                    continue
                try:
                    n += self.apply_event(ev)
                except (IllegalTransitionError, OrderRejected, ValidationError) as exc:
                    self._anomaly(ev.client_order_id, type(exc).__name__, str(exc)[:500])
        return n

    # ------------------------------------------------------------------ group commit

    @contextmanager
    def group_commit(self) -> Iterator[None]:
        """Write every state change and fill made inside as one transaction (one fsync),
        committed when the block ends; nothing is acknowledged before that commit.

        Every write of the order manager goes through one (a lone state change is a batch
        of one). The in-memory order state changes as the block goes (later changes in the
        block build on earlier ones) and every change is journaled: if the block raises or
        the store refuses the batch (``StoreError``, ``DuplicateFillError``), nothing was
        written and memory is rolled back to where it was, so memory = store always. Fill
        listeners (the ledger) run only after the commit, in booking order.

        The order manager opens a batch where no venue call depends on the writes: draining
        venue events, and marking the due children PENDING *before* any is sent (so the
        write-ahead rule holds: a child is durable before the venue sees it).
        Nested blocks join the outer one.
        """
        if self._batch is not None:
            yield
            return
        self._batch, self._after_commit, self._undo = [], [], []
        try:
            yield
            if self._batch:
                self.repo.apply_batch(self._batch, self.clock.now())
        except BaseException:
            undo = self._undo
            self._batch, self._after_commit, self._undo = None, [], []
            for fn in reversed(undo):
                fn()
            raise
        calls = self._after_commit
        self._batch, self._after_commit, self._undo = None, [], []
        for call in calls:
            call()

    def _write(self, changes: list[StateChange], fill: Fill | None = None,
               parent_id: str | None = None) -> None:
        assert self._batch is not None, "writes go through group_commit"
        self._batch.append((changes, fill, parent_id))

    def _put(self, rec: OrderRecord) -> None:
        """Set the in-memory record (journaled: undone if the batch does not commit)."""
        coid = rec.client_order_id
        old = self._recs.get(coid)
        self._undo.append(lambda: self._restore(coid, old))
        self._reindex(old, rec)
        self._recs[coid] = rec

    def _restore(self, coid: str, old: OrderRecord | None) -> None:
        self._reindex(self._recs.get(coid), old)
        if old is None:
            self._recs.pop(coid, None)
        else:
            self._recs[coid] = old

    def _reindex(self, old: OrderRecord | None, new: OrderRecord | None) -> None:
        """Keep the per-symbol open quantity of open parents (the gate's ``open_qty``)."""
        for rec, sign in ((old, -1), (new, 1)):
            if rec is not None and not rec.is_child and rec.status.is_open:
                o = rec.order
                sym = o.symbol
                self._open_qty[sym] = self._open_qty.get(sym, ZERO) + sign * (
                    o.signed_qty - rec.filled_qty * o.side.sign)

    def apply_event(self, ev: OrderEvent) -> bool:
        """Apply one venue event; False when it changes nothing (duplicate, late ack).

        Raises ``IllegalTransitionError`` for an event the state machine refuses and
        ``OrderRejected`` (``OVERFILL``) for a fill beyond the order quantity.
        """
        rec = self._recs.get(ev.client_order_id)
        if rec is None:
            stored = self.repo.get(ev.client_order_id)
            if stored is not None and stored.is_child:
                return self._after_the_end(stored, ev)
        if rec is None or not rec.is_child:
            self._anomaly(ev.client_order_id, "UNKNOWN_ORDER", ev.kind.value)
            return False
        if ev.kind is EventKind.CANCEL_REJECTED:
            return self._on_cancel_rejected(rec, ev)
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
        with self.group_commit():
            return self._book_fill(rec, fill)

    def _book_fill(self, rec: OrderRecord, fill: Fill) -> bool:
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
        self._write(changes, fill, parent.client_order_id)
        pid, x = parent.client_order_id, fill.exec_id
        self._seen.add(x)
        self._exec_of.setdefault(pid, []).append(x)
        sym = fill.symbol
        held = self.positions.get(sym)
        self._undo.append(lambda: self._unbook(pid, x, sym, held))
        self._put(kid_new)
        self._put(par_new)
        if par_new.status.is_terminal:
            self._finished.append(pid)
        self.positions[sym] = (held or ZERO) + fill.signed_qty
        for fn in self._listeners:  # after the commit: the store books first
            self._after_commit.append(lambda fn=fn: fn(fill, par_new))  # type: ignore[misc]
        return True

    def _unbook(self, pid: str, exec_id: str, symbol: str, held: Decimal | None) -> None:
        self._seen.discard(exec_id)
        booked = self._exec_of.get(pid)
        if booked and booked[-1] == exec_id:
            booked.pop()
        if held is None:
            self.positions.pop(symbol, None)
        else:
            self.positions[symbol] = held

    # ------------------------------------------------------------------ state changes

    def _set(self, rec: OrderRecord, status: OrderStatus, reason: str,
             venue_order_id: str | None = None) -> None:
        """Move a child (and, as a consequence, its parent) to ``status`` and persist."""
        with self.group_commit():
            self._set_in_batch(rec, status, reason, venue_order_id)

    def _set_in_batch(self, rec: OrderRecord, status: OrderStatus, reason: str,
                      venue_order_id: str | None) -> None:
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
        self._write(changes)
        self._put(new)
        if carried is not None:
            self._put(carried.record)
        if parent_new is not None:
            self._put(parent_new)
            if parent_new.status.is_terminal:
                self._finished.append(parent_new.client_order_id)

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

    def cancel(self, client_order_id: str) -> dict[str, str]:
        """Cancel a parent (all its open children) or one working child.

        Returns the children whose cancel request could not reach the venue (id -> why);
        the venue's own answer arrives as an event. Raises ``IllegalTransitionError`` for an
        order that is already terminal.
        """
        rec = self._recs.get(client_order_id) or self.repo.get(client_order_id)
        if rec is None:
            raise ValidationError("unknown order", field="client_order_id",
                                  value=client_order_id[:64])
        if rec.status.is_terminal:
            check_transition(rec.status, S.CANCELLED, client_order_id)
        failed: dict[str, str] = {}
        if rec.is_child:
            if rec.status is S.NEW:
                self._set(rec, S.CANCELLED, "cancelled before it was sent")
            else:
                why = self._cancel_at_venue(client_order_id)
                if why is not None:
                    failed[client_order_id] = why
            self._retire_finished()
            return failed
        self._cancel_parents.add(client_order_id)
        kid_ids = list(self._kids.get(client_order_id, ()))
        for coid in kid_ids:
            cur = self._recs.get(coid)
            if cur is None:
                continue
            if cur.status is S.NEW:
                self._set(cur, S.CANCELLED, "parent cancelled")
            elif cur.status.is_open:
                why = self._cancel_at_venue(coid)
                if why is not None:
                    failed[coid] = why
        if not kid_ids:
            done = rec.with_changes(status=S.CANCELLED)
            with self.group_commit():
                self._write([StateChange(done, rec.status, "cancelled")])
                if client_order_id in self._recs:
                    self._put(done)
            self._finished.append(client_order_id)
        self._retire_finished()
        return failed

    def kill_switch(self, reason: str = "manual") -> int:
        """Refuse every new order and cancel everything open; returns parents cancelled.

        Always finishes: a cancel that cannot reach the venue (or any other failure on one
        parent) is recorded and the switch goes on to the next parent. What was tried and
        what failed is in :attr:`last_kill` (a :class:`KillReport`) and in the anomalies.
        """
        self.killed = reason
        report = KillReport(reason)
        for p in self.open_parents():
            pid = p.client_order_id
            report.parents.append(pid)
            working = [c for c in self._kids.get(pid, ())
                       if (r := self._recs.get(c)) is not None and r.status.is_open
                       and r.status is not S.NEW]
            try:
                failed = self.cancel(pid)
            except Exception as exc:  # barrier: the switch must reach every parent
                failed = {pid: describe(exc)}
                self._anomaly(pid, "KILL_FAILED", failed[pid])
            report.cancels_sent += [c for c in working if c not in failed]
            report.failed.update(failed)
        self.process_events()
        self._retire_finished()
        self.last_kill = report
        return len(report.parents)

    def reset_kill_switch(self) -> None:
        self.killed = None

    def _anomaly(self, coid: str, kind: str, detail: str) -> None:
        self.anomalies.append(Anomaly(self.clock.now(), coid[:128], kind, detail))


_AVG_QUANTUM = Decimal("1e-8")


def _avg(rec: OrderRecord, fill: Fill) -> Decimal:
    """Volume-weighted average fill price, to 1e-8 (stored exactly on every backend)."""
    if rec.avg_price is None or rec.filled_qty == 0:
        return fill.price
    return average_price(rec.avg_price * rec.filled_qty + fill.price * fill.qty,
                         rec.filled_qty + fill.qty, _AVG_QUANTUM)  # pinned Decimal context


def _px(value: Decimal | float | None, name: str, symbol: str) -> Decimal | None:
    """A reference price on keel's fine grid (a float mid has more places than the store
    keeps)."""
    return None if value is None else to_price(value, symbol=symbol, field_name=name)
