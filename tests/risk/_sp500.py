"""Private test helper: the S&P 500 5-year long file pivoted into a ``MarketData``.

Stands in for the ``keel.data`` loaders until they are merged (dates stamped 21:00 UTC, names
with missing data dropped).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from keel.data.market import MarketData

PRICES = Path("daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz")
SECTORS = Path("daily/sp500_constituents/constituents_2018-04-02.csv")


@lru_cache(maxsize=2)
def sp500_market(data_root: str) -> MarketData:
    from keel.cli.risk_cmd import read_market

    root = Path(data_root)
    return read_market(root / PRICES, root / SECTORS)


def sp500_returns(data_root: str, n_symbols: int | None = None) -> pd.DataFrame:
    r = sp500_market(data_root).returns
    return r if n_symbols is None else r.iloc[:, :n_symbols]
