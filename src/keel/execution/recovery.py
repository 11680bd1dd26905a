"""Reconciliation of the order manager with its venue, and the reports of recovery and of the
kill switch (a mixin of :class:`~keel.execution.oms.OrderManager`, split out by seam).

After a crash (:meth:`RecoveryMixin.recover`), after a reconnect or a venue restart
(:meth:`RecoveryMixin.reconcile`, triggered by the broker's ``connection_epoch``), and when the
venue refuses a cancel (the order filled meanwhile, or the venue lost it), keel asks the venue
what it thinks of each open child and settles the difference. It never invents a fill: when
the venue filled more than keel booked, the fills are on their way and the child stays open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keel.errors import KeelError
from keel.execution.broker import Broker, OpenOrder
from keel.execution.states import check_transition
from keel.store.orders_repo import OrderRecord, OrdersRepo
from keel.types import EventKind, OrderEvent, OrderStatus

S = OrderStatus


@dataclass
class ReconcileReport:
    """What :meth:`OrderManager.recover` found and did."""

    loaded: int = 0
    resubmitted: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    orphans_cancelled: list[str] = field(default_factory=list)


@dataclass
class KillReport:
    """What :meth:`OrderManager.kill_switch` did: parents it tried to cancel, child cancels it
    sent, and the orders it could not cancel with the reason (``failed``, id -> reason)."""

    reason: str
    parents: list[str] = field(default_factory=list)
    cancels_sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.failed


def describe(exc: BaseException) -> str:
    """A short, bounded description of an error from a venue call."""
    text = exc.message if isinstance(exc, KeelError) else f"{type(exc).__name__}: {exc}"
    return text[:300]


@dataclass(frozen=True)
class Anomaly:
    """An event or action the manager refused to apply, and why."""

    timestamp: datetime
    client_order_id: str
    kind: str
    detail: str



_NO_VIEW = object()  # the broker cannot tell the venue's status of an order


class RecoveryMixin:
    """Venue reconciliation for :class:`~keel.execution.oms.OrderManager`."""

    if TYPE_CHECKING:
        broker: Broker
        repo: OrdersRepo
        _recs: dict[str, OrderRecord]
        _open: dict[str, None]
        _kids: dict[str, list[str]]
        _seen: set[str]
        _epoch: int | None
        _cancel_sent: set[str]
        killed: str | None
        _set: Callable[..., None]
        _resend: Callable[[OrderRecord], None]
        _track: Callable[[OrderRecord, Any], None]
        _retire_finished: Callable[[], None]
        _cancel_at_venue: Callable[[str], str | None]
        _anomaly: Callable[[str, str, str], None]
        process_events: Callable[[], int]

    def _check_reconnect(self) -> None:
        epoch = getattr(self.broker, "connection_epoch", None)
        if epoch is None or epoch == self._epoch:
            return
        self._epoch = epoch
        self._anomaly("*", "RECONNECT", f"venue connection epoch {epoch}: reconciling")
        self.reconcile()

    def _after_the_end(self, stored: OrderRecord, ev: OrderEvent) -> bool:
        """An event for a child whose parent already left memory (so the child is done)."""
        if ev.kind is EventKind.FILL:
            assert ev.fill is not None
            if self.repo.has_exec_id(ev.fill.exec_id):
                return False  # a replay of a booked fill
            check_transition(stored.status, S.FILLED, stored.client_order_id)
        if ev.kind in (EventKind.CANCELLED, EventKind.REJECTED, EventKind.EXPIRED):
            target = {EventKind.CANCELLED: S.CANCELLED, EventKind.REJECTED: S.REJECTED,
                      EventKind.EXPIRED: S.EXPIRED}[ev.kind]
            if stored.status is not target:
                check_transition(stored.status, target, stored.client_order_id)
        return False

    def _on_cancel_rejected(self, rec: OrderRecord, ev: OrderEvent) -> bool:
        """The venue refused a cancel: the order filled meanwhile (its fills are on their way)
        or the venue does not know it (lost in a venue restart): settle it from the venue."""
        if not rec.status.is_open or rec.status is S.NEW:
            return False
        self._anomaly(rec.client_order_id, "CANCEL_REJECTED", ev.reason[:300])
        unknown = "unknown" in ev.reason.lower()
        view = self._venue_view(rec.client_order_id)
        if view is _NO_VIEW:
            # "unknown order" for an order the venue had acknowledged: it lost it (a venue
            # restart). A PENDING one may still be in flight (a resend after a reconnect can
            # overtake the cancel): it stays open, an anomaly, until the venue reports it.
            if unknown and rec.status is not S.PENDING:
                self._set(rec, S.EXPIRED, "venue does not know the order: " + ev.reason[:200])
                return True
            return False
        return self._settle(rec, view)

    def _venue_view(self, coid: str) -> object:
        """The broker's ``order_status(coid)`` (an OpenOrder or None), or ``_NO_VIEW`` when
        the broker cannot say or the query failed."""
        fn = getattr(self.broker, "order_status", None)
        if fn is None:
            return _NO_VIEW
        try:
            return fn(coid)
        except Exception as exc:  # barrier
            self._anomaly(coid, "STATUS_FAILED", describe(exc))
            return _NO_VIEW

    def _settle(self, rec: OrderRecord, view: object) -> bool:
        """Bring an open child in line with the venue's view of it (never invents a fill:
        when the venue filled more than keel booked, the fills are still on their way)."""
        coid = rec.client_order_id
        if view is None:  # the venue does not know it
            if rec.status is S.PENDING and self.killed is None \
                    and coid not in self._cancel_sent:
                self._resend(rec)  # never arrived: send it again (same id, no double)
                return False
            self._set(rec, S.EXPIRED, "reconciled: the venue does not know the order")
            return True
        assert isinstance(view, OpenOrder)
        if view.cum_qty > rec.filled_qty:
            self._anomaly(coid, "FILLS_PENDING",
                          f"venue filled {view.cum_qty}, keel booked {rec.filled_qty}")
            return False
        if view.status.is_terminal and view.status is not S.FILLED:
            self._set(rec, view.status, f"reconciled: {view.status.value} at the venue")
            return True
        if rec.status is S.PENDING and view.status.is_open and view.status is not S.PENDING:
            self._set(rec, S.ACKNOWLEDGED, "reconciled: working at the venue",
                      venue_order_id=view.venue_order_id or None)
            return True
        return False

    def recover(self) -> ReconcileReport:
        """Reload open orders from the store and reconcile them with the venue.

        PENDING children the venue does not know are resent under the same id (a venue
        refuses a duplicate id, so nothing is doubled); working children the venue no longer
        has are expired; venue orders the store does not know are cancelled.
        """
        report = ReconcileReport()
        for p in self.repo.parents(open_only=True):
            self._track(p, self.repo.children(p.client_order_id))
            report.loaded += 1
        self._seen |= self.repo.exec_ids(self._recs)
        self.process_events()  # a venue's replay of what happened while we were down
        self._reconcile(report, after_crash=True)
        self.process_events()
        self._retire_finished()
        return report

    def reconcile(self) -> ReconcileReport:
        """Compare every open child with the venue (after a reconnect or a venue restart).

        With a broker that answers ``order_status``, each working child is settled from the
        venue's view (a child the venue lost is expired, one it cancelled is cancelled, a
        PENDING child it never got is resent); a child the venue filled further than keel
        booked is left open, its fills on their way. With only ``open_orders``, PENDING
        children are adopted or resent and nothing is expired (a missing order may have
        filled). Never raises for a venue failure (recorded as an anomaly).
        """
        report = ReconcileReport()
        self.process_events()
        self._reconcile(report, after_crash=False)
        self.process_events()
        self._retire_finished()
        return report

    def _reconcile(self, report: ReconcileReport, *, after_crash: bool) -> None:
        try:
            venue = {o.client_order_id: o for o in self.broker.open_orders()}
        except Exception as exc:  # barrier: try again at the next reconnect or restart
            self._anomaly("*", "RECONCILE_FAILED", describe(exc))
            return
        can_ask = getattr(self.broker, "order_status", None) is not None
        for coid in [c for p in list(self._open) for c in self._kids.get(p, ())]:
            rec = self._recs.get(coid)
            if rec is None or rec.status is S.NEW or not rec.status.is_open:
                continue
            if coid in venue:
                if rec.status is S.PENDING and venue[coid].status is not S.PENDING:
                    self._set(rec, S.ACKNOWLEDGED, "reconciled: working at the venue",
                              venue_order_id=venue[coid].venue_order_id or None)
                report.adopted.append(coid)
            elif not after_crash and can_ask:
                view = self._venue_view(coid)
                if view is not _NO_VIEW and self._settle(rec, view):
                    report.expired.append(coid)
            elif rec.status is S.PENDING:
                self._resend(rec)
                report.resubmitted.append(coid)
            elif after_crash:
                self._set(rec, S.EXPIRED, "reconciled: no longer working at the venue")
                report.expired.append(coid)
        for coid in venue:
            if coid not in self._recs and (after_crash or self.repo.get(coid) is None):
                self._cancel_at_venue(coid)
                report.orphans_cancelled.append(coid)
