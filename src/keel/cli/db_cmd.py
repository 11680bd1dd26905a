"""`keel db ...`: database migrations and inspection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from keel.cli.common import (
    OutputFormat,
    Report,
    console,
    emit,
    format_option,
    friendly_errors,
)

if TYPE_CHECKING:
    from keel.store import Store

_URL_HELP = "SQLAlchemy URL (default: store.url of the configuration)."
_CONFIG_HELP = "TOML configuration file (default: built-in defaults + KEEL_* variables)."


def _url(url: str | None, config: Path | None) -> str:
    if url:
        return url
    from keel.config import load_config

    return load_config(config).store.url


@contextmanager
def _store(url: str | None, config: Path | None, *, create: bool = True) -> Iterator[Store]:
    """The store at ``url`` (else the configured one), disposed afterwards; errors: exit 2.

    ``create=False`` (current, check): a missing SQLite file is reported, never made."""
    from keel.store import Store

    with friendly_errors():
        store = Store.from_url(_url(url, config), create=create)
        try:
            yield store
        finally:
            store.dispose()


def _revision_report(url: str, rev: str | None, head: str, state: str) -> Report:
    rep = Report()
    f = rep.fields("database")
    f.add("url", url)
    f.add("current", rev)
    f.add("head", head)
    f.add("state", state)
    return rep


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
        output: OutputFormat = format_option(),
    ) -> None:
        """Print the database's revision and the newest one this code ships (reads only: a
        missing SQLite file is reported as having no revision, not created)."""
        from keel.errors import StoreError
        from keel.store import migrate

        with friendly_errors():
            from keel.store import Store

            target = _url(url, config)
            try:
                store = Store.from_url(target, create=False)
            except StoreError as exc:
                if exc.context.get("kind") != "missing":
                    raise
                shown, rev, head = target, None, migrate.head_revision()
            else:
                try:
                    shown, rev, head = store.url, store.current_revision(), store.head_revision()
                finally:
                    store.dispose()
            state = "up to date" if rev == head else "needs `keel db upgrade`"
            if output is OutputFormat.TABLE:
                console.print(f"{shown}: current={rev or '(none)'} head={head} ({state})",
                              highlight=False, soft_wrap=True)
            else:
                emit(_revision_report(shown, rev, head, state), output)

    @db_app.command("check")
    def check(
        url: str | None = typer.Option(None, "--url", help=_URL_HELP),
        config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
        output: OutputFormat = format_option(),
    ) -> None:
        """Exit 0 if the schema is at the newest revision and equals the code, else exit 2
        (reads only: never creates a database or its folder)."""
        with _store(url, config, create=False) as store:
            store.check_schema()
            rev = store.current_revision()
            if output is OutputFormat.TABLE:
                console.print(f"{store.url}: schema OK at revision {rev}", highlight=False,
                              soft_wrap=True)
            else:
                emit(_revision_report(store.url, rev, store.head_revision(), "OK"), output)

    app.add_typer(db_app, name="db")
