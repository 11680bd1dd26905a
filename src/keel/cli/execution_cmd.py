"""`keel` commands of the execution layer: ``schedule`` and ``tca``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from keel.cli.common import (
    Col,
    Kind,
    OutputFormat,
    Report,
    emit,
    format_option,
    frame_section,
    friendly_errors,
)


class Algo(StrEnum):
    """The ``--algo`` choices: :class:`keel.execution.schedule.Algo`, spelled here so
    ``keel --help`` does not import pandas (a test keeps the two equal)."""

    MARKET = "market"
    TWAP = "twap"
    VWAP = "vwap"
    IS = "is"
    POV = "pov"


class CliSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


def _bars_dir(bars: Path, symbol: str) -> Path:
    """``bars`` itself, or its ``<symbol>`` sub-folder (a ``lean_minute`` root)."""
    sub = bars / symbol.lower()
    return sub if sub.is_dir() else bars


def _multipliers(rep: Report, store: object, name: str, history: int) -> None:
    """The learned cost multipliers of ``name`` (current and the last ``history`` versions)
    as a section of ``rep``."""
    from keel.store.cost_state_repo import CostStateRepo
    from keel.store.db import Store

    assert isinstance(store, Store)
    repo = CostStateRepo(store)
    rec = repo.get(name)
    if rec is None:
        rep.note(f"cost multipliers ({name}): none learned yet (the fixed model is in force, "
                 "every multiplier 1)")
        return
    keys = list(rec.multipliers)
    sec = rep.section("multipliers", [Col("version", Kind.INT), Col("at", Kind.TIME, "UTC"),
                                      Col("observed", Kind.INT, "orders"),
                                      *[Col(k, Kind.RATIO) for k in keys]],
                      title=f"cost multipliers ({name}): current, then history")
    sec.add(rec.version, rec.updated_at, rec.state.get("n_obs", 0),
            *[rec.multipliers[k] for k in keys])
    if history > 0:
        for h in repo.history(name, limit=history):
            sec.add(h.version, h.recorded_at, h.observed,
                    *[h.multipliers.get(k) for k in keys])


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""

    @app.command("schedule")
    def schedule_cmd(
        algo: Algo = typer.Option(Algo.VWAP, help="Execution algorithm.",
                                  case_sensitive=False),
        symbol: str = typer.Option(..., help="Instrument symbol, e.g. SPY."),
        qty: float = typer.Option(..., help="Parent quantity in shares (> 0)."),
        bars: Path = typer.Option(..., help="Folder of Lean minute bars "
                                  "(YYYYMMDD_<t>_minute_trade.csv), or its lean_minute root."),
        side: CliSide = typer.Option(CliSide.BUY, help="buy or sell.", case_sensitive=False),
        slices: int = typer.Option(13, help="Number of equal trading-time slices."),
        horizon_min: float = typer.Option(0.0, help="Horizon in minutes (0: until the close)."),
        lot: int = typer.Option(1, help="Round-lot size in shares."),
        min_child: float = typer.Option(1.0, help="Smallest child order in shares."),
        start: str = typer.Option("", help="UTC start time, ISO (default: the next session "
                                  "open after the last bar)."),
        risk_aversion: float = typer.Option(float("nan"), help="IS risk aversion "
                                            "(1/currency; default: use --urgency)."),
        urgency: float = typer.Option(float("nan"), help="IS urgency kappa*T: 0 = TWAP, 1 = "
                                      "mild (default), 2 = 68% done at half time, 5 = urgent; "
                                      "overrides --risk-aversion."),
        vol_sessions: int = typer.Option(1, help="Sessions of intraday returns for the "
                                         "volatility (the most recent ones)."),
        participation: float = typer.Option(0.1, help="POV target participation."),
        limit_offset_bps: float = typer.Option(float("nan"), help="Limit offset in bps "
                                               "(default: market children)."),
        output: OutputFormat = format_option(),
    ) -> None:
        """Print the child-order schedule of a parent order."""
        with friendly_errors():
            import math
            from datetime import timedelta
            from decimal import Decimal

            import pandas as pd

            from keel.clock import SimulatedClock
            from keel.execution.bars import load_minute_bars, sessions
            from keel.execution.hours import next_trading_time
            from keel.execution.profile import VolumeProfile
            from keel.execution.schedule import (
                ExecutionContext,
                ScheduleConfig,
                make_scheduler,
                session_volatility,
            )
            from keel.types import Order, Rounding, Side, to_qty

            data = load_minute_bars(_bars_dir(bars, symbol))
            days = sessions(data)
            profile = VolumeProfile.fit(data)
            last_day = max(days)
            t0 = (pd.Timestamp(start) if start else
                  next_trading_time(pd.Timestamp(last_day + pd.Timedelta(days=1),
                                                 tz="America/New_York")))
            if t0.tzinfo is None:
                t0 = t0.tz_localize("UTC")
            adv = float(sum(d["volume"].sum() for d in days.values()) / len(days))
            vol = session_volatility(data, vol_sessions)  # recent sessions only
            last = data.iloc[-1]
            spread = (float((last["ask"] - last["bid"]) / last["close"] * 1e4)
                      if pd.notna(last["ask"]) else 1.0)
            ctx = ExecutionContext(price=float(last["close"]), adv_shares=adv,
                                   daily_volatility=vol,
                                   spread_bps=max(spread, 0.0), profile=profile)
            cfg = ScheduleConfig(
                n_slices=slices, lot_size=lot,
                min_child_qty=to_qty(min_child, rounding=Rounding.HALF_EVEN),
                horizon=timedelta(minutes=horizon_min) if horizon_min > 0 else None,
                limit_offset_bps=None if math.isnan(limit_offset_bps) else limit_offset_bps)
            sched = make_scheduler(algo.value, cfg, profile=profile,
                                   risk_aversion=None if math.isnan(risk_aversion)
                                   else risk_aversion,
                                   participation=participation,
                                   urgency=None if math.isnan(urgency) else urgency)
            clock = SimulatedClock(t0.to_pydatetime())
            q = to_qty(qty, rounding=Rounding.HALF_EVEN)
            parent = Order(f"{symbol}-{algo.value}", symbol, Side(side.value.upper()),
                           q.quantize(Decimal(1)) if q == q.to_integral_value() else q,
                           clock.now())
            kids = sched.schedule(parent, ctx, clock)
            day = pd.Timestamp(kids[0].not_before).tz_convert("America/New_York")
            rep = Report()
            f = rep.fields("parent", title="parent order and market")
            f.add("algo", algo.value)
            f.add("side", side.value)
            f.add("symbol", symbol)
            f.add("qty", parent.qty, Kind.QTY, "shares")
            f.add("day", day.date(), Kind.TIME, title="session")
            f.add("profile_sessions", profile.n_sessions, Kind.INT, title="profile sessions")
            f.add("adv", adv, Kind.QTY, "shares", "ADV", decimals=0)
            f.add("daily_vol", vol, Kind.PCT, title="daily volatility")
            f.add("vol_sessions", min(vol_sessions, len(days)), Kind.INT,
                  title="volatility sessions")
            f.add("children", len(kids), Kind.INT)
            f.add("children_total", sum(k.qty for k in kids), Kind.QTY, "shares",
                  "children total")
            table = rep.section("children", [
                Col("slice", Kind.INT, title="#"), Col("child_id", title="child id"),
                Col("start", Kind.TIME), Col("end", Kind.TIME), Col("qty", Kind.QTY),
                Col("of_parent", Kind.PCT, title="of parent"),
                Col("limit", Kind.PRICE)],
                title=f"{algo.value.upper()} {side.value} {parent.qty} {symbol} on "
                      f"{day:%Y-%m-%d}")
            for k in kids:
                table.add(k.slice_index, k.client_order_id, k.not_before, k.expire_at, k.qty,
                          float(k.qty / parent.qty), k.limit_price)
            rep.note(f"children: {len(kids)}; total {sum(k.qty for k in kids)} "
                     f"(parent {parent.qty})")
            emit(rep, output)

    @app.command("tca")
    def tca_cmd(
        db: str = typer.Option("", "--db", help="Database URL (default: the configured "
                               "store, sqlite:///keel-out/keel.db)."),
        bars: Path | None = typer.Option(None, help="Lean minute-bar root (lean_minute/) for "
                                         "interval VWAP, participation and spread capture."),
        model: str = typer.Option("default", help="Name of the learned cost model whose "
                                  "multipliers are shown."),
        history: int = typer.Option(5, help="How many past versions of the multipliers to "
                                    "show (0: none)."),
        output: OutputFormat = format_option(),
    ) -> None:
        """Print the execution-quality (TCA) report of the orders in the store, and the
        cost multipliers learned from them (execution feedback)."""
        with friendly_errors():
            from keel.config import load_config
            from keel.execution.bars import load_minute_bars
            from keel.execution.feedback import TCA
            from keel.store.db import Store
            from keel.store.orders_repo import OrdersRepo

            # a reader: never creates the database or its tables
            store = Store.from_url(db or load_config().store.url, create=False)
            store.ping()
            repo = OrdersRepo(store)
            bar_map = {}
            if bars is not None:
                symbols = {p.order.symbol for p in repo.parents()}
                for sym in symbols:
                    folder = _bars_dir(bars, sym)
                    if folder.is_dir() and any(folder.glob("*_minute_trade.csv")):
                        bar_map[sym] = load_minute_bars(folder)
            tca = TCA(repo, bar_map).report()
            rep = Report()
            f = rep.fields("summary", title="execution quality (TCA)")
            f.add("parent_orders", len(tca.orders), Kind.INT, title="parent orders")
            money = {"notional": Kind.MONEY, "orders": Kind.INT,
                     "participation_mean": Kind.PCT, "spread_capture_mean": Kind.RATIO}
            if not tca.orders.empty:
                frame_section(rep, "by_algo", tca.by_algo(), index="algo", kinds=money,
                              title="by algorithm")
                frame_section(rep, "by_symbol", tca.by_symbol(), index="symbol", kinds=money,
                              title="by symbol")
            recs = rep.section("recommendations", [
                Col("symbol"), Col("algo"), Col("metric"), Col("recent", Kind.BPS),
                Col("baseline", Kind.BPS), Col("action")], title="recommendations")
            for r in tca.recommendations():
                recs.add(r.symbol, r.algo, r.metric, r.recent, r.baseline, r.action)
            _multipliers(rep, store, model, history)
            store.dispose()
            emit(rep, output)
