"""A minimal venue application behind a FIX acceptor: acknowledges and fills every order.

For end-to-end tests of initiators and brokers (and as a template for a matching engine): each
NewOrderSingle is acknowledged (ExecType New) and, unless ``auto_fill`` is off, filled in full
at its limit price or ``fill_price``; OrderCancelRequest cancels a working order (or is refused
with OrderCancelReject); OrderCancelReplaceRequest replaces it. A ClOrdID seen before is not
booked twice (``duplicates`` counts them), so a replayed order cannot double-fill.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from keel.errors import ProtocolError
from keel.types import Order, OrderStatus
from keel.venues.fix.application import (
    Application,
    BusinessReject,
    BusinessRejectReason,
    UnsupportedMessageType,
)
from keel.venues.fix.codec import Message
from keel.venues.fix.messages import (
    READ_TAGS,
    ExecutionReportData,
    execution_report,
    order_cancel_reject,
    order_from_new_order_single,
)
from keel.venues.fix.session import Session


class AckFillApplication(Application):
    """Acks and fills orders; keeps every booked ``orders`` entry by ClOrdID.

    Args:
        fill_price: price for orders without a limit price.
        auto_fill: fill at once after the ack (False: orders stay working until cancelled).
        clock: POSIX seconds for TransactTime (default: the session's last input time).
    """

    read_tags = READ_TAGS  # lazy validation: the values messages.py's parsers read

    def __init__(self, fill_price: Decimal = Decimal("100"), auto_fill: bool = True,
                 clock: Callable[[], float] | None = None) -> None:
        self.fill_price = fill_price
        self.auto_fill = auto_fill
        self.clock = clock
        self.orders: dict[str, Order] = {}
        self.status: dict[str, OrderStatus] = {}
        self.received: list[str] = []
        self.duplicates = 0
        self._ids = itertools.count(1)

    def _now(self, session: Session) -> datetime:
        t = self.clock() if self.clock is not None else session._now
        return datetime.fromtimestamp(t, UTC)

    def _report(self, session: Session, order: Order, exec_type: str, status: OrderStatus,
                filled: bool = False, orig: str | None = None) -> None:
        price = order.limit_price if order.limit_price is not None else self.fill_price
        d = ExecutionReportData(
            order_id=f"O-{order.client_order_id}", exec_id=f"E{next(self._ids)}",
            exec_type=exec_type, order=order, status=status,
            cum_qty=order.qty if filled else Decimal(0),
            leaves_qty=Decimal(0) if filled or status.is_terminal else order.qty,
            avg_px=price if filled else Decimal(0),
            last_qty=order.qty if filled else Decimal(0), last_px=price if filled else Decimal(0),
            orig_cl_ord_id=orig)
        session.send(execution_report(d, self._now(session), session.config.begin_string))

    def fill(self, session: Session, cl_ord_id: str) -> None:
        """Fill working order ``cl_ord_id`` in full now (sent, or stored while logged out)."""
        fill_type = "2" if session.config.begin_string < "FIX.4.3" else "F"
        self.status[cl_ord_id] = OrderStatus.FILLED
        self._report(session, self.orders[cl_ord_id], fill_type, OrderStatus.FILLED,
                     filled=True)

    def from_app(self, msg: Message, session: Session) -> None:
        mt = msg.msg_type
        fill_type = "2" if session.config.begin_string < "FIX.4.3" else "F"
        if mt == "D":
            try:
                order = order_from_new_order_single(msg, self._now(session))
            except ProtocolError as exc:
                raise BusinessReject(BusinessRejectReason.OTHER, exc.message) from None
            cid = order.client_order_id
            self.received.append(cid)
            if cid in self.orders:
                self.duplicates += 1
                return
            self.orders[cid] = order
            self.status[cid] = OrderStatus.ACKNOWLEDGED
            self._report(session, order, "0", OrderStatus.ACKNOWLEDGED)
            if self.auto_fill:
                self.status[cid] = OrderStatus.FILLED
                self._report(session, order, fill_type, OrderStatus.FILLED, filled=True)
        elif mt in ("F", "G"):
            orig_id, new_id = msg.get(41, "") or "", msg.get(11, "") or ""
            orig = self.orders.get(orig_id)
            if orig is None or self.status[orig_id].is_terminal:
                state = self.status.get(orig_id, OrderStatus.REJECTED)
                session.send(order_cancel_reject(f"O-{orig_id}", new_id, orig_id, state,
                                                 mt == "G", "unknown or closed order"))
                return
            if mt == "F":
                self.status[orig_id] = OrderStatus.CANCELLED
                self._report(session, orig.with_changes(client_order_id=new_id), "4",
                             OrderStatus.CANCELLED, orig=orig_id)
            else:
                new = order_from_new_order_single(msg, self._now(session))
                self.status[orig_id] = OrderStatus.CANCELLED
                self.orders[new.client_order_id] = new
                self.status[new.client_order_id] = OrderStatus.ACKNOWLEDGED
                self._report(session, new, "5", OrderStatus.ACKNOWLEDGED, orig=orig_id)
        else:
            raise UnsupportedMessageType(mt)
