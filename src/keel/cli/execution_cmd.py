"""`keel` commands of the execution layer: ``schedule`` and ``tca``."""

from __future__ import annotations

from pathlib import Path

import typer

from keel.cli.common import console, friendly_errors, print_wide


def _bars_dir(bars: Path, symbol: str) -> Path:
    """``bars`` itself, or its ``<symbol>`` sub-folder (a ``lean_minute`` root)."""
    sub = bars / symbol.lower()
    return sub if sub.is_dir() else bars


def _multipliers_text(store: object, name: str, history: int) -> str:
    """The learned cost multipliers of ``name`` (current and the last ``history`` versions)."""
    from keel.store.cost_state_repo import CostStateRepo
    from keel.store.db import Store

    assert isinstance(store, Store)
    repo = CostStateRepo(store)
    rec = repo.get(name)
    if rec is None:
        return (f"\ncost multipliers ({name}): none learned yet (the fixed model is in force, "
                "every multiplier 1)")
    mult = ", ".join(f"{k} {v:.3f}" for k, v in rec.multipliers.items())
    when = f"{rec.updated_at:%Y-%m-%d %H:%M}"
    lines = ["", f"cost multipliers ({name}, version {rec.version}, "
             f"{rec.state.get('n_obs', 0)} orders observed, updated {when} UTC): {mult}"]
    if history > 0:
        for h in repo.history(name, limit=history):
            ks = ", ".join(f"{k} {v:.3f}" for k, v in h.multipliers.items())
            lines.append(f"  v{h.version} {h.recorded_at:%Y-%m-%d %H:%M}: {ks} "
                         f"(+{h.observed} orders)")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""

    @app.command("schedule")
    def schedule_cmd(
        algo: str = typer.Option("vwap", help="twap, vwap, is, pov or market."),
        symbol: str = typer.Option(..., help="Instrument symbol, e.g. SPY."),
        qty: float = typer.Option(..., help="Parent quantity in shares (> 0)."),
        bars: Path = typer.Option(..., help="Folder of Lean minute bars "
                                  "(YYYYMMDD_<t>_minute_trade.csv), or its lean_minute root."),
        side: str = typer.Option("buy", help="buy or sell."),
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
            sched = make_scheduler(algo, cfg, profile=profile,
                                   risk_aversion=None if math.isnan(risk_aversion)
                                   else risk_aversion,
                                   participation=participation,
                                   urgency=None if math.isnan(urgency) else urgency)
            clock = SimulatedClock(t0.to_pydatetime())
            q = to_qty(qty, rounding=Rounding.HALF_EVEN)
            parent = Order(f"{symbol}-{algo}", symbol, Side(side.upper()),
                           q.quantize(Decimal(1)) if q == q.to_integral_value() else q,
                           clock.now())
            kids = sched.schedule(parent, ctx, clock)
            from rich.table import Table

            day = pd.Timestamp(kids[0].not_before).tz_convert("America/New_York")
            table = Table(title=f"{algo.upper()} {side} {parent.qty} {symbol} on "
                          f"{day:%Y-%m-%d} (profile: {profile.n_sessions} sessions, "
                          f"ADV {adv:,.0f}, daily vol {vol:.2%} from the last "
                          f"{min(vol_sessions, len(days))} session(s))")
            for col in ("#", "child id", "start", "end", "qty", "% of parent", "limit"):
                table.add_column(col, justify="right" if col in ("qty", "% of parent")
                                 else "left")
            for k in kids:
                table.add_row(str(k.slice_index), k.client_order_id,
                              pd.Timestamp(k.not_before).tz_convert("America/New_York")
                              .strftime("%m-%d %H:%M"),
                              pd.Timestamp(k.expire_at).tz_convert("America/New_York")
                              .strftime("%H:%M"),
                              f"{k.qty}", f"{100 * k.qty / parent.qty:.2f}",
                              "" if k.limit_price is None else str(k.limit_price))
            print_wide(table)
            # plain lines never wrap (scripts and narrow terminals read them whole)
            console.print(f"children: {len(kids)}; total {sum(k.qty for k in kids)} "
                          f"(parent {parent.qty})", soft_wrap=True, highlight=False)

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
    ) -> None:
        """Print the execution-quality (TCA) report of the orders in the store, and the
        cost multipliers learned from them (execution feedback)."""
        with friendly_errors():
            from keel.config import load_config
            from keel.execution.bars import load_minute_bars
            from keel.execution.feedback import TCA
            from keel.store.db import Store
            from keel.store.orders_repo import OrdersRepo

            store = Store.from_url(db or load_config().store.url)
            store.ping()
            store.create_all()
            repo = OrdersRepo(store)
            bar_map = {}
            if bars is not None:
                symbols = {p.order.symbol for p in repo.parents()}
                for sym in symbols:
                    folder = _bars_dir(bars, sym)
                    if folder.is_dir() and any(folder.glob("*_minute_trade.csv")):
                        bar_map[sym] = load_minute_bars(folder)
            console.print(TCA(repo, bar_map).report().to_text(), soft_wrap=True,
                          highlight=False, markup=False)
            console.print(_multipliers_text(store, model, history), soft_wrap=True,
                          highlight=False, markup=False)
