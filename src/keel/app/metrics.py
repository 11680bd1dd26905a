"""Prometheus metrics of a running keel, on a registry of its own (no global state).

One meaning in both modes. Every count, histogram and gauge a desk alerts on is a function of
the store (:class:`keel.app.scrape.StoreCollector`, GROUP BY queries at scrape time), so the
standalone ``keel serve`` and the service embedded in ``keel run --serve`` report the same
numbers for the same store. The trading process adds the one thing only it can observe: how
long an order-manager step takes (``keel_oms_step_seconds``).

Names follow Prometheus conventions (``keel_`` prefix, ``_total`` counters, base units);
labels come from fixed sets (:data:`VENUES`, sides, levels) or bounded code lists (reject
reasons, limit codes), never symbols or order ids. Every metric is documented in
``docs/service.md`` with the alert rules of ``deploy/prometheus/keel-rules.yml``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

#: latency buckets, seconds (100 µs .. 30 s)
LATENCY_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: the venue label's values: the route an order took (``exchange`` is the simulated
#: exchange reporting under its own id), ``unknown`` when the store does not say
VENUES = ("paper", "fix", "rest", "exchange", "unknown")


def venue_label(raw: str | None) -> str:
    """The fixed-set label of a venue name as brokers write it into the store.

    ``"fix"``/``"fix-…"`` -> ``fix``; ``"rest"`` -> ``rest``; ``"paper"``/``"paper-…"`` ->
    ``paper``; ``"KEELX"`` (the simulated exchange's own id) -> ``exchange``; anything else,
    empty or missing -> ``unknown``.
    """
    v = (raw or "").strip().lower()
    if not v:
        return "unknown"
    for name in ("fix", "rest", "paper"):
        if v == name or v.startswith(name + "-") or v.startswith(name + "_"):
            return name
    if v in ("keelx", "exchange", "local"):
        return "exchange"
    return "unknown"


class KeelMetrics:
    """The metrics one trading process exposes on ``/metrics``.

    The process updates :attr:`oms_step` itself; :meth:`attach` adds the store-derived
    families (``create_app`` attaches its :class:`~keel.app.scrape.StoreCollector`).
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.oms_step = Histogram(
            "keel_oms_step_seconds",
            "Wall time of one order-manager step (send due slices, drain venue events), "
            "seconds; observed by the trading process only.",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self._attached: list[Collector] = []

    def attach(self, collector: Collector) -> None:
        """Add ``collector``'s families to this registry (once; a second call is a no-op)."""
        if collector in self._attached:
            return
        if self._attached:  # one store per process: replace the previous view
            for old in self._attached:
                self.registry.unregister(old)
            self._attached.clear()
        self.registry.register(collector)
        self._attached.append(collector)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
