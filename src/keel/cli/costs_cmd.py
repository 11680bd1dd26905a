"""`keel` commands of the costs layer: ``keel impact fit|allocate`` and ``keel costs ...``."""

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
    notice,
)


class ImpactMethod(StrEnum):
    AUTO = "auto"
    TRADES = "trades"
    BOOK = "book"


class CurveKind(StrEnum):
    LINEAR = "linear"
    QUADRATIC = "quadratic"
    POWER = "power"


class Solver(StrEnum):
    AUTO = "auto"
    EXACT = "exact"
    SLSQP = "slsqp"
    CVXPY = "cvxpy"


impact_app = typer.Typer(help="Market impact from order-book data and the optimal split of an "
                              "order.", no_args_is_help=True)
costs_app = typer.Typer(help="Transaction-cost estimates: market vs limit vs TWAP, Almgren-Chriss "
                                 "trajectories.", no_args_is_help=True)


def _save(fig: object, path: Path, output: OutputFormat = OutputFormat.TABLE) -> None:
    import matplotlib

    matplotlib.use("Agg")
    fig.savefig(path, dpi=110)  # type: ignore[attr-defined]
    notice(f"wrote {path}", output)


@impact_app.command("fit")
def impact_fit(
    lobster: Path | None = typer.Option(
        None, "--lobster", exists=True, file_okay=False,
        help="LOBSTER sample directory (message + orderbook CSV)."),
    synthetic: int | None = typer.Option(
        None, help="Instead of --lobster: this many snapshots of keel's synthetic 10-level "
        "order book (keel.data.intraday.synthetic_order_book) over one session."),
    seed: int = typer.Option(0, help="Seed of the synthetic order book."),
    out: Path = typer.Option(..., "--out", help="Where to write the fitted model (JSON)."),
    method: ImpactMethod = typer.Option(
        ImpactMethod.AUTO, help="trades: what real market orders paid (from the messages); "
        "book: walk the book at a grid of sizes; auto: book with >= 5 levels, else trades."),
    kind: CurveKind = typer.Option(CurveKind.QUADRATIC,
                                   help="Curve family used for the time-of-day curves."),
    train_frac: float = typer.Option(0.7, help="Fraction of samples (by time) used to fit."),
    buckets: int = typer.Option(13, help="Time-of-day buckets over the 390-minute session."),
    sizes: int = typer.Option(40, help="book method: number of order sizes walked."),
    png: Path | None = typer.Option(None, help="Plot of the fits (default: OUT with .png)."),
    output: OutputFormat = format_option(),
) -> None:
    """Fit impact curves g(x) on a LOBSTER day (or a synthetic book); print in/out-of-sample
    scores, write the model JSON and a PNG of the fits."""
    with friendly_errors():
        import numpy as np

        from keel.cli.validate import number, writable_file
        from keel.costs.impact import book_samples, market_order_samples
        from keel.costs.impact_fit import fit_impact_model
        from keel.costs.plots import impact_fit_figure
        from keel.data.intraday import synthetic_order_book
        from keel.data.lobster import find_lobster_pair, load_lobster
        from keel.errors import ValidationError

        if (lobster is None) == (synthetic is None):
            raise ValidationError("give exactly one of --lobster and --synthetic",
                                  field="lobster")
        # every output and option checked before the fit writes anything
        writable_file(out, "out")
        writable_file(png or out.with_suffix(".png"), "png")
        number(train_frac, "train_frac", lo=0, hi=1, lo_open=True, hi_open=True)
        messages = None
        if lobster is not None:
            day = load_lobster(*find_lobster_pair(lobster))
            book, messages = day.book, day.messages
        else:
            book = synthetic_order_book(int(synthetic or 0), 10, seed=seed)
        how = method
        if how is ImpactMethod.AUTO:
            how = ImpactMethod.BOOK if book.n_levels >= 5 else ImpactMethod.TRADES
        if how is ImpactMethod.TRADES:
            if messages is None:
                raise ValidationError("a synthetic book has no trades: use --method book",
                                      field="method")
            samples = market_order_samples(messages, book)
        else:
            top = float(np.nanmedian(book.depth("ask")))
            grid = np.unique(np.round(np.geomspace(1.0, max(top, 2.0), sizes)))
            samples = book_samples(book, grid, "buy")
        model = fit_impact_model(samples, symbol=book.symbol,
                                 source=str(lobster or f"synthetic(seed={seed})"),
                                 method=how.value, kind=kind.value, train_frac=train_frac,
                                 n_buckets=buckets)
        model.save(out)
        rep = Report()
        info = rep.fields("fit", title=f"{book.symbol}: impact fit")
        info.add("symbol", book.symbol)
        info.add("samples", len(samples), Kind.INT)
        info.add("method", how.value)
        info.add("train_frac", train_frac, Kind.PCT, title="train share")
        names = sorted({n for f in model.fits.values() for n in f.curve.params()})
        table = rep.section("curves", [
            Col("curve"), *[Col(n, Kind.NUM) for n in names],
            Col("r2_in", Kind.RATIO, title="R² in"), Col("r2_out", Kind.RATIO, title="R² out"),
            Col("r2_slippage_in", Kind.RATIO, title="R² slip in"),
            Col("r2_slippage_out", Kind.RATIO, title="R² slip out"),
            Col("rmse_out", Kind.NUM, title="RMSE out"), Col("mae_out", Kind.NUM,
                                                           title="MAE out")],
            title="in-sample / out-of-sample (test by time)")
        for k, f in model.fits.items():
            params = {n: v[0] for n, v in f.curve.params().items()}
            table.add(k, *[params.get(n) for n in names], f.r2_in, f.r2_out,
                      f.r2_slippage_in, f.r2_slippage_out, f.rmse_out, f.mae_out)
        rep.note(f"wrote {out}")
        emit(rep, output)
        _save(impact_fit_figure(model, samples), png or out.with_suffix(".png"), output)


@impact_app.command("allocate")
def impact_allocate(
    model: Path = typer.Option(..., "--model", exists=True, dir_okay=False,
                               help="Model JSON written by `keel impact fit`."),
    shares: float = typer.Option(..., "--shares", help="Parent order size S, shares."),
    intervals: int = typer.Option(..., "--intervals", help="Number of intervals T over the "
                                                          "session."),
    cap: float | None = typer.Option(None, help="Max shares per interval as a fraction of S."),
    participation: float | None = typer.Option(
        None, help="Max shares per interval as a fraction of that interval's volume (the "
        "model's measured volume profile)."),
    solver: Solver = typer.Option(Solver.AUTO, help="auto, exact, slsqp or cvxpy."),
    png: Path | None = typer.Option(None, help="Plot of the split (default: next to MODEL)."),
    output: OutputFormat = format_option(),
) -> None:
    """Split S shares over T intervals at least cost with the model's time-of-day curves."""
    with friendly_errors():
        import numpy as np

        from keel.costs._session import SESSION_MINUTES
        from keel.costs.allocation import optimal_split
        from keel.costs.impact_fit import ImpactModel
        from keel.costs.order_types import curve_range_warnings
        from keel.costs.plots import split_figure
        from keel.errors import ValidationError

        m = ImpactModel.load(model)
        curves, share = m.interval_curves(intervals)
        caps = None
        if participation is not None:
            if m.volume_by_bucket.sum() <= 0:
                raise ValidationError("the model has no volume profile", field="participation")
            caps = participation * m.volume_by_bucket.sum() * share
        res = optimal_split(shares, curves, cap=cap, caps=caps, solver=solver.value)
        # the model's curves give the cost in currency (shares x price impact per share)
        rep = Report()
        f = rep.fields("split", title=f"{m.symbol}: {shares:,.0f} shares over {intervals} "
                                      "intervals")
        f.add("symbol", m.symbol)
        f.add("shares", shares, Kind.QTY)
        f.add("intervals", intervals, Kind.INT)
        f.add("solver", res.solver.value)
        f.add("optimal_cost", res.cost, Kind.MONEY, "currency", title="optimal cost")
        f.add("uniform_cost", res.uniform_cost, Kind.MONEY, "currency", title="uniform cost")
        f.add("uniform_feasible", res.uniform_feasible, title="uniform within the caps")
        f.add("improvement_pct", res.improvement_pct / 100.0, Kind.PCT, title="improvement")
        minutes = (np.arange(intervals) + 0.5) * SESSION_MINUTES / intervals
        sched = rep.section("intervals", [Col("interval", Kind.INT),
                                          Col("minute", Kind.NUM, "min from open"),
                                          Col("shares", Kind.QTY)], title="the split")
        for i, (mnt, q) in enumerate(zip(minutes, res.shares, strict=True)):
            sched.add(i, float(mnt), float(q))
        for t in res.trail:
            rep.note(f"fallback: {t}")
        for w in curve_range_warnings({"the largest interval order": float(res.shares.max())},
                                      m.size_range):
            rep.note(f"warning: {w}")
        emit(rep, output)
        _save(split_figure(res, minutes), png or model.with_name(model.stem + "_split.png"),
              output)


@costs_app.command("estimate")
def costs_estimate(
    shares: float = typer.Option(..., help="Order size, shares."),
    price: float = typer.Option(..., help="Mid price, currency per share."),
    spread_bps: float = typer.Option(..., help="Quoted spread, bps of mid."),
    vol: float = typer.Option(..., help="Daily volatility of returns (0.02 = 2 %)."),
    adv: float = typer.Option(..., help="Average daily volume, shares."),
    horizon_min: float = typer.Option(30.0, help="Minutes for the limit order and the TWAP."),
    slices: int = typer.Option(10, help="TWAP slices."),
    market_min: float = typer.Option(1.0, help="Minutes a market order takes (its horizon)."),
    commission_bps: float = typer.Option(0.0, help="Broker fee, bps of notional."),
    impact_y: float = typer.Option(1.0, help="Y of the square-root law Y sigma sqrt(h) "
                                   "rho^beta."),
    impact_beta: float = typer.Option(0.5, help="Participation exponent beta (0.5 = square "
                                      "root)."),
    adverse_bps: float = typer.Option(float("nan"), help="Adverse selection of a passive fill, "
                                      "bps (default: half the spread)."),
    passive_participation: float = typer.Option(
        0.1, help="Largest share of the horizon's volume a resting limit order can capture."),
    model: Path | None = typer.Option(
        None, "--model", exists=True, dir_okay=False,
        help="Impact model JSON from `keel impact fit`: its all-day curve g(x) prices crossing "
        "the book (market order, TWAP children) instead of the square-root law; sizes beyond "
        "the fitted ones are flagged."),
    output: OutputFormat = format_option(),
) -> None:
    """Expected cost of one order as a market order, a limit order and a TWAP.

    Market: half spread + square-root impact on its own horizon. TWAP: half spread + 2/3 of
    the peak impact. Limit: fill probability x adverse selection + the unfilled rest crossed
    (see docs/costs.md)."""
    with friendly_errors():
        import math

        from keel.costs.impact_fit import ImpactModel
        from keel.costs.order_types import OrderInputs, estimate_order_types

        m = None if model is None else ImpactModel.load(model)
        est = estimate_order_types(OrderInputs(
            shares=shares, price=price, spread=spread_bps * 1e-4, daily_vol=vol,
            adv_shares=adv, horizon_minutes=horizon_min, n_slices=slices,
            market_minutes=market_min, commission_bps=commission_bps, impact_y=impact_y,
            impact_beta=impact_beta,
            adverse_selection_bps=None if math.isnan(adverse_bps) else adverse_bps,
            max_passive_participation=passive_participation),
            market_curve=None if m is None else m.curve,
            curve_range=None if m is None else m.size_range)
        rep = Report()
        f = rep.fields("order", title="the order")
        f.add("shares", shares, Kind.QTY)
        f.add("price", price, Kind.PRICE, "currency")
        f.add("notional", shares * price, Kind.MONEY, "currency")
        f.add("adv_fraction", shares / adv, Kind.PCT, title="of ADV")
        f.add("impact_source", est.impact_source, title="impact")
        t = rep.section("estimates", [
            Col("order_type", title="order type"),
            Col("expected_cost", Kind.MONEY, "currency", "expected cost"),
            Col("cost_bps", Kind.BPS, title="cost"),
            Col("impact_bps", Kind.BPS, title="impact"),
            Col("risk_std", Kind.MONEY, "currency", "risk (std)"),
            Col("fill_probability", Kind.RATIO, title="fill probability")],
            title=f"{shares:,.0f} shares at {price:,.2f}: {shares / adv:.2%} of ADV")
        for name, row in est.table.iterrows():
            t.add(str(name), float(row.expected_cost), float(row.cost_bps),
                  float(row.impact_bps), float(row.risk_std), float(row.fill_probability))
        for w in est.warnings:
            rep.note(f"warning: {w}")
        emit(rep, output)


@costs_app.command("trajectory")
def costs_trajectory(
    shares: float = typer.Option(..., help="Parent order X, shares."),
    intervals: int = typer.Option(..., help="Number of intervals N."),
    interval: float = typer.Option(1.0, help="Interval length tau (time unit of sigma)."),
    sigma: float = typer.Option(..., help="Volatility, currency/share/sqrt(time unit)."),
    eta: float = typer.Option(..., help="Temporary impact, currency/share per share/time."),
    gamma: float = typer.Option(0.0, help="Permanent impact, currency/share per share."),
    epsilon: float = typer.Option(0.0, help="Fixed cost, currency per share."),
    risk_aversion: float = typer.Option(0.0, help="Lambda, 1/currency (0 = TWAP)."),
    output: OutputFormat = format_option(),
) -> None:
    """Almgren-Chriss optimal trajectory with its expected cost and standard deviation."""
    with friendly_errors():
        import numpy as np

        from keel.costs.almgren_chriss import ac_expected_cost, ac_trajectory, ac_variance

        tr = ac_trajectory(shares, intervals, interval, sigma, eta, gamma, epsilon,
                           risk_aversion)
        rep = Report()
        f = rep.fields("trajectory", title="Almgren-Chriss")
        f.add("expected_cost", ac_expected_cost(tr, interval, eta, gamma, epsilon), Kind.MONEY,
              "currency", "E[cost]", decimals=0)
        f.add("cost_std", float(np.sqrt(ac_variance(tr, interval, sigma))), Kind.MONEY,
              "currency", "sqrt(V)", decimals=0)
        t = rep.section("trades", [Col("interval", Kind.INT),
                                   Col("shares", Kind.QTY, decimals=0)],
                        title="shares sold per interval")
        for i, v in enumerate(tr):
            t.add(i + 1, float(v))
        emit(rep, output)


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``: ``keel impact ...`` and ``keel costs ...``."""
    app.add_typer(impact_app, name="impact")
    app.add_typer(costs_app, name="costs")
