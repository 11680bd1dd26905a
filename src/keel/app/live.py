"""`keel run`: the live decision loop, and the trading desk it shares with `keel demo`.

A :class:`Desk` wires the store, the ledger, the order manager (the one risk gate), the
broker and a :class:`~keel.app.cycle.DecisionCycle`; venues and brokers come from
:mod:`keel.app.venue`.

Restart semantics (see ``docs/live.md``): the order manager reloads open orders from the store
and reconciles them with the venue (``OrderManager.recover``); the ledger is rebuilt from its
own entries and then catches up with every fill the store holds (``Desk.sync_ledger``, exec
ids make it idempotent); the simulated clock resumes after the last recorded cycle; and a
cycle never trades while a parent is still working, so nothing is stacked twice.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from keel.app.cycle import CycleResult, DecisionCycle
from keel.app.venue import ACCOUNT
from keel.errors import ConfigError, KeelError
from keel.types import Fill, Order, to_money

if TYPE_CHECKING:
    from keel.app.metrics import KeelMetrics
    from keel.clock import Clock, SimulatedClock
    from keel.data.market import MarketData
    from keel.execution.oms import OrderManager
    from keel.portfolio.ledger import Ledger
    from keel.risk.limits import RiskLimits
    from keel.store.db import Store
    from keel.store.orders_repo import OrderRecord
    from keel.venues.base import Broker

ACTOR = "live"
log = logging.getLogger("keel.app.live")


# --------------------------------------------------------------------------- the desk


@dataclass
class DeskStats:
    cycles: int = 0
    traded_cycles: int = 0
    orders: int = 0
    rejects: int = 0
    fills: int = 0
    engine_switches: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    alerts: int = 0
    last: CycleResult | None = None
    #: the latest cycle summaries (bounded: the audit log keeps them all)
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=256))


class Desk:
    """Store + ledger + order manager + broker + decision cycle, wired once.

    Args:
        store: the upgraded store.
        clock: the clock (simulated in the demo and tests).
        broker: the venue.
        cycle: the decision cycle.
        metrics: Prometheus counters to update (optional).
        venue_name: label of the venue in the metrics.
        max_order_notional: pre-trade cap of the order manager, currency (default:
            ``execution.max_order_notional`` of the cycle's config).
        limits: risk limits checked on the book after every cycle; each new breach is
            audited (``risk.breach``, what ``keel serve`` counts) and counted in the metrics.
    """

    def __init__(self, store: Store, clock: Clock, broker: Broker, cycle: DecisionCycle, *,
                 metrics: KeelMetrics | None = None, venue_name: str = "exchange",
                 max_order_notional: float | None = None,
                 limits: RiskLimits | None = None) -> None:
        from keel.execution.checks import MaxNotional
        from keel.execution.oms import OrderManager
        from keel.portfolio.ledger import Ledger
        from keel.store.audit import AuditLog
        from keel.store.orders_repo import OrdersRepo

        self.store, self.clock, self.broker, self.cycle = store, clock, broker, cycle
        cycle.pipeline.attach_store(store)  # learned cost multipliers survive a restart
        if max_order_notional is None:
            max_order_notional = cycle.config.execution.max_order_notional
        self.metrics, self.venue_name = metrics, venue_name
        self.repo = OrdersRepo(store)
        self.audit = AuditLog(store)
        self.ledger: Ledger = Ledger.open(store, clock=clock)
        self.oms: OrderManager = OrderManager(
            broker, self.repo, clock, checks=[MaxNotional(to_money(max_order_notional))],
            sleep=lambda s: time.sleep(min(s, 0.05)), carry_remainder=True,
            positions=lambda: {s: p.qty for s, p in self.ledger.positions.items()})
        self.oms.add_fill_listener(self._on_fill)
        self.stats = DeskStats()
        self._last_rebalance: datetime | None = None
        self._last_rebalance_known = False
        self.limits = limits
        self._breaches: set[tuple[str, str, str]] = set()
        self._restore_state()

    def _restore_state(self) -> None:
        """Take back the cycle's memory (drawdown watermark, annual turnover spent, standing
        target) that an earlier process of this desk (``general.name``) saved."""
        from keel.store.desk_state_repo import DeskStateRepo

        self.state_repo = DeskStateRepo(self.store)
        self.desk_name = self.cycle.config.general.name[:64]
        rec = self.state_repo.get(self.desk_name)
        self._state_version = 0 if rec is None else rec.version
        if rec is not None:
            self.cycle.restore(rec.state)
            self.audit.append(ACTOR, "live.state_restored", "desk", self.desk_name,
                              {"version": rec.version, "peak_equity": rec.state.get(
                                  "peak_equity"), "drawdown": self.cycle.drawdown},
                              self.clock.now())

    def _save_state(self, now: datetime) -> None:
        rec = self.state_repo.put(self.desk_name, self.cycle.state(), now,
                                  expected_version=self._state_version)
        self._state_version = rec.version

    def _on_fill(self, fill: Fill, parent: OrderRecord) -> None:
        if self.ledger.apply_fill(fill):
            self.stats.fills += 1

    # ------------------------------------------------------------------ life cycle

    def fund(self, amount: Decimal | int) -> bool:
        """Deposit ``amount`` once: a restarted desk whose ledger is funded does nothing."""
        if self.ledger.state.net_deposits != 0:
            return False
        self.ledger.deposit(Decimal(amount))
        return True

    def sync_ledger(self) -> int:
        """Book every stored fill the ledger has not seen (exec ids make this idempotent)."""
        fills = [f for f, _ in self.repo.fills()]
        return self.ledger.apply_fills(fills) if fills else 0

    def recover(self) -> dict[str, Any]:
        """After a restart: reconcile open orders with the venue, then catch the ledger up."""
        rep = self.oms.recover()
        caught_up = self.sync_ledger()
        out = {"loaded": rep.loaded, "resubmitted": len(rep.resubmitted),
               "expired": len(rep.expired), "adopted": len(rep.adopted),
               "orphans_cancelled": len(rep.orphans_cancelled), "ledger_caught_up": caught_up}
        self.audit.append(ACTOR, "live.recover", "desk", ACCOUNT, out, self.clock.now())
        return out

    def working(self) -> int:
        """Parent orders still open in the order manager."""
        return len(self.oms.open_parents())

    def last_rebalance(self) -> datetime | None:
        """Time of the newest rebalance: the newest parent order the store holds that was
        not refused (read once, then kept up to date), so the cooldown survives a restart
        even when the process died between submitting and auditing its cycle."""
        if not self._last_rebalance_known:
            from keel.types import OrderStatus

            stamps = [p.order.created_at for p in self.repo.parents()
                      if p.status is not OrderStatus.REJECTED and isinstance(p.order, Order)]
            self._last_rebalance = max(stamps) if stamps else None
            self._last_rebalance_known = True
        return self._last_rebalance

    def last_cycle_time(self) -> datetime | None:
        rows = self.audit.query(action="live.cycle", newest_first=True, limit=1)
        return datetime.fromisoformat(rows[0].payload["now"]) if rows else None

    def switch_engine(self, engine: str) -> bool:
        """Use ``engine`` from the next cycle (audited as ``live.engine`` when it changes)."""
        old = self.cycle.engine
        new = self.cycle.set_engine(engine)
        if new is old:
            return False
        self.stats.engine_switches += 1
        self.audit.append(ACTOR, "live.engine", "cycle", new.value,
                          {"from": old.value, "to": new.value}, self.clock.now())
        return True

    # ------------------------------------------------------------------ work

    def decide(self, market: MarketData, prices: Mapping[str, Decimal], *,
               force: bool = False, dry_run: bool = False) -> CycleResult:
        """One decision cycle at ``clock.now()``; recorded in the audit log."""
        now = self.clock.now()
        held = {s for s in self.ledger.positions}
        marks = {s: p for s, p in prices.items() if s in held}
        if marks:
            self.ledger.mark(marks)
        try:
            res = self.cycle.run(market, now=now, state=self.ledger.state, prices=prices,
                                 clock=self.clock, oms=None if dry_run else self.oms,
                                 last_rebalance=self.last_rebalance(), working=self.working(),
                                 force=force)
            self.stats.consecutive_failures = 0
        except (KeelError, ArithmeticError, ValueError, KeyError, RuntimeError,
                np.linalg.LinAlgError) as exc:
            res = self._failed_cycle(now, exc)
        if res.traded:
            self._last_rebalance, self._last_rebalance_known = now, True
        self._save_state(now)
        self._learn_costs(market, now)
        self._check_limits(market, now)
        st = self.stats
        st.cycles += 1
        st.traded_cycles += int(res.traded)
        st.orders += len(res.orders)
        st.rejects += len(res.rejected)
        st.last = res
        summary = res.to_dict()
        st.history.append(summary)
        self.audit.append(ACTOR, "live.cycle", "cycle", now.isoformat(), summary, now)
        # orders, rejects, cycles, equity: /metrics counts them from the store (one meaning
        # with `keel serve`); see keel.app.scrape
        return res

    def _learn_costs(self, market: MarketData, now: datetime) -> None:
        """Finished parents and their fills -> TCA -> the learned cost multipliers (stored);
        the next cycle prices with them. A failure here is audited, never fatal."""
        pipe = self.cycle.pipeline
        if pipe.feedback is None:
            return
        try:
            ctx = pipe.trade_context(market.as_of(now),
                                     max(float(self.ledger.state.equity), 1.0))
            out = pipe.feedback.observe_store(self.repo, ctx, now)
        except (KeelError, ArithmeticError, ValueError) as exc:
            self.audit.append(ACTOR, "live.cost_feedback_failed", "costs", "default",
                              {"reason": f"{type(exc).__name__}: {exc}"[:2000]}, now)
            return
        if out.observed:
            self.audit.append(ACTOR, "live.cost_feedback", "costs", "default",
                              {"observed": len(out.observed), "multipliers": out.multipliers,
                               "version": out.version}, now)

    def _failed_cycle(self, now: datetime, exc: BaseException) -> CycleResult:
        """A cycle that raised: HOLD with the reason, audited; escalate repeated failures
        (``governance.alert_after_failures``: an alert; ``kill_after_failures``: the kill
        switch)."""
        from keel.app.cycle import StageReport

        st = self.stats
        st.failures += 1
        st.consecutive_failures += 1
        code = f"CYCLE_FAILED_{type(exc).__name__.upper()}"
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("cycle at %s failed, holding: %s", now.isoformat(), reason)
        res = CycleResult(now=now, engine=self.cycle.engine)
        res.stages.append(StageReport("triggers", ("HOLD", code), {"reason": reason[:500]}))
        self.audit.append(ACTOR, "live.cycle_failed", "cycle", now.isoformat(),
                          {"code": code, "reason": reason[:2000],
                           "consecutive": st.consecutive_failures}, now)
        g = self.cycle.config.governance
        if st.consecutive_failures >= g.alert_after_failures:
            st.alerts += 1
            self.audit.append(ACTOR, "live.alert", "cycle", code,
                              {"consecutive_failures": st.consecutive_failures,
                               "reason": reason[:2000]}, now)
        if (g.kill_after_failures is not None
                and st.consecutive_failures >= g.kill_after_failures
                and not self.cycle.kill_switch.engaged):
            why = f"{st.consecutive_failures} consecutive failed cycles ({code})"
            self.cycle.kill_switch.engage(why)
            self.oms.kill_switch(why)
            self.audit.append(ACTOR, "live.kill_switch", "desk", ACCOUNT, {"reason": why}, now)
        return res

    def _check_limits(self, market: MarketData, now: datetime) -> None:
        """Audit breaches (not warnings) of the book that were not there at the last check."""
        from keel.risk.limits import RiskMonitor, Severity

        model = self.cycle.risk_
        weights = self.ledger.state.weights()
        if self.limits is None or model is None or not weights:
            return
        import pandas as pd

        known = set(model.symbols)
        breaches = RiskMonitor(self.limits, model, sectors=market.sectors).evaluate(
            pd.Series({s: w for s, w in weights.items() if s in known}, dtype=float))
        now_set = set()
        for b in breaches:
            if b.severity is Severity.WARNING:
                continue
            key = (b.code.value, b.subject, b.severity.value)
            now_set.add(key)
            if key in self._breaches:
                continue
            self.audit.append("risk", "risk.breach", "limit", b.code.value, b.to_dict(), now)
        self._breaches = now_set

    def pump(self) -> None:
        """Send due children, drain venue events, expire what is late."""
        t0 = time.perf_counter()
        self.oms.step()
        if self.metrics is not None:
            self.metrics.oms_step.observe(time.perf_counter() - t0)

    def in_flight(self) -> int:
        """Children of working parents sent to the venue and not yet acknowledged."""
        from keel.types import OrderStatus

        return sum(1 for p in self.oms.open_parents()
                   for k in self.oms.children(p.client_order_id)
                   if k.status is OrderStatus.PENDING)

    def await_venue(self, timeout_s: float = 2.0) -> int:
        """Pump until the venue has answered every child sent (asynchronous venues such as
        FIX answer on their own thread) or ``timeout_s`` passed; returns the children still
        unanswered. A simulated clock calls it before each step, so a slow machine does not
        let simulated time run past orders the venue has not seen yet."""
        deadline = time.monotonic() + timeout_s
        self.pump()
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.002)
            self.pump()
        return self.in_flight()

    def settle(self, timeout_s: float = 5.0) -> int:
        """Pump until no parent is working or ``timeout_s`` passed (asynchronous venues such
        as FIX answer on their own thread); returns the parents still working."""
        deadline = time.monotonic() + timeout_s
        self.pump()
        while self.working() and time.monotonic() < deadline:
            time.sleep(0.02)
            self.pump()
        return self.working()

    def drain(self, *, finish: bool = False, timeout_s: float = 5.0,
              advance: Callable[[], None] | None = None) -> dict[str, int]:
        """Stop trading cleanly: cancel working parents (or let them finish up to
        ``timeout_s``), collect the venue's answers, persist. Returns what was done."""
        deadline = time.monotonic() + timeout_s
        cancelled = 0
        if finish:
            while self.working() and time.monotonic() < deadline:
                if advance is not None:
                    advance()
                self.pump()
        for p in self.oms.open_parents():
            self.oms.cancel(p.client_order_id)
            cancelled += 1
        while time.monotonic() < deadline:
            self.pump()
            if not self.working():
                break
            time.sleep(0.02)
        self.sync_ledger()
        out = {"cancelled": cancelled, "still_open": self.working()}
        self.audit.append(ACTOR, "live.drain", "desk", ACCOUNT, out, self.clock.now())
        return out


# --------------------------------------------------------------------------- control


@dataclass
class Control:
    """The control file ``keel run`` re-reads every bar (JSON object, all keys optional):
    ``{"engine": "greedy" | "mean_variance", "force": true, "stop": true}``."""

    path: Path | None
    _mtime: int = -1
    _seen: dict[str, Any] = field(default_factory=dict)

    def read(self) -> dict[str, Any]:
        """The control values when the file changed since the last read, else ``{}``."""
        if self.path is None or not self.path.exists():
            return {}
        mtime = self.path.stat().st_mtime_ns
        if mtime == self._mtime:
            return {}
        self._mtime = mtime
        try:
            data = json.loads(self.path.read_text() or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"control file is not JSON ({exc})", field="control",
                              value=str(self.path)) from None
        if not isinstance(data, dict):
            raise ConfigError("control file must hold a JSON object", field="control",
                              value=str(self.path))
        unknown = set(data) - {"engine", "force", "stop"}
        if unknown:
            raise ConfigError("unknown control key", field=f"control.{sorted(unknown)[0]}")
        return data


# --------------------------------------------------------------------------- the loop


class StoreControl:
    """Control records the service appends to the audit log (``keel.app.control``), applied
    at the top of every bar: the newest engine request, the kill switch (engaged: the order
    manager's kill switch cancels everything open and the cycle holds with ``KILL_SWITCH``;
    released: both lift), and rebalance requests made after this process started."""

    def __init__(self, desk: Desk) -> None:
        from keel.app.control import read_control

        self.desk = desk
        state = read_control(desk.store)
        self._engine_at: datetime | None = None
        self._rebalance_at = state.rebalance_at  # a request older than this run is stale

    def apply(self) -> bool:
        """Apply the newest records; True when a rebalance was requested since the last bar."""
        from keel.app.control import read_control

        d = self.desk
        state = read_control(d.store)
        if state.engine is not None and state.engine_at != self._engine_at:
            self._engine_at = state.engine_at
            d.switch_engine(state.engine.value)
        if state.kill_switch and not d.cycle.kill_switch.engaged:
            d.cycle.kill_switch.engage(state.kill_switch_reason)
            d.oms.kill_switch(state.kill_switch_reason or "control.kill_switch")
        elif not state.kill_switch and d.cycle.kill_switch.engaged:
            d.cycle.kill_switch.release()
            d.oms.reset_kill_switch()
        if state.rebalance_at is not None and state.rebalance_at != self._rebalance_at:
            self._rebalance_at = state.rebalance_at
            return True
        return False


@dataclass
class LiveOptions:
    """Settings of :func:`run_live`.

    Attributes:
        interval_s: wall seconds between two bars.
        bar: simulated time per bar (simulated clock only).
        max_bars: stop after this many bars in this process (0: until stopped).
        drain_finish: on stop, let working orders finish (up to ``drain_timeout_s``) instead
            of cancelling them at once.
        control: control file (see :class:`Control`).
        nav: cash deposited into a new (never funded) ledger, currency.
        calendar: exchange calendar; a simulated clock skips from the close to the next open.
    """

    interval_s: float = 1.0
    bar: timedelta = timedelta(minutes=5)
    max_bars: int = 0
    drain_finish: bool = False
    drain_timeout_s: float = 5.0
    control: Path | None = None
    nav: Decimal = Decimal(1_000_000)
    calendar: str = "XNYS"


class StopFlag:
    """Set by SIGTERM / SIGINT; the loop finishes its bar, then drains."""

    def __init__(self) -> None:
        self.stopped = False
        self.signal: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.stopped = True
        self.signal = signum

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)

    def lost(self) -> None:
        """The store's single-writer lease was taken over: finish the bar, then drain."""
        self.stopped = True


def session_start(market: MarketData, *, minutes_after_open: int = 5,
                  calendar: str = "XNYS") -> datetime:
    """The first trading instant of the session after the market's last close."""
    import pandas as pd

    from keel.data.calendar import get_calendar

    cal = get_calendar(calendar)
    return (cal.next_open(market.now) + pd.Timedelta(minutes=minutes_after_open)
            ).to_pydatetime()


def _advance(desk: Desk, clock: SimulatedClock, bar: timedelta,
             step_market: Callable[[datetime, float], None] | None,
             tick: timedelta = timedelta(minutes=1)) -> None:
    """Move simulated time by one bar in ``tick`` steps, stepping prices and pumping the order
    manager at each, so no child slice shorter than a bar is skipped."""
    left = bar
    while left > timedelta(0):
        dt = min(tick, left)
        clock.advance(dt)
        left -= dt
        if step_market is not None:
            step_market(clock.now(), dt.total_seconds())
        desk.pump()


def _skip_to_session(clock: SimulatedClock, calendar: str) -> None:
    """Outside market hours, jump the simulated clock to 5 minutes after the next open (the
    nights and weekends of a simulated run pass in one bar)."""
    import pandas as pd

    from keel.data.calendar import get_calendar

    cal = get_calendar(calendar)
    now = pd.Timestamp(clock.now())
    if not cal.is_open(now):
        clock.set((cal.next_open(now) + pd.Timedelta(minutes=5)).to_pydatetime())


def run_live(desk: Desk, market: MarketData, options: LiveOptions, *,
             prices: Callable[[], Mapping[str, Decimal]],
             step_market: Callable[[datetime, float], None] | None = None,
             sim_clock: SimulatedClock | None = None, stop: StopFlag | None = None,
             on_cycle: Callable[[CycleResult], None] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """The loop: every bar, pump the order manager, run one decision cycle (trading only
    when a trigger fires), and apply control-file changes; drain on stop.

    Args:
        desk: the wired desk (already recovered).
        market: daily history (refreshed view each bar: ``market.as_of(now)``).
        prices: live reference prices per bar (exchange mids, or the last close).
        step_market: ``(now, dt_seconds)`` advances an in-process price process.
        sim_clock: advanced by ``options.bar`` each bar when given (else wall time).
        stop: the stop flag (SIGTERM/SIGINT); a fresh one is used if None.
    """
    stop = stop or StopFlag()
    control = Control(options.control)
    records = StoreControl(desk)
    bars = 0
    while not stop.stopped:
        ctl = control.read()
        if ctl.get("engine"):
            desk.switch_engine(ctl["engine"])
        if ctl.get("stop"):
            break
        force = records.apply() | bool(ctl.get("force"))
        desk.pump()
        res = desk.decide(market, prices(), force=force)
        desk.pump()
        if on_cycle is not None:
            on_cycle(res)
        bars += 1
        if options.max_bars and bars >= options.max_bars:
            break
        sleep(options.interval_s)
        if sim_clock is not None:
            _advance(desk, sim_clock, options.bar, step_market)
            _skip_to_session(sim_clock, options.calendar)
    advance = None
    if sim_clock is not None:
        clock = sim_clock

        def advance() -> None:
            _advance(desk, clock, options.bar, step_market)
    drained = desk.drain(finish=options.drain_finish, timeout_s=options.drain_timeout_s,
                         advance=advance)
    return {"bars": bars, "signal": stop.signal, **drained}
