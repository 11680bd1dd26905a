"""`keel db ...`: database migrations and inspection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from keel.cli.common import console, friendly_errors

if TYPE_CHECKING:
    from keel.store import Store

_URL_HELP = "SQLAlchemy URL (default: store.url of the configuration)."
_CONFIG_HELP = "TOML configuration file (default: built-in defaults + KEEL_* variables)."


@contextmanager
def _store(url: str | None, config: Path | None) -> Iterator[Store]:
    """The store at ``url`` (else the configured one), disposed afterwards; errors: exit 2."""
    from keel.store import Store

    with friendly_errors():
        if not url:
            from keel.config import load_config

            url = load_config(config).store.url
        store = Store.from_url(url)
        try:
            yield store
        finally:
            store.dispose()


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
        with _store(url, config) as store:
            before = store.current_revision()
            after = store.upgrade(revision)
            console.print(f"{store.url}: {before or '(empty)'} -> [bold]{after}[/]")

    @db_app.command("downgrade")
    def downgrade(
        revision: str = typer.Argument(..., help="Target revision; 'base' drops every table."),
        url: str | None = typer.Option(None, "--url", help=_URL_HELP),
        config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    ) -> None:
        """Migrate the schema down to a revision (data in dropped tables is lost)."""
        with _store(url, config) as store:
            before = store.current_revision()
            after = store.downgrade(revision)
            console.print(f"{store.url}: {before or '(empty)'} -> [bold]{after or 'base'}[/]")

    @db_app.command("current")
    def current(
        url: str | None = typer.Option(None, "--url", help=_URL_HELP),
        config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    ) -> None:
        """Print the database's revision and the newest one this code ships."""
        with _store(url, config) as store:
            rev, head = store.current_revision(), store.head_revision()
            state = "up to date" if rev == head else "needs `keel db upgrade`"
            console.print(f"{store.url}: current={rev or '(none)'} head={head} ({state})")

    @db_app.command("check")
    def check(
        url: str | None = typer.Option(None, "--url", help=_URL_HELP),
        config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    ) -> None:
        """Exit 0 if the schema is at the newest revision and equals the code, else exit 2."""
        with _store(url, config) as store:
            store.check_schema()
            console.print(f"{store.url}: schema OK at revision {store.current_revision()}")

    app.add_typer(db_app, name="db")
