"""Sample signals: momentum 12-1, short-term reversal, low volatility; risk-scaled z-scores.

Every signal is a causal function of a :class:`~keel.data.market.MarketData` (it reads only
rows up to the view's last stamp, so ``signal(market.as_of(t))`` is what was knowable at ``t``)
and returns a cross-section: a ``pd.Series`` indexed by symbol, NaN where a name lacks history.

Conversion to expected returns follows Grinold's rule ``alpha = IC x volatility x z``: a score
``z`` (cross-sectional z-score) with information coefficient ``IC`` implies an expected
residual return proportional to the name's volatility.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from keel.data.market import MarketData
from keel.errors import DataError, ValidationError

TRADING_DAYS = 252


def _need(market: MarketData, rows: int, name: str) -> None:
    if len(market.returns) < rows:
        raise DataError(f"{name} needs {rows} return rows, the market has "
                        f"{len(market.returns)}", field=name, value=len(market.returns))


def momentum_12_1(market: MarketData, *, lookback: int = 252, skip: int = 21) -> pd.Series:
    """Cumulative log return from ``lookback`` to ``skip`` sessions ago (skips the last month).

    Returns: (N,) Series of log returns (fraction), higher is stronger momentum.
    """
    _need(market, lookback, "momentum_12_1")
    logp = np.log(market.prices)
    return (logp.iloc[-1 - skip] - logp.iloc[-1 - lookback]).rename("momentum_12_1")


def short_term_reversal(market: MarketData, *, window: int = 5) -> pd.Series:
    """Minus the last ``window``-session log return: recent losers score high."""
    _need(market, window, "short_term_reversal")
    logp = np.log(market.prices)
    return (-(logp.iloc[-1] - logp.iloc[-1 - window])).rename("short_term_reversal")


def low_volatility(market: MarketData, *, window: int = 63) -> pd.Series:
    """Minus the trailing daily volatility over ``window`` sessions: calm names score high."""
    _need(market, window, "low_volatility")
    return (-market.returns.iloc[-window:].std()).rename("low_volatility")


def zscore(raw: pd.Series, *, clip: float = 3.0) -> pd.Series:
    """Cross-sectional z-score, winsorised at ``±clip``; NaN inputs stay NaN.

    Raises:
        ValidationError: fewer than 3 finite values, or no dispersion.
    """
    x = raw.astype(float)
    finite = x[np.isfinite(x)]
    if len(finite) < 3:
        raise ValidationError("z-score needs at least 3 finite values", field=str(raw.name),
                              value=len(finite))
    sd = finite.std()
    if not sd > 0:
        raise ValidationError("z-score of a constant cross-section", field=str(raw.name))
    z = ((x - finite.mean()) / sd).clip(-clip, clip)
    # re-standardise after winsorising so the score keeps unit dispersion
    zf = z[np.isfinite(z)]
    return ((z - zf.mean()) / zf.std()).rename(raw.name)


SIGNALS: dict[str, Callable[[MarketData], pd.Series]] = {
    "momentum_12_1": momentum_12_1,
    "short_term_reversal": short_term_reversal,
    "low_volatility": low_volatility,
}


def composite_score(market: MarketData,
                    weights: Mapping[str, float] | None = None) -> pd.Series:
    """Weighted sum of z-scored signals, re-standardised (NaN-safe: a missing signal counts 0).

    Args:
        weights: signal name -> weight (default: momentum 0.5, reversal 0.25, low vol 0.25).
    """
    weights = dict(weights or {"momentum_12_1": 0.5, "short_term_reversal": 0.25,
                               "low_volatility": 0.25})
    unknown = set(weights) - set(SIGNALS)
    if unknown:
        raise ValidationError("unknown signal", field="weights", value=sorted(unknown))
    total = pd.Series(0.0, index=market.symbols)
    for name, w in weights.items():
        total = total + w * zscore(SIGNALS[name](market)).reindex(market.symbols).fillna(0.0)
    return zscore(total.rename("composite"))


def expected_returns(score: pd.Series, volatility: pd.Series, *, ic: float = 0.05,
                     periods: int = 1) -> pd.Series:
    """Grinold: ``alpha = IC x vol x z`` over ``periods`` sessions (vol is daily).

    Returns: (N,) expected simple returns per ``periods`` sessions; names without a
    volatility get 0 (no view), never a silent guess at their risk.
    """
    vol = volatility.reindex(score.index)
    alpha = ic * vol * np.sqrt(periods) * score
    return alpha.where(np.isfinite(alpha), 0.0).rename("alpha")
