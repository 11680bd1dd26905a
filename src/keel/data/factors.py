"""Fama-French daily factor files (Kenneth R. French data library, CSV).

Layout: a few description lines, a header line starting with ``,`` (``,Mkt-RF,SMB,HML,RF``),
rows ``YYYYMMDD, v1, v2, ...`` in **percent**, then a blank line and a copyright footer.
:func:`load_fama_french` returns the values as **fractions** (0.0123 = 1.23 %).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from keel.data._io import as_path, check_numeric, check_time_order, first_bad
from keel.data.calendar import ExchangeCalendar
from keel.data.prices import stamp_dates
from keel.errors import DataError


def load_fama_french(path: str | Path, *, start: str | pd.Timestamp | None = None,
                     stamp: bool = False, calendar: ExchangeCalendar | str | None = "XNYS"
                     ) -> pd.DataFrame:
    """Read a daily Fama-French factor CSV.

    Args:
        path: e.g. ``F-F_Research_Data_Factors_daily.CSV``.
        start: keep rows from this date on (e.g. ``"1998-01-01"``).
        stamp: index by session close in UTC via ``calendar`` (for joining with
            ``MarketData``); default a naive ``date`` index. The file reaches back to 1926,
            when the NYSE also traded on Saturdays, which ``exchange_calendars`` does not
            model: stamp only a range the calendar knows (use ``start``).

    Returns:
        dates x factors (``Mkt-RF``, ``SMB``, ``HML``, ..., ``RF``) as fractions.

    Raises:
        DataError: unreadable file, no header line, non-numeric or NaN values, bad or
            unsorted/duplicated dates (naming file, column and 1-based data row).
    """
    p = as_path(path)
    file = str(p)
    try:
        text = p.read_bytes().decode("utf-8-sig", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"unreadable file: {exc}", file=file) from None
    lines = text.splitlines()
    head = next((i for i, ln in enumerate(lines) if ln.startswith(",")), None)
    if head is None:
        raise DataError("no header line (',Mkt-RF,...') found", field="header", file=file)
    body = [lines[head]]
    for ln in lines[head + 1:]:
        if not ln.strip():
            break  # the blank line before the copyright footer (or the annual table)
        body.append(ln)
    if len(body) == 1:
        raise DataError("no data rows", file=file)
    try:
        df = pd.read_csv(io.StringIO("\n".join(body)), dtype={0: str}, skipinitialspace=True)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"corrupt file: {str(exc).splitlines()[0]}", file=file) from None
    df = df.rename(columns={df.columns[0]: "date"})
    df.columns = [str(c).strip() for c in df.columns]
    values = [c for c in df.columns if c != "date"]
    check_numeric(df, values, file)
    for c in ["date", *values]:
        r = first_bad(df[c].isna().to_numpy())
        if r is not None:
            raise DataError("missing value (NaN)", field=c, row=r + 1, file=file)
    dstr = df["date"].str.strip()
    parsed = pd.to_datetime(dstr, format="%Y%m%d", errors="coerce")
    r = first_bad(parsed.isna().to_numpy())
    if r is not None:
        raise DataError("unparseable date (YYYYMMDD)", field="date", row=r + 1,
                        value=dstr.iloc[r], file=file)
    dates = pd.DatetimeIndex(parsed, name="date")
    check_time_order(dates, file, "date")
    out = pd.DataFrame(df[values].to_numpy(dtype=np.float64) / 100.0, index=dates,
                       columns=pd.Index(values, name="factor"))
    if start is not None:
        out = out.loc[out.index >= pd.Timestamp(start)]
    if stamp:
        out.index = stamp_dates(pd.DatetimeIndex(out.index), calendar, file, "date")
    return out
