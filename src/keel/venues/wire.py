"""JSON forms of orders, fills and order events, shared by the REST API and the REST broker.

Decimals travel as strings (exact), times as ISO-8601 UTC, enums by value.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from keel.types import EventKind, Fill, OrderEvent, Side


def fill_to_json(f: Fill) -> dict[str, Any]:
    return {"exec_id": f.exec_id, "client_order_id": f.client_order_id, "symbol": f.symbol,
            "side": f.side.value, "qty": str(f.qty), "price": str(f.price),
            "timestamp": f.timestamp.isoformat(), "commission": str(f.commission),
            "venue": f.venue}


def fill_from_json(d: dict[str, Any]) -> Fill:
    return Fill(exec_id=d["exec_id"], client_order_id=d["client_order_id"], symbol=d["symbol"],
                side=Side(d["side"]), qty=Decimal(d["qty"]), price=Decimal(d["price"]),
                timestamp=datetime.fromisoformat(d["timestamp"]),
                commission=Decimal(d.get("commission", "0")), venue=d.get("venue", ""))


def event_to_json(ev: OrderEvent, seq: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": ev.kind.value, "client_order_id": ev.client_order_id,
        "timestamp": ev.timestamp.isoformat(), "cum_qty": str(ev.cum_qty),
        "leaves_qty": str(ev.leaves_qty), "reason": ev.reason,
        "venue_order_id": ev.venue_order_id,
        "fill": fill_to_json(ev.fill) if ev.fill is not None else None,
        "extra": {k: (v.value if isinstance(v, Side) else
                      str(v) if isinstance(v, Decimal) else v)
                  for k, v in ev.extra.items() if v is None or isinstance(
                      v, str | int | float | Decimal | Side)},
    }
    if seq is not None:
        out["seq"] = seq
    return out


def event_from_json(d: dict[str, Any]) -> OrderEvent:
    return OrderEvent(kind=EventKind(d["kind"]), client_order_id=d["client_order_id"],
                      timestamp=datetime.fromisoformat(d["timestamp"]),
                      fill=fill_from_json(d["fill"]) if d.get("fill") else None,
                      cum_qty=Decimal(d.get("cum_qty", "0")),
                      leaves_qty=Decimal(d.get("leaves_qty", "0")), reason=d.get("reason", ""),
                      venue_order_id=d.get("venue_order_id", ""), extra=d.get("extra") or {})
