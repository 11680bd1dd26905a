"""`keel data ...`: inspect price files, generate the synthetic market, show a calendar."""

from __future__ import annotations

from pathlib import Path

import typer

from keel.cli.common import console, friendly_errors, print_wide

data_app = typer.Typer(help="Market data: validate files, generate synthetic data, calendars.",
                       no_args_is_help=True)


@data_app.command("inspect")
def inspect(
    prices: Path = typer.Option(..., "--prices", help="Price file: long (date, open, high, "
                                "low, close, volume, Name) or wide (dates x symbols); CSV, "
                                "CSV.gz or Parquet."),
    sectors: Path | None = typer.Option(None, "--sectors",
                                        help="Sector map CSV (Symbol, Sector)."),
    layout: str = typer.Option("long", "--layout", help="'long' or 'wide'."),
    volumes: Path | None = typer.Option(None, "--volumes",
                                        help="Wide layout: the volume file."),
    on_missing: str = typer.Option("raise", "--on-missing",
                                   help="Missing values: raise, drop or ffill."),
    symbol_col: str = typer.Option("Name", "--symbol-col", help="Long layout: symbol column."),
    date_col: str = typer.Option("date", "--date-col", help="Long layout: date column."),
    calendar: str = typer.Option("XNYS", "--calendar",
                                 help="Exchange calendar stamping daily dates at the close."),
) -> None:
    """Validate a price file and print a summary and a missing-data report.

    Exits 2 with a one-line message naming file, column and row on bad data.
    """
    import time

    import numpy as np
    import pandas as pd
    from rich.table import Table

    from keel.data.market import MarketData
    from keel.data.prices import load_prices_wide, load_sectors, read_ohlcv_long

    with friendly_errors():
        t0 = time.perf_counter()
        sec = load_sectors(sectors) if sectors else None
        actions: tuple[str, ...] = ()
        raw_close = None
        if layout == "long":
            ohlcv = read_ohlcv_long(prices, date_col=date_col, symbol_col=symbol_col,
                                    calendar=calendar, on_missing=on_missing)
            actions = ohlcv.report.actions
            raw_close = ohlcv.close
            md: MarketData = ohlcv.to_market(sec, on_missing=on_missing)
        elif layout == "wide":
            if volumes is None:
                raise typer.BadParameter("--volumes is required with --layout wide")
            md = load_prices_wide(prices, volumes, sectors=sec, on_missing=on_missing,
                                  calendar=calendar)
        else:
            raise typer.BadParameter("--layout must be 'long' or 'wide'")
        elapsed = time.perf_counter() - t0

        table = Table(title=f"keel data inspect: {prices.name}")
        table.add_column("check")
        table.add_column("result")
        table.add_row("layout", layout)
        table.add_row("symbols", str(md.n_assets))
        table.add_row("sessions", str(len(md.dates)))
        table.add_row("first / last stamp (UTC)", f"{md.dates[0]} / {md.dates[-1]}")
        table.add_row("file-level missing policy", "; ".join(actions) or "no missing data")
        table.add_row("panel missing policy", md.missing_report.summary())
        labels = pd.Series(md.sectors)
        known = float((labels != "Unknown").mean())
        table.add_row("sector coverage", f"{known:.1%} ({labels.nunique()} labels)")
        table.add_row("median price", f"{float(np.nanmedian(md.prices.iloc[-1])):.2f}")
        table.add_row("median ADV (notional)",
                      f"{float(np.nanmedian(md.adv_notional.iloc[-1])):,.0f}")
        caveat = ""
        if md.spreads is not None:
            if layout == "long":  # estimated from high/low/close, never quoted
                from keel.data.spreads import ESTIMATE_CAVEAT

                table.add_row("median spread (bps), ESTIMATE*",
                              f"{1e4 * float(np.nanmedian(md.spreads.iloc[-1])):.1f}")
                caveat = f"* {ESTIMATE_CAVEAT}."
            else:
                table.add_row("median spread (bps), from the spreads file",
                              f"{1e4 * float(np.nanmedian(md.spreads.iloc[-1])):.1f}")
        table.add_row("load time (s)", f"{elapsed:.2f}")
        print_wide(table)
        if caveat:
            console.print(caveat)
        if raw_close is not None:
            holes = raw_close.isna().sum()
            holes = holes[holes > 0].sort_values(ascending=False)
            if len(holes):
                miss = Table(title="missing sessions per symbol (before the panel policy)")
                miss.add_column("symbol")
                miss.add_column("missing sessions", justify="right")
                miss.add_column("first stamp")
                for sym, n in holes.head(15).items():
                    miss.add_row(str(sym), str(int(n)),
                                 str(raw_close[sym].first_valid_index()))
                if len(holes) > 15:
                    miss.add_row(f"... {len(holes) - 15} more", "", "")
                print_wide(miss)


@data_app.command("synth")
def synth(
    assets: int = typer.Option(100, "--assets", help="Number of assets."),
    days: int = typer.Option(756, "--days", help="Number of sessions."),
    seed: int = typer.Option(7, "--seed", help="Random seed (same seed, same market)."),
    start: str = typer.Option("2021-01-04", "--start", help="First session (ISO date)."),
    calendar: str = typer.Option("XNYS", "--calendar", help="Exchange calendar."),
    out: Path = typer.Option(Path("keel-out/synthetic.parquet"), "--out",
                             help="Output: a long Parquet file (date, close, volume, spread, "
                             "market_cap, Name) plus <out>_sectors.csv."),
) -> None:
    """Generate the seeded synthetic market and write it as a long Parquet file."""
    import time

    import pandas as pd

    from keel.data.synthetic import generate_market

    with friendly_errors():
        t0 = time.perf_counter()
        sm = generate_market(seed=seed, n_assets=assets, n_days=days, start=start,
                             calendar=calendar)
        gen = time.perf_counter() - t0
        md = sm.market
        long = pd.DataFrame({
            "date": md.prices.index.repeat(md.n_assets),
            "close": md.prices.to_numpy().ravel(),
            "volume": md.volumes.to_numpy().ravel(),
            "spread": md.spreads.to_numpy().ravel() if md.spreads is not None else None,
            "market_cap": (md.market_caps.to_numpy().ravel()
                           if md.market_caps is not None else None),
            "Name": list(md.symbols) * len(md.dates),
        }).sort_values(["Name", "date"], kind="stable")
        out.parent.mkdir(parents=True, exist_ok=True)
        long.to_parquet(out, index=False)
        sec_path = out.with_name(out.stem + "_sectors.csv")
        pd.Series(md.sectors).rename_axis("Symbol").rename("Sector").to_csv(sec_path)
        console.print(f"synthetic market: {md.n_assets} assets x {len(md.dates)} sessions "
                      f"({md.dates[0].date()} .. {md.dates[-1].date()}), seed {seed}, "
                      f"generated in {gen:.2f} s")
        console.print(f"wrote {out} and {sec_path}")


@data_app.command("calendar")
def calendar_cmd(
    start: str = typer.Option(..., "--start", help="First date (ISO)."),
    end: str = typer.Option(..., "--end", help="Last date (ISO)."),
    calendar: str = typer.Option("XNYS", "--calendar", help="Exchange calendar name."),
) -> None:
    """List the sessions between two dates with their UTC open and close."""
    from rich.table import Table

    from keel.data.calendar import ExchangeCalendar

    with friendly_errors():
        cal = ExchangeCalendar(calendar, start, end)
        sched = cal.schedule()
        early = set(cal.early_closes())
        table = Table(title=f"{calendar} sessions {start} .. {end}")
        for c in ("session", "open (UTC)", "close (UTC)", "note"):
            table.add_column(c)
        for day, row in sched.iterrows():
            table.add_row(str(day.date()), str(row["open"].time()), str(row["close"].time()),
                          "early close" if day in early else "")
        print_wide(table)


@data_app.command("lobster")
def lobster(
    folder: Path = typer.Argument(..., help="Folder holding one LOBSTER message + orderbook "
                                  "pair (TICKER_DATE_START_END_{message,orderbook}_LEVEL.csv)."),
) -> None:
    """Load a LOBSTER day and summarise its messages and book (spread, depth)."""
    import numpy as np
    from rich.table import Table

    from keel.data.lobster import LobsterEvent, find_lobster_pair, load_lobster

    with friendly_errors():
        day = load_lobster(*find_lobster_pair(folder))
        b, m = day.book, day.messages
        table = Table(title=f"LOBSTER {day.symbol} {day.date.date()} ({day.levels} levels)")
        table.add_column("item")
        table.add_column("value", justify="right")
        table.add_row("messages / snapshots", f"{len(m):,} / {b.n_snapshots:,}")
        table.add_row("first / last (UTC)", f"{m['timestamp'].iloc[0]} / "
                      f"{m['timestamp'].iloc[-1]}")
        counts = m["event"].value_counts().sort_index()
        for ev, n in counts.items():
            table.add_row(f"  {LobsterEvent(int(ev)).name.lower()}", f"{int(n):,}")
        table.add_row("median spread (bps)", f"{1e4 * float(np.nanmedian(b.relative_spread)):.2f}")
        table.add_row("median touch depth bid / ask (shares)",
                      f"{float(np.median(b.bid_sz[:, 0])):,.0f} / "
                      f"{float(np.median(b.ask_sz[:, 0])):,.0f}")
        print_wide(table)


@data_app.command("bars")
def bars(
    folder: Path = typer.Argument(..., help="Lean minute folder of one symbol "
                                  "(YYYYMMDD_<t>_minute_{trade,quote}.csv)."),
    extended_hours: bool = typer.Option(False, "--extended-hours",
                                        help="Keep pre/post-market bars."),
    crypto: bool = typer.Option(False, "--crypto", help="USD prices, UTC times, 24h."),
) -> None:
    """Load all days of Lean minute trade bars and summarise them per day."""
    from rich.table import Table

    from keel.data.lean import load_lean_minute_folder

    with friendly_errors():
        t = load_lean_minute_folder(folder, "trade", extended_hours=extended_hours,
                                    crypto=crypto or None)
        tz = "UTC" if crypto else "America/New_York"
        day = t["bar_start"].dt.tz_convert(tz).dt.date
        table = Table(title=f"{t.attrs['symbol']} minute trade bars")
        for c in ("day", "bars", "first bar start", "volume", "first 30 / last 30 bars share"):
            table.add_column(c)
        for d, g in t.groupby(day):
            v = g["volume"]
            share = (v.iloc[:30].sum() / v.sum(), v.iloc[-30:].sum() / v.sum())
            table.add_row(str(d), str(len(g)), str(g["bar_start"].iloc[0]), f"{v.sum():,.0f}",
                          f"{share[0]:.1%} / {share[1]:.1%}")
        print_wide(table)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to ``app``."""
    app.add_typer(data_app, name="data")
