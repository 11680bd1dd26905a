"""Prometheus metrics derived from the store at scrape time, in both service modes.

The standalone ``keel serve`` and the service embedded in ``keel run --serve`` register the
same :class:`StoreCollector`, so a metric means one thing whichever process serves it. Every
family is a handful of SQL aggregates (GROUP BY), not a Python pass over the tables:

* ``keel_parent_orders_total{side}``: parent orders the order manager accepted into the store.
* ``keel_child_orders_sent_total{venue,side}``: child slices sent to a venue (that reached
  ``PENDING``); slices refused or cancelled before sending are not counted.
* ``keel_fills_total{venue,side}``, ``keel_filled_notional_total{venue}`` (currency).
* ``keel_rejects_total{level,reason}``: ``level="child"`` a slice the venue refused,
  ``level="parent"`` a parent refused before any of its slices was (pre-trade); the reason is
  the code before the first ``:`` of the event's reason text.
* ``keel_venue_roundtrip_seconds{venue}``: per sent slice, from its ``PENDING`` event to the
  first venue answer (acknowledged, filled or rejected), from the event timestamps.
* ``keel_limit_breaches_total{limit,severity}``: audit rows ``risk.breach`` (limit codes
  upper case, severities lower case, as in ``keel.risk.limits``).
* ``keel_cycles_total{outcome}``: decision cycles (``traded``, ``held``, ``failed``) from the
  audit rows ``live.cycle`` / ``live.cycle_failed``.
* gauges: ``keel_open_orders{level}``, ``keel_equity``, ``keel_gross_exposure``,
  ``keel_portfolio_volatility``, ``keel_portfolio_var{confidence,horizon_days}``,
  ``keel_limit_breaches_active{limit,severity}`` and ``keel_store_up``.

The venue label is :func:`keel.app.metrics.venue_label` of the slice's own venue column when
the broker recorded it, else of the venue on its first fill; labels never carry symbols.
"""

from __future__ import annotations

import logging
import re
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Float, and_, case, exists, func, select, type_coerce

from keel.app.metrics import LATENCY_BUCKETS, venue_label
from keel.errors import KeelError
from keel.store.db import Store
from keel.store.tables import AuditRow, ChildOrderRow, FillRow, OrderEventRow, OrderRow
from keel.types import OrderStatus

log = logging.getLogger("keel.app.scrape")

BREACH_ACTION = "risk.breach"
CYCLE_ACTION = "live.cycle"
CYCLE_FAILED_ACTION = "live.cycle_failed"
_ANSWERS = [OrderStatus.ACKNOWLEDGED.value, OrderStatus.PARTIALLY_FILLED.value,
            OrderStatus.FILLED.value, OrderStatus.REJECTED.value]
_OPEN = [s.value for s in OrderStatus if s.is_open]

_HELP = {
    "keel_parent_orders": "Parent orders accepted by the order manager.",
    "keel_child_orders_sent": "Child slices sent to a venue.",
    "keel_fills": "Fills received.",
    "keel_filled_notional": "Notional filled, currency.",
    "keel_rejects": "Orders refused: level=parent pre-trade, level=child by the venue.",
    "keel_venue_roundtrip_seconds": "Slice sent to the venue's first answer, seconds.",
    "keel_limit_breaches": "Risk-limit breaches recorded (new breaches of the book).",
    "keel_cycles": "Decision cycles run, by outcome (traded, held, failed).",
    "keel_open_orders": "Orders not yet terminal, by level (parent, child).",
    "keel_store_up": "1 when the store answered this scrape.",
    "keel_equity": "Portfolio equity, currency.",
    "keel_gross_exposure": "Gross exposure, fraction of NAV.",
    "keel_portfolio_volatility": "Predicted annualised portfolio volatility (fraction).",
    "keel_portfolio_var": "Value at risk, fraction of NAV.",
    "keel_limit_breaches_active": "Limits breached by the current book.",
}


_COUNTERS = {"keel_parent_orders", "keel_child_orders_sent", "keel_fills",
             "keel_filled_notional", "keel_rejects", "keel_limit_breaches", "keel_cycles"}


def reason_code(reason: str) -> str:
    """``"MAX_NOTIONAL: order notional 6e6 > 5e6"`` -> ``"MAX_NOTIONAL"``; free text (a venue's
    own reject message) -> ``"other"``, so the label set stays bounded."""
    code = reason.split(":", 1)[0].strip()
    if not code:
        return "unknown"
    return code if re.fullmatch(r"[A-Z][A-Z0-9_]{0,39}", code) else "other"


def histogram_buckets(values: np.ndarray) -> tuple[list[tuple[str, float]], float]:
    """Cumulative ``(le, count)`` pairs over :data:`LATENCY_BUCKETS` and the sum."""
    v = np.sort(np.asarray(values, dtype=float))
    counts = np.searchsorted(v, np.asarray(LATENCY_BUCKETS), side="right")
    buckets = [(repr(float(b)), float(n)) for b, n in zip(LATENCY_BUCKETS, counts, strict=True)]
    buckets.append(("+Inf", float(v.size)))
    return buckets, float(v.sum())


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

    def describe(self) -> Iterator[Metric]:
        """The family names (no store access), so a registry can check for duplicates."""
        for name, text in _HELP.items():
            if name in _COUNTERS:
                yield CounterMetricFamily(name, text)
            elif name == "keel_venue_roundtrip_seconds":
                yield HistogramMetricFamily(name, text)
            else:
                yield GaugeMetricFamily(name, text)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("keel_store_up", _HELP["keel_store_up"])
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
        C, F, E, P, A = ChildOrderRow, FillRow, OrderEventRow, OrderRow, AuditRow
        first_fill_venue = (select(func.min(F.venue))
                            .where(F.client_order_id == C.client_order_id)
                            .correlate(C).scalar_subquery())
        venue = func.coalesce(C.venue, first_fill_venue)
        was_sent = exists().where(and_(E.client_order_id == C.client_order_id,
                                       E.to_status == OrderStatus.PENDING.value))
        child_rejected = (select(C.parent_id).join(E, E.client_order_id == C.client_order_id)
                          .where(E.to_status == OrderStatus.REJECTED.value))
        sent_at = func.min(case((E.to_status == OrderStatus.PENDING.value, E.timestamp)))
        answered_at = func.min(case((E.to_status.in_(_ANSWERS), E.timestamp)))
        with self.store.session() as s:
            parents = s.execute(select(P.side, func.count()).group_by(P.side)).all()
            sent = s.execute(select(venue, C.side, func.count()).where(was_sent)
                             .group_by(venue, C.side)).all()
            traded = type_coerce(F.qty, Float) * type_coerce(F.price, Float)
            fills = s.execute(select(F.venue, F.side, func.count(), func.sum(traded))
                             .group_by(F.venue, F.side)).all()
            rq = (select(E.reason.label("reason"), C.id.is_not(None).label("is_child"))
                  .outerjoin(C, C.client_order_id == E.client_order_id)
                  .where(E.to_status == OrderStatus.REJECTED.value,
                         ~E.client_order_id.in_(child_rejected)).subquery())
            rejects = s.execute(select(rq.c.reason, func.count(), rq.c.is_child)
                                .group_by(rq.c.reason, rq.c.is_child)).all()
            rt = (select(E.client_order_id.label("coid"), sent_at.label("sent"),
                         answered_at.label("answered"))
                  .where(E.to_status.in_([OrderStatus.PENDING.value, *_ANSWERS]))
                  .group_by(E.client_order_id).subquery())
            trips = s.execute(select(venue, rt.c.sent, rt.c.answered)
                              .join(C, C.client_order_id == rt.c.coid)
                              .where(rt.c.sent.is_not(None), rt.c.answered.is_not(None))).all()
            n_open_parents = int(s.scalar(select(func.count()).select_from(P)
                                          .where(P.status.in_(_OPEN))) or 0)
            n_open_kids = int(s.scalar(select(func.count()).select_from(C)
                                       .where(C.status.in_(_OPEN))) or 0)
            # JSON fields through a subquery: PostgreSQL must see the same GROUP BY columns
            bq = (select(A.payload["code"].as_string().label("code"),
                         A.payload["severity"].as_string().label("sev"))
                  .where(A.action == BREACH_ACTION).subquery())
            breaches = s.execute(select(bq.c.code, bq.c.sev, func.count())
                                 .group_by(bq.c.code, bq.c.sev)).all()
            cq = (select(A.action.label("action"),
                         A.payload["traded"].as_boolean().label("traded"))
                  .where(A.action.in_([CYCLE_ACTION, CYCLE_FAILED_ACTION])).subquery())
            cycles = s.execute(select(cq.c.action, cq.c.traded, func.count())
                               .group_by(cq.c.action, cq.c.traded)).all()

        def counter(name: str, labels: list[str],
                    tally: Tally[tuple[str, ...]] | dict[tuple[str, ...], float]
                    ) -> CounterMetricFamily:
            fam = CounterMetricFamily(name, _HELP[name], labels=labels)
            for key, n in sorted(tally.items()):
                fam.add_metric(list(key), float(n))
            return fam

        out: list[Metric] = []
        out.append(counter("keel_parent_orders", ["side"],
                           Tally({(str(side),): n for side, n in parents})))
        t: Tally[tuple[str, ...]] = Tally()
        for v, side, n in sent:
            t[(venue_label(v), str(side))] += n
        out.append(counter("keel_child_orders_sent", ["venue", "side"], t))
        t = Tally()
        notional: dict[tuple[str, ...], float] = {}
        for v, side, n, x in fills:
            t[(venue_label(v), str(side))] += n
            key = (venue_label(v),)
            notional[key] = notional.get(key, 0.0) + float(x or 0)
        out.append(counter("keel_fills", ["venue", "side"], t))
        out.append(counter("keel_filled_notional", ["venue"], notional))
        t = Tally()
        for reason, n, is_child in rejects:
            t[("child" if is_child else "parent", reason_code(reason or ""))] += n
        out.append(counter("keel_rejects", ["level", "reason"], t))
        rtf = HistogramMetricFamily("keel_venue_roundtrip_seconds",
                                    _HELP["keel_venue_roundtrip_seconds"], labels=["venue"])
        lat: dict[str, list[float]] = {}
        for v, t0, t1 in trips:
            lat.setdefault(venue_label(v), []).append(max(0.0, (t1 - t0).total_seconds()))
        for v, values in sorted(lat.items()):
            buckets, total = histogram_buckets(np.array(values))
            rtf.add_metric([v], buckets, total)
        out.append(rtf)
        t = Tally()
        for c, sv, n in breaches:
            t[(str(c or "unknown").upper(), str(sv or "unknown").lower())] += n
        out.append(counter("keel_limit_breaches", ["limit", "severity"], t))
        t = Tally()
        for action, traded, n in cycles:
            t[("failed" if action == CYCLE_FAILED_ACTION
               else "traded" if traded else "held",)] += n
        out.append(counter("keel_cycles", ["outcome"], t))
        oo = GaugeMetricFamily("keel_open_orders", _HELP["keel_open_orders"],
                               labels=["level"])
        oo.add_metric(["parent"], n_open_parents)
        oo.add_metric(["child"], n_open_kids)
        out.append(oo)
        return out

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
        for (code, sev), n in sorted(Tally((str(b["code"]).upper(), str(b["severity"]).lower())
                                           for b in r.get("breaches", [])).items()):
            active.add_metric([code, sev], n)
        yield active
