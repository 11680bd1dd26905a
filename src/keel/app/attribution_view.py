"""Return attribution of the live book (``GET /api/attribution``, the dashboard's panel).

The book's history is the ledger: every entry is replayed in version order and the holdings
and cash in force at each session of the market are kept (entries booked on a session's
calendar day, UTC, count at that session's close, so a fill of the day is held from the next
session). Each session's weights are the held quantities at that close over the NAV at that
close (cash + quantities x closes); they are held over the next session's return, exactly as
:func:`keel.risk.performance.held_weights` drifts a backtest's targets. On them,
:func:`keel.risk.performance.book_attribution` gives Brinson-Fachler by sector against the
equal-weight benchmark and the factor attribution of the active weights on the fundamental
model; the factor groups are linked with the same Cariño factors as the Brinson effects, so
both add up to the active return exactly on the sessions the model covers.

``book_return`` is the NAV return (deposits and withdrawals taken out): what it differs from
the held weights' return by (``other``) is costs, commissions and fills away from the close.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from keel.data.market import MarketData
from keel.errors import ValidationError
from keel.portfolio.book import Book, apply_entry
from keel.store.db import Store
from keel.store.ledger_repo import LedgerRepository


def ledger_history(store: Store, account: str, sessions: pd.DatetimeIndex
                   ) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """(T, N) quantities, (T,) cash and (T,) net deposits in force at each session's close.

    Entries booked on a session's calendar day (UTC) or before count at that close; sessions
    before the first entry hold nothing.
    """
    entries = LedgerRepository(store, account).entries_after(0)
    days = sessions.tz_convert("UTC").normalize() if sessions.tz is not None \
        else sessions.normalize()
    book = Book()
    qty: list[dict[str, float]] = []
    cash = np.zeros(len(sessions))
    dep = np.zeros(len(sessions))
    i = 0
    for k, day in enumerate(days):
        while i < len(entries) and _day(entries[i].timestamp) <= day:
            e = entries[i]
            apply_entry(book, e.kind, e.payload, e.timestamp)
            i += 1
        qty.append({s: float(h.qty * h.multiplier) for s, h in book.holdings.items()
                    if h.qty != 0})
        cash[k] = float(book.cash)
        dep[k] = float(book.net_deposits)
    q = pd.DataFrame(qty, index=sessions).fillna(0.0)
    return (q, pd.Series(cash, index=sessions, name="cash"),
            pd.Series(dep, index=sessions, name="net_deposits"))


def _day(ts: datetime) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return (t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")).normalize()


def live_attribution(store: Store, market: MarketData, *, account: str = "default",
                     since: datetime | None = None, factors: bool = True,
                     model: Any = None) -> dict[str, Any]:
    """The live book's return attribution as JSON-ready data (see the module docstring).

    ``model``: a FundamentalFactorModel already fitted on ``market`` (else one is fitted when
    ``factors``).

    Raises:
        ValidationError: the ledger holds a symbol the market has no prices (or no close
            on a held session) for.

    A book that held nothing before the market's last session answers ``sessions: 0`` with
    the reason.
    """
    from keel.risk.fundamental import FundamentalFactorModel
    from keel.risk.performance import book_attribution, carino_factors

    rets = market.returns
    closes = market.prices.reindex(rets.index)
    q, cash, dep = ledger_history(store, account, pd.DatetimeIndex(rets.index))
    unknown = q.columns.difference(closes.columns)
    if len(unknown):
        raise ValidationError("the book holds a symbol without market prices",
                              field="symbol", symbol=str(unknown[0]), value=len(unknown))
    px = closes.reindex(columns=q.columns)
    mv = q * px
    if (mv.isna() & (q != 0)).any().any():
        bad = (mv.isna() & (q != 0)).stack()
        d, s = bad[bad].index[0]
        raise ValidationError("a held symbol has no close", field="symbol", symbol=str(s),
                              value=str(d))
    mv = mv.fillna(0.0)
    nav = cash + mv.sum(axis=1)
    invested = (q != 0).any(axis=1) & (nav > 0)
    if since is not None:
        invested &= rets.index >= pd.Timestamp(since)
    if not invested.iloc[:-1].any():
        # a new desk (or a since at the last session): nothing to attribute yet, not an error
        reason = "the book held nothing before the market's last session"
        entries = LedgerRepository(store, account).entries_after(0)
        last = _day(rets.index[-1].to_pydatetime())
        if entries and _day(entries[-1].timestamp) > last:
            reason = (f"nothing to attribute: the ledger has entries after the market's last "
                      f"session ({last.date()}), which has no returns for them yet")
        return {"account": account, "benchmark": "equal weight", "sessions": 0,
                "reason": reason}
    first = int(np.argmax(invested.to_numpy()))
    # weights at each close, held over the next session's return
    w_close = mv.div(nav.where(nav > 0), axis=0)
    held = w_close.shift(1).iloc[first + 1:].fillna(0.0)
    full = rets.loc[held.index]
    # the benchmark: equal weight of every name with a return (held names are in it)
    held = held.reindex(columns=full.columns, fill_value=0.0)
    sectors = (pd.Series(market.sectors) if market.sectors is not None
               else pd.Series("Unknown", index=market.symbols))
    nav_ret = ((nav - dep.diff().fillna(0.0)) / nav.shift(1) - 1.0).loc[held.index]
    book_return = float(np.prod(1.0 + nav_ret.to_numpy()) - 1.0)
    if not factors:
        model = None
    elif model is None:
        model = FundamentalFactorModel().fit(market)
    att = book_attribution(held, full, sectors, model=model,
                           market=market if model is not None else None,
                           book_return=book_return)
    bf = att.brinson
    out: dict[str, Any] = {
        "account": account, "benchmark": "equal weight",
        "start": held.index[0].isoformat(), "end": held.index[-1].isoformat(),
        "sessions": len(held), "portfolio_return": bf.portfolio_return,
        "benchmark_return": bf.benchmark_return, "active_return": bf.active_return,
        "book_return": book_return, "other": att.other,
        "brinson_by_sector": {str(k): {c: float(v) for c, v in row.items()}
                              for k, row in att.summary().iterrows()},
        "brinson_daily": {
            "dates": [d.isoformat() for d in bf.by_period.index],
            **{c: [float(v) for v in bf.by_period[c]] for c in
               ("allocation", "selection", "interaction", "active")}},
    }
    if att.groups is not None:
        # link each session's groups with the Brinson (Cariño) factors: they add up to the
        # active return exactly when the model covers every session of the span
        rp = (held * full.fillna(0.0)).sum(axis=1)
        rb = rp - bf.by_period["active"]
        link = pd.Series(carino_factors(rp.to_numpy(), rb.to_numpy()), index=held.index)
        g = att.groups
        out["factor_groups"] = {str(k): float(v) for k, v in
                                g.mul(link.reindex(g.index), axis=0).sum().items()}
        out["factor_sessions"] = len(g)
    return out


class AttributionView:
    """The live attribution, recomputed only when the ledger or the market changed (the
    dashboard polls). Thread-safe."""

    def __init__(self, store: Store, market: Callable[[], MarketData],
                 account: str = "default") -> None:
        self.store, self.market, self.account = store, market, account
        self._repo = LedgerRepository(store, account)
        self._last: tuple[Any, dict[str, Any]] | None = None
        self._model: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def get(self, since: datetime | None = None) -> dict[str, Any]:
        from keel.risk.fundamental import FundamentalFactorModel

        mkt = self.market()
        snap = (id(mkt), mkt.now)
        key = (*snap, self._repo.head_version(), since)
        with self._lock:
            if self._last is not None and self._last[0] == key:
                return self._last[1]
            if self._model is None or self._model[0] != snap:  # once per market snapshot
                self._model = (snap, FundamentalFactorModel().fit(mkt))
            out = live_attribution(self.store, mkt, account=self.account, since=since,
                                   model=self._model[1])
            self._last = (key, out)
            return out
