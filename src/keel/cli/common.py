"""Shared CLI helpers: turn KeelError into a clean message and exit code."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from keel.errors import KeelError

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Print a ``KeelError`` as one red line and exit 2 instead of a traceback."""
    try:
        yield
    except KeelError as exc:
        # Escape: error context is rendered "[file=..., row=...]", which Rich reads as markup.
        err_console.print(f"[bold red]{type(exc).__name__}[/]: {escape(str(exc))}",
                          soft_wrap=True)
        raise typer.Exit(2) from None


def run_friendly(fn: Callable[[], T]) -> T:
    with friendly_errors():
        return fn()
    raise AssertionError("unreachable")


def configure_logging(level: str) -> None:
    """Log to stderr: keel's loggers at ``level`` (``[general] log_level``), third-party libraries
    at WARNING; JSON lines when stderr is not a terminal (see :mod:`keel.logs`)."""
    from keel.logs import configure_logging as configure

    configure(level)
