"""`keel` commands of the backtest layer."""

from __future__ import annotations

from pathlib import Path

import typer

from keel.cli.common import console, friendly_errors


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""

    @app.command("backtest")
    def backtest(
        config: Path = typer.Option(..., "--config", "-c", help="Backtest TOML file "
                                    "(see docs/backtest.md)."),
        out: Path | None = typer.Option(None, "--out", help="Output folder (default: the "
                                        "config's output.dir)."),
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

            from keel.backtest.config import load_backtest_config
            from keel.backtest.run import load_market, run_backtest

            cfg = load_backtest_config(config)
            if mlflow or no_report:
                cfg = cfg.model_copy(update={"output": cfg.output.model_copy(
                    update={"mlflow": cfg.output.mlflow or mlflow,
                            "report": cfg.output.report and not no_report})})
            base = config.resolve().parent
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
                load = bar.add_task("loading data", total=1)
                market = load_market(cfg, base)
                bar.update(load, completed=1,
                           description=f"data: {market.n_assets} names x {len(market.dates)}")
                task = bar.add_task("simulating", total=None)

                def tick(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                result, paths = run_backtest(cfg, base=base, market=market, progress=tick,
                                             out_dir=out)
            m = result.metrics()
            table = Table(title=f"{cfg.name}: {len(result.books)} books")
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
        config: Path = typer.Option(..., "--config", "-c", help="Backtest TOML file with a "
                                    "[sweep] grid of dotted keys."),
        engine: str = typer.Option("local", "--engine", help="local (process pool) or ray."),
        workers: int | None = typer.Option(None, "--workers", help="Parallel workers "
                                           "(default: sweep.workers)."),
        out: Path | None = typer.Option(None, "--out", help="Output folder (default: "
                                        "output.dir/sweep)."),
    ) -> None:
        """Run a grid of backtests in parallel; one table (sweep.csv) and one report."""
        with friendly_errors():
            from keel.backtest.config import load_backtest_config
            from keel.backtest.report import write_sweep_report
            from keel.backtest.sweep import Engine, grid_points, run_sweep
            from keel.errors import ConfigError

            cfg = load_backtest_config(config)
            try:
                eng = Engine(engine)
            except ValueError:
                raise ConfigError("unknown engine (local, ray)", field="engine",
                                  value=engine) from None
            n = len(grid_points(cfg))
            console.print(f"sweep: {n} points on {eng.value}")
            with console.status("running the sweep"):
                table, nav = run_sweep(cfg, engine=eng, workers=workers)
            folder = out or Path(cfg.output.dir) / "sweep"
            folder.mkdir(parents=True, exist_ok=True)
            table.to_csv(folder / "sweep.csv", index=False)
            rep = write_sweep_report(table, nav, folder / "sweep.html", f"{cfg.name} sweep")
            cols = [c for c in ("point", "book", "sharpe", "cagr", "cost_total_bps", "error")
                    if c in table.columns]
            console.print(table[cols].to_string(index=False))
            console.print(f"outputs: {folder / 'sweep.csv'}, {rep}")
