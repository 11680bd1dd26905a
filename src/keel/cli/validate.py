"""Validate first, write after: checks every CLI command runs on its inputs before it opens a
store, funds a ledger or binds a port.

Each check raises a :class:`~keel.errors.ValidationError` (or ``ConfigError`` /
``DataError``) naming the option and the offending value (truncated), so the command exits 2
with one line and nothing written. Numbers must be finite and in range; symbols are stripped
and compared case-insensitively before the duplicate check; files must be readable text.

``keel run`` (``cli/live_cmd.py``, owned by the desk) calls :func:`validate_run_options` as
the first statement inside its ``friendly_errors()`` block, before ``load_run_config``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from keel.errors import ConfigError, DataError, ValidationError
from keel.types import check_text

#: longest value echoed back in an error message, characters
ECHO = 64


def short(value: Any) -> str:
    """``repr(value)`` cut to :data:`ECHO` characters (constant-time to render)."""
    text = value[: ECHO * 2] if isinstance(value, str) else value
    r = repr(text)
    return r if len(r) <= ECHO else r[: ECHO - 3] + "..."


def number(value: Any, field: str, *, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite float in the range, else ``ValidationError`` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError("expected a number", field=field, value=short(value))
    x = float(value)
    if not math.isfinite(x):
        raise ValidationError("must be a finite number", field=field, value=short(value))
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise ValidationError(f"must be {'>' if lo_open else '>='} {lo:g}", field=field,
                              value=short(value))
    if hi is not None and (x > hi or (hi_open and x == hi)):
        raise ValidationError(f"must be {'<' if hi_open else '<='} {hi:g}", field=field,
                              value=short(value))
    return x


def choice(value: str, field: str, allowed: Iterable[str]) -> str:
    options = list(allowed)
    if value not in options:
        raise ValidationError(f"must be one of {', '.join(options)}", field=field,
                              value=short(value))
    return value


def normalise_symbols(symbols: Iterable[Any], field: str = "symbol") -> list[str]:
    """Symbols stripped, checked (printable ASCII, no SOH) and refused when two are the same
    ignoring case and surrounding spaces (``' AAPL '`` and ``'aapl'`` duplicate ``'AAPL'``)."""
    out: list[str] = []
    seen: dict[str, str] = {}
    for raw in symbols:
        if not isinstance(raw, str):
            raise ValidationError("symbol must be text", field=field, value=short(raw))
        sym = raw.strip()
        if not sym:
            raise ValidationError("empty symbol", field=field, value=short(raw))
        check_text(sym, field)
        key = sym.casefold()
        if key in seen:
            raise ValidationError("duplicated symbol (ignoring case and spaces)", field=field,
                                  symbol=sym, value=short(raw), first=short(seen[key]))
        seen[key] = raw
        out.append(sym)
    return out


def writable_file(path: Path | None, field: str) -> None:
    """``path`` can be created: its folder exists and it is not a folder itself."""
    if path is None:
        return
    if path.is_dir():
        raise ValidationError("is a folder, expected a file", field=field,
                              value=short(str(path)))
    if not path.parent.is_dir():
        raise ValidationError("folder does not exist", field=field,
                              value=short(str(path.parent)))


def text_file(path: Path, field: str, *, max_bytes: int = 10 << 20) -> str:
    """The UTF-8 text of ``path`` (refusing a missing, binary, UTF-16 or oversized file)."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError(f"file above {max_bytes} bytes", field=field,
                              value=short(str(path)))
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {type(exc).__name__}", field=field,
                          value=short(str(path))) from None
    if b"\x00" in data:
        raise ConfigError("binary or UTF-16 file, expected UTF-8 text", field=field,
                          value=short(str(path)))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", field=field,
                          value=short(str(path))) from None


def _sniff_text(path: Path, field: str, n: int = 1 << 16) -> None:
    with path.open("rb") as f:
        head = f.read(n)
    if b"\x00" in head:
        raise ConfigError("binary or UTF-16 file, expected UTF-8 text", field=field,
                          value=short(str(path)))
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(head) < n or exc.start < len(head) - 3:  # not a character cut by the window
            raise ConfigError(f"not UTF-8 text (byte {exc.start})", field=field,
                              value=short(str(path))) from None


def control_file(path: Path | None, field: str = "control") -> None:
    """A control file, when it exists, must be a UTF-8 JSON object."""
    if path is None or not path.exists():
        return
    text = text_file(path, field, max_bytes=1 << 20)
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not JSON: {exc.msg} at line {exc.lineno}", field=field,
                          value=short(str(path))) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a JSON object", field=field, value=short(str(path)))


def validate_run_options(*, bar_minutes: float, interval: float, max_bars: int,
                         horizon_minutes: float | None, drain_timeout: float, nav: float,
                         clock_kind: str, drain: str, control: Path | None = None,
                         config: Path | None = None, serve_port: int | None = None) -> None:
    """Every ``keel run`` option checked before anything is opened or written."""
    number(bar_minutes, "bar_minutes", lo=0, hi=24 * 60, lo_open=True)
    number(interval, "interval", lo=0, hi=3600)
    number(max_bars, "max_bars", lo=0)
    if horizon_minutes is not None:
        number(horizon_minutes, "horizon_minutes", lo=0, hi=30 * 24 * 60, lo_open=True)
    number(drain_timeout, "drain_timeout", lo=0, hi=3600)
    number(nav, "nav", lo=0, hi=1e15, lo_open=True)
    choice(clock_kind, "clock", ("sim", "wall"))
    choice(drain, "drain", ("cancel", "finish"))
    if serve_port is not None:
        port(serve_port, "serve_port")
    if config is not None:
        text_file(config, "config")
    control_file(control)


def port(value: int, field: str, *, allow_zero: bool = True) -> int:
    """A TCP port (0 for any free one when ``allow_zero``)."""
    number(value, field, lo=0 if allow_zero else 1, hi=65535)
    return int(value)


def read_table_safely(path: Path, field: str, nrows: int | None = None) -> Any:
    """A CSV or Parquet table, any reading failure as one ``DataError`` naming the file."""
    import pandas as pd

    if not path.is_file():
        raise DataError("file not found", field=field, file=short(str(path)))
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
            return df if nrows is None else df.head(nrows)
        if path.suffix != ".gz":
            _sniff_text(path, field)  # binary / UTF-16 refused before pandas sees it
        return pd.read_csv(path, nrows=nrows)
    except (ConfigError, DataError) as exc:
        raise DataError(exc.message, field=field, file=short(str(path))) from None
    except (ValueError, OSError, UnicodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read the table: {type(exc).__name__}", field=field,
                        file=short(str(path))) from None
