"""Shared loader plumbing: read a table safely and validate it, naming file, column and row.

Row numbers in errors are 1-based *data* rows (the header, if any, is not counted), so
``row=1`` is the first line of data in the file.
"""

from __future__ import annotations

import gzip
import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keel.errors import DataError

_TZ_SUFFIX = re.compile(r"(Z|[+-]\d\d:?\d\d)$")


def as_path(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", file=str(p))
    if not p.is_file():
        raise DataError("not a file", file=str(p))
    return p


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def read_table(path: str | Path, *, header: int | None = 0,
               names: Sequence[str] | None = None, dtype: Any = None,
               skiprows: int | None = None, usecols: Sequence[str] | None = None,
               encoding: str = "utf-8-sig") -> pd.DataFrame:
    """Read a CSV (optionally gz/zip/bz2/xz compressed) or Parquet file.

    Any I/O, decompression, decoding or parse failure becomes a ``DataError`` naming the file.
    """
    p = as_path(path)
    try:
        if is_parquet(p):
            df = pd.read_parquet(p, columns=list(usecols) if usecols else None)
        else:
            df = pd.read_csv(p, header=header, names=names, dtype=dtype, skiprows=skiprows,
                             usecols=usecols, encoding=encoding)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError("file is empty", file=str(p)) from None
    except (OSError, EOFError, gzip.BadGzipFile, zipfile.BadZipFile, UnicodeDecodeError,
            pd.errors.ParserError, ValueError, TypeError, KeyError) as exc:
        # ValueError also covers usecols/dtype mismatches and pyarrow's ArrowInvalid.
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"unreadable or corrupt file: {msg}", file=str(p)) from None
    except Exception as exc:  # pyarrow raises its own hierarchy on corrupt Parquet
        raise DataError(f"unreadable or corrupt file: {type(exc).__name__}: {exc}",
                        file=str(p)) from None
    if len(df) == 0:
        raise DataError("file has no data rows", file=str(p))
    return df


def require_columns(df: pd.DataFrame, columns: Iterable[str], file: str) -> None:
    have = set(map(str, df.columns))
    for c in columns:
        if c not in have:
            raise DataError("missing column", field=c, file=file,
                            value=sorted(have)[:20])


def check_numeric(df: pd.DataFrame, columns: Iterable[str], file: str) -> None:
    """Coerce columns to float64 in place; a non-numeric cell raises naming column and row."""
    for c in columns:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col):
            continue
        num = pd.to_numeric(col, errors="coerce")
        bad = num.isna() & col.notna()
        if bad.any():
            r = int(np.argmax(bad.to_numpy()))
            raise DataError("non-numeric value", field=c, row=r + 1, value=col.iloc[r],
                            file=file)
        df[c] = num


def first_bad(mask: np.ndarray | pd.Series) -> int | None:
    m = np.asarray(mask, dtype=bool)
    return int(np.argmax(m)) if m.any() else None


def check_positive(df: pd.DataFrame, columns: Iterable[str], file: str, *,
                   strict: bool = True, symbol_col: str | None = None,
                   row_offset: int = 0) -> None:
    """Raise on the first value <= 0 (``strict``) or < 0 in ``columns`` (NaN is not checked)."""
    for c in columns:
        v = df[c].to_numpy(dtype=np.float64)
        bad = (v <= 0) if strict else (v < 0)
        r = first_bad(bad)
        if r is not None:
            what = "non-positive" if strict else "negative"
            sym = None if symbol_col is None else str(df[symbol_col].iloc[r])
            raise DataError(f"{what} value", field=c, row=r + 1 + row_offset,
                            symbol=sym, value=float(v[r]), file=file)


def check_no_nan(df: pd.DataFrame, columns: Iterable[str], file: str, *,
                 symbol_col: str | None = None, hint: str = "") -> None:
    for c in columns:
        r = first_bad(df[c].isna().to_numpy())
        if r is not None:
            sym = None if symbol_col is None else str(df[symbol_col].iloc[r])
            raise DataError(f"missing value (NaN){hint}", field=c, row=r + 1, symbol=sym,
                            file=file)


def check_time_order(ts: pd.DatetimeIndex | pd.Series, file: str, field: str, *,
                     unique: bool = True, groups: np.ndarray | None = None,
                     symbol_values: Any = None) -> None:
    """Timestamps must increase (strictly when ``unique``), within each group if given.

    ``groups``: integer codes per row (rows of a group contiguous or not); the check runs in
    file order within each group.
    """
    v = pd.DatetimeIndex(ts).asi8
    if groups is None:
        d = np.diff(v)
        r = first_bad(d < 0)
        if r is not None:
            raise DataError("timestamps are not sorted", field=field, row=r + 2,
                            value=str(pd.DatetimeIndex(ts)[r + 1]), file=file)
        if unique:
            r = first_bad(d == 0)
            if r is not None:
                raise DataError("duplicated timestamp", field=field, row=r + 2,
                                value=str(pd.DatetimeIndex(ts)[r + 1]), file=file)
        return
    order = np.argsort(groups, kind="stable")
    g, vv = groups[order], v[order]
    same = g[1:] == g[:-1]
    d = np.diff(vv)
    for mask, what in ((same & (d < 0), "timestamps are not sorted"),
                       (same & (d == 0), "duplicated timestamp")):
        if what.startswith("dup") and not unique:
            continue
        r = first_bad(mask)
        if r is not None:
            row = int(order[r + 1])
            sym = None if symbol_values is None else str(symbol_values[row])
            raise DataError(what, field=field, row=row + 1, symbol=sym,
                            value=str(pd.DatetimeIndex(ts)[row]), file=file)


def parse_dates(col: pd.Series, file: str, field: str) -> pd.DatetimeIndex:
    """Parse a date/time column: naive dates/times, or tz-aware in the zone the file wrote
    (``Z`` -> UTC, ``-05:00`` -> that fixed offset), so the wall clock of the notation is kept
    (:func:`keel.data.stamps.stamp_daily` needs it to tell a date from a time of day).

    Raises DataError on unparseable values or on mixed time zones (naming the first row whose
    zone differs from the first row's).
    """
    if pd.api.types.is_datetime64_any_dtype(col):
        return pd.DatetimeIndex(col)
    s = col.astype(str)
    try:
        return pd.DatetimeIndex(pd.to_datetime(s, format="%Y-%m-%d"))
    except (ValueError, TypeError):
        pass
    zones = s.str.strip().str.extract(_TZ_SUFFIX, expand=False).fillna("")
    z = zones.to_numpy()
    diff = first_bad(z != z[0])
    if diff is not None:
        raise DataError("mixed time zones", field=field, row=diff + 1,
                        value=(s.iloc[0], s.iloc[diff]), file=file)
    try:
        out = pd.DatetimeIndex(pd.to_datetime(s, format="ISO8601"))
    except (ValueError, TypeError):
        try:
            out = pd.DatetimeIndex(pd.to_datetime(s, format="mixed"))
        except (ValueError, TypeError):
            bad = pd.to_datetime(s, errors="coerce", format="mixed").isna().to_numpy()
            r0 = first_bad(bad) or 0
            raise DataError("unparseable date", field=field, row=r0 + 1, value=s.iloc[r0],
                            file=file) from None
    r1 = first_bad(out.isna())
    if r1 is not None:
        raise DataError("missing or unparseable date", field=field, row=r1 + 1,
                        value=s.iloc[r1], file=file)
    return out
