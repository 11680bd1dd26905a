"""`keel risk`: risk decomposition and VaR/CVaR of a portfolio from a prices file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    import pandas as pd

    from keel.data.market import MarketData


def _read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    from keel.errors import DataError

    if not path.exists():
        raise DataError("file not found", field="path", file=str(path))
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def read_market(prices: Path, sectors: Path | None = None) -> MarketData:
    """A ``MarketData`` from a prices file (names with missing data are dropped).

    Two layouts are accepted (CSV, CSV.gz or Parquet): *long*, with columns
    ``date, close, volume, Name`` (and optional others, as the S&P 500 5-year file); *wide*,
    a ``date`` column (or the first column) then one close-price column per symbol (volumes
    are then unknown and taken as 0). Dates are stamped at 21:00 UTC (the US close). Sectors:
    an optional CSV with ``Symbol`` and ``Sector`` columns.
    """
    import pandas as pd

    from keel.config import MissingPolicy
    from keel.data.market import MarketData
    from keel.errors import DataError

    df = _read_table(prices)
    cols = {c.lower(): c for c in df.columns}
    if {"date", "close", "name"} <= cols.keys():
        date, name = cols["date"], cols["name"]
        px = df.pivot_table(index=date, columns=name, values=cols["close"], aggfunc="last")
        if "volume" in cols:
            vol = df.pivot_table(index=date, columns=name, values=cols["volume"],
                                 aggfunc="last").reindex_like(px)
        else:
            vol = px * 0.0
    else:
        date = cols.get("date", df.columns[0])
        px = df.set_index(date)
        vol = px * 0.0
    try:
        idx = pd.DatetimeIndex(pd.to_datetime(px.index)).normalize()
    except (ValueError, TypeError):
        raise DataError("unparseable dates", field="date", file=str(prices)) from None
    idx = idx.tz_localize("UTC") + pd.Timedelta(hours=21)
    px.index = idx
    vol.index = idx
    sec = None
    if sectors is not None:
        s = _read_table(sectors)
        if not {"Symbol", "Sector"} <= set(s.columns):
            raise DataError("sectors file needs Symbol and Sector columns", field="sectors",
                            file=str(sectors))
        sec = s.drop_duplicates("Symbol").set_index("Symbol")["Sector"]
    px.columns = px.columns.astype(str)
    vol.columns = vol.columns.astype(str)
    return MarketData(prices=px.sort_index(), volumes=vol.sort_index().fillna(0.0),
                      sectors=sec, on_missing=MissingPolicy.DROP, source=str(prices))


def read_fama_french(path: Path) -> pd.DataFrame:
    """A Ken French daily factor file as fractions, dates stamped 21:00 UTC.

    The file has a text header (3 lines), ``YYYYMMDD`` rows in percent, then a copyright
    footer; the footer and any non-date rows are dropped.
    """
    import numpy as np
    import pandas as pd

    from keel.errors import DataError

    if not path.exists():
        raise DataError("file not found", field="factors", file=str(path))
    df = pd.read_csv(path, skiprows=3, index_col=0)
    keep = df.index.astype(str).str.strip().str.fullmatch(r"\d{8}")
    df = df[np.asarray(keep, dtype=bool)].astype(float) / 100.0
    if df.empty:
        raise DataError("no daily rows found", field="factors", file=str(path))
    idx = pd.to_datetime(df.index.astype(str).str.strip(), format="%Y%m%d")
    df.index = pd.DatetimeIndex(idx).tz_localize("UTC") + pd.Timedelta(hours=21)
    df.columns = [c.strip() for c in df.columns]
    return df


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""
