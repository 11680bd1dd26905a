"""`keel demo`: the main job, end to end on the built-in synthetic market.

The demo is a list of named steps sharing one :class:`DemoContext`; each step reads what the
previous ones produced and records what it made. Everything it makes is stored in the run's
database (``<out_dir>/keel.db`` by default): the run with its configuration and metrics, and an
audit entry per step. Time comes from a simulated clock standing at the last session close.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.clock import SimulatedClock
from keel.config import KeelConfig, config_as_dict
from keel.data.market import MarketData
from keel.store.audit import AuditLog
from keel.store.db import Store
from keel.store.runs import RunRegistry, RunStatus


@dataclass
class DemoContext:
    """What the steps share. ``results`` collects the summary, step by step."""

    config: KeelConfig
    out_dir: Path
    store: Store
    clock: SimulatedClock
    run_id: str
    market: MarketData | None = None
    results: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    audit: AuditLog | None = None
    progress: Callable[[str, str], None] | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)

    def record(self, step: str, **values: Any) -> None:
        """Add ``values`` to the summary and to the audit log."""
        self.results.update(values)
        self.sections.setdefault(step, {}).update(values)
        if self.audit is not None:
            self.audit.append("demo", f"demo.{step}", "run", self.run_id, values,
                              self.clock.now())


Step = tuple[str, str, Callable[[DemoContext], None]]


def step_market(ctx: DemoContext) -> None:
    from keel.app.pipeline import load_market

    ctx.market = load_market(ctx.config)
    m = ctx.market
    ctx.clock.set(m.now.to_pydatetime())
    adv = m.latest("adv_notional")
    assert m.sectors is not None  # MarketData always fills sectors in
    ctx.record("market", n_assets=int(m.n_assets), n_days=len(m.prices),
               first_session=str(m.dates[0].date()), last_session=str(m.dates[-1].date()),
               n_sectors=int(m.sectors.nunique()),
               median_adv_usd=float(adv.median()),
               median_daily_vol=float(m.latest("volatility").median()))


from keel.app.demo_steps import (  # noqa: E402  (the steps need DemoContext above)
    step_book,
    step_decide,
    step_report,
    step_risk,
    step_tca,
    step_trade,
    step_venue,
)

DEFAULT_STEPS: list[Step] = [
    ("market", "Load the market (synthetic by default)", step_market),
    ("risk", "Fit the fundamental risk model", step_risk),
    ("venue", "Start the simulated exchange on localhost and connect", step_venue),
    ("decide", "Score, optimize, rebalance triggers, governance, schedules, OMS", step_decide),
    ("trade", "Work VWAP / IS children through the session", step_trade),
    ("book", "Mark the ledger, reconcile with the exchange", step_book),
    ("tca", "Transaction cost analysis of every parent", step_tca),
    ("report", "Write the HTML report", step_report),
]


def run_demo(config: KeelConfig, *, steps: list[Step] | None = None,
             progress: Callable[[str, str], None] | None = None) -> DemoContext:
    """Run the demo steps; returns the context with the summary and the store.

    Args:
        config: the application configuration (``[general] out_dir``, ``[store] url``, ...).
        steps: the steps to run (default :data:`DEFAULT_STEPS`).
        progress: called with (step name, description) before each step.

    The run is recorded in the store as ``running`` first and finished as ``succeeded`` or
    ``failed`` (with the error), so a failed demo leaves an honest trace.
    """
    from keel.types import utc

    out_dir = Path(config.general.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = Store.from_url(config.store.url)
    store.upgrade()
    clock = SimulatedClock(utc(2000, 1, 1))
    runs = RunRegistry(store)
    run_id = f"demo-{uuid.uuid4().hex[:12]}"
    ctx = DemoContext(config, out_dir, store, clock, run_id, audit=AuditLog(store),
                      progress=progress)
    runs.start(run_id, "demo", config_as_dict(config), clock.now())
    try:
        for name, description, fn in steps or DEFAULT_STEPS:
            if progress is not None:
                progress(name, description)
            t0 = time.perf_counter()
            fn(ctx)
            ctx.timings[name] = time.perf_counter() - t0
    except BaseException as exc:
        _close(ctx)
        runs.finish(run_id, RunStatus.FAILED, {"error": f"{type(exc).__name__}: {exc}"},
                    clock.now())
        raise
    _close(ctx)
    runs.finish(run_id, RunStatus.SUCCEEDED, _json_metrics(ctx.results), clock.now())
    return ctx


def _close(ctx: DemoContext) -> None:
    """Log out of the venue and stop the in-process exchange (idempotent)."""
    venue = ctx.artifacts.pop("venue", None)
    if venue is not None:
        venue.stop()


def _json_metrics(results: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in results.items() if isinstance(v, int | float | str | bool)}
