"""Prometheus metrics of a running keel, on a registry of its own (no global state).

Names follow Prometheus conventions (``keel_`` prefix, ``_total`` counters, base units).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: round-trip latency buckets, seconds (100 µs .. 5 s)
LATENCY_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0)


class KeelMetrics:
    """The metrics one keel process exposes on ``/metrics``."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.orders = Counter("keel_orders_total", "Orders sent to a venue.",
                              ["venue", "side"], registry=r)
        self.fills = Counter("keel_fills_total", "Fills received.", ["venue", "symbol"],
                             registry=r)
        self.filled_notional = Counter("keel_filled_notional_total",
                                       "Notional filled, currency.", ["venue"], registry=r)
        self.rejects = Counter("keel_rejects_total", "Orders refused (pre-trade or venue).",
                               ["reason"], registry=r)
        self.roundtrip = Histogram("keel_order_roundtrip_seconds",
                                   "Order sent to first venue acknowledgement, seconds.",
                                   ["venue"], buckets=LATENCY_BUCKETS, registry=r)
        self.limit_breaches = Counter("keel_limit_breaches_total", "Risk-limit breaches.",
                                      ["limit", "severity"], registry=r)
        self.limit_breaches_active = Gauge("keel_limit_breaches_active",
                                           "Limits breached by the current book.",
                                           ["limit", "severity"], registry=r)
        self.portfolio_vol = Gauge("keel_portfolio_volatility",
                                   "Predicted annualised portfolio volatility (fraction).",
                                   registry=r)
        self.portfolio_var = Gauge("keel_portfolio_var", "Value at risk, fraction of NAV.",
                                   ["confidence", "horizon_days"], registry=r)
        self.equity = Gauge("keel_equity", "Portfolio equity, currency.", registry=r)
        self.gross_exposure = Gauge("keel_gross_exposure", "Gross exposure, fraction of NAV.",
                                    registry=r)
        self.cycles = Counter("keel_cycles_total", "Decision cycles run.", ["outcome"],
                              registry=r)
        self.open_orders = Gauge("keel_open_orders", "Orders working at venues.", registry=r)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
