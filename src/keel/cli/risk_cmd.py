"""`keel risk`: risk decomposition and VaR/CVaR of a portfolio from a prices file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    import pandas as pd

    from keel.data.market import MarketData


def _read_table(path: Path, nrows: int | None = None, field: str = "path") -> pd.DataFrame:
    from keel.cli.validate import read_table_safely

    result: pd.DataFrame = read_table_safely(path, field, nrows)
    return result


def read_market(prices: Path, sectors: Path | None = None) -> MarketData:
    """A ``MarketData`` from a prices file via the ``keel.data`` loaders.

    *Long* files (``date, open, high, low, close, volume, Name``, as the S&P 500 5-year file)
    go through :func:`keel.data.load_prices_long`; *wide* files (a date column then one
    close-price column per symbol) through :func:`keel.data.read_wide`, with volumes unknown
    (taken as 0: the fundamental model then weights names equally). Names with missing data
    are dropped (the report is in ``market.missing_report``). Dates are stamped at the NYSE
    close in UTC. Sectors: an optional ``Symbol, Sector`` CSV.
    """
    from keel.config import MissingPolicy
    from keel.data.market import MarketData
    from keel.data.prices import load_prices_long, load_sectors, read_wide

    sec = None if sectors is None else load_sectors(sectors)
    head = _read_table(prices, nrows=0).columns
    lower = {str(c).lower(): str(c) for c in head}
    if {"date", "close", "name"} <= lower.keys():
        return load_prices_long(prices, sectors=sec, on_missing=MissingPolicy.DROP,
                                date_col=lower["date"], symbol_col=lower["name"],
                                spreads=False)
    px = read_wide(prices, name="prices")
    return MarketData(prices=px, volumes=px * 0.0, sectors=sec, on_missing=MissingPolicy.DROP,
                      source=str(prices))


def read_weights(path: Path) -> pd.Series:
    """Weights by symbol from a CSV with ``symbol`` and ``weight`` columns (or the first two)."""
    import numpy as np

    from keel.cli.validate import normalise_symbols, short
    from keel.errors import DataError, ValidationError

    df = _read_table(path, field="weights")
    cols = {str(c).strip().lower(): c for c in df.columns}
    if {"symbol", "weight"} <= cols.keys():
        sym, wt = cols["symbol"], cols["weight"]
    elif df.shape[1] >= 2:
        sym, wt = df.columns[0], df.columns[1]
    else:
        raise DataError("weights file needs symbol and weight columns", field="weights",
                        file=short(str(path)))
    if df.empty:
        raise DataError("weights file has no rows", field="weights", file=short(str(path)))
    try:
        symbols = normalise_symbols(df[sym].tolist(), field="weights.symbol")
    except ValidationError as exc:
        raise DataError(exc.message, field=exc.field, symbol=exc.symbol, value=exc.value,
                        file=short(str(path)), **exc.context) from None
    try:
        values = df[wt].astype(float).to_numpy()
    except (TypeError, ValueError):
        raise DataError("non-numeric weight", field="weights.weight",
                        file=short(str(path))) from None
    bad = ~np.isfinite(values) | (np.abs(values) > MAX_ABS_WEIGHT)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"weight must be finite and within +/-{MAX_ABS_WEIGHT:g} (fraction "
                        "of NAV)", field="weights.weight", symbol=symbols[i],
                        value=short(values[i]), file=short(str(path)))
    import pandas as pd

    return pd.Series(values, index=pd.Index(symbols), name="weight")


#: largest absolute weight accepted in a weights file (fraction of NAV: 10 = 1,000 %)
MAX_ABS_WEIGHT = 10.0


def _print_report(rep: dict) -> None:
    from rich.table import Table

    from keel.cli.common import console

    dec = rep["decomposition"]
    console.print(f"[bold]Risk model[/]: {rep['model']}  ({rep['n_assets']} assets, "
                  f"{rep['n_days']} days, as of {rep['as_of']})  {rep['model_info']}")
    console.print(f"[bold]{rep['summary']}[/]  (annualised volatility contributions)")
    t = Table(title="Decomposition (annualised volatility, % of NAV)")
    t.add_column("component")
    t.add_column("risk %", justify="right")
    t.add_row("Total", f"{100 * dec['total']:.2f}")
    if dec["by_group"]:
        t.add_row("Factor", f"{100 * dec['factor']:.2f}")
        for g, v in dec["by_group"].items():
            t.add_row(f"  {g}", f"{100 * v:.2f}")
        t.add_row("Specific", f"{100 * dec['specific']:.2f}")
        t.add_row("Factor share of variance", f"{100 * dec['factor_share_of_variance']:.1f}")
    console.print(t)
    s = Table(title="Sectors")
    for c in ("sector", "weight %", "risk %", "share of risk %"):
        s.add_column(c, justify="left" if c == "sector" else "right")
    for name, row in dec["by_sector"].items():
        if row["weight"] == 0 and row["risk"] == 0:
            continue
        s.add_row(str(name), f"{100 * row['weight']:.2f}", f"{100 * row['risk']:.2f}",
                  f"{100 * row['share']:.1f}")
    console.print(s)
    v = Table(title=f"VaR / CVaR, {rep['confidence']:.0%} over {rep['horizon_days']} days "
                    "(loss, % of NAV)")
    for c in ("method", "VaR %", "CVaR %"):
        v.add_column(c, justify="left" if c == "method" else "right")
    for k, row in rep["var_cvar"].items():
        v.add_row(k, f"{100 * row['var']:.2f}", f"{100 * row['cvar']:.2f}")
    console.print(v)
    console.print(f"max drawdown {100 * rep['max_drawdown']:.1f}%, realised volatility "
                  f"{100 * rep['realised_volatility_annualized']:.1f}% a year")
    if "fama_french" in rep:
        ff = rep["fama_french"]
        betas = ", ".join(f"{k} {b:.2f} (t {ff['t_stats'][k]:.1f})"
                          for k, b in ff["betas"].items())
        console.print(f"Fama-French: {betas}; R2 {ff['r2']:.3f}, n={ff['n_obs']}")


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""

    @app.command("risk")
    def risk(
        prices: Path = typer.Option(..., "--prices", help="Prices file: long (date, close, "
                                    "volume, Name) or wide (date + one column per symbol); "
                                    "CSV, CSV.gz or Parquet."),
        weights: Path = typer.Option(..., "--weights", help="CSV with symbol and weight "
                                     "(fraction of NAV) columns."),
        model: str = typer.Option("fundamental", "--model", help="Risk model: fundamental "
                                  "(Barra-style), pca (statistical) or lw (Ledoit-Wolf)."),
        sectors: Path | None = typer.Option(None, "--sectors", help="CSV with Symbol and "
                                            "Sector columns (GICS sectors)."),
        fama_french: Path | None = typer.Option(None, "--fama-french", help="Ken French "
                                                "daily factor file for a time-series "
                                                "regression of the portfolio."),
        confidence: float = typer.Option(0.95, "--confidence", help="VaR/CVaR confidence "
                                         "level, e.g. 0.95 or 0.99."),
        horizon: int = typer.Option(21, "--horizon", help="VaR/CVaR horizon in trading "
                                    "days."),
        seed: int = typer.Option(0, "--seed", help="Seed of the Monte Carlo VaR."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the full report "
                                             "as JSON to this file."),
    ) -> None:
        """Risk decomposition (factor / specific, groups, sectors) and VaR/CVaR of a
        portfolio."""
        import json

        from keel.cli.common import console, friendly_errors

        with friendly_errors():
            from keel.cli.validate import choice, number, writable_file
            from keel.data.factors import load_fama_french
            from keel.risk.report import RiskModelKind, risk_report

            # validate first: every option before any file is read or written
            number(confidence, "confidence", lo=0, hi=1, lo_open=True, hi_open=True)
            number(horizon, "horizon", lo=1, hi=2520)
            choice(model, "model", [k.value for k in RiskModelKind])
            writable_file(json_out, "json")
            w = read_weights(weights)
            market = read_market(prices, sectors)
            ff = None if fama_french is None else load_fama_french(
                fama_french, start=market.dates[0].tz_convert(None).normalize(), stamp=True)
            rep = risk_report(market, w, model=model,
                              confidence=confidence, horizon=horizon, seed=seed,
                              fama_french=ff)
            _print_report(rep)
            if json_out is not None:
                json_out.write_text(json.dumps(rep, indent=2, default=float))
                console.print(f"wrote {json_out}")
