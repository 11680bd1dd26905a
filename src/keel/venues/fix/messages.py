"""Application messages mapped to and from keel's order types (FIX 4.2 and 4.4).

Outbound (order entry): :func:`new_order_single`, :func:`order_cancel_request`,
:func:`order_cancel_replace_request` from :class:`~keel.types.Order`. Inbound:
:func:`order_from_new_order_single` (the venue side), :func:`execution_report` and
:func:`order_cancel_reject` (built by a venue), :func:`event_from_execution_report` and
:func:`event_from_cancel_reject` (back to :class:`~keel.types.OrderEvent`). Quantities and prices
are exact ``Decimal`` strings on the wire; TransactTime is UTC with milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from keel.errors import ProtocolError, ValidationError
from keel.types import (
    ZERO,
    EventKind,
    Fill,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    to_decimal,
)
from keel.venues.fix.codec import Message, format_utc, parse_utc_timestamp

SIDE_TO_FIX = {Side.BUY: "1", Side.SELL: "2"}
FIX_TO_SIDE = {"1": Side.BUY, "2": Side.SELL}
ORD_TYPE_TO_FIX = {OrderType.MARKET: "1", OrderType.LIMIT: "2", OrderType.STOP: "3",
                   OrderType.STOP_LIMIT: "4"}
FIX_TO_ORD_TYPE = {v: k for k, v in ORD_TYPE_TO_FIX.items()}
TIF_TO_FIX = {TimeInForce.DAY: "0", TimeInForce.GTC: "1", TimeInForce.OPG: "2",
              TimeInForce.IOC: "3", TimeInForce.FOK: "4", TimeInForce.CLS: "7"}
FIX_TO_TIF = {v: k for k, v in TIF_TO_FIX.items()}
STATUS_TO_FIX = {OrderStatus.NEW: "A", OrderStatus.PENDING: "A", OrderStatus.ACKNOWLEDGED: "0",
                 OrderStatus.PARTIALLY_FILLED: "1", OrderStatus.FILLED: "2",
                 OrderStatus.CANCELLED: "4", OrderStatus.REJECTED: "8",
                 OrderStatus.EXPIRED: "C"}
FIX_TO_STATUS = {"0": OrderStatus.ACKNOWLEDGED, "1": OrderStatus.PARTIALLY_FILLED,
                 "2": OrderStatus.FILLED, "4": OrderStatus.CANCELLED, "8": OrderStatus.REJECTED,
                 "C": OrderStatus.EXPIRED, "A": OrderStatus.PENDING, "5": OrderStatus.ACKNOWLEDGED}
# ExecType (150) -> event kind; 1/2 are FIX 4.2 partial/fill, F is the FIX 4.4 Trade.
EXEC_TYPE_TO_KIND = {"0": EventKind.ACK, "1": EventKind.FILL, "2": EventKind.FILL,
                     "F": EventKind.FILL, "4": EventKind.CANCELLED, "5": EventKind.REPLACED,
                     "8": EventKind.REJECTED, "C": EventKind.EXPIRED}


#: body tags the parsers below read, per message type: the values lazy validation checks
#: (``Application.read_tags`` of keel's own applications); each parser checks what it reads
READ_TAGS: dict[str, frozenset[int]] = {
    "D": frozenset({11, 38, 40, 44, 54, 55, 59, 60, 99}),
    "F": frozenset({11, 37, 38, 41, 54, 55, 60}),
    "G": frozenset({11, 37, 38, 40, 41, 44, 54, 55, 59, 60, 99}),
    "8": frozenset({6, 11, 14, 17, 31, 32, 37, 39, 41, 54, 55, 58, 60, 150, 151}),
    "9": frozenset({11, 37, 39, 41, 58, 434}),
}


def _num(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _ts(t: datetime) -> str:
    return format_utc(t.astimezone(UTC).timestamp())


def _order_fields(order: Order, begin_string: str) -> dict[int, str]:
    tif = TIF_TO_FIX[order.tif]
    if tif == "7" and begin_string < "FIX.4.4":
        raise ValidationError("TimeInForce CLS has no FIX 4.2 value", field="tif",
                              value=order.tif.value, symbol=order.symbol)
    body = {11: order.client_order_id, 21: "1", 55: order.symbol,
            54: SIDE_TO_FIX[order.side], 60: _ts(order.created_at), 38: _num(order.qty),
            40: ORD_TYPE_TO_FIX[order.order_type], 59: tif}
    if order.limit_price is not None:
        body[44] = _num(order.limit_price)
    if order.stop_price is not None:
        body[99] = _num(order.stop_price)
    return body


def new_order_single(order: Order, begin_string: str = "FIX.4.2") -> Message:
    """NewOrderSingle (35=D) for ``order`` (HandlInst 1: automated, no intervention)."""
    return Message("D", _order_fields(order, begin_string))


def order_cancel_request(original: Order, cl_ord_id: str, transact_time: datetime) -> Message:
    """OrderCancelRequest (35=F) asking to cancel ``original`` under new ClOrdID ``cl_ord_id``."""
    return Message("F", {41: original.client_order_id, 11: cl_ord_id, 55: original.symbol,
                         54: SIDE_TO_FIX[original.side], 60: _ts(transact_time),
                         38: _num(original.qty)})


def order_cancel_replace_request(original: Order, new_order: Order,
                                 begin_string: str = "FIX.4.2") -> Message:
    """OrderCancelReplaceRequest (35=G): replace ``original`` by ``new_order`` (its new id)."""
    if new_order.symbol != original.symbol or new_order.side != original.side:
        raise ValidationError("a replace keeps symbol and side", field="new_order",
                              symbol=new_order.symbol, value=new_order.client_order_id)
    body = _order_fields(new_order, begin_string)
    body[41] = original.client_order_id
    return Message("G", body)


def _decimal_field(msg: Message, tag: int, default: Decimal | None = None) -> Decimal:
    value = msg.get(tag)
    if value is None:
        if default is not None:
            return default
        raise ProtocolError("required field missing", field=str(tag), value=msg.msg_type)
    try:
        return to_decimal(value, str(tag))
    except ValidationError:
        raise ProtocolError("not a number", field=str(tag), value=value) from None


def _time_field(msg: Message, tag: int, fallback: datetime) -> datetime:
    t = parse_utc_timestamp(msg.get(tag) or "")
    return fallback if t is None else datetime.fromtimestamp(t, UTC)


def order_from_new_order_single(msg: Message, received_at: datetime) -> Order:
    """The :class:`Order` a NewOrderSingle asks for (``ProtocolError`` when it cannot be one)."""
    try:
        return Order(
            client_order_id=msg[11], symbol=msg.get(55, "") or "",
            side=FIX_TO_SIDE[msg.get(54) or ""], qty=_decimal_field(msg, 38),
            created_at=_time_field(msg, 60, received_at),
            order_type=FIX_TO_ORD_TYPE[msg.get(40) or ""],
            limit_price=_decimal_field(msg, 44) if 44 in msg else None,
            stop_price=_decimal_field(msg, 99) if 99 in msg else None,
            tif=FIX_TO_TIF.get(msg.get(59, "0") or "0", TimeInForce.DAY))
    except KeyError as exc:
        raise ProtocolError("unsupported or missing order field", field=str(exc.args[0]),
                            value=msg.get(11)) from None
    except ValidationError as exc:
        raise ProtocolError(f"invalid order: {exc.message}", field=exc.field,
                            value=msg.get(11)) from None


@dataclass(frozen=True)
class ExecutionReportData:
    """What a venue reports in one ExecutionReport (quantities in shares, prices per share)."""

    order_id: str
    exec_id: str
    exec_type: str
    order: Order
    status: OrderStatus
    cum_qty: Decimal = ZERO
    leaves_qty: Decimal = ZERO
    avg_px: Decimal = ZERO
    last_qty: Decimal = ZERO
    last_px: Decimal = ZERO
    orig_cl_ord_id: str | None = None
    text: str | None = None


def execution_report(d: ExecutionReportData, transact_time: datetime,
                     begin_string: str = "FIX.4.2") -> Message:
    """ExecutionReport (35=8) for ``d`` (ExecTransType 0 added for FIX 4.2)."""
    o = d.order
    body = {37: d.order_id, 17: d.exec_id, 150: d.exec_type, 39: STATUS_TO_FIX[d.status],
            11: o.client_order_id, 55: o.symbol, 54: SIDE_TO_FIX[o.side], 38: _num(o.qty),
            151: _num(d.leaves_qty), 14: _num(d.cum_qty), 6: _num(d.avg_px),
            60: _ts(transact_time), 40: ORD_TYPE_TO_FIX[o.order_type]}
    if begin_string < "FIX.4.3":
        body[20] = "0"
    if d.last_qty > 0:
        body[32] = _num(d.last_qty)
        body[31] = _num(d.last_px)
    if o.limit_price is not None:
        body[44] = _num(o.limit_price)
    if d.orig_cl_ord_id is not None:
        body[41] = d.orig_cl_ord_id
    if d.text:
        body[58] = d.text
    return Message("8", body)


def order_cancel_reject(order_id: str, cl_ord_id: str, orig_cl_ord_id: str,
                        status: OrderStatus, response_to_replace: bool,
                        text: str = "") -> Message:
    """OrderCancelReject (35=9) for a cancel (434=1) or replace (434=2) request."""
    body = {37: order_id, 11: cl_ord_id, 41: orig_cl_ord_id, 39: STATUS_TO_FIX[status],
            434: "2" if response_to_replace else "1"}
    if text:
        body[58] = text
    return Message("9", body)


def event_from_execution_report(msg: Message, received_at: datetime,
                                venue: str = "fix") -> OrderEvent | None:
    """The keel event an ExecutionReport carries; None for exec types keel does not track
    (pending, done for day, restated, ...). Fills carry a :class:`~keel.types.Fill`."""
    kind = EXEC_TYPE_TO_KIND.get(msg.get(150, "") or "")
    if kind is None:
        return None
    ts = _time_field(msg, 60, received_at)
    cl_ord_id = msg.get(11, "") or ""
    extra: dict[str, object] = {}
    if msg.get(17):
        extra["exec_id"] = msg[17]  # the venue's id: routes reporting the same event agree
    if kind in (EventKind.CANCELLED, EventKind.REPLACED) and msg.get(41):
        extra["request_id"] = cl_ord_id
        cl_ord_id = msg[41]
        if kind is EventKind.REPLACED:
            extra["new_client_order_id"] = msg[11]
    fill = None
    if kind is EventKind.FILL:
        fill = Fill(exec_id=msg.get(17, "") or "", client_order_id=cl_ord_id,
                    symbol=msg.get(55, "") or "", side=FIX_TO_SIDE.get(msg.get(54) or "", Side.BUY),
                    qty=_decimal_field(msg, 32), price=_decimal_field(msg, 31), timestamp=ts,
                    venue=venue)
    return OrderEvent(kind=kind, client_order_id=cl_ord_id, timestamp=ts, fill=fill,
                      cum_qty=_decimal_field(msg, 14, ZERO),
                      leaves_qty=_decimal_field(msg, 151, ZERO), reason=msg.get(58, "") or "",
                      venue_order_id=msg.get(37, "") or "", extra=extra)


def event_from_cancel_reject(msg: Message, received_at: datetime) -> OrderEvent:
    """CANCEL_REJECTED for the original order of an OrderCancelReject."""
    return OrderEvent(kind=EventKind.CANCEL_REJECTED,
                      client_order_id=msg.get(41, "") or msg.get(11, "") or "?",
                      timestamp=received_at, reason=msg.get(58, "") or "",
                      venue_order_id=msg.get(37, "") or "",
                      extra={"request_id": msg.get(11, "")})
