"""Style exposures for the fundamental factor model, computed from market data.

Every function returns a dates x symbols panel aligned with ``market.returns`` (row ``t`` is
known at the close of ``t``), NaN while its look-back window is not yet full. Raw values are
then standardised cross-sectionally by :func:`standardize`.

Units of the raw styles:

- ``beta``: trailing OLS beta on the market (``MarketData.betas``, ``beta_window`` days);
- ``size``: ``log(market cap)``; without caps, ``log`` of the trailing 252-day mean daily
  traded value (a standard proxy: traded value and capitalisation are highly correlated);
- ``momentum``: sum of daily log returns from ``t-252`` to ``t-21`` (12-1 month momentum);
- ``volatility``: trailing standard deviation of daily returns (``MarketData.volatility``);
- ``reversal``: sum of daily log returns over the last 21 days (short-term reversal);
- ``liquidity``: ``log`` turnover, the 21-day traded value over market cap; without caps,
  ``log`` of the 21-day over the 252-day mean traded value (abnormal trading activity).
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd

from keel.data.market import MarketData

YEAR, MONTH = 252, 21


class Style(StrEnum):
    """The style factors the fundamental model can use."""

    BETA = "beta"
    SIZE = "size"
    MOMENTUM = "momentum"
    VOLATILITY = "volatility"
    REVERSAL = "reversal"
    LIQUIDITY = "liquidity"


ALL_STYLES: tuple[Style, ...] = tuple(Style)


def _trailing_sum(x: np.ndarray, window: int, skip: int = 0) -> np.ndarray:
    """Sum of rows ``t-window+1-skip .. t-skip`` for each ``t`` (NaN before it is full, and
    NaN where the window holds a NaN: a hole poisons only the windows that contain it, not
    every later one, so a name back from a gap gets its exposures once its windows are
    clean)."""
    nan = np.isnan(x)
    zero = np.zeros((1, x.shape[1]))
    c = np.vstack([zero, np.cumsum(np.where(nan, 0.0, x), axis=0)])
    holes = np.vstack([zero, np.cumsum(nan, axis=0)])
    out = np.full_like(x, np.nan)
    end = np.arange(x.shape[0]) + 1 - skip
    start = end - window
    ok = start >= 0
    vals = c[end[ok]] - c[start[ok]]
    out[ok] = np.where(holes[end[ok]] - holes[start[ok]] > 0, np.nan, vals)
    return out


def _trailing_mean(df: pd.DataFrame, window: int) -> pd.DataFrame:
    """Rolling mean over full windows (NaN before), by cumulative sums."""
    x = df.to_numpy(dtype=np.float64)
    return pd.DataFrame(_trailing_sum(x, window) / window, index=df.index, columns=df.columns)


def raw_style(market: MarketData, style: Style) -> pd.DataFrame:
    """The raw (unstandardised) ``style`` panel, aligned with ``market.returns``.

    Every style is causal (trailing windows by cumulative sums from the first row,
    elementwise logs), so it is computed once on the root market and a point-in-time view
    reads its rows (:meth:`MarketData.derived`): a risk refit on ``market.head(n)`` no
    longer recomputes the whole history."""
    if style is Style.BETA:
        return market.betas
    if style is Style.VOLATILITY:
        return market.volatility
    return market.derived(f"keel.risk.styles.raw_style:{style.value}",
                          lambda m: _raw_style(m, style), offset=1)


def _raw_style(market: MarketData, style: Style) -> pd.DataFrame:
    r = market.returns
    idx, cols = r.index, r.columns
    if style in (Style.MOMENTUM, Style.REVERSAL):
        lr = market.log_returns.to_numpy()
        vals = (_trailing_sum(lr, YEAR - MONTH, skip=MONTH) if style is Style.MOMENTUM
                else _trailing_sum(lr, MONTH))
        return pd.DataFrame(vals, index=idx, columns=cols)
    dv = market.dollar_volumes.iloc[1:]
    caps = None if market.market_caps is None else market.market_caps.iloc[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        if style is Style.SIZE:
            base = caps if caps is not None else _trailing_mean(dv, YEAR)
            return np.log(base.where(base > 0))
        short = _trailing_mean(dv, MONTH)
        long = caps if caps is not None else _trailing_mean(dv, YEAR)
        ratio = short / long
        return np.log(ratio.where(ratio > 0))


def standardize(raw: np.ndarray, weights: np.ndarray, clip: float = 3.0) -> np.ndarray:
    """Cross-sectional z-scores, row by row: weighted mean 0, equal-weighted std 1.

    The mean uses ``weights`` (capitalisation-like, so the market portfolio has zero style
    exposure) and the scale the plain cross-sectional std, as Barra does; scores are then
    clipped at ``+-clip`` and re-standardised. NaNs stay NaN.

    Args:
        raw: (T, N) raw style values.
        weights: (T, N) non-negative weights.
    """
    z = np.array(raw, dtype=np.float64)
    ok = np.isfinite(z)
    w = np.where(ok, weights, 0.0)
    wsum = w.sum(axis=1)
    cnt = ok.sum(axis=1)
    for _ in range(2):
        zz = np.where(ok, z, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.einsum("ij,ij->i", w, zz) / wsum
            m_eq = zz.sum(axis=1) / cnt
            var = np.einsum("ij,ij->i", zz, zz) / cnt - m_eq * m_eq
            sd = np.sqrt(np.clip(var, 0.0, None))
            z -= mean[:, None]
            z /= np.where(sd > 0, sd, np.nan)[:, None]
        if not np.any(np.abs(z) > clip):
            break
        np.clip(z, -clip, clip, out=z)
    return z
