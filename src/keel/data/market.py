"""`MarketData`: aligned, validated, tz-aware market data with a point-in-time view.

Layout: every panel is a ``pd.DataFrame`` of dates x symbols with a UTC tz-aware, strictly
increasing ``DatetimeIndex``. A row is stamped at the moment its data became known: daily bars
at their session close (see :func:`keel.data.calendar.stamp_at_close`), so
``market.as_of(t)`` keeps exactly the rows with stamp ``<= t`` and a look-ahead is impossible.

Units: ``prices`` in currency per share; ``volumes`` in shares per bar; ``spreads`` the full
quoted bid-ask spread as a fraction of the mid price (0.0005 = 5 bps); ``market_caps`` in
currency. Derived panels (returns, ADV, volatility, beta, the tradable mask) are causal rolling
computations, so computing them on the full history and slicing equals computing them on the
slice: a view from ``as_of``/``head`` computes nothing, it slices its root's panels (each is
computed once per loaded market, however many views ask).

Missing data: ``on_missing="mask"`` keeps holes as NaN and ``tradable`` (dates x symbols, bool)
says which names can trade at each date from data known then (:mod:`keel.data.universe`);
``raise``/``drop``/``ffill`` act on the whole sample (``drop``/``ffill`` choose the universe
with future data: research use only).

Every panel is read-only: its NumPy buffer has ``writeable=False`` (one consolidated block per
panel), so a view cannot alter its root or another view; a pandas assignment on a view copies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast, overload

import numpy as np
import pandas as pd

from keel.config import MissingPolicy
from keel.data.universe import tradable_mask
from keel.errors import DataError

_P = TypeVar("_P", pd.DataFrame, pd.Series)

#: Sector label given to symbols without reference data.
UNKNOWN_SECTOR = "Unknown"


@dataclass(frozen=True)
class MissingReport:
    """What a missing-data policy did. Empty when nothing was missing."""

    policy: MissingPolicy
    dropped_symbols: tuple[str, ...] = ()
    filled_cells: dict[str, int] = field(default_factory=dict)
    masked_cells: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.dropped_symbols or self.filled_cells)

    def summary(self) -> str:
        if self.masked_cells:
            return (f"{self.policy.value}: {self.masked_cells} missing cells kept as NaN "
                    "(not tradable there)")
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

    ``raise``: any NaN raises a ``DataError`` naming symbol and row. ``mask``: nothing is
    changed (holes stay NaN; ``MarketData.tradable`` excludes them). ``drop``: symbols with any
    NaN anywhere in the sample are removed. ``ffill``: interior gaps are forward-filled; symbols
    still missing at the start (not yet listed) are dropped. ``drop`` and ``ffill`` use the
    whole sample (look-ahead in the universe). The report says exactly what was done.
    """
    policy = MissingPolicy(policy)
    nan = prices.isna().to_numpy()
    if not nan.any():
        return prices, MissingReport(policy)
    if policy is MissingPolicy.MASK:
        return prices, MissingReport(policy, masked_cells=int(nan.sum()))
    if policy is MissingPolicy.RAISE:
        _raise_at(prices, nan, f"{name} has missing values (NaN); choose on_missing='mask', "
                  "'drop' or 'ffill' to handle them", name, None)
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


def _frozen(obj: _P) -> _P:
    """One consolidated, read-only block (``writeable=False``): slices share it, read-only."""
    arr = np.array(obj.to_numpy(), copy=True)
    arr.flags.writeable = False
    if isinstance(obj, pd.Series):
        return pd.Series(arr, index=obj.index, name=obj.name, dtype=arr.dtype, copy=False)
    return pd.DataFrame(arr, index=obj.index, columns=obj.columns, dtype=arr.dtype, copy=False)


class _derived(Generic[_P]):  # noqa: N801 - used as a decorator, like cached_property
    """A causal panel derived from the data: computed once on the root market and frozen; a
    view (``head``/``as_of``) gets the root's panel cut to its rows (``offset`` rows fewer for
    panels that lose the first row, like returns)."""

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def __call__(self, fn: Callable[[MarketData], _P]) -> _derived[_P]:
        self.fn = fn
        self.__doc__ = fn.__doc__
        return self

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _derived[_P]: ...
    @overload
    def __get__(self, obj: MarketData, owner: type) -> _P: ...

    def __get__(self, obj: MarketData | None, owner: type) -> _P | _derived[_P]:
        if obj is None:
            return self
        d = obj.__dict__
        if self.name in d:
            return d[self.name]  # type: ignore[no-any-return]
        root = d.get("_root")
        if root is None:
            val = _frozen(self.fn(obj))
        else:
            val = getattr(root, self.name).iloc[: d["_n"] - self.offset]
        d[self.name] = val
        return val


def rolling_cov_on(frame: pd.DataFrame, series: pd.Series, window: int,
                   min_periods: int) -> pd.DataFrame:
    """``frame.rolling(window, min_periods=min_periods).cov(series)``, bit for bit: pandas'
    own ``roll_cov`` kernel per column on the same masked inputs (``x + 0 y``, ``y + 0 x``;
    inf as NaN), without its per-column Series arithmetic (~2.6 s -> ~50 ms at 470 names x
    1,259 rows, paid at every risk refit over a selection of names). Falls back to the
    pandas call when the kernel is not importable or the indexes differ."""
    try:
        from pandas._libs.window.aggregations import roll_cov
    except ImportError:  # pragma: no cover - a pandas without the kernel
        return frame.rolling(window, min_periods=min_periods).cov(series)
    if not frame.index.equals(series.index) or not frame.columns.is_unique:
        return frame.rolling(window, min_periods=min_periods).cov(series)
    x_all = frame.to_numpy(dtype=np.float64)
    y0 = series.to_numpy(dtype=np.float64)
    n = len(y0)
    end = np.arange(1, n + 1, dtype=np.int64)  # a fixed trailing window, closed right
    start = np.maximum(end - window, 0).astype(np.int64)
    out = np.empty_like(x_all)
    with np.errstate(invalid="ignore"):
        for i in range(x_all.shape[1]):
            xi = x_all[:, i]
            x = xi + 0 * y0
            y = y0 + 0 * xi
            x[np.isinf(x)] = np.nan
            y[np.isinf(y)] = np.nan
            out[:, i] = roll_cov(x, y, start, end, min_periods, 1)
    return pd.DataFrame(out, index=frame.index, columns=frame.columns)


@dataclass(frozen=True, eq=False)
class MarketData:
    """Daily (or bar) market data for a universe, validated and aligned.

    Args:
        prices: dates x symbols close prices (> 0), UTC tz-aware index stamped when known.
        volumes: dates x symbols traded shares (>= 0), same shape as ``prices``.
        sectors: symbol -> sector label (a Series), or a point-in-time classification (a
            DataFrame of labels, dates x symbols, indexed like ``prices``: ``sectors`` is then
            the row of the view's last date and ``sector_history`` the panel); missing
            symbols or labels get ``"Unknown"``.
        spreads: dates x symbols full bid-ask spread as a fraction of mid (optional).
        market_caps: dates x symbols market capitalisation in currency (optional).
        benchmark_returns: simple returns of a benchmark, indexed like ``prices`` (optional;
            otherwise the market is the cap-weighted, or equal-weighted, universe).
        on_missing: ``raise`` (default), ``mask``, ``drop`` or ``ffill``; see
            :func:`apply_missing_policy`.
        adv_window, vol_window, beta_window: rolling windows in bars for ADV, volatility, beta.
        min_history: bars of unbroken close and volume a name needs to be ``tradable``.
        source: where the data came from (for error messages).
        caveats: what a reader of any figure built on this data must know (e.g. spreads that
            are an estimate or a fixed stand-in, not quotes); printed by the backtest, the
            report and the CLI.
    """

    prices: pd.DataFrame
    volumes: pd.DataFrame
    sectors: pd.Series | pd.DataFrame | None = None
    spreads: pd.DataFrame | None = None
    market_caps: pd.DataFrame | None = None
    benchmark_returns: pd.Series | None = None
    on_missing: MissingPolicy = MissingPolicy.RAISE
    adv_window: int = 20
    vol_window: int = 63
    beta_window: int = 252
    min_history: int = 63
    source: str | None = None
    caveats: tuple[str, ...] = ()
    missing_report: MissingReport = field(init=False)
    sector_history: pd.DataFrame | None = field(init=False)

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
        if policy is not MissingPolicy.MASK:
            # A forward-filled price means no trade that bar: its volume is zero, not invented.
            # Under the mask an unknown volume stays unknown (the name is not tradable there).
            volumes = volumes.fillna(0.0)
        spreads = (None if self.spreads is None
                   else self._aligned(self.spreads, "spreads", prices, positive=True))
        caps = (None if self.market_caps is None
                else self._aligned(self.market_caps, "market_caps", prices, positive=True))
        history = self._sector_history(prices)
        sectors = (self._sectors(symbols) if history is None
                   else self._sector_row(history, len(prices) - 1))
        bench = self.benchmark_returns
        if bench is not None:
            if not isinstance(bench, pd.Series) or not bench.index.equals(prices.index):
                raise DataError("benchmark_returns must be a Series indexed like prices",
                                field="benchmark_returns", file=src)
            bench = _frozen(bench.astype(np.float64))
        for name in ("adv_window", "vol_window", "beta_window", "min_history"):
            if int(getattr(self, name)) < (1 if name == "min_history" else 2):
                raise DataError(f"{name} must be >= {1 if name == 'min_history' else 2}",
                                field=name, value=getattr(self, name))
        if not all(isinstance(c, str) for c in self.caveats):
            raise DataError("caveats must be strings", field="caveats", value=self.caveats)
        _set = object.__setattr__
        _set(self, "caveats", tuple(self.caveats))
        _set(self, "prices", _frozen(prices))
        _set(self, "volumes", _frozen(volumes))
        _set(self, "spreads", None if spreads is None else _frozen(spreads))
        _set(self, "market_caps", None if caps is None else _frozen(caps))
        _set(self, "sectors", sectors)
        _set(self, "sector_history", history)
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
            out = pd.Series(UNKNOWN_SECTOR, index=symbols, name="sector", dtype=object)
        else:
            s = pd.Series(self.sectors).astype(object)
            s.index = s.index.astype(str)
            out = s.reindex(symbols).fillna(UNKNOWN_SECTOR).rename("sector")
        return _frozen(out)

    def _sector_history(self, prices: pd.DataFrame) -> pd.DataFrame | None:
        if not isinstance(self.sectors, pd.DataFrame):
            return None
        df = self.sectors
        if not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None or not (
                df.index.tz_convert("UTC").equals(prices.index)):
            raise DataError("a sector DataFrame must be indexed like prices (UTC stamps)",
                            field="sectors", file=self.source)
        cols = df.columns.astype(str)
        missing = prices.columns.difference(cols)
        if len(missing):
            raise DataError("sectors lack symbols present in prices", field="sectors",
                            symbol=str(missing[0]), file=self.source)
        out = pd.DataFrame(df.to_numpy(dtype=object), index=prices.index, columns=cols)
        return _frozen(out[prices.columns].fillna(UNKNOWN_SECTOR))

    @staticmethod
    def _sector_row(history: pd.DataFrame, row: int) -> pd.Series:
        return history.iloc[row].rename("sector").rename_axis(history.columns.name)

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

    # ------------------------------------------------------------------ universe

    @_derived(0)
    def tradable(self) -> pd.DataFrame:
        """Bool, dates x symbols: close and volume known on each of the last ``min_history``
        rows (:func:`keel.data.universe.tradable_mask`). Causal: a view's mask is the prefix."""
        m = tradable_mask(self.prices.to_numpy(), self.volumes.to_numpy(), self.min_history)
        return pd.DataFrame(m, index=self.prices.index, columns=self.prices.columns)

    @property
    def universe(self) -> pd.Index:
        """Symbols tradable at the last row of this view (``tradable`` at ``now``)."""
        return self.symbols[self.tradable.to_numpy()[-1]]

    @_derived(0)
    def universe_size(self) -> pd.Series:
        """Number of tradable names per date (for reports)."""
        return self.tradable.sum(axis=1).astype(np.int64).rename("universe_size")

    # ------------------------------------------------------------------ derived (causal)

    @_derived(1)
    def returns(self) -> pd.DataFrame:
        """Simple returns, dates[1:] x symbols (NaN where either close is unknown)."""
        return self.prices.pct_change(fill_method=None).iloc[1:]

    @_derived(1)
    def log_returns(self) -> pd.DataFrame:
        """Log returns, dates[1:] x symbols."""
        return np.log(self.prices).diff().iloc[1:]

    @_derived(0)
    def dollar_volumes(self) -> pd.DataFrame:
        """price x volume per bar, currency."""
        return self.prices * self.volumes

    @_derived(0)
    def adv_shares(self) -> pd.DataFrame:
        """Average daily volume in shares: trailing mean over ``adv_window`` bars."""
        return self.volumes.rolling(self.adv_window, min_periods=1).mean()

    @_derived(0)
    def adv_notional(self) -> pd.DataFrame:
        """Average daily traded value in currency: trailing mean over ``adv_window`` bars."""
        return self.dollar_volumes.rolling(self.adv_window, min_periods=1).mean()

    @_derived(1)
    def volatility(self) -> pd.DataFrame:
        """Trailing standard deviation of daily simple returns over ``vol_window`` (daily units)."""
        return self.returns.rolling(self.vol_window, min_periods=2).std()

    @_derived(1)
    def market_returns(self) -> pd.Series:
        """Benchmark returns if given, else cap-weighted (or equal-weighted) universe returns
        over the names whose return is known that day."""
        if self.benchmark_returns is not None:
            return self.benchmark_returns.iloc[1:].rename("market")
        r = self.returns
        if self.market_caps is not None:
            w = self.market_caps.shift(1).iloc[1:].where(r.notna())
            w = w.div(w.sum(axis=1), axis=0)
            return (r * w).sum(axis=1, min_count=1).rename("market")
        return r.mean(axis=1).rename("market")

    @_derived(1)
    def betas(self) -> pd.DataFrame:
        """Trailing OLS beta of each name on the market over ``beta_window`` bars."""
        r = self.returns
        m = self.market_returns
        win, minp = self.beta_window, min(self.beta_window, 20)
        cov = rolling_cov_on(r, m, win, minp)
        var = m.rolling(win, min_periods=minp).var()
        return cov.div(var, axis=0)

    def derived(self, key: str, fn: Callable[[MarketData], _P], offset: int = 0) -> _P:
        """A causal panel ``fn(market)`` computed once on the root market and frozen (like the
        derived properties above); a view (``head``/``as_of``) gets the root's panel cut to
        its rows (``offset`` rows fewer for panels aligned with ``returns``).

        ``fn`` must be causal (row ``t`` from rows ``<= t`` only, and computed the same way
        whatever rows follow) and ``key`` must name it uniquely: a view's panel is then
        exactly ``fn(view)``, computed once per run instead of once per view.
        """
        d = self.__dict__
        cache: dict[str, Any] = d.setdefault("_panels", {})
        if key in cache:
            return cast(_P, cache[key])
        root = d.get("_root")
        if root is None:
            val = _frozen(fn(self))
        else:
            val = root.derived(key, fn, offset).iloc[: d["_n"] - offset]
        cache[key] = val
        return val

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
        """The first ``n`` rows as their own point-in-time view (read-only, computes nothing:
        derived panels are the root's, cut to ``n`` rows)."""
        if n < 2:
            raise DataError("fewer than 2 rows known at this time", field="t",
                            value=self.prices.index[0] if n else None)
        if n >= len(self.prices):
            return self  # a view never reaches past its own last row into its root's
        root: MarketData = self.__dict__.get("_root") or self
        sl = slice(0, n)
        view = MarketData.__new__(MarketData)
        _set = object.__setattr__
        for name in ("on_missing", "adv_window", "vol_window", "beta_window", "min_history",
                     "source", "caveats", "missing_report"):
            _set(view, name, getattr(root, name))
        hist = root.sector_history
        _set(view, "sector_history", None if hist is None else hist.iloc[sl])
        _set(view, "sectors", root.sectors if hist is None else self._sector_row(hist, n - 1))
        _set(view, "prices", root.prices.iloc[sl])
        _set(view, "volumes", root.volumes.iloc[sl])
        _set(view, "spreads", None if root.spreads is None else root.spreads.iloc[sl])
        _set(view, "market_caps",
             None if root.market_caps is None else root.market_caps.iloc[sl])
        _set(view, "benchmark_returns",
             None if root.benchmark_returns is None else root.benchmark_returns.iloc[sl])
        view.__dict__["_root"] = root
        view.__dict__["_n"] = n
        return view

    def select(self, symbols: Any) -> MarketData:
        """A market restricted to ``symbols`` (unknown symbols raise ``DataError``).

        Under ``mask`` the result keeps the mask policy (holes stay NaN); otherwise the
        selection must be complete (``raise``)."""
        wanted = pd.Index(symbols).astype(str)
        unknown = wanted.difference(self.symbols)
        if len(unknown):
            raise DataError("unknown symbol", field="symbols", symbol=str(unknown[0]))
        hist = self.sector_history
        sectors: pd.Series | pd.DataFrame | None = (
            cast(pd.Series, self.sectors).reindex(wanted) if hist is None else hist[wanted])
        mask = self.on_missing is MissingPolicy.MASK
        return MarketData(
            prices=self.prices[wanted], volumes=self.volumes[wanted], sectors=sectors,
            spreads=None if self.spreads is None else self.spreads[wanted],
            market_caps=None if self.market_caps is None else self.market_caps[wanted],
            benchmark_returns=self.benchmark_returns,
            on_missing=MissingPolicy.MASK if mask else MissingPolicy.RAISE,
            adv_window=self.adv_window, vol_window=self.vol_window,
            beta_window=self.beta_window, min_history=self.min_history, source=self.source,
            caveats=self.caveats,
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
