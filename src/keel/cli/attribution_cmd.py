"""`keel attribution`: return attribution of a portfolio (Brinson-Fachler by sector, factor
return attribution over time) from a prices file, the live book's weights or a history of
targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from keel.cli.common import OutputFormat, format_option


def read_weight_history(path: Path, start: str | None) -> Any:
    """(dates x symbols) targets from a CSV: ``date, symbol, weight`` rows (one target per
    date), or ``symbol, weight`` (one book, held from ``start``, else the first date)."""
    import pandas as pd

    from keel.cli.risk_cmd import _read_table, read_weights
    from keel.errors import ValidationError

    head = _read_table(path, nrows=0, field="weights").columns
    cols = {str(c).strip().lower(): c for c in head}
    if "date" not in cols:
        w = read_weights(path)
        stamp = pd.Timestamp(start, tz="UTC") if start else pd.NaT
        return pd.DataFrame([w.to_numpy()], index=pd.DatetimeIndex([stamp]), columns=w.index)
    df = _read_table(path, field="weights")
    if not {"symbol", "weight"} <= cols.keys():
        raise ValidationError("a dated weights file needs date, symbol and weight columns",
                              field="weights", value=list(head))
    wide = df.pivot_table(index=cols["date"], columns=cols["symbol"], values=cols["weight"],
                          aggfunc="last").fillna(0.0)
    wide.index = pd.DatetimeIndex(pd.to_datetime(wide.index))
    if wide.index.tz is None:
        wide.index = wide.index.tz_localize("UTC")
    wide.columns = [str(c).strip().upper() for c in wide.columns]
    return wide


def run_attribution(prices: Path, weights: Path, sectors: Path | None, start: str | None,
                    end: str | None, factors: bool) -> dict[str, Any]:
    """The attribution as plain data (the command prints it)."""
    import pandas as pd

    from keel.cli.risk_cmd import read_market
    from keel.errors import ValidationError
    from keel.risk.fundamental import FundamentalFactorModel
    from keel.risk.performance import book_attribution, held_weights

    targets = read_weight_history(weights, start)
    market = read_market(prices, sectors)
    rets = market.returns
    unknown = pd.Index(targets.columns).difference(rets.columns)
    if len(unknown):
        raise ValidationError("weights name symbols without prices", field="weights",
                              symbol=str(unknown[0]), value=len(unknown))
    if targets.index.hasnans:  # one book without a date: held from the first session
        targets.index = pd.DatetimeIndex([rets.index[0]])
    # a target dated on any calendar day applies from the session close on or after it
    pos = rets.index.searchsorted(targets.index.normalize() + pd.Timedelta(hours=23, minutes=59))
    if (pos >= len(rets.index)).any():
        raise ValidationError("a target is dated after the last price", field="weights",
                              value=str(targets.index[int((pos >= len(rets.index)).argmax())]))
    targets.index = rets.index[pos]
    targets = targets[~targets.index.duplicated(keep="last")]
    targets = targets.reindex(columns=rets.columns, fill_value=0.0)
    lo = targets.index[0]
    hi = pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1) if end else rets.index[-1]
    span = rets.loc[(rets.index >= lo) & (rets.index <= hi)]
    held = held_weights(targets, span, lag=1).iloc[1:]
    if held.empty:
        raise ValidationError("no session after the first target", field="start", value=start)
    span = span.loc[held.index]
    invested = held.abs().sum() > 0
    ok = span.notna().all() | ~invested
    held, span = held.loc[:, ok], span.loc[:, ok]
    model = FundamentalFactorModel().fit(market) if factors else None
    sec = (pd.Series(market.sectors) if market.sectors is not None
           else pd.Series("Unknown", index=market.symbols))
    att = book_attribution(held, span.fillna(0.0).where(span.notna(), 0.0), sec, model=model,
                           market=market if model is not None else None)
    bf = att.brinson
    out: dict[str, Any] = {
        "start": str(held.index[0]), "end": str(held.index[-1]), "sessions": len(held),
        "portfolio_return": bf.portfolio_return, "benchmark_return": bf.benchmark_return,
        "active_return": bf.active_return,
        "brinson_by_sector": {str(k): {c: float(v) for c, v in row.items()}
                              for k, row in att.summary().iterrows()},
    }
    if att.factors is not None and att.groups is not None:
        out["factor_active_linked"] = {str(k): float(v) for k, v in att.factors.linked.items()}
        out["factor_groups_sum"] = {str(k): float(v) for k, v in att.groups.sum().items()}
    return out


def add_sections(report: Any, rep: dict[str, Any], prefix: str = "") -> None:
    """The attribution's tables (summary, Brinson-Fachler by sector, factor groups) added to
    a CLI ``Report`` (``keel attribution`` and ``keel risk --attribution``)."""
    from keel.cli.common import Col, Kind

    head = report.fields(f"{prefix}summary", title="Return attribution vs equal weight")
    head.add("start", rep["start"][:10])
    head.add("end", rep["end"][:10])
    head.add("sessions", rep["sessions"], Kind.INT)
    for key in ("portfolio_return", "benchmark_return", "active_return"):
        head.add(key, rep[key], Kind.PCT, decimals=4)
    pct = [Col(c, Kind.PCT, decimals=4) for c in ("allocation", "selection",
                                                  "interaction", "total")]
    bf = report.section(f"{prefix}brinson_by_sector", [Col("sector"), *pct],
                        title="Brinson-Fachler by sector (linked)")
    for sec, row in rep["brinson_by_sector"].items():
        bf.add(sec, *(row[c.key] for c in pct))
    if "factor_groups_sum" in rep:
        g = report.section(f"{prefix}factor_groups", [Col("group"), Col("contribution",
                                                                 Kind.PCT, decimals=4)],
                           title="Active return by factor group (sum of daily "
                                 "contributions)")
        for key, v in rep["factor_groups_sum"].items():
            g.add(key, v)


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""

    @app.command("attribution")
    def attribution(
        prices: Path = typer.Option(..., "--prices", help="Prices file: long (date, close, "
                                    "volume, Name) or wide; CSV, CSV.gz or Parquet."),
        weights: Path = typer.Option(..., "--weights", help="CSV: date, symbol, weight "
                                     "(each date's target, held from the next session and "
                                     "drifting), or symbol, weight (the book from --start)."),
        sectors: Path | None = typer.Option(None, "--sectors", help="CSV with Symbol and "
                                            "Sector columns."),
        start: str | None = typer.Option(None, "--start", help="ISO date a symbol, weight "
                                         "book is held from (default: the first session)."),
        end: str | None = typer.Option(None, "--end", help="Last ISO date attributed."),
        factors: bool = typer.Option(True, "--factors/--no-factors", help="Factor return "
                                     "attribution on the fundamental model."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the attribution "
                                             "as JSON to this file."),
        output: OutputFormat = format_option(),
    ) -> None:
        """Return attribution against the equal-weight benchmark: Brinson-Fachler
        (allocation, selection, interaction) by sector, linked over time, and the active
        return by factor (fundamental model); the pieces add up to the active return."""
        import json

        import pandas as pd

        from keel.cli.common import Report, emit, friendly_errors

        with friendly_errors():
            from keel.cli.validate import writable_file

            for value, name in ((start, "start"), (end, "end")):
                if value is not None:
                    try:
                        pd.Timestamp(value)
                    except ValueError:
                        from keel.errors import ValidationError

                        raise ValidationError("not an ISO date", field=name,
                                              value=value) from None
            writable_file(json_out, "json")
            rep = run_attribution(prices, weights, sectors, start, end, factors)
            report = Report()
            add_sections(report, rep)
            if json_out is not None:
                json_out.write_text(json.dumps(rep, indent=2, default=float))
                report.note(f"wrote {json_out}")
            emit(report, output)
