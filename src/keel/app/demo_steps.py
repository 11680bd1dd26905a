"""The trading-day steps of ``keel demo`` (after the market is loaded).

The day: fit the risk model; start the simulated exchange in this process behind its
localhost front end (FIX when the exchange's FIX acceptor is available, else REST) and connect
the matching broker; run one decision cycle at the first trading window; work the VWAP / IS
children bar by bar while the price process moves the mids; mark and reconcile the ledger;
TCA; the HTML report.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from keel.app.demo import DemoContext

#: cash the demo account starts with, currency
DEMO_NAV = Decimal(10_000_000)
#: simulated time between two bars of the trading loop
BAR = timedelta(minutes=5)


def step_risk(ctx: DemoContext) -> None:
    from keel.app.cycle import DecisionCycle

    assert ctx.market is not None
    cycle = DecisionCycle(ctx.config)
    codes = cycle.fit_risk(ctx.market)
    assert cycle.risk_ is not None
    ctx.artifacts["cycle"] = cycle
    ctx.record("risk", risk_model=str(cycle.risk_used_), risk_factors=len(cycle.risk_.factors),
               risk_status=",".join(codes))


def step_venue(ctx: DemoContext) -> None:
    from keel.app.live import Desk, session_start
    from keel.app.metrics import KeelMetrics
    from keel.app.venue import LocalVenue, fix_unavailable

    assert ctx.market is not None
    ctx.clock.set(session_start(ctx.market))
    why_not_fix = fix_unavailable()
    protocol = "rest" if why_not_fix else "fix"
    if why_not_fix and ctx.progress is not None:
        ctx.progress("venue", f"FIX unavailable ({why_not_fix}): trading over REST")
    venue = LocalVenue.start(ctx.market, ctx.clock, protocol=protocol,
                             seed=ctx.config.general.seed, starting_cash=DEMO_NAV)
    ctx.artifacts["venue"] = venue
    broker = venue.broker()
    cycle = ctx.artifacts["cycle"]
    desk = Desk(ctx.store, ctx.clock, broker, cycle, metrics=KeelMetrics(),
                venue_name=protocol, limits=cycle.pipeline.risk_limits())
    desk.recover()
    desk.fund(DEMO_NAV)
    ctx.artifacts["desk"] = desk
    ctx.record("venue", venue_protocol=protocol, venue_url=venue.url,
               fix_session=",".join(venue.fix_sessions()) or f"none ({why_not_fix})",
               session_start=ctx.clock.now().isoformat())


def step_decide(ctx: DemoContext) -> None:
    from keel.app.live import Desk

    assert ctx.market is not None
    desk: Desk = ctx.artifacts["desk"]
    venue = ctx.artifacts["venue"]
    res = desk.decide(ctx.market, venue.mids())
    ctx.artifacts["cycle_result"] = res
    algos = Counter(res.algos.values())
    ctx.record("decide", engine=res.engine.value,
               triggers=",".join(res.codes("triggers")),
               target_names=len(res.targets), parent_orders=len(res.orders),
               governance_rejects=len(res.rejected), vwap_parents=algos.get("vwap", 0),
               is_parents=algos.get("is", 0), child_orders=sum(res.children.values()))


def step_trade(ctx: DemoContext) -> None:
    from keel.app.live import Desk
    from keel.data.calendar import get_calendar

    assert ctx.market is not None
    desk: Desk = ctx.artifacts["desk"]
    venue = ctx.artifacts["venue"]
    close = get_calendar("XNYS").next_close(ctx.clock.now()).to_pydatetime()
    bars = 0
    path = [(ctx.clock.now(), venue.mids())]
    while desk.working() and ctx.clock.now() < close + BAR:
        desk.await_venue()  # the venue has seen every child sent before time moves on
        ctx.clock.advance(BAR)
        venue.simulator.step(ctx.clock.now(), BAR.total_seconds())
        path.append((ctx.clock.now(), venue.mids()))
        bars += 1
        if ctx.progress is not None and bars % 6 == 0:
            ctx.progress("trade", f"{ctx.clock.now():%H:%M} UTC, {desk.stats.fills} fills, "
                         f"{desk.working()} parents working")
    if desk.settle(timeout_s=5.0):
        desk.drain(timeout_s=5.0)
    ctx.artifacts["mids"] = path
    kids = desk.repo.children()
    ctx.record("trade", bars=bars, fills=desk.stats.fills,
               children_sent=sum(1 for k in kids if k.status.value != "new"),
               session_end=ctx.clock.now().isoformat())


def step_book(ctx: DemoContext) -> None:
    from keel.app.live import Desk
    from keel.app.venue import ACCOUNT

    desk: Desk = ctx.artifacts["desk"]
    venue = ctx.artifacts["venue"]
    desk.sync_ledger()
    desk.ledger.mark(venue.mids())
    desk.ledger.snapshot("demo-eod")
    st = desk.ledger.state
    ex_pos = {s: q for s, q in venue.exchange.positions(ACCOUNT).items() if q != 0}
    ledger_pos = {s: p.qty for s, p in st.positions.items()}
    # what disagrees, for the caller to say (a store holding an earlier run's book)
    ctx.artifacts["reconciliation"] = {
        "positions": {s: (str(ledger_pos.get(s, 0)), str(ex_pos.get(s, 0)))
                      for s in sorted(set(ledger_pos) | set(ex_pos))
                      if ledger_pos.get(s, 0) != ex_pos.get(s, 0)},
        "cash": (str(st.cash), str(venue.exchange.cash(ACCOUNT)))}
    ctx.record("book", equity=float(st.equity), cash=float(st.cash),
               positions=len(ledger_pos), gross_exposure=float(st.gross_exposure / st.equity),
               ledger_matches_exchange=ledger_pos == ex_pos,
               exchange_cash_matches=venue.exchange.cash(ACCOUNT) == st.cash)


def _tca_context(ctx: DemoContext) -> Any:
    assert ctx.market is not None
    market = ctx.market
    pipe = ctx.artifacts["cycle"].pipeline

    def context(parent: Any) -> Any:
        return pipe.trade_context(market.select([parent.order.symbol]), float(DEMO_NAV))
    return context


def step_tca(ctx: DemoContext) -> None:
    from keel.app.live import Desk
    from keel.execution.feedback import TCA

    desk: Desk = ctx.artifacts["desk"]
    tca = TCA(desk.repo, cost_model=desk.cycle.pipeline.cost_model, context=_tca_context(ctx))
    try:
        report = tca.report()
    except Exception:  # the prediction is a bonus; TCA of the fills must not depend on it
        report = TCA(desk.repo).report()
    tca.persist(report, ctx.clock.now())
    ctx.artifacts["tca"] = report
    df = report.orders
    if df.empty:
        ctx.record("tca", tca_orders=0)
        return
    notional = df["filled_qty"] * df["avg_price"]
    w = notional / notional.sum()
    ctx.record("tca", tca_orders=len(df),
               slippage_bps_weighted=float((w * df["slippage_bps"]).sum()),
               slippage_bps_median=float(df["slippage_bps"].median()),
               is_bps_weighted=float((w * df["is_bps"]).sum()),
               predicted_bps_mean=float(np.nanmean(df["predicted_bps"]))
               if df["predicted_bps"].notna().any() else float("nan"),
               traded_notional=float(notional.sum()))


def step_report(ctx: DemoContext) -> None:
    from keel.app.report import write_report

    path = write_report(ctx, ctx.out_dir / "report.html")
    ctx.artifacts["report"] = path
    ctx.record("report", report=str(path), report_kb=round(path.stat().st_size / 1024, 1))
