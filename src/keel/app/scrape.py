"""Prometheus metrics derived from the store at scrape time (the standalone ``keel serve``).

A service that is not inside the trading process cannot count events as they happen, so it
recounts them from what the trading process wrote: the same metric names as
:class:`keel.app.metrics.KeelMetrics`, computed on every scrape from the ``child_orders``,
``fills``, ``order_events`` and ``audit_log`` tables, the ledger and the risk view.

* ``keel_orders_total{venue,side}``: child orders that left ``NEW`` (sent to a venue);
  the venue is the one their fills name (``unknown`` before any fill).
* ``keel_fills_total{venue,symbol}``, ``keel_filled_notional_total{venue}`` (currency).
* ``keel_rejects_total{reason}``: transitions to ``REJECTED`` (of a child sent to a venue, or
  of a parent refused before any child was refused: pre-trade); the reason is the reason code
  before the first ``:`` of the event's reason text.
* ``keel_order_roundtrip_seconds{venue}``: per child, from its ``PENDING`` event (sent) to
  its first venue answer (acknowledged, filled or rejected), from the event timestamps.
* ``keel_limit_breaches_total{limit,severity}``: audit rows with action ``risk.breach``
  (payload :meth:`keel.risk.limits.Breach.to_dict`), as ``keel run`` records them.
* gauges: ``keel_open_orders``, ``keel_equity``, ``keel_gross_exposure``,
  ``keel_portfolio_volatility``, ``keel_portfolio_var{confidence,horizon_days}``,
  ``keel_limit_breaches_active{limit,severity}`` and ``keel_store_up`` (1 when the store
  answered this scrape).
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import select

from keel.app.metrics import LATENCY_BUCKETS
from keel.errors import KeelError
from keel.store.db import Store
from keel.store.tables import AuditRow, ChildOrderRow, FillRow, OrderEventRow, OrderRow
from keel.types import OrderStatus

log = logging.getLogger("keel.app.scrape")

BREACH_ACTION = "risk.breach"
_ANSWERS = {OrderStatus.ACKNOWLEDGED.value, OrderStatus.PARTIALLY_FILLED.value,
            OrderStatus.FILLED.value, OrderStatus.REJECTED.value}
_OPEN = [s.value for s in OrderStatus if s.is_open]


def reason_code(reason: str) -> str:
    """``"MAX_NOTIONAL: order notional 6e6 > 5e6"`` -> ``"MAX_NOTIONAL"``."""
    code = reason.split(":", 1)[0].strip()
    return code or "unknown"


def _histogram(values: list[float]) -> tuple[list[tuple[str, float]], float]:
    buckets, total = [], 0.0
    for b in LATENCY_BUCKETS:
        buckets.append((repr(float(b)), float(sum(1 for v in values if v <= b))))
    buckets.append(("+Inf", float(len(values))))
    total = float(sum(values))
    return buckets, total


class StoreCollector(Collector):
    """Counters and gauges recomputed from ``store`` on every ``collect()``.

    Args:
        store: the database the trading process writes.
        book: returns ``(equity, gross_exposure, weights)`` of the ledger, or None.
        risk: returns the risk view's dict for the current weights, or None.
    """

    def __init__(self, store: Store,
                 book: Callable[[], tuple[float, float, dict[str, float]]] | None = None,
                 risk: Callable[[dict[str, float]], dict[str, Any]] | None = None) -> None:
        self.store, self.book, self.risk = store, book, risk

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("keel_store_up", "1 when the store answered this scrape.")
        try:
            families = self._from_store()
        except KeelError as exc:
            log.warning("scrape: store unavailable: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families
        yield from self._from_book()

    def _from_store(self) -> list[Metric]:
        with self.store.session() as s:
            kids = s.execute(select(ChildOrderRow.client_order_id, ChildOrderRow.side,
                                    ChildOrderRow.status, ChildOrderRow.venue,
                                    ChildOrderRow.parent_id)).all()
            fills = s.execute(select(FillRow.client_order_id, FillRow.symbol, FillRow.qty,
                                     FillRow.price, FillRow.venue)).all()
            events = s.execute(select(OrderEventRow.client_order_id, OrderEventRow.to_status,
                                      OrderEventRow.reason, OrderEventRow.timestamp)
                               .order_by(OrderEventRow.id)).all()
            n_open = len(s.execute(select(OrderRow.id).where(
                OrderRow.status.in_(_OPEN))).all())
            breaches = s.execute(select(AuditRow.payload).where(
                AuditRow.action == BREACH_ACTION)).scalars().all()
        venue_of: dict[str, str] = {}
        for coid, _, _, _, venue in fills:
            venue_of.setdefault(coid, venue or "unknown")

        orders = CounterMetricFamily("keel_orders", "Orders sent to a venue.",
                                     labels=["venue", "side"])
        tally = Tally((venue_of.get(c) or v or "unknown", side)
                      for c, side, st, v, _ in kids if st != OrderStatus.NEW.value)
        for (venue, side), n in sorted(tally.items()):
            orders.add_metric([venue, side], n)

        fam_f = CounterMetricFamily("keel_fills", "Fills received.", labels=["venue", "symbol"])
        fam_n = CounterMetricFamily("keel_filled_notional", "Notional filled, currency.",
                                    labels=["venue"])
        nf: Tally[tuple[str, str]] = Tally()
        notional: dict[str, float] = {}
        for _, sym, qty, price, venue in fills:
            v = venue or "unknown"
            nf[(v, sym)] += 1
            notional[v] = notional.get(v, 0.0) + float(qty * price)
        for (v, sym), n in sorted(nf.items()):
            fam_f.add_metric([v, sym], n)
        for v, x in sorted(notional.items()):
            fam_n.add_metric([v], x)

        rejects = CounterMetricFamily("keel_rejects", "Orders refused (pre-trade or venue).",
                                      labels=["reason"])
        sent: dict[str, Any] = {}
        lat: dict[str, list[float]] = {}
        rj: Tally[str] = Tally()
        # A parent refused because all its children were refused is one reject, not n + 1.
        parent_of = {c: pid for c, _, _, _, pid in kids}
        kid_rejected = {parent_of[c] for c, to, _, _ in events
                        if to == OrderStatus.REJECTED.value and c in parent_of}
        for coid, to, reason, ts in events:
            if to == OrderStatus.REJECTED.value and coid not in kid_rejected:
                rj[reason_code(reason or "")] += 1
            if to == OrderStatus.PENDING.value:
                sent.setdefault(coid, ts)
            elif to in _ANSWERS and coid in sent and sent[coid] is not None:
                lat.setdefault(venue_of.get(coid, "unknown"), []).append(
                    max(0.0, (ts - sent[coid]).total_seconds()))
                sent[coid] = None  # only the first answer counts
        for r, n in sorted(rj.items()):
            rejects.add_metric([r], n)
        rt = HistogramMetricFamily("keel_order_roundtrip_seconds",
                                   "Order sent to first venue acknowledgement, seconds.",
                                   labels=["venue"])
        for v, values in sorted(lat.items()):
            buckets, total = _histogram(values)
            rt.add_metric([v], buckets, total)

        br = CounterMetricFamily("keel_limit_breaches", "Risk-limit breaches.",
                                 labels=["limit", "severity"])
        bt = Tally((str(p.get("code", "unknown")), str(p.get("severity", "unknown")))
                   for p in breaches)
        for (code, sev), n in sorted(bt.items()):
            br.add_metric([code, sev], n)
        oo = GaugeMetricFamily("keel_open_orders", "Orders working at venues.")
        oo.add_metric([], n_open)
        return [orders, fam_f, fam_n, rejects, rt, br, oo]

    def _from_book(self) -> Iterator[Metric]:
        if self.book is None:
            return
        try:
            equity, gross, weights = self.book()
        except KeelError as exc:
            log.warning("scrape: ledger unavailable: %s", exc)
            return
        eq = GaugeMetricFamily("keel_equity", "Portfolio equity, currency.")
        eq.add_metric([], equity)
        ge = GaugeMetricFamily("keel_gross_exposure", "Gross exposure, fraction of NAV.")
        ge.add_metric([], gross)
        yield eq
        yield ge
        if self.risk is None:
            return
        try:
            r = self.risk(weights)
        except KeelError as exc:
            log.warning("scrape: risk unavailable: %s", exc)
            return
        vol = GaugeMetricFamily("keel_portfolio_volatility",
                                "Predicted annualised portfolio volatility (fraction).")
        vol.add_metric([], float(r.get("volatility") or 0.0))
        yield vol
        var = GaugeMetricFamily("keel_portfolio_var", "Value at risk, fraction of NAV.",
                                labels=["confidence", "horizon_days"])
        normal = r.get("var_cvar", {}).get("normal")
        if normal:
            var.add_metric([str(r["confidence"]), str(r["horizon_days"])], normal["var"])
        yield var
        active = GaugeMetricFamily("keel_limit_breaches_active",
                                   "Limits breached by the current book.",
                                   labels=["limit", "severity"])
        for (code, sev), n in sorted(Tally((b["code"], b["severity"])
                                           for b in r.get("breaches", [])).items()):
            active.add_metric([code, sev], n)
        yield active
