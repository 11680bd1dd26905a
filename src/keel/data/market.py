"""`MarketData`: aligned, validated, tz-aware market data with a point-in-time view.

Layout: every panel is a ``pd.DataFrame`` of dates x symbols with a UTC tz-aware, strictly
increasing ``DatetimeIndex``. A row is stamped at the moment its data became known: daily bars
at their session close (see :func:`keel.data.calendar.stamp_at_close`), so
``market.as_of(t)`` keeps exactly the rows with stamp ``<= t`` and a look-ahead is impossible.

Units: ``prices`` in currency per share; ``volumes`` in shares per bar; ``spreads`` the full
quoted bid-ask spread as a fraction of the mid price (0.0005 = 5 bps); ``market_caps`` in
currency. Derived panels (returns, ADV, volatility, beta) are causal rolling computations, so
computing them on the full history and slicing equals computing them on the slice; ``as_of``
reuses what the parent has already computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from keel.config import MissingPolicy
from keel.errors import DataError

#: Sector label given to symbols without reference data.
UNKNOWN_SECTOR = "Unknown"


@dataclass(frozen=True)
class MissingReport:
    """What a missing-data policy did. Empty when nothing was missing."""

    policy: MissingPolicy
    dropped_symbols: tuple[str, ...] = ()
    filled_cells: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.dropped_symbols or self.filled_cells)

    def summary(self) -> str:
        if not self.changed:
            return "no missing data"
        parts = []
        if self.dropped_symbols:
            parts.append(f"dropped {len(self.dropped_symbols)} symbols "
                         f"({', '.join(self.dropped_symbols[:10])}"
                         f"{', ...' if len(self.dropped_symbols) > 10 else ''})")
        if self.filled_cells:
            parts.append(f"forward-filled {sum(self.filled_cells.values())} cells in "
                         f"{len(self.filled_cells)} symbols")
        return f"{self.policy.value}: " + "; ".join(parts)


def validate_panel(df: pd.DataFrame, name: str, *, positive: bool, allow_nan: bool = True,
                   source: str | None = None) -> pd.DataFrame:
    """Check a dates x symbols panel and return it as float64.

    Raises:
        DataError: not a DataFrame, naive/mixed time zones, duplicated or unsorted timestamps,
            non-numeric values, non-positive (``positive``) or negative values, NaN when not
            allowed. The error names the panel, the column (symbol) and the row (timestamp).
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{name} must be a DataFrame", field=name, value=type(df).__name__,
                        file=source)
    idx = df.index
    if not isinstance(idx, pd.DatetimeIndex):
        raise DataError(f"{name} index must be a DatetimeIndex", field=name, file=source)
    if idx.tz is None:
        raise DataError(f"{name} index is tz-naive: stamp rows in UTC", field=name,
                        file=source)
    if idx.has_duplicates:
        dup = idx[idx.duplicated()][0]
        raise DataError(f"{name} has duplicated timestamps", field=name, row=str(dup),
                        file=source)
    if not idx.is_monotonic_increasing:
        pos = int(np.argmax(np.diff(idx.asi8) < 0)) + 1
        raise DataError(f"{name} timestamps are not sorted", field=name, row=str(idx[pos]),
                        file=source)
    if df.columns.has_duplicates:
        dup_col = df.columns[df.columns.duplicated()][0]
        raise DataError(f"{name} has duplicated symbols", field=name, symbol=str(dup_col),
                        file=source)
    try:
        values = df.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name} has non-numeric values", field=name, file=source) from None
    out = pd.DataFrame(values, index=idx.tz_convert("UTC"), columns=df.columns.astype(str))
    finite = np.isfinite(values)
    nan = np.isnan(values)
    inf = ~finite & ~nan
    if inf.any():
        _raise_at(out, inf, f"{name} has infinite values", name, source)
    if not allow_nan and nan.any():
        _raise_at(out, nan, f"{name} has missing values (NaN)", name, source)
    bad = (values <= 0) if positive else (values < 0)
    bad &= finite
    if bad.any():
        what = "non-positive" if positive else "negative"
        _raise_at(out, bad, f"{name} has {what} values", name, source)
    return out


def _raise_at(df: pd.DataFrame, mask: np.ndarray, message: str, name: str,
              source: str | None) -> None:
    r, c = np.argwhere(mask)[0]
    raise DataError(message, field=name, symbol=str(df.columns[c]), row=str(df.index[r]),
                    value=df.iat[r, c], file=source)


def apply_missing_policy(prices: pd.DataFrame, policy: MissingPolicy | str,
                         name: str = "prices") -> tuple[pd.DataFrame, MissingReport]:
    """Apply a missing-data policy to a dates x symbols panel.

    ``raise``: any NaN raises a ``DataError`` naming symbol and row. ``drop``: symbols with any
    NaN are removed. ``ffill``: interior gaps are forward-filled; symbols still missing at the
    start (not yet listed) are dropped. The report says exactly what was done.
    """
    policy = MissingPolicy(policy)
    nan = prices.isna().to_numpy()
    if not nan.any():
        return prices, MissingReport(policy)
    if policy is MissingPolicy.RAISE:
        _raise_at(prices, nan, f"{name} has missing values (NaN); choose on_missing='drop' or "
                  "'ffill' to handle them", name, None)
    if policy is MissingPolicy.DROP:
        bad_cols = prices.columns[nan.any(axis=0)]
        return (prices.drop(columns=bad_cols),
                MissingReport(policy, dropped_symbols=tuple(map(str, bad_cols))))
    filled = prices.ffill()
    still = filled.isna().any(axis=0)
    counts = (prices.isna() & filled.notna()).sum(axis=0)
    filled_cells = {str(k): int(v) for k, v in counts.items() if v > 0 and not still[k]}
    dropped = tuple(map(str, prices.columns[still.to_numpy()]))
    return (filled.drop(columns=list(dropped)),
            MissingReport(policy, dropped_symbols=dropped, filled_cells=filled_cells))


@dataclass(frozen=True, eq=False)
class MarketData:
    """Daily (or bar) market data for a universe, validated and aligned.

    Args:
        prices: dates x symbols close prices (> 0), UTC tz-aware index stamped when known.
        volumes: dates x symbols traded shares (>= 0), same shape as ``prices``.
        sectors: symbol -> sector label; missing symbols get ``"Unknown"``.
        spreads: dates x symbols full bid-ask spread as a fraction of mid (optional).
        market_caps: dates x symbols market capitalisation in currency (optional).
        benchmark_returns: simple returns of a benchmark, indexed like ``prices`` (optional;
            otherwise the market is the cap-weighted, or equal-weighted, universe).
        on_missing: ``raise`` (default), ``drop`` or ``ffill``; see :func:`apply_missing_policy`.
        adv_window, vol_window, beta_window: rolling windows in bars for ADV, volatility, beta.
        source: where the data came from (for error messages).
    """

    prices: pd.DataFrame
    volumes: pd.DataFrame
    sectors: pd.Series | None = None
    spreads: pd.DataFrame | None = None
    market_caps: pd.DataFrame | None = None
    benchmark_returns: pd.Series | None = None
    on_missing: MissingPolicy = MissingPolicy.RAISE
    adv_window: int = 20
    vol_window: int = 63
    beta_window: int = 252
    source: str | None = None
    missing_report: MissingReport = field(init=False)

    def __post_init__(self) -> None:
        policy = MissingPolicy(self.on_missing)
        src = self.source
        prices = validate_panel(self.prices, "prices", positive=True, source=src)
        prices, report = apply_missing_policy(prices, policy)
        if prices.shape[1] == 0:
            raise DataError("no symbols left after the missing-data policy", field="prices",
                            value=report.summary(), file=src)
        if len(prices) < 2:
            raise DataError("need at least 2 rows of prices", field="prices",
                            value=len(prices), file=src)
        symbols = prices.columns
        volumes = self._aligned(self.volumes, "volumes", prices, positive=False)
        # A forward-filled price means no trade that bar: its volume is zero, not invented.
        volumes = volumes.fillna(0.0)
        spreads = (None if self.spreads is None
                   else self._aligned(self.spreads, "spreads", prices, positive=True))
        caps = (None if self.market_caps is None
                else self._aligned(self.market_caps, "market_caps", prices, positive=True))
        sectors = self._sectors(symbols)
        bench = self.benchmark_returns
        if bench is not None:
            if not isinstance(bench, pd.Series) or not bench.index.equals(prices.index):
                raise DataError("benchmark_returns must be a Series indexed like prices",
                                field="benchmark_returns", file=src)
            bench = bench.astype(np.float64)
        for name in ("adv_window", "vol_window", "beta_window"):
            if int(getattr(self, name)) < 2:
                raise DataError(f"{name} must be >= 2", field=name, value=getattr(self, name))
        _set = object.__setattr__
        _set(self, "prices", prices)
        _set(self, "volumes", volumes)
        _set(self, "spreads", spreads)
        _set(self, "market_caps", caps)
        _set(self, "sectors", sectors)
        _set(self, "benchmark_returns", bench)
        _set(self, "on_missing", policy)
        _set(self, "missing_report", report)

    def _aligned(self, df: pd.DataFrame | None, name: str, prices: pd.DataFrame, *,
                 positive: bool) -> pd.DataFrame:
        if df is None:
            raise DataError(f"{name} is required", field=name, file=self.source)
        df = validate_panel(df, name, positive=positive, source=self.source)
        missing = prices.columns.difference(df.columns)
        if len(missing):
            raise DataError(f"{name} lacks symbols present in prices", field=name,
                            symbol=str(missing[0]), file=self.source)
        if not df.index.equals(prices.index):
            raise DataError(f"{name} index differs from the prices index", field=name,
                            file=self.source)
        return df[prices.columns]

    def _sectors(self, symbols: pd.Index) -> pd.Series:
        if self.sectors is None:
            return pd.Series(UNKNOWN_SECTOR, index=symbols, name="sector", dtype=object)
        s = pd.Series(self.sectors).astype(object)
        s.index = s.index.astype(str)
        return s.reindex(symbols).fillna(UNKNOWN_SECTOR).rename("sector")

    # ------------------------------------------------------------------ shape

    @property
    def symbols(self) -> pd.Index:
        return self.prices.columns

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.prices.index)

    @property
    def n_assets(self) -> int:
        return self.prices.shape[1]

    @property
    def now(self) -> pd.Timestamp:
        """Stamp of the last row: the time this view stands at."""
        return pd.Timestamp(self.prices.index[-1])

    # ------------------------------------------------------------------ derived (causal)

    @cached_property
    def returns(self) -> pd.DataFrame:
        """Simple returns, dates[1:] x symbols."""
        return self.prices.pct_change().iloc[1:]

    @cached_property
    def log_returns(self) -> pd.DataFrame:
        """Log returns, dates[1:] x symbols."""
        return np.log(self.prices).diff().iloc[1:]

    @cached_property
    def dollar_volumes(self) -> pd.DataFrame:
        """price x volume per bar, currency."""
        return self.prices * self.volumes

    @cached_property
    def adv_shares(self) -> pd.DataFrame:
        """Average daily volume in shares: trailing mean over ``adv_window`` bars."""
        return self.volumes.rolling(self.adv_window, min_periods=1).mean()

    @cached_property
    def adv_notional(self) -> pd.DataFrame:
        """Average daily traded value in currency: trailing mean over ``adv_window`` bars."""
        return self.dollar_volumes.rolling(self.adv_window, min_periods=1).mean()

    @cached_property
    def volatility(self) -> pd.DataFrame:
        """Trailing standard deviation of daily simple returns over ``vol_window`` (daily units)."""
        return self.returns.rolling(self.vol_window, min_periods=2).std()

    @cached_property
    def market_returns(self) -> pd.Series:
        """Benchmark returns if given, else cap-weighted (or equal-weighted) universe returns."""
        if self.benchmark_returns is not None:
            return self.benchmark_returns.iloc[1:].rename("market")
        if self.market_caps is not None:
            w = self.market_caps.shift(1).iloc[1:]
            w = w.div(w.sum(axis=1), axis=0)
            return (self.returns * w).sum(axis=1).rename("market")
        return self.returns.mean(axis=1).rename("market")

    @cached_property
    def betas(self) -> pd.DataFrame:
        """Trailing OLS beta of each name on the market over ``beta_window`` bars."""
        r = self.returns
        m = self.market_returns
        win, minp = self.beta_window, min(self.beta_window, 20)
        cov = r.rolling(win, min_periods=minp).cov(m)
        var = m.rolling(win, min_periods=minp).var()
        return cov.div(var, axis=0)

    # ------------------------------------------------------------------ point in time

    def as_of(self, t: Any) -> MarketData:
        """The market as known at ``t``: only rows stamped ``<= t``.

        Args:
            t: a tz-aware timestamp (naive is refused: its meaning is ambiguous).

        Raises:
            DataError: ``t`` is naive, or earlier than the second row (nothing to see yet).
        """
        ts = pd.Timestamp(t)
        if ts.tzinfo is None:
            raise DataError("as_of needs a tz-aware time", field="t", value=t)
        n = int(self.prices.index.searchsorted(ts, side="right"))
        return self.head(n)

    def head(self, n: int) -> MarketData:
        """The first ``n`` rows as their own point-in-time view."""
        if n < 2:
            raise DataError("fewer than 2 rows known at this time", field="t",
                            value=self.prices.index[0] if n else None)
        if n == len(self.prices):
            return self
        sl = slice(0, n)
        view = MarketData.__new__(MarketData)
        _set = object.__setattr__
        for name in ("sectors", "on_missing", "adv_window", "vol_window", "beta_window",
                     "source", "missing_report"):
            _set(view, name, getattr(self, name))
        _set(view, "prices", self.prices.iloc[sl])
        _set(view, "volumes", self.volumes.iloc[sl])
        _set(view, "spreads", None if self.spreads is None else self.spreads.iloc[sl])
        _set(view, "market_caps",
             None if self.market_caps is None else self.market_caps.iloc[sl])
        _set(view, "benchmark_returns",
             None if self.benchmark_returns is None else self.benchmark_returns.iloc[sl])
        # Causal panels computed on the parent are valid on the prefix: reuse them.
        for name, offset in _CACHED_PANELS.items():
            if name in self.__dict__:
                view.__dict__[name] = self.__dict__[name].iloc[: n - offset]
        return view

    def select(self, symbols: Any) -> MarketData:
        """A market restricted to ``symbols`` (unknown symbols raise ``DataError``)."""
        wanted = pd.Index(symbols).astype(str)
        unknown = wanted.difference(self.symbols)
        if len(unknown):
            raise DataError("unknown symbol", field="symbols", symbol=str(unknown[0]))
        return MarketData(
            prices=self.prices[wanted], volumes=self.volumes[wanted],
            sectors=self.sectors.reindex(wanted) if self.sectors is not None else None,
            spreads=None if self.spreads is None else self.spreads[wanted],
            market_caps=None if self.market_caps is None else self.market_caps[wanted],
            benchmark_returns=self.benchmark_returns, on_missing=MissingPolicy.RAISE,
            adv_window=self.adv_window, vol_window=self.vol_window,
            beta_window=self.beta_window, source=self.source,
        )

    # ------------------------------------------------------------------ latest values

    def latest(self, panel: str) -> pd.Series:
        """Last row of a panel by name (``prices``, ``adv_notional``, ``volatility``, ...)."""
        df = getattr(self, panel)
        if not isinstance(df, pd.DataFrame):
            raise DataError("not a panel", field="panel", value=panel)
        return df.iloc[-1].rename(panel)

    def __repr__(self) -> str:
        return (f"MarketData({self.n_assets} symbols x {len(self.prices)} rows, "
                f"{self.prices.index[0]} .. {self.prices.index[-1]})")


#: cached panels reusable by a prefix view, with their row offset vs. prices (returns lose 1).
_CACHED_PANELS: dict[str, int] = {
    "returns": 1, "log_returns": 1, "dollar_volumes": 0, "adv_shares": 0, "adv_notional": 0,
    "volatility": 1, "market_returns": 1, "betas": 1,
}
