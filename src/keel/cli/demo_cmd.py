"""`keel demo`: the main job, run on the built-in synthetic market."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from keel.cli.common import (
    Engine,
    Kind,
    OutputFormat,
    Report,
    configure_logging,
    emit,
    err_console,
    format_option,
    friendly_errors,
)


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
        engine: Engine | None = typer.Option(None, case_sensitive=False,
                                             help="Optimizer engine (default: config "
                                                  "optimize.engine)."),
        output: OutputFormat = format_option(),
    ) -> None:
        """Run keel end to end on the synthetic market; results in ./keel-out/.

        Exits 1 when the ledger and the exchange disagree at the end (a store that already
        held an earlier run's book): the differences are listed."""
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from keel.app.demo import run_demo

        with friendly_errors():
            cfg = load_run_config(config, out_dir, assets, days, seed, engine)
            with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                          TimeElapsedColumn(), console=err_console, transient=True) as bar:
                task = bar.add_task("starting", total=None)

                def on_step(name: str, description: str) -> None:
                    bar.update(task, description=f"[bold]{name}[/]: {description}")

                ctx = run_demo(cfg, progress=on_step)
            rep = Report()
            for step, values in ctx.sections.items():
                block = rep.fields(step, title=f"{step}" if step != next(iter(ctx.sections))
                                   else f"keel demo — run {ctx.run_id}: {step}")
                for key, value in values.items():
                    block.add(key, value, _kind(key, value), title=key.replace("_", " "))
            t = rep.fields("timings", title="steps")
            for k, v in ctx.timings.items():
                t.add(k, v, Kind.NUM, "s")
            info = rep.fields("run", title="run")
            info.add("run_id", ctx.run_id, title="run id")
            info.add("store", ctx.store.url)
            report = ctx.results.get("report")
            if report:
                info.add("report", str(report))
                rep.note(f"report: {report} (open it in a browser)")
            rep.note(f"stored in {ctx.store.url}")
            recon = ctx.artifacts.get("reconciliation") or {}
            book = ctx.sections.get("book", {})
            agree = book.get("ledger_matches_exchange", True) and \
                book.get("exchange_cash_matches", True)
            info.add("ledger_matches_exchange", bool(agree),
                     title="ledger and exchange agree")
            emit(rep, output)
            if not agree:
                _disagreement(recon, ctx.store.url)
                raise typer.Exit(1)


def _kind(key: str, value: object) -> Kind:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Kind.TEXT
    if isinstance(value, int):
        return Kind.INT
    if key.endswith("_bps") or "_bps_" in key:
        return Kind.BPS
    if key in ("equity", "cash", "traded_notional", "nav") or key.endswith("_notional"):
        return Kind.MONEY
    return Kind.NUM


def _disagreement(recon: dict[str, Any], url: str) -> None:
    """Say on stderr what the ledger and the exchange disagree on, and why it happens."""
    pos = recon.get("positions", {})
    cash = recon.get("cash", ("?", "?"))
    shown = ", ".join(f"{s} ledger {a} vs exchange {b}" for s, (a, b) in list(pos.items())[:5])
    more = f" and {len(pos) - 5} more" if len(pos) > 5 else ""
    err_console.print(
        f"ledger and exchange disagree: {len(pos)} positions differ ({shown}{more}); cash "
        f"ledger {cash[0]} vs exchange {cash[1]}. The store {url} already held a book from an "
        "earlier run, and the demo's exchange starts empty: run the demo with a fresh "
        "--out-dir (or remove that store).", soft_wrap=True, highlight=False, markup=False)
