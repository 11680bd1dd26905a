"""`keel db ...`: database migrations and inspection."""

from __future__ import annotations

from pathlib import Path

import typer

from keel.cli.common import console, friendly_errors

_URL_HELP = "SQLAlchemy URL (default: store.url of the configuration)."
_CONFIG_HELP = "TOML configuration file (default: built-in defaults + KEEL_* variables)."


def _url(url: str | None, config: Path | None) -> str:
    if url:
        return url
    from keel.config import load_config

    return load_config(config).store.url


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group to ``app``."""
    db_app = typer.Typer(help="Database schema: migrate, inspect, check.", no_args_is_help=True)

    @db_app.command("upgrade")
    def upgrade(
        url: str | None = typer.Option(None, "--url", help=_URL_HELP),
        config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
        revision: str = typer.Option("head", "--revision", "-r",
                                     help="Target revision (default: the newest)."),
    ) -> None:
        """Create or migrate the schema up to a revision (the newest by default)."""
        from keel.store import Store

        with friendly_errors():
            store = Store.from_url(_url(url, config))
            try:
                before = store.current_revision()
                after = store.upgrade(revision)
            finally:
                store.dispose()
            console.print(f"{store.url}: {before or '(empty)'} -> [bold]{after}[/]")

    @db_app.command("downgrade")
    def downgrade(
        revision: str = typer.Argument(..., help="Target revision; 'base' drops every table."),
        url: str | None = typer.Option(None, "--url", help=_URL_HELP),
        config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    ) -> None:
        """Migrate the schema down to a revision (data in dropped tables is lost)."""
        from keel.store import Store

        with friendly_errors():
            store = Store.from_url(_url(url, config))
            try:
                before = store.current_revision()
                after = store.downgrade(revision)
            finally:
                store.dispose()
            console.print(f"{store.url}: {before or '(empty)'} -> [bold]{after or 'base'}[/]")

    @db_app.command("current")
    def current(
        url: str | None = typer.Option(None, "--url", help=_URL_HELP),
        config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    ) -> None:
        """Print the database's revision and the newest one this code ships."""
        from keel.store import Store

        with friendly_errors():
            store = Store.from_url(_url(url, config))
            try:
                rev, head = store.current_revision(), store.head_revision()
            finally:
                store.dispose()
            state = "up to date" if rev == head else "needs `keel db upgrade`"
            console.print(f"{store.url}: current={rev or '(none)'} head={head} ({state})")

    @db_app.command("check")
    def check(
        url: str | None = typer.Option(None, "--url", help=_URL_HELP),
        config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    ) -> None:
        """Exit 0 if the schema is at the newest revision and equals the code, else exit 2."""
        from keel.store import Store

        with friendly_errors():
            store = Store.from_url(_url(url, config))
            try:
                store.check_schema()
                rev = store.current_revision()
            finally:
                store.dispose()
            console.print(f"{store.url}: schema OK at revision {rev}")

    app.add_typer(db_app, name="db")
