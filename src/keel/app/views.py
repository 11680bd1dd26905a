"""JSON views of the store for the service: portfolio, orders with children and fills, TCA.

Pure reads; every function takes what it reads and returns plain JSON-ready dicts. Money,
quantities and prices are exact decimal strings where the store books them (ledger, orders,
fills) and floats for analytics (weights, bps).
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from keel.clock import Clock
from keel.data.market import MarketData
from keel.execution.feedback import TCA
from keel.portfolio.book import LedgerState
from keel.portfolio.ledger import Ledger
from keel.store.db import Store
from keel.store.orders_repo import OrderRecord, OrdersRepo
from keel.types import Fill, OrderStatus, Side


def _dec(x: Decimal | None) -> str | None:
    return None if x is None else str(x)


def _num(x: float) -> float | None:
    """JSON has no NaN: undefined analytics become ``null``."""
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def clean(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    return obj


class LedgerView:
    """One account's ledger, rebuilt once and caught up incrementally on every read.

    Thread-safe: the service reads it from several worker threads.
    """

    def __init__(self, store: Store, clock: Clock, account: str = "default") -> None:
        self.store, self.clock, self.account = store, clock, account
        self._ledger: Ledger | None = None
        self._lock = threading.Lock()

    def state(self) -> LedgerState:
        with self._lock:
            if self._ledger is None:
                self._ledger = Ledger.open(self.store, clock=self.clock, account=self.account)
                return self._ledger.state
            return self._ledger.refresh()


def portfolio(state: LedgerState, market: MarketData | None = None) -> dict[str, Any]:
    """Positions, weights (fraction of equity), cash and equity of a ledger state.

    Each position carries its last mark from the ledger and, when ``market`` is given, its
    sector. Positions are sorted by absolute market value, largest first.
    """
    weights = state.weights()
    sectors = market.sectors if market is not None else None
    rows: list[dict[str, Any]] = []
    for sym, h in sorted(state.holdings.items(), key=lambda kv: -abs(kv[1].market_value)):
        rows.append({
            "symbol": sym, "qty": str(h.qty), "avg_price": str(h.avg_price),
            "mark": str(h.mark), "market_value": str(h.market_value),
            "unrealized_pnl": str(h.unrealized_pnl), "weight": weights.get(sym, 0.0),
            "sector": (str(sectors.get(sym, "Unknown")) if sectors is not None else None),
        })
    by_sector: dict[str, float] = {}
    for r in rows:
        key = str(r["sector"] or "Unknown")
        by_sector[key] = by_sector.get(key, 0.0) + float(r["weight"])
    eq = state.equity
    return {
        "version": state.version,
        "updated_at": state.updated_at.isoformat() if state.updated_at else None,
        "cash": str(state.cash), "equity": str(eq),
        "gross_exposure": str(state.gross_exposure),
        "gross_weight": float(state.gross_exposure / eq) if eq else 0.0,
        "net_weight": float(sum(weights.values())),
        "realized_pnl": str(state.realized_pnl), "fees": str(state.fees),
        "net_deposits": str(state.net_deposits),
        "n_positions": len(rows), "positions": rows,
        "weights": weights, "sector_weights": by_sector,
    }


def _fill_json(f: Fill) -> dict[str, Any]:
    return {"exec_id": f.exec_id, "client_order_id": f.client_order_id, "symbol": f.symbol,
            "side": f.side.value, "qty": str(f.qty), "price": str(f.price),
            "commission": str(f.commission), "venue": f.venue,
            "timestamp": f.timestamp.isoformat()}


def _record_json(rec: OrderRecord) -> dict[str, Any]:
    o = rec.order
    out: dict[str, Any] = {
        "client_order_id": rec.client_order_id, "symbol": o.symbol, "side": o.side.value,
        "qty": str(o.qty), "status": rec.status.value, "filled_qty": str(rec.filled_qty),
        "leaves_qty": str(rec.leaves_qty), "created_at": o.created_at.isoformat(),
        "updated_at": rec.updated_at.isoformat() if rec.updated_at else None,
    }
    if rec.is_child:
        out["parent_id"] = rec.parent_id
        out["venue_order_id"] = rec.venue_order_id
    else:
        out.update(algo=rec.algo, avg_price=_dec(rec.avg_price),
                   arrival_price=_dec(rec.arrival_price),
                   decision_price=_dec(rec.decision_price))
    return out


def orders(repo: OrdersRepo, *, status: OrderStatus | None = None, symbol: str | None = None,
           side: Side | None = None, since: datetime | None = None, open_only: bool = False,
           limit: int = 100) -> dict[str, Any]:
    """Parent orders matching the filters, newest first, each with its children and fills.

    Args:
        status, symbol, side: exact filters; ``open_only``: non-terminal orders only.
        since: orders created at or after this UTC time.
        limit: at most this many parents (the newest).
    """
    parents = repo.parents(open_only=open_only)
    sel = [p for p in parents
           if (status is None or p.status is status)
           and (symbol is None or p.order.symbol == symbol)
           and (side is None or p.order.side is side)
           and (since is None or p.order.created_at >= since)]
    total = len(sel)
    sel = sel[::-1][:limit]
    ids = {p.client_order_id for p in sel}
    kids: dict[str, list[dict[str, Any]]] = {}
    for c in repo.children():
        if c.parent_id in ids:
            kids.setdefault(c.parent_id or "", []).append(_record_json(c))
    fills: dict[str, list[dict[str, Any]]] = {}
    for f, pid in repo.fills():
        key = pid or f.client_order_id
        if key in ids:
            fills.setdefault(key, []).append(_fill_json(f))
    out = []
    for p in sel:
        row = _record_json(p)
        row["children"] = kids.get(p.client_order_id, [])
        row["fills"] = fills.get(p.client_order_id, [])
        out.append(row)
    return {"total": total, "returned": len(out), "orders": out}


def execution_quality(repo: OrdersRepo) -> dict[str, Any]:
    """TCA of every parent with fills: per order, per symbol and per algorithm (bps)."""
    report = TCA(repo).report()
    per_order = [{k: (v.isoformat() if isinstance(v, datetime) else
                      _num(v) if isinstance(v, float) else v)
                  for k, v in asdict(s).items()} for s in report.summaries]

    def table(df: Any) -> list[dict[str, Any]]:
        if df is None or df.empty:
            return []
        return [{"key": str(k), **{c: _num(float(v)) for c, v in row.items()}}
                for k, row in df.iterrows()]

    fills = repo.fills()
    return {
        "n_orders": len(per_order), "n_fills": len(fills),
        "filled_notional": float(sum(float(f.qty * f.price) for f, _ in fills)),
        "orders": per_order, "by_symbol": table(report.by_symbol()),
        "by_algo": table(report.by_algo()),
        "recommendations": clean([asdict(r) for r in report.recommendations()]),
    }
