"""`keel demo`: the main job, run on the built-in synthetic market."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from keel.cli.common import configure_logging, console, friendly_errors


def load_run_config(config: Path | None, out_dir: Path | None, assets: int | None,
                    days: int | None, seed: int | None, engine: str | None = None,
                    **sections: dict[str, object] | None) -> Any:
    """The app config with the command-line overrides; ``--out-dir`` also moves the store
    into that folder unless ``KEEL_STORE__URL`` says otherwise."""
    import os

    from keel.config import load_config

    overrides: dict[str, dict[str, object]] = {}
    general: dict[str, object] = {}
    if out_dir is not None:
        general["out_dir"] = str(out_dir)
    if seed is not None:
        general["seed"] = seed
    if general:
        overrides["general"] = general
    data: dict[str, object] = {k: v for k, v in (("n_assets", assets), ("n_days", days))
                               if v is not None}
    if data:
        overrides["data"] = data
    if engine is not None:
        overrides["optimize"] = {"engine": engine}
    for name, values in sections.items():
        if values:
            overrides[name] = {**overrides.get(name, {}), **values}
    if out_dir is not None and "KEEL_STORE__URL" not in os.environ:
        overrides["store"] = {"url": f"sqlite:///{out_dir / 'keel.db'}"}
    cfg = load_config(config, **overrides)
    configure_logging(cfg.general.log_level)
    return cfg


def register(app: typer.Typer) -> None:
    """Add ``keel demo`` to ``app``."""

    @app.command("demo")
    def demo(
        config: Path | None = typer.Option(None, "--config", "-c",
                                           help="TOML configuration (default: built-in)."),
        out_dir: Path | None = typer.Option(None, help="Output folder (default: keel-out)."),
        assets: int | None = typer.Option(None, help="Synthetic universe size."),
        days: int | None = typer.Option(None, help="Synthetic history length, sessions."),
        seed: int | None = typer.Option(None, help="Seed of every random generator."),
        engine: str | None = typer.Option(None, help="mean_variance or greedy (default: "
                                          "config optimize.engine)."),
    ) -> None:
        """Run keel end to end on the synthetic market; results in ./keel-out/."""
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.table import Table

        from keel.app.demo import run_demo

        with friendly_errors():
            cfg = load_run_config(config, out_dir, assets, days, seed, engine)
            with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                          TimeElapsedColumn(), console=console, transient=True) as bar:
                task = bar.add_task("starting", total=None)

                def on_step(name: str, description: str) -> None:
                    bar.update(task, description=f"[bold]{name}[/]: {description}")

                ctx = run_demo(cfg, progress=on_step)
            table = Table(title=f"keel demo — run {ctx.run_id}", show_header=True)
            table.add_column("step", style="bold cyan")
            table.add_column("result")
            table.add_column("value", justify="right")
            for step, values in ctx.sections.items():
                for i, (key, value) in enumerate(values.items()):
                    text = f"{value:,.4g}" if isinstance(value, float) else str(value)
                    table.add_row(step if i == 0 else "", key.replace("_", " "), text)
                table.add_section()
            console.print(table)
            report = ctx.results.get("report")
            if report:
                console.print(f"report: [bold]{report}[/] (open it in a browser)")
            steps = ", ".join(f"{k} {v:.2f}s" for k, v in ctx.timings.items())
            console.print(f"steps: {steps}")
            console.print(f"stored in [bold]{ctx.store.url}[/]")
