"""`keel config ...`: show the effective configuration and its reference."""

from __future__ import annotations

from pathlib import Path

import typer

from keel.cli.common import OutputFormat, Report, emit, format_option, friendly_errors


def register(app: typer.Typer) -> None:
    """Add the ``config`` command group to ``app``."""
    config_app = typer.Typer(help="Inspect keel's configuration.", no_args_is_help=True)

    @config_app.command("show")
    def show(
        config: Path | None = typer.Option(None, "--config", "-c",
                                           help="TOML file (default: built-in defaults)."),
        output: OutputFormat = format_option(OutputFormat.JSON),
    ) -> None:
        """Print the effective configuration (file + KEEL_* environment), secrets (API
        token, database password) masked: JSON by default (one object per section), or a
        table / CSV of section, key, value."""
        from keel.app.guard import mask_secrets
        from keel.config import config_as_dict, load_config

        with friendly_errors():
            shown = mask_secrets(config_as_dict(load_config(config)))
            rep = Report()
            for section, values in shown.items():
                block = rep.fields(section, title=f"[{section}]")
                for key, value in (values.items() if isinstance(values, dict)
                                   else [("value", values)]):
                    block.add(key, value)
            emit(rep, output)

    @config_app.command("reference")
    def reference() -> None:
        """Print the Markdown reference of every section and key."""
        from keel.config import config_markdown

        typer.echo(config_markdown(), nl=False)

    app.add_typer(config_app, name="config")
