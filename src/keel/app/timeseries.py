"""Time series of a desk built from what the store holds, for the dashboard's charts.

* :class:`EquitySeries`: the ledger replayed entry by entry (``ledger_entries``, the same
  :func:`~keel.portfolio.book.apply_entry` the ledger uses), one point per booked entry
  (the last of each timestamp): equity, cash, gross exposure, P&L and drawdown. The last point
  is the ledger's state, exactly. Caught up incrementally on every read.
* :func:`trading_by_day`: per UTC day, from ``fills`` joined to their parent ``orders``:
  traded notional, turnover (fraction of that day's closing equity), commissions, realised
  slippage against the parent's arrival price, and the cost model's prediction for the same
  trades.
* :func:`breaches_by_day`: ``risk.breach`` audit rows per UTC day and limit.

Units: money as decimal strings in cents (:func:`keel.fmt.money_json`), fractions and bps as
floats, times ISO-8601 with offset, days as ``YYYY-MM-DD``. Columns are arrays of equal length
(one per field), the shape a charting library takes.

P&L is ``equity - net_deposits`` (deposits are capital, not profit); drawdown is the fall of
equity from its high-water mark with deposits taken as capital:
``(pnl - max pnl so far) / (net_deposits + max pnl so far)``, a fraction <= 0.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import func, or_, select

from keel.errors import KeelError
from keel.fmt import money_json, time_json
from keel.portfolio.book import Book, apply_entry
from keel.store.db import Store
from keel.store.ledger_repo import LedgerRepository
from keel.store.tables import AuditRow, FillRow, OrderRow
from keel.types import Side

ZERO = Decimal(0)
BREACH_ACTION = "risk.breach"


class EquitySeries:
    """Equity, cash, exposure, P&L and drawdown after every ledger entry of ``account``.

    Thread-safe; the replay is kept and only new entries are booked on each read.
    """

    def __init__(self, store: Store, account: str = "default") -> None:
        self.repo = LedgerRepository(store, account)
        self._book = Book()
        self._rows: list[tuple[datetime, Decimal, Decimal, Decimal, Decimal, Decimal]] = []
        self._lock = threading.Lock()
        self._last: tuple[tuple[int, int], dict[str, Any]] | None = None

    @property
    def version(self) -> int:
        """The ledger version the series has reached."""
        return self._book.version

    def _catch_up(self) -> None:
        for e in self.repo.entries_after(self._book.version):
            apply_entry(self._book, e.kind, e.payload, e.timestamp)
            b = self._book
            mv = [h.market_value for h in b.holdings.values()]
            equity = b.cash + sum(mv, ZERO)
            gross = sum((abs(x) for x in mv), ZERO)
            row = (e.timestamp, equity, b.cash, gross, b.net_deposits, b.fees)
            if self._rows and self._rows[-1][0] == e.timestamp:
                self._rows[-1] = row  # one point per timestamp: the last state
            else:
                self._rows.append(row)

    def get(self, max_points: int = 2000) -> dict[str, Any]:
        """The series, thinned to at most ``max_points`` (evenly, always keeping the last)."""
        with self._lock:
            self._catch_up()
            key = (self._book.version, max_points)
            if self._last is not None and self._last[0] == key:
                return self._last[1]  # the dashboard polls: unchanged ledger, same answer
            rows = list(self._rows)
        out = self._series(rows, max_points)
        with self._lock:
            self._last = (key, out)
        return out

    @staticmethod
    def _series(rows: list[tuple[datetime, Decimal, Decimal, Decimal, Decimal, Decimal]],
                max_points: int) -> dict[str, Any]:
        if len(rows) > max_points:
            idx = np.unique(np.linspace(0, len(rows) - 1, max_points).round().astype(int))
            rows = [rows[i] for i in idx]
        pnl = np.array([float(r[1] - r[4]) for r in rows])
        deposits = np.array([float(r[4]) for r in rows])
        hwm = np.maximum.accumulate(pnl) if pnl.size else pnl
        base = deposits + hwm
        with np.errstate(divide="ignore", invalid="ignore"):
            dd = np.where(base > 0, (pnl - hwm) / base, 0.0)
        return {
            "n_points": len(rows),
            "t": [time_json(r[0]) for r in rows],
            "equity": [money_json(r[1]) for r in rows],
            "cash": [money_json(r[2]) for r in rows],
            "gross_exposure": [money_json(r[3]) for r in rows],
            "net_deposits": [money_json(r[4]) for r in rows],
            "pnl": [money_json(r[1] - r[4]) for r in rows],
            "fees": [money_json(r[5]) for r in rows],
            "drawdown": [float(x) for x in dd],
            "max_drawdown": float(dd.min()) if dd.size else 0.0,
        }


class TradingView:
    """:func:`trading_by_day`, recomputed only when a fill was added or the ledger moved."""

    def __init__(self, store: Store, equity: EquitySeries,
                 predict: Callable[[dict[str, float]], dict[str, float]] | None) -> None:
        self.store, self.equity, self.predict = store, equity, predict
        self._last: tuple[Any, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def get(self) -> dict[str, Any]:
        eq = self.equity.get()
        with self.store.session() as s:
            key = (*s.execute(select(func.count(), func.max(FillRow.id))).one(),
                   self.equity.version)
        with self._lock:
            if self._last is None or self._last[0] != key:
                self._last = (key, trading_by_day(self.store, eq, self.predict))
            return self._last[1]


def _day(t: datetime) -> date:
    return t.date()


def trading_by_day(store: Store, equity: dict[str, Any],
                   predict: Callable[[dict[str, float]], dict[str, float]] | None = None
                   ) -> dict[str, Any]:
    """Per UTC day: traded notional, turnover, commissions, realised slippage vs predicted.

    Args:
        store: the store with ``fills`` and ``orders``.
        equity: :meth:`EquitySeries.get` (turnover divides by each day's last equity).
        predict: signed notional per symbol (currency, + buy) -> predicted cost per symbol
            (currency); ``None`` leaves ``predicted_bps`` null.

    Realised slippage of a fill is ``sign x (price - arrival price) x qty`` (currency,
    positive = cost); ``realised_bps`` adds commissions and divides by the day's notional.
    Fills whose parent has no arrival price count in notional but not in slippage.
    """
    with store.session() as s:
        rows = s.execute(select_fills_with_arrival()).all()
    days: dict[date, dict[str, Any]] = {}
    for ts, sym, side, qty, px, comm, arrival in rows:
        d = days.setdefault(_day(ts), {"notional": ZERO, "commission": ZERO,
                                       "slippage": ZERO, "slip_notional": ZERO, "n_fills": 0,
                                       "by_symbol": defaultdict(float)})
        sign = Side(side).sign
        notional = qty * px
        d["notional"] += notional
        d["commission"] += comm
        d["n_fills"] += 1
        d["by_symbol"][sym] += sign * float(notional)
        if arrival is not None:
            d["slippage"] += sign * (px - arrival) * qty
            d["slip_notional"] += notional
    eq_by_day: dict[date, float] = {}
    for t, e in zip(equity["t"], equity["equity"], strict=True):
        eq_by_day[datetime.fromisoformat(t).date()] = float(e)
    out: dict[str, list[Any]] = {k: [] for k in (
        "day", "n_fills", "notional", "turnover", "commission", "slippage", "realised_bps",
        "predicted_bps")}
    for day in sorted(days):
        d = days[day]
        notional = float(d["notional"])
        eq = eq_by_day.get(day) or next(
            (v for k, v in sorted(eq_by_day.items(), reverse=True) if k <= day), None)
        realised = (1e4 * float(d["slippage"] + d["commission"]) / notional
                    if notional else None)
        predicted = None
        if predict is not None and notional:
            try:
                pred = predict(dict(d["by_symbol"]))
                predicted = 1e4 * sum(pred.values()) / notional
            except (KeelError, KeyError, ValueError):
                predicted = None  # a symbol the market no longer has: no prediction
        out["day"].append(day.isoformat())
        out["n_fills"].append(d["n_fills"])
        out["notional"].append(money_json(d["notional"]))
        out["turnover"].append(notional / eq if eq else None)
        out["commission"].append(money_json(d["commission"]))
        out["slippage"].append(money_json(d["slippage"]))
        out["realised_bps"].append(realised)
        out["predicted_bps"].append(predicted)
    return {"n_days": len(out["day"]), **out}


def select_fills_with_arrival() -> Any:
    """Fills (time, symbol, side, qty, price, commission) with their parent's arrival price."""
    return (select(FillRow.timestamp, FillRow.symbol, FillRow.side, FillRow.qty,
                   FillRow.price, FillRow.commission, OrderRow.arrival_price)
            .outerjoin(OrderRow, or_(OrderRow.client_order_id == FillRow.parent_id,
                                     OrderRow.client_order_id == FillRow.client_order_id))
            .order_by(FillRow.id))


def breaches_by_day(store: Store) -> dict[str, Any]:
    """``risk.breach`` audit rows per UTC day and limit code: ``{"days": [...], "limits":
    {code: [count per day]}}``."""
    with store.session() as s:
        rows = s.execute(select(AuditRow.timestamp, AuditRow.entity_id)
                         .where(AuditRow.action == BREACH_ACTION)
                         .order_by(AuditRow.id)).all()
    tally: dict[tuple[date, str], int] = defaultdict(int)
    for ts, code in rows:
        tally[(_day(ts), code or "unknown")] += 1
    days = sorted({d for d, _ in tally})
    codes = sorted({c for _, c in tally})
    return {"days": [d.isoformat() for d in days],
            "limits": {c: [tally.get((d, c), 0) for d in days] for c in codes},
            "total": len(rows)}
