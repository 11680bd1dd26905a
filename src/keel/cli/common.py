"""Shared CLI helpers: turn KeelError into a clean message and exit code."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer
from rich.console import Console
from rich.text import Text

from keel.errors import KeelError

console = Console()
err_console = Console(stderr=True)


def print_wide(renderable: object, min_width: int = 100) -> None:
    """Print at least ``min_width`` columns wide: a narrow terminal soft-wraps the lines rather
    than rich eliding cells (ids, dates, order types), so the output reads the same at any
    width and when piped."""
    Console(width=max(console.width, min_width), file=console.file,
            force_terminal=console.is_terminal).print(renderable)

T = TypeVar("T")


#: longest error line printed, characters (the rest is elided, with its length)
MAX_ERROR_CHARS = 500


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` on one line (control characters escaped) and at most ``limit`` characters:
    linear in ``limit``, not in the length of ``text``."""
    n = len(text)
    head = text[: limit + 1]
    clean = head.encode("unicode_escape", "backslashreplace").decode("ascii") \
        if not head.isprintable() else head
    if len(clean) <= limit and n <= limit:
        return clean
    return f"{clean[: limit - 40]}... ({n} characters in all)"


def print_error(exc: BaseException) -> None:
    """One red line on stderr: the error's type and its message, no markup interpretation,
    no highlighting (Rich's highlighter is quadratic in a long value)."""
    line = Text(type(exc).__name__, style="bold red")
    line.append(": " + one_line(str(exc)))
    err_console.print(line, soft_wrap=True, highlight=False, markup=False)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Print a ``KeelError`` (or an unreadable input: ``OSError``, ``UnicodeError``) as one
    red line and exit 2 instead of a traceback."""
    try:
        yield
    except (KeelError, OSError, UnicodeError) as exc:
        print_error(exc)
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
