"""JSON views of the store for the service: portfolio, orders with children and fills, TCA.

Pure reads; every function takes what it reads and returns plain JSON-ready dicts, written
with :mod:`keel.fmt`'s JSON helpers so every endpoint speaks alike: money as exact decimal
strings (prices on the instrument's tick, average prices on a hundredth of it, amounts in
cents), quantities as exact strings, enums by name (``"side": "BUY"``), times ISO-8601 with
their offset; analytics (weights, bps) are floats, ``null`` when undefined.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select

from keel.clock import Clock
from keel.data.market import MarketData
from keel.execution.feedback import TCA
from keel.fmt import money_json, qty_json, tick_of, time_json, to_json
from keel.portfolio.book import LedgerState
from keel.portfolio.ledger import Ledger
from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo
from keel.store.tables import ChildOrderRow, FillRow, OrderRow
from keel.types import OrderStatus, Side

#: symbol -> price tick (currency); symbols not in it use a cent
Ticks = Mapping[str, Decimal]


def _px(x: Decimal | float | None, symbol: str, ticks: Ticks | None) -> str | None:
    """A price on the symbol's tick."""
    return money_json(x, tick_of(symbol, ticks))


def _avg(x: Decimal | float | None, symbol: str, ticks: Ticks | None) -> str | None:
    """An average price (of several fills) on a hundredth of the tick."""
    return money_json(x, tick_of(symbol, ticks) / 100)


def _num(x: float) -> float | None:
    """JSON has no NaN: undefined analytics become ``null``."""
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def clean(obj: Any) -> Any:
    """``obj`` as JSON-ready values (:func:`keel.fmt.to_json`: no NaN, enums by name,
    times with offset)."""
    return to_json(obj)


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


def portfolio(state: LedgerState, market: MarketData | None = None,
              ticks: Ticks | None = None) -> dict[str, Any]:
    """Positions, weights (fraction of equity), cash and equity of a ledger state.

    Each position carries its last mark from the ledger and, when ``market`` is given, its
    sector. Positions are sorted by absolute market value, largest first.
    """
    weights = state.weights()
    sectors = market.sectors if market is not None else None
    rows: list[dict[str, Any]] = []
    for sym, h in sorted(state.holdings.items(), key=lambda kv: -abs(kv[1].market_value)):
        rows.append({
            "symbol": sym, "qty": qty_json(h.qty), "avg_price": _avg(h.avg_price, sym, ticks),
            "mark": _px(h.mark, sym, ticks), "market_value": money_json(h.market_value),
            "unrealized_pnl": money_json(h.unrealized_pnl),
            "weight": weights.get(sym, 0.0),
            "sector": (str(sectors.get(sym, "Unknown")) if sectors is not None else None),
        })
    by_sector: dict[str, float] = {}
    for r in rows:
        key = str(r["sector"] or "Unknown")
        by_sector[key] = by_sector.get(key, 0.0) + float(r["weight"])
    eq = state.equity
    return {
        "version": state.version,
        "updated_at": time_json(state.updated_at),
        "cash": money_json(state.cash), "equity": money_json(eq),
        "gross_exposure": money_json(state.gross_exposure),
        "gross_weight": float(state.gross_exposure / eq) if eq else 0.0,
        "net_weight": float(sum(weights.values())),
        "realized_pnl": money_json(state.realized_pnl), "fees": money_json(state.fees),
        "net_deposits": money_json(state.net_deposits),
        "n_positions": len(rows), "positions": rows,
        "weights": weights, "sector_weights": by_sector,
    }


def _child_json(r: ChildOrderRow, ticks: Ticks | None) -> dict[str, Any]:
    return {"client_order_id": r.client_order_id, "parent_id": r.parent_id,
            "slice_index": r.slice_index, "symbol": r.symbol, "side": Side(r.side).name,
            "qty": qty_json(r.qty), "status": OrderStatus(r.status).name,
            "filled_qty": qty_json(r.filled_qty), "leaves_qty": qty_json(r.qty - r.filled_qty),
            "limit_price": _px(r.limit_price, r.symbol, ticks),
            "venue_order_id": r.venue_order_id,
            "created_at": time_json(r.created_at), "updated_at": time_json(r.updated_at)}


def _parent_json(r: OrderRow, ticks: Ticks | None) -> dict[str, Any]:
    return {"client_order_id": r.client_order_id, "symbol": r.symbol,
            "side": Side(r.side).name, "qty": qty_json(r.qty),
            "status": OrderStatus(r.status).name, "filled_qty": qty_json(r.filled_qty),
            "leaves_qty": qty_json(r.qty - r.filled_qty), "algo": r.algo,
            "avg_price": _avg(r.avg_fill_price, r.symbol, ticks),
            "arrival_price": _px(r.arrival_price, r.symbol, ticks),
            "decision_price": _px(r.decision_price, r.symbol, ticks), "strategy": r.strategy,
            "created_at": time_json(r.created_at), "updated_at": time_json(r.updated_at)}


def _fill_row_json(r: FillRow, ticks: Ticks | None) -> dict[str, Any]:
    return {"exec_id": r.exec_id, "client_order_id": r.client_order_id, "symbol": r.symbol,
            "side": Side(r.side).name, "qty": qty_json(r.qty),
            "price": _px(r.price, r.symbol, ticks), "commission": money_json(r.commission),
            "venue": r.venue, "timestamp": time_json(r.timestamp)}


def orders(store: Store, *, status: OrderStatus | None = None, symbol: str | None = None,
           side: Side | None = None, since: datetime | None = None, open_only: bool = False,
           limit: int = 100, parent_id: str | None = None,
           ticks: Ticks | None = None) -> dict[str, Any]:
    """Parent orders matching the filters, newest first, each with its children and fills.

    Args:
        status, symbol, side, parent_id: exact filters; ``open_only``: non-terminal only.
        since: orders created at or after this UTC time.
        limit: at most this many parents (the newest).

    Three queries whatever the store's size: the page of parents, then only their children
    and fills.
    """
    conds: list[Any] = []
    if status is not None:
        conds.append(OrderRow.status == status.value)
    if symbol is not None:
        conds.append(OrderRow.symbol == symbol)
    if side is not None:
        conds.append(OrderRow.side == side.value)
    if since is not None:
        conds.append(OrderRow.created_at >= since)
    if open_only:
        conds.append(OrderRow.status.in_([s.value for s in OrderStatus if s.is_open]))
    if parent_id is not None:
        conds.append(OrderRow.client_order_id == parent_id)
    with store.session() as s:
        total = int(s.scalar(select(func.count()).select_from(OrderRow).where(*conds)) or 0)
        parents = list(s.scalars(select(OrderRow).where(*conds)
                                 .order_by(OrderRow.id.desc()).limit(limit)))
        ids = [p.client_order_id for p in parents]
        kids: dict[str, list[dict[str, Any]]] = {}
        fills: dict[str, list[dict[str, Any]]] = {}
        if ids:
            for c in s.scalars(select(ChildOrderRow).where(ChildOrderRow.parent_id.in_(ids))
                               .order_by(ChildOrderRow.id)):
                kids.setdefault(c.parent_id, []).append(_child_json(c, ticks))
            for f in s.scalars(select(FillRow).where(or_(FillRow.parent_id.in_(ids),
                                                         FillRow.client_order_id.in_(ids)))
                               .order_by(FillRow.id)):
                fills.setdefault(f.parent_id or f.client_order_id, []).append(
                    _fill_row_json(f, ticks))
        out = []
        for p in parents:
            row = _parent_json(p, ticks)
            row["children"] = kids.get(p.client_order_id, [])
            row["fills"] = fills.get(p.client_order_id, [])
            out.append(row)
    return {"total": total, "returned": len(out), "orders": out}


def parent_of(store: Store, client_order_id: str) -> str | None:
    """The parent id of an order id (itself for a parent), or None when unknown."""
    with store.session() as s:
        if s.scalar(select(OrderRow.id).where(OrderRow.client_order_id == client_order_id)):
            return client_order_id
        return s.scalar(select(ChildOrderRow.parent_id).where(
            ChildOrderRow.client_order_id == client_order_id))


def execution_quality(repo: OrdersRepo, ticks: Ticks | None = None) -> dict[str, Any]:
    """TCA of every parent with fills: per order, per symbol and per algorithm (bps).

    Per order, prices are money strings (averages on a hundredth of the tick, arrival and
    decision prices on the tick), the commission in cents, quantities exact strings."""
    report = TCA(repo).report()
    per_order = []
    for s in report.summaries:
        row = to_json(asdict(s))
        row["side"] = Side.BUY.name if s.side > 0 else Side.SELL.name
        row["avg_price"] = _avg(_num(s.avg_price), s.symbol, ticks)
        for k in ("arrival_price", "decision_price"):
            row[k] = _px(_num(getattr(s, k)), s.symbol, ticks)
        row["commission"] = money_json(_num(s.commission))
        row["qty"], row["filled_qty"] = qty_json(_num(s.qty)), qty_json(_num(s.filled_qty))
        per_order.append(row)

    def table(df: Any) -> list[dict[str, Any]]:
        if df is None or df.empty:
            return []
        money_cols = {"notional", "commission", "filled_notional"}
        return [{"key": str(k), **{c: (money_json(_num(float(v))) if c in money_cols
                                       else _num(float(v))) for c, v in row.items()}}
                for k, row in df.iterrows()]

    fills = repo.fills()
    return {
        "n_orders": len(per_order), "n_fills": len(fills),
        "filled_notional": money_json(sum((f.qty * f.price for f, _ in fills), Decimal(0))),
        "orders": per_order, "by_symbol": table(report.by_symbol()),
        "by_algo": table(report.by_algo()),
        "recommendations": clean([asdict(r) for r in report.recommendations()]),
    }


class ExecutionView:
    """:func:`execution_quality`, recomputed only when a fill or an order was added.

    The fingerprint (count and last id of fills and of parents) is two cheap aggregate
    queries; the TCA itself (pandas over every parent) runs once per change, not per poll.
    """

    def __init__(self, store: Store, ticks: Ticks | None = None) -> None:
        self.store, self.repo, self.ticks = store, OrdersRepo(store), ticks
        self._last: tuple[Any, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _fingerprint(self) -> tuple[Any, ...]:
        with self.store.session() as s:
            f = s.execute(select(func.count(), func.max(FillRow.id))).one()
            o = s.execute(select(func.count(), func.max(OrderRow.id))).one()
        return (*f, *o)

    def get(self) -> dict[str, Any]:
        key = self._fingerprint()
        with self._lock:
            if self._last is None or self._last[0] != key:
                self._last = (key, clean(execution_quality(self.repo, self.ticks)))
            return self._last[1]
