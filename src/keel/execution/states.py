"""The order state machine: which status may follow which, and nothing else.

Fills may arrive before the venue's acknowledgement (``PENDING -> PARTIALLY_FILLED``) and a
partial fill may follow another; terminal states (filled, cancelled, rejected, expired) never
change again.
"""

from __future__ import annotations

from keel.errors import IllegalTransitionError
from keel.types import OrderStatus

S = OrderStatus

LEGAL: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.NEW: frozenset({S.PENDING, S.REJECTED, S.CANCELLED, S.EXPIRED}),
    S.PENDING: frozenset({S.ACKNOWLEDGED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED,
                          S.REJECTED, S.EXPIRED}),
    S.ACKNOWLEDGED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}


def is_legal(src: OrderStatus, dst: OrderStatus) -> bool:
    """True when ``src -> dst`` is allowed."""
    return dst in LEGAL[src]


def check_transition(src: OrderStatus, dst: OrderStatus, client_order_id: str) -> None:
    """Raise :class:`IllegalTransitionError` (naming the order) unless ``src -> dst`` is legal."""
    if not is_legal(src, dst):
        raise IllegalTransitionError(f"illegal order transition {src.value} -> {dst.value}",
                                     field="status", value=dst.value,
                                     client_order_id=client_order_id, from_status=src.value)
