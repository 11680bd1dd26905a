"""`keel risk`: risk decomposition and VaR/CVaR of a portfolio from a prices file."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    import pandas as pd

    from keel.data.market import MarketData


class RiskModelKind(StrEnum):
    """The ``--model`` choices: :class:`keel.risk.report.RiskModelKind`, spelled here so
    ``keel --help`` does not import pandas (a test keeps the two equal)."""

    FUNDAMENTAL = "fundamental"
    PCA = "pca"
    LW = "lw"


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


def _report(rep: dict) -> Report:
    """The risk report (:func:`keel.risk.report.risk_report`) as tables / JSON / CSV: every
    fraction of NAV is a fraction in JSON and a percentage in the table."""
    out = Report()
    f = out.fields("model", title="risk model")
    f.add("model", rep["model"])
    f.add("n_assets", rep["n_assets"], Kind.INT, title="assets")
    f.add("n_days", rep["n_days"], Kind.INT, title="days")
    f.add("as_of", rep["as_of"], Kind.TIME)
    f.add("model_info", rep["model_info"], title="model info")
    f.add("summary", rep["summary"])
    f.add("max_drawdown", rep["max_drawdown"], Kind.PCT, title="max drawdown")
    f.add("realised_volatility_annualized", rep["realised_volatility_annualized"], Kind.PCT,
          title="realised volatility, a year")
    dec = rep["decomposition"]
    d = out.section("decomposition", [Col("component"), Col("risk", Kind.PCT, "of NAV")],
                    title="decomposition (annualised volatility)")
    d.add("total", dec["total"])
    if dec["by_group"]:
        d.add("factor", dec["factor"])
        for g, v in dec["by_group"].items():
            d.add(f"factor: {g}", v)
        d.add("specific", dec["specific"])
        d.add("factor share of variance", dec["factor_share_of_variance"])
    s = out.section("sectors", [Col("sector"), Col("weight", Kind.PCT, "of NAV"),
                                Col("risk", Kind.PCT, "of NAV"),
                                Col("share", Kind.PCT, title="share of risk")],
                    title="sectors")
    for name, row in dec["by_sector"].items():
        if row["weight"] == 0 and row["risk"] == 0:
            continue
        s.add(str(name), row["weight"], row["risk"], row["share"])
    v = out.section("var_cvar", [Col("method"), Col("var", Kind.PCT, "loss, of NAV", "VaR"),
                                 Col("cvar", Kind.PCT, "loss, of NAV", "CVaR")],
                    title=f"VaR / CVaR, {rep['confidence']:.0%} over {rep['horizon_days']} days")
    for k, row in rep["var_cvar"].items():
        v.add(k, row["var"], row["cvar"])
    if "fama_french" in rep:
        ff = rep["fama_french"]
        t = out.section("fama_french", [Col("factor"), Col("beta", Kind.RATIO),
                                        Col("t_stat", Kind.NUM, title="t")],
                        title=f"Fama-French: R2 {ff['r2']:.3f}, n={ff['n_obs']}")
        for k, b in ff["betas"].items():
            t.add(k, b, ff["t_stats"][k])
    return out


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""

    @app.command("risk")
    def risk(
        prices: Path = typer.Option(..., "--prices", help="Prices file: long (date, close, "
                                    "volume, Name) or wide (date + one column per symbol); "
                                    "CSV, CSV.gz or Parquet."),
        weights: Path = typer.Option(..., "--weights", help="CSV with symbol and weight "
                                     "(fraction of NAV) columns."),
        model: RiskModelKind = typer.Option(RiskModelKind.FUNDAMENTAL, "--model",
                                            case_sensitive=False,
                                            help="Risk model: fundamental (Barra-style), pca "
                                                 "(statistical) or lw (Ledoit-Wolf)."),
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
        attribution: bool = typer.Option(False, "--attribution", help="Also the return "
                                         "attribution of these weights held from the first "
                                         "session (as `keel attribution`: Brinson-Fachler by "
                                         "sector, factor groups)."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the full report "
                                             "as JSON to this file."),
        output: OutputFormat = format_option(),
    ) -> None:
        """Risk decomposition (factor / specific, groups, sectors) and VaR/CVaR of a
        portfolio. Return (P&L) attribution: --attribution, or `keel attribution` for a
        history of targets."""
        import json

        with friendly_errors():
            from keel.cli.validate import number, writable_file
            from keel.data.factors import load_fama_french
            from keel.risk.report import risk_report

            # validate first: every option before any file is read or written
            number(confidence, "confidence", lo=0, hi=1, lo_open=True, hi_open=True)
            number(horizon, "horizon", lo=1, hi=2520)
            writable_file(json_out, "json")
            w = read_weights(weights)
            market = read_market(prices, sectors)
            ff = None if fama_french is None else load_fama_french(
                fama_french, start=market.dates[0].tz_convert(None).normalize(), stamp=True)
            rep = risk_report(market, w, model=model.value,
                              confidence=confidence, horizon=horizon, seed=seed,
                              fama_french=ff)
            out = _report(rep)
            if attribution:
                from keel.cli.attribution_cmd import add_sections, run_attribution

                rep["attribution"] = run_attribution(
                    prices, weights, sectors, None, None,
                    factors=model is RiskModelKind.FUNDAMENTAL)
                add_sections(out, rep["attribution"], prefix="attribution_")
            if json_out is not None:
                json_out.write_text(json.dumps(rep, indent=2, default=float))
                out.note(f"wrote {json_out}")
            emit(out, output)
