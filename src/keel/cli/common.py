"""Shared CLI helpers: KeelError as a clean message and exit code; the ``--format
table|json|csv`` option and its emitters (every reporting command builds one :class:`Report`)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from keel import fmt
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


# ------------------------------------------------------------------ --format table|json|csv


class OutputFormat(StrEnum):
    """What a reporting command writes on stdout: a table for people, JSON or CSV for scripts.

    With ``json`` or ``csv`` stdout carries the data alone; progress, notices and warnings go
    to stderr."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


class Kind(StrEnum):
    """How a value is written in a table (JSON and CSV carry the value itself)."""

    TEXT = "text"
    INT = "int"
    NUM = "num"  # a plain number: 4 significant digits
    MONEY = "money"  # currency, 2 decimals with separators
    PRICE = "price"
    QTY = "qty"
    BPS = "bps"  # already in basis points
    PCT = "pct"  # a fraction shown as %
    RATIO = "ratio"  # 3 decimals (R², fill probability, multipliers)
    TIME = "time"


#: the unit a kind puts in its header when the column names none
_KIND_UNIT = {Kind.BPS: "bps", Kind.PCT: "%"}


def format_option(default: OutputFormat = OutputFormat.TABLE) -> Any:
    """The shared ``--format`` option of every reporting command."""
    return typer.Option(default, "--format", "-F", case_sensitive=False,
                        help="table (for people), json or csv (for scripts: the data alone on "
                             "stdout, every notice on stderr).")


@dataclass(frozen=True)
class Col:
    """A column: its JSON/CSV key, how the table writes it, and its unit (in the header)."""

    key: str
    kind: Kind = Kind.TEXT
    unit: str | None = None
    title: str | None = None
    decimals: int | None = None  # overrides the kind's fixed decimals

    def header(self) -> str:
        return fmt.header(self.title or self.key, self.unit or _KIND_UNIT.get(self.kind))

    def cell(self, value: Any) -> str:
        return format_cell(self.kind, value, self.decimals)


def format_cell(kind: Kind, value: Any, decimals: int | None = None) -> str:
    """``value`` as the table shows it (:mod:`keel.fmt`); ``decimals`` overrides the kind's."""
    if value is None:
        return fmt.MISSING
    if decimals is not None and kind not in (Kind.TEXT, Kind.TIME):
        if kind is Kind.PCT:
            return fmt.pct(value, decimals)
        return fmt.number(value, decimals)
    if kind is Kind.TEXT:
        return str(value)
    if kind is Kind.TIME:
        return str(fmt.to_json(value))
    if kind is Kind.INT:
        return fmt.number(value, 0)
    if kind is Kind.MONEY:
        return fmt.money(value)
    if kind is Kind.PRICE:
        return fmt.price(value)
    if kind is Kind.QTY:
        return fmt.qty(value)
    if kind is Kind.BPS:
        return fmt.bps(value)
    if kind is Kind.PCT:
        return fmt.pct(value)
    if kind is Kind.RATIO:
        return fmt.number(value, 3)
    v = fmt._finite(value)
    if v is None:
        return fmt.MISSING
    return f"{v:,.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"


@dataclass
class Section:
    """One table of a report: named columns and rows of raw values (numbers as numbers)."""

    name: str
    columns: list[Col]
    rows: list[list[Any]] = field(default_factory=list)
    title: str | None = None

    def add(self, *values: Any) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"{self.name}: {len(values)} values for {len(self.columns)} columns")
        self.rows.append(list(values))

    def records(self) -> list[dict[str, Any]]:
        return [{c.key: fmt.to_json(v) for c, v in zip(self.columns, r, strict=True)}
                for r in self.rows]


@dataclass
class Fields:
    """A block of named values (one record): a two-column table, a JSON object."""

    name: str
    items: list[tuple[Col, Any]] = field(default_factory=list)
    title: str | None = None

    def add(self, key: str, value: Any, kind: Kind = Kind.TEXT, unit: str | None = None,
            title: str | None = None, decimals: int | None = None) -> None:
        self.items.append((Col(key, kind, unit, title, decimals), value))

    def record(self) -> dict[str, Any]:
        return {c.key: fmt.to_json(v) for c, v in self.items}


@dataclass
class Report:
    """What a reporting command prints, once, in the format asked for.

    ``notes`` are human lines (hints, paths written, warnings): printed after the tables, or
    on stderr with ``json``/``csv``. ``data`` is extra JSON-only content (nested objects)."""

    blocks: list[Section | Fields] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def section(self, name: str, columns: list[Col], title: str | None = None) -> Section:
        s = Section(name, columns, title=title)
        self.blocks.append(s)
        return s

    def fields(self, name: str, title: str | None = None) -> Fields:
        f = Fields(name, title=title)
        self.blocks.append(f)
        return f

    def note(self, line: str) -> None:
        self.notes.append(line)

    def to_json(self) -> dict[str, Any]:
        return {b.name: (b.records() if isinstance(b, Section) else b.record())
                for b in self.blocks}


def notice(line: str, output: OutputFormat = OutputFormat.TABLE) -> None:
    """A human line: on stdout for a table, else on stderr (stdout carries only data)."""
    target = console if output is OutputFormat.TABLE else err_console
    target.print(line, soft_wrap=True, highlight=False, markup=False)


def _rich_table(block: Section | Fields) -> Any:
    from rich.table import Table

    # Text cells: no markup is read from data ("[general]", "[red]" stay as they are)
    t = Table(title=Text(block.title) if block.title else None)
    if isinstance(block, Fields):
        t.add_column("item")
        t.add_column("value")
        for c, v in block.items:
            t.add_row(Text(c.header()), Text(c.cell(v)))
        return t
    for c in block.columns:
        t.add_column(Text(c.header()), justify="left" if c.kind in (Kind.TEXT, Kind.TIME)
                     else "right", overflow="fold")
    for r in block.rows:
        t.add_row(*[Text(c.cell(v)) for c, v in zip(block.columns, r, strict=True)])
    return t


def print_table(renderable: Any) -> None:
    """Print a Rich table at its natural width (never fewer columns than it needs): no cell is
    elided or wrapped, whatever the terminal width or when piped."""
    from rich.measure import Measurement

    width = Measurement.get(console, console.options.update(width=10_000), renderable).maximum
    Console(width=max(console.width, width, 20), file=console.file,
            force_terminal=console.is_terminal, no_color=console.no_color,
            highlight=False).print(renderable)


def _csv_rows(block: Section | Fields) -> list[list[Any]]:
    if isinstance(block, Fields):
        return [["section", "key", "value"],
                *[[block.name, c.key, _csv_value(v)] for c, v in block.items]]
    return [["section", *[c.key for c in block.columns]],
            *[[block.name, *[_csv_value(v) for v in r]] for r in block.rows]]


def _csv_value(v: Any) -> Any:
    j = fmt.to_json(v)
    if j is None:
        return ""
    if isinstance(j, dict | list):
        return json.dumps(j)
    return j


def emit(report: Report, output: OutputFormat) -> None:
    """Write ``report`` on stdout as ``output``: tables (and the notes after them), one JSON
    object keyed by block name, or CSV - one block after another, separated by a blank line,
    each with a header row whose first column is ``section``."""
    if output is OutputFormat.JSON:
        sys.stdout.write(json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n")
    elif output is OutputFormat.CSV:
        w = csv.writer(sys.stdout, lineterminator="\n")
        for i, block in enumerate(report.blocks):
            if i:
                sys.stdout.write("\n")
            w.writerows(_csv_rows(block))
    else:
        for block in report.blocks:
            print_table(_rich_table(block))
    sys.stdout.flush()
    for line in report.notes:
        notice(line, output)


def frame_section(report: Report, name: str, frame: Any, *, index: str | None = None,
                  kinds: dict[str, Kind] | None = None, title: str | None = None,
                  default: Kind = Kind.NUM) -> Section:
    """A pandas DataFrame as a section: the index (when ``index`` names it) then every
    column; ``kinds`` maps a column to its kind (default ``default`` for numbers, text
    otherwise); units come from the column names (``..._bps`` is bps)."""
    import pandas as pd

    kinds = kinds or {}

    def kind_of(col: str, series: Any) -> Kind:
        if col in kinds:
            return kinds[col]
        if col.endswith("_bps"):
            return Kind.BPS
        if pd.api.types.is_bool_dtype(series):
            return Kind.TEXT
        if pd.api.types.is_integer_dtype(series):
            return Kind.INT
        if pd.api.types.is_numeric_dtype(series):
            return default
        if pd.api.types.is_datetime64_any_dtype(series):
            return Kind.TIME
        return Kind.TEXT

    cols = ([Col(index, kinds.get(index, Kind.TEXT))] if index is not None else [])
    cols += [Col(str(c), kind_of(str(c), frame[c])) for c in frame.columns]
    sec = report.section(name, cols, title=title)
    for key, row in frame.iterrows():
        values = [None if _is_missing(v) else v for v in row.tolist()]
        sec.add(*([key] if index is not None else []), *values)
    return sec


def _is_missing(v: Any) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(v)) if not isinstance(v, list | tuple | dict) else False
    except (TypeError, ValueError):
        return False


# ------------------------------------------------------------------ choices
# Spelled here (no pandas import for `keel --help`); tests/cli/test_formats.py keeps each equal
# to the library enum it mirrors.


class Engine(StrEnum):
    """``--engine``: :class:`keel.config.EngineKind`."""

    MEAN_VARIANCE = "mean_variance"
    MEAN_CVAR = "mean_cvar"
    GREEDY = "greedy"
    RISK_PARITY = "risk_parity"
    EQUAL_WEIGHT = "equal_weight"
    MPO = "mpo"


class Venue(StrEnum):
    """``--venue``: :class:`keel.config.VenueKind`."""

    LOCAL = "local"
    FIX = "fix"
    REST = "rest"


class LocalProtocol(StrEnum):
    AUTO = "auto"
    FIX = "fix"
    REST = "rest"


class ClockKind(StrEnum):
    SIM = "sim"
    WALL = "wall"


class Drain(StrEnum):
    CANCEL = "cancel"
    FINISH = "finish"


class LogLevel(StrEnum):
    """uvicorn's log levels."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"
    TRACE = "trace"
