"""`keel data ...`: inspect price files, generate the synthetic market, show a calendar."""

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
    friendly_errors,
)

data_app = typer.Typer(help="Market data: validate files, generate synthetic data, calendars.",
                       no_args_is_help=True)


class MissingPolicy(StrEnum):
    """The ``--on-missing`` choices: :class:`keel.config.MissingPolicy`, spelled here so
    ``keel --help`` does not import pandas (a test keeps the two equal)."""

    RAISE = "raise"
    DROP = "drop"
    FFILL = "ffill"
    MASK = "mask"


class Layout(StrEnum):
    LONG = "long"
    WIDE = "wide"


@data_app.command("inspect")
def inspect(
    prices: Path = typer.Option(..., "--prices", help="Price file: long (date, open, high, "
                                "low, close, volume, Name) or wide (dates x symbols); CSV, "
                                "CSV.gz or Parquet."),
    sectors: Path | None = typer.Option(None, "--sectors",
                                        help="Sector map CSV (Symbol, Sector)."),
    layout: Layout = typer.Option(Layout.LONG, "--layout", help="long or wide."),
    volumes: Path | None = typer.Option(None, "--volumes",
                                        help="Wide layout: the volume file."),
    on_missing: MissingPolicy = typer.Option(
        MissingPolicy.RAISE, "--on-missing",
        help="Missing values: raise (report them all, then exit 2), drop, ffill or mask."),
    symbol_col: str = typer.Option("Name", "--symbol-col", help="Long layout: symbol column."),
    date_col: str = typer.Option("date", "--date-col", help="Long layout: date column."),
    calendar: str = typer.Option("XNYS", "--calendar",
                                 help="Exchange calendar stamping daily dates at the close."),
    output: OutputFormat = format_option(),
) -> None:
    """Validate a price file and print a summary and a missing-data report per symbol.

    Missing values never stop the report: every symbol with holes is listed (sessions with no
    close, NaN volumes, the first and last stamp). With ``--on-missing raise`` (the default)
    the command then exits 2 naming the first one. Bad data (negative price, a date that is
    not a session) exits 2 with a one-line message naming file, column and row.
    """
    import time

    import numpy as np
    import pandas as pd

    from keel.data.market import MarketData
    from keel.data.prices import load_prices_wide, load_sectors, read_ohlcv_long
    from keel.errors import DataError

    with friendly_errors():
        t0 = time.perf_counter()
        sec = load_sectors(sectors) if sectors else None
        actions: tuple[str, ...] = ()
        raw_close = raw_volume = None
        refused: DataError | None = None
        if layout is Layout.LONG:
            # read keeping every hole, so the report lists them all; the policy comes after
            ohlcv = read_ohlcv_long(prices, date_col=date_col, symbol_col=symbol_col,
                                    calendar=calendar, on_missing="mask"
                                    if on_missing is MissingPolicy.RAISE else on_missing.value)
            actions = ohlcv.report.actions
            raw_close, raw_volume = ohlcv.close, ohlcv.volume
            try:
                md: MarketData = ohlcv.to_market(sec, on_missing=on_missing.value)
            except DataError as exc:
                if on_missing is not MissingPolicy.RAISE:
                    raise
                refused = exc
                md = ohlcv.to_market(sec, on_missing="mask")
        else:
            if volumes is None:
                raise typer.BadParameter("--volumes is required with --layout wide")
            md = load_prices_wide(prices, volumes, sectors=sec, on_missing=on_missing.value,
                                  calendar=calendar)
        elapsed = time.perf_counter() - t0

        rep = Report()
        f = rep.fields("summary", title=f"keel data inspect: {prices.name}")
        f.add("layout", layout.value)
        f.add("symbols", md.n_assets, Kind.INT)
        f.add("sessions", len(md.dates), Kind.INT)
        f.add("first_stamp", md.dates[0], Kind.TIME, "UTC", "first stamp")
        f.add("last_stamp", md.dates[-1], Kind.TIME, "UTC", "last stamp")
        f.add("file_missing_policy", "; ".join(actions) or "no missing cells",
              title="file-level missing policy")
        f.add("panel_missing_policy", md.missing_report.summary(),
              title="panel missing policy")
        labels = pd.Series(md.sectors)
        f.add("sector_coverage", float((labels != "Unknown").mean()), Kind.PCT,
              title="sector coverage")
        f.add("sector_labels", int(labels.nunique()), Kind.INT, title="sector labels")
        f.add("median_price", float(np.nanmedian(md.prices.iloc[-1])), Kind.PRICE,
              "currency", "median price")
        f.add("median_adv", float(np.nanmedian(md.adv_notional.iloc[-1])), Kind.MONEY,
              "currency", "median ADV (notional)", decimals=0)
        if md.spreads is not None:
            spread = 1e4 * float(np.nanmedian(md.spreads.iloc[-1]))
            if layout is Layout.LONG:  # estimated from high/low/close, never quoted
                from keel.data.spreads import ESTIMATE_CAVEAT

                f.add("median_spread_estimate_bps", spread, Kind.BPS,
                      title="median spread, ESTIMATE*")
                rep.note(f"* {ESTIMATE_CAVEAT}.")
            else:
                f.add("median_spread_bps", spread, Kind.BPS,
                      title="median spread, from the spreads file")
        f.add("load_time_s", elapsed, Kind.NUM, "s", "load time")
        if raw_close is not None and raw_volume is not None:
            holes = raw_close.isna().sum()
            vol_holes = raw_volume.isna().sum()
            bad = holes[(holes > 0) | (vol_holes > 0)].sort_values(ascending=False, kind="stable")
            miss = rep.section("missing", [
                Col("symbol"), Col("missing_close", Kind.INT, "sessions", "no close"),
                Col("missing_volume", Kind.INT, "sessions", "no volume"),
                Col("first_stamp", Kind.TIME, title="first close"),
                Col("last_stamp", Kind.TIME, title="last close")],
                title="missing data per symbol (before the panel policy)")
            for sym in bad.index:
                col = raw_close[sym]
                miss.add(str(sym), int(holes[sym]), int(vol_holes[sym]),
                         col.first_valid_index(), col.last_valid_index())
            if not len(bad):
                rep.note("no symbol misses a session")
        emit(rep, output)
        if refused is not None:
            raise refused


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
    output: OutputFormat = format_option(),
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
        rep = Report()
        f = rep.fields("synthetic", title="synthetic market")
        f.add("assets", md.n_assets, Kind.INT)
        f.add("sessions", len(md.dates), Kind.INT)
        f.add("first_session", md.dates[0].date(), Kind.TIME, title="first session")
        f.add("last_session", md.dates[-1].date(), Kind.TIME, title="last session")
        f.add("seed", seed, Kind.INT)
        f.add("generated_s", gen, Kind.NUM, "s", "generated in")
        f.add("prices_file", str(out), title="prices file")
        f.add("sectors_file", str(sec_path), title="sectors file")
        emit(rep, output)


@data_app.command("calendar")
def calendar_cmd(
    start: str = typer.Option(..., "--start", help="First date (ISO)."),
    end: str = typer.Option(..., "--end", help="Last date (ISO)."),
    calendar: str = typer.Option("XNYS", "--calendar", help="Exchange calendar name."),
    output: OutputFormat = format_option(),
) -> None:
    """List the sessions between two dates with their UTC open and close."""
    from keel.data.calendar import ExchangeCalendar

    with friendly_errors():
        cal = ExchangeCalendar(calendar, start, end)
        sched = cal.schedule()
        early = set(cal.early_closes())
        rep = Report()
        table = rep.section("sessions", [Col("session", Kind.TIME),
                                         Col("open", Kind.TIME, "UTC"),
                                         Col("close", Kind.TIME, "UTC"), Col("note")],
                            title=f"{calendar} sessions {start} .. {end}")
        for day, row in sched.iterrows():
            table.add(day.date(), row["open"].to_pydatetime(), row["close"].to_pydatetime(),
                      "early close" if day in early else "")
        emit(rep, output)


@data_app.command("lobster")
def lobster(
    folder: Path = typer.Argument(..., help="Folder holding one LOBSTER message + orderbook "
                                  "pair (TICKER_DATE_START_END_{message,orderbook}_LEVEL.csv)."),
    output: OutputFormat = format_option(),
) -> None:
    """Load a LOBSTER day and summarise its messages and book (spread, depth)."""
    import numpy as np

    from keel.data.lobster import LobsterEvent, find_lobster_pair, load_lobster

    with friendly_errors():
        day = load_lobster(*find_lobster_pair(folder))
        b, m = day.book, day.messages
        rep = Report()
        f = rep.fields("day", title=f"LOBSTER {day.symbol} {day.date.date()} "
                                    f"({day.levels} levels)")
        f.add("symbol", day.symbol)
        f.add("levels", day.levels, Kind.INT)
        f.add("messages", len(m), Kind.INT)
        f.add("snapshots", b.n_snapshots, Kind.INT)
        f.add("first", m["timestamp"].iloc[0], Kind.TIME, "UTC")
        f.add("last", m["timestamp"].iloc[-1], Kind.TIME, "UTC")
        f.add("median_spread_bps", 1e4 * float(np.nanmedian(b.relative_spread)), Kind.BPS,
              title="median spread", decimals=2)
        f.add("median_touch_bid", float(np.median(b.bid_sz[:, 0])), Kind.QTY, "shares",
              "median touch depth, bid")
        f.add("median_touch_ask", float(np.median(b.ask_sz[:, 0])), Kind.QTY, "shares",
              "median touch depth, ask")
        ev = rep.section("events", [Col("event"), Col("messages", Kind.INT)],
                         title="messages by event")
        for code, n in m["event"].value_counts().sort_index().items():
            ev.add(LobsterEvent(int(code)).name.lower(), int(n))
        emit(rep, output)


@data_app.command("bars")
def bars(
    folder: Path = typer.Argument(..., help="Lean minute folder of one symbol "
                                  "(YYYYMMDD_<t>_minute_{trade,quote}.csv)."),
    extended_hours: bool = typer.Option(False, "--extended-hours",
                                        help="Keep pre/post-market bars."),
    crypto: bool = typer.Option(False, "--crypto", help="USD prices, UTC times, 24h."),
    output: OutputFormat = format_option(),
) -> None:
    """Load all days of Lean minute trade bars and summarise them per day."""
    from keel.data.lean import load_lean_minute_folder

    with friendly_errors():
        t = load_lean_minute_folder(folder, "trade", extended_hours=extended_hours,
                                    crypto=crypto or None)
        tz = "UTC" if crypto else "America/New_York"
        day = t["bar_start"].dt.tz_convert(tz).dt.date
        rep = Report()
        table = rep.section("days", [
            Col("day", Kind.TIME), Col("bars", Kind.INT),
            Col("first_bar_start", Kind.TIME, title="first bar start"),
            Col("volume", Kind.QTY, "shares"),
            Col("first_30_share", Kind.PCT, title="first 30 bars", decimals=1),
            Col("last_30_share", Kind.PCT, title="last 30 bars", decimals=1)],
            title=f"{t.attrs['symbol']} minute trade bars")
        for d, g in t.groupby(day):
            v = g["volume"]
            table.add(d, len(g), g["bar_start"].iloc[0], float(v.sum()),
                      float(v.iloc[:30].sum() / v.sum()), float(v.iloc[-30:].sum() / v.sum()))
        emit(rep, output)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to ``app``."""
    app.add_typer(data_app, name="data")
