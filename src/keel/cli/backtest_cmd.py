"""`keel` commands of the backtest layer."""

from __future__ import annotations

from pathlib import Path

import typer

from keel.cli.common import configure_logging, console, friendly_errors


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""

    @app.command("backtest")
    def backtest(
        config: Path | None = typer.Option(None, "--config", "-c", help="The keel TOML "
                                           "configuration (default: built-in; see "
                                           "docs/backtest.md)."),
        out: Path | None = typer.Option(None, "--out", help="Output folder (default: "
                                        "general.out_dir/backtest)."),
        same_close: bool = typer.Option(False, "--same-close", help="Fill at the decision "
                                        "close (backtest.execution_lag = same_close; "
                                        "labelled in the report)."),
        mlflow: bool = typer.Option(False, "--mlflow", help="Also log to MLflow (needs the "
                                    "mlflow extra)."),
        no_report: bool = typer.Option(False, "--no-report", help="Skip the HTML report."),
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
            from rich.table import Table

            from keel.backtest.run import load_market, run_backtest
            from keel.config import load_config, with_overrides

            cfg = load_config(config)
            configure_logging(cfg.general.log_level)
            over: dict[str, object] = {}
            if mlflow:
                over["tracking.mlflow"] = True
            if no_report:
                over["backtest.report"] = False
            if same_close:
                over["backtest.execution_lag"] = "same_close"
            if over:
                cfg = with_overrides(cfg, over)
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
                load = bar.add_task("loading data", total=1)
                market = load_market(cfg)
                bar.update(load, completed=1,
                           description=f"data: {market.n_assets} names x {len(market.dates)}")
                task = bar.add_task("simulating", total=None)

                def tick(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                result, paths = run_backtest(cfg, market=market, progress=tick, out_dir=out)
            m = result.metrics()
            u = result.universe
            console.print(f"execution: {result.execution_lag}; universe "
                          f"{int(u.min())}-{int(u.max())} names")
            table = Table(title=f"{cfg.general.name}: {len(result.books)} books")
            cols = ["cagr", "ann_vol", "sharpe", "max_drawdown", "turnover_ann",
                    "cost_total_bps", "tracking_error", "hit_rate"]
            table.add_column("book")
            for c in cols:
                table.add_column(c, justify="right")
            for name, row in m.iterrows():
                table.add_row(str(name), *[f"{row[c]:.4g}" if c in row else "-" for c in cols])
            console.print(table)
            for name, f in result.failures.items():
                console.print(f"[red]{name} failed on {f['date']}: {f['reason']}[/]")
            console.print(f"simulated in {result.timings['total_s']:.1f} s; outputs: "
                          + ", ".join(str(p) for p in paths.values()))

    @app.command("sweep")
    def sweep(
        config: Path = typer.Option(..., "--config", "-c", help="The keel TOML with a "
                                    "[backtest.sweep] grid of dotted keys."),
        engine: str = typer.Option("local", "--engine", help="local (process pool) or ray."),
        workers: int | None = typer.Option(None, "--workers", help="Parallel workers "
                                           "(default: backtest.sweep.workers)."),
        out: Path | None = typer.Option(None, "--out", help="Output folder (default: "
                                        "general.out_dir/sweep)."),
    ) -> None:
        """Run a grid of backtests in parallel; one table (sweep.csv) and one report."""
        with friendly_errors():
            from keel.backtest.report import write_sweep_report
            from keel.backtest.sweep import Engine, grid_points, run_sweep
            from keel.config import load_config
            from keel.errors import ConfigError

            cfg = load_config(config)
            try:
                eng = Engine(engine)
            except ValueError:
                raise ConfigError("unknown engine (local, ray)", field="engine",
                                  value=engine) from None
            n = len(grid_points(cfg))
            console.print(f"sweep: {n} points on {eng.value}")
            with console.status("running the sweep"):
                table, nav = run_sweep(cfg, engine=eng, workers=workers)
            folder = out or Path(cfg.general.out_dir) / "sweep"
            folder.mkdir(parents=True, exist_ok=True)
            table.to_csv(folder / "sweep.csv", index=False)
            rep = write_sweep_report(table, nav, folder / "sweep.html", f"{cfg.general.name} sweep")
            cols = [c for c in ("point", "book", "sharpe", "cagr", "cost_total_bps", "error")
                    if c in table.columns]
            console.print(table[cols].to_string(index=False))
            console.print(f"outputs: {folder / 'sweep.csv'}, {rep}")
