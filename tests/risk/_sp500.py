"""Test helper: the S&P 500 5-year long file as a ``MarketData`` (official loader, names with
missing data dropped), and the Fama-French daily factors stamped like it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from keel.data.factors import load_fama_french
from keel.data.market import MarketData
from keel.data.prices import load_prices_long

PRICES = Path("daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz")
SECTORS = Path("daily/sp500_constituents/constituents_2018-04-02.csv")
FF3 = Path("factors/fama_french/F-F_Research_Data_Factors_daily.CSV")


@lru_cache(maxsize=2)
def sp500_market(data_root: str) -> MarketData:
    root = Path(data_root)
    return load_prices_long(root / PRICES, sectors=root / SECTORS, on_missing="drop",
                            spreads=False)


def sp500_returns(data_root: str, n_symbols: int | None = None) -> pd.DataFrame:
    r = sp500_market(data_root).returns
    return r if n_symbols is None else r.iloc[:, :n_symbols]


def fama_french(data_root: str) -> pd.DataFrame:
    return load_fama_french(Path(data_root) / FF3, start="2013-01-01", stamp=True)
