"""`keel` commands of the backtest layer."""

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
    configure_logging,
    emit,
    err_console,
    format_option,
    frame_section,
    friendly_errors,
)

if TYPE_CHECKING:
    from keel.backtest.engine import BacktestResult

#: how the backtest's metrics read in a table (fractions as %, costs in bps)
_METRIC_KINDS = {"total_return": Kind.PCT, "cagr": Kind.PCT, "ann_return": Kind.PCT,
                 "ann_vol": Kind.PCT, "sharpe": Kind.RATIO, "max_drawdown": Kind.PCT,
                 "turnover_ann": Kind.PCT, "tracking_error": Kind.PCT,
                 "active_return": Kind.PCT, "hit_rate": Kind.PCT}


class SweepEngine(StrEnum):
    """The ``--engine`` choices: :class:`keel.backtest.sweep.Engine`, spelled here so
    ``keel --help`` does not import pandas (a test keeps the two equal)."""

    LOCAL = "local"
    RAY = "ray"


def _backtest_report(name: str, result: BacktestResult, paths: dict[str, Path]) -> Report:
    m = result.metrics()
    u = result.universe
    rep = Report()
    f = rep.fields("run", title=f"{name}: {len(result.books)} books")
    f.add("name", name)
    f.add("execution", result.execution_lag)
    f.add("universe_min", int(u.min()), Kind.INT, "names", "universe, fewest")
    f.add("universe_max", int(u.max()), Kind.INT, "names", "universe, most")
    f.add("simulated_s", result.timings["total_s"], Kind.NUM, "s", "simulated in")
    for i, c in enumerate(result.caveats):
        f.add(f"caveat.{i}", c, title="data caveat")
        rep.note(f"caveat: {c}")
    for key, p in paths.items():
        f.add(f"file.{key}", str(p), title=f"file: {key}")
    frame_section(rep, "books", m, index="book", kinds=_METRIC_KINDS, title="books")
    fails = rep.section("failures", [Col("book"), Col("date", Kind.TIME), Col("reason")],
                        title="failed books")
    for book, fl in result.failures.items():
        fails.add(book, fl["date"], fl["reason"])
        rep.note(f"{book} failed on {fl['date']}: {fl['reason']}")
    return rep


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""

    @app.command("backtest")
    def backtest(
        config: Path | None = typer.Option(None, "--config", "-c", help="The keel TOML "
                                           "configuration (default: built-in; see "
                                           "docs/backtest.md)."),
        out: Path | None = typer.Option(None, "--out", help="Output folder (default: "
                                        "general.out_dir/backtest, i.e. keel-out/backtest)."),
        same_close: bool = typer.Option(False, "--same-close", help="Fill at the decision "
                                        "close (backtest.execution_lag = same_close; "
                                        "labelled in the report)."),
        mlflow: bool = typer.Option(False, "--mlflow", help="Also log to MLflow (needs the "
                                    "mlflow extra): a parent run, a nested run per book."),
        tracking_uri: str | None = typer.Option(
            None, "--tracking-uri", help="MLflow tracking URI (implies --mlflow; default: "
            "tracking.mlflow_uri, else MLFLOW_TRACKING_URI, else "
            "sqlite:///<out>/mlflow.db)."),
        no_report: bool = typer.Option(False, "--no-report", help="Skip the HTML report."),
        output: OutputFormat = format_option(),
    ) -> None:
        """Run a multi-period backtest: strategies side by side, with costs, and a report."""
        with friendly_errors():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            from keel.backtest.run import load_market, run_backtest
            from keel.config import load_config, with_overrides

            cfg = load_config(config)
            configure_logging(cfg.general.log_level)
            over: dict[str, object] = {}
            if no_report:
                over["backtest.report"] = False
            if same_close:
                over["backtest.execution_lag"] = "same_close"
            if over:
                cfg = with_overrides(cfg, over)
            track = mlflow or tracking_uri is not None or cfg.tracking.mlflow
            uri = tracking_uri or cfg.tracking.mlflow_uri
            if track:  # logged here, so the run id and URI can be printed
                cfg = with_overrides(cfg, {"tracking.mlflow": False})
            # progress on stderr: stdout carries only the report
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), TimeRemainingColumn(),
                          console=err_console) as bar:
                load = bar.add_task("loading data", total=1)
                market = load_market(cfg)
                bar.update(load, completed=1,
                           description=f"data: {market.n_assets} names x {len(market.dates)}")
                task = bar.add_task("simulating", total=None)

                def tick(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                result, paths = run_backtest(cfg, market=market, progress=tick, out_dir=out)
            folder = out if out is not None else Path(cfg.general.out_dir) / "backtest"
            rep = _backtest_report(cfg.general.name, result, paths)
            if track:
                from keel.backtest.tracking import log_to_mlflow

                run = log_to_mlflow(result, paths, tracking_uri=uri, out_dir=folder,
                                    run_name=cfg.general.name)
                f = rep.fields("mlflow", title="MLflow")
                f.add("run_id", run.run_id, title="run id")
                f.add("tracking_uri", run.tracking_uri, title="tracking URI")
                f.add("experiment", run.experiment)
                f.add("experiment_id", run.experiment_id, title="experiment id")
                for book, rid in run.books.items():
                    f.add(f"run_id.{book}", rid, title=f"nested run: {book}")
                rep.note(f"mlflow: run {run.run_id} ({run.run_uri}) in {run.tracking_uri}")
            emit(rep, output)

    @app.command("sweep")
    def sweep(
        config: Path = typer.Option(..., "--config", "-c", help="The keel TOML with a "
                                    "[backtest.sweep] grid of dotted keys."),
        engine: SweepEngine = typer.Option(SweepEngine.LOCAL, "--engine",
                                           case_sensitive=False,
                                           help="local (process pool) or ray."),
        workers: int | None = typer.Option(None, "--workers", help="Parallel workers "
                                           "(default: backtest.sweep.workers)."),
        out: Path | None = typer.Option(None, "--out", help="Output folder (default: "
                                        "general.out_dir/sweep)."),
        output: OutputFormat = format_option(),
    ) -> None:
        """Run a grid of backtests in parallel; one table (sweep.csv) and one report."""
        with friendly_errors():
            from keel.backtest.report import write_sweep_report
            from keel.backtest.sweep import Engine, grid_points, run_sweep
            from keel.config import load_config

            cfg = load_config(config)
            eng = Engine(engine.value)
            n = len(grid_points(cfg))
            err_console.print(f"sweep: {n} points on {eng.value}", highlight=False)
            with err_console.status("running the sweep"):
                table, nav = run_sweep(cfg, engine=eng, workers=workers)
            folder = out or Path(cfg.general.out_dir) / "sweep"
            folder.mkdir(parents=True, exist_ok=True)
            table.to_csv(folder / "sweep.csv", index=False)
            html = write_sweep_report(table, nav, folder / "sweep.html",
                                      f"{cfg.general.name} sweep")
            rep = Report()
            frame_section(rep, "points", table, kinds=_METRIC_KINDS,
                          title=f"{cfg.general.name} sweep: {n} points")
            rep.note(f"outputs: {folder / 'sweep.csv'}, {html}")
            emit(rep, output)
