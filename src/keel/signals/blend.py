"""Built-in signals: momentum 12-1, short-term reversal, low volatility, and their blend.

Every signal is a causal function of a :class:`~keel.data.market.MarketData` (it reads only
rows up to the view's last stamp, so ``signal(market.as_of(t))`` is what was knowable at ``t``)
and returns a cross-section: a ``pd.Series`` indexed by symbol, NaN where a name lacks history.

:class:`BlendSignal` packages the blend as a :class:`~keel.signals.base.SignalModel`: z-scored
blend, then Grinold expected returns (:func:`~keel.signals.base.expected_returns`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from keel.data.market import MarketData
from keel.errors import DataError, ValidationError
from keel.signals.base import SignalSnapshot, _zscore_array, expected_returns

TRADING_DAYS = 252


def _need(market: MarketData, rows: int, name: str) -> None:
    if len(market.returns) < rows:
        raise DataError(f"{name} needs {rows} return rows, the market has "
                        f"{len(market.returns)}", field=name, value=len(market.returns))


def _series(values: np.ndarray, market: MarketData, name: str) -> pd.Series:
    return pd.Series(values, index=market.symbols, name=name)


def _momentum(px: np.ndarray, lookback: int, skip: int) -> np.ndarray:
    # only the two rows used: O(N) per call, whatever the history length
    return np.log(px[-1 - skip]) - np.log(px[-1 - lookback])


def _reversal(px: np.ndarray, window: int) -> np.ndarray:
    return -(np.log(px[-1]) - np.log(px[-1 - window]))


def _low_vol(rets: np.ndarray, window: int) -> np.ndarray:
    r = rets[-window:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return -np.nanstd(r, axis=0, ddof=1)


def momentum_12_1(market: MarketData, *, lookback: int = 252, skip: int = 21) -> pd.Series:
    """Cumulative log return from ``lookback`` to ``skip`` sessions ago (skips the last month).

    Returns: (N,) Series of log returns (fraction), higher is stronger momentum.
    """
    _need(market, lookback, "momentum_12_1")
    return _series(_momentum(market.prices.to_numpy(), lookback, skip), market,
                   "momentum_12_1")


def short_term_reversal(market: MarketData, *, window: int = 5) -> pd.Series:
    """Minus the last ``window``-session log return: recent losers score high."""
    _need(market, window, "short_term_reversal")
    return _series(_reversal(market.prices.to_numpy(), window), market,
                   "short_term_reversal")


def low_volatility(market: MarketData, *, window: int = 63) -> pd.Series:
    """Minus the trailing daily volatility over ``window`` sessions: calm names score high."""
    _need(market, window, "low_volatility")
    return _series(_low_vol(market.returns.to_numpy(), window), market, "low_volatility")


SIGNALS: dict[str, Callable[[MarketData], pd.Series]] = {
    "momentum_12_1": momentum_12_1,
    "short_term_reversal": short_term_reversal,
    "low_volatility": low_volatility,
}

_ARRAY_SIGNALS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "momentum_12_1": lambda px, r: _momentum(px, 252, 21),
    "short_term_reversal": lambda px, r: _reversal(px, 5),
    "low_volatility": lambda px, r: _low_vol(r, 63),
}
_ROWS = {"momentum_12_1": 252, "short_term_reversal": 5, "low_volatility": 63}

#: The default blend: momentum 0.5, short-term reversal 0.25, low volatility 0.25.
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"momentum_12_1": 0.5, "short_term_reversal": 0.25, "low_volatility": 0.25})


def composite_score(market: MarketData,
                    weights: Mapping[str, float] | None = None) -> pd.Series:
    """Weighted sum of z-scored signals, re-standardised (a signal a name lacks counts 0; a
    name with none at all scores NaN).

    Args:
        weights: signal name -> weight (default: momentum 0.5, reversal 0.25, low vol 0.25).
    """
    weights = dict(weights or DEFAULT_WEIGHTS)
    unknown = set(weights) - set(SIGNALS)
    if unknown:
        raise ValidationError("unknown signal", field="weights", value=sorted(unknown))
    px = market.prices.to_numpy()
    rets = market.returns.to_numpy()
    total = np.zeros(market.n_assets)
    known = np.zeros(market.n_assets, dtype=bool)
    for name, w in weights.items():
        _need(market, _ROWS[name], name)
        z = _zscore_array(_ARRAY_SIGNALS[name](px, rets), 3.0, name)
        known |= np.isfinite(z)
        total += w * np.nan_to_num(z, nan=0.0)
    # a name no signal can score (no history yet) has no view: NaN, not an average score
    total[~known] = np.nan
    return _series(_zscore_array(total, 3.0, "composite"), market, "composite")


@dataclass(frozen=True)
class BlendSignal:
    """The built-in blend as a :class:`~keel.signals.base.SignalModel`.

    ``score`` = :func:`composite_score` (z-score units); ``alpha`` = Grinold
    ``ic x vol x sqrt(periods) x score`` with ``vol`` the view's latest daily volatility.

    Args:
        weights: signal name -> weight (keys of :data:`SIGNALS`); default :data:`DEFAULT_WEIGHTS`.
        ic: information coefficient (dimensionless).
        periods: horizon of ``alpha`` in sessions.

    Raises (on ``evaluate``):
        DataError: the view has fewer return rows than a signal needs (252 for momentum).
        ValidationError: an unknown signal name, or a degenerate cross-section.
    """

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    ic: float = 0.05
    periods: int = 1
    name: str = "blend"

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(SIGNALS)
        if unknown:
            raise ValidationError("unknown signal", field="weights", value=sorted(unknown))
        if not np.isfinite(self.ic):
            raise ValidationError("ic must be finite", field="ic", value=self.ic)
        if int(self.periods) < 1:
            raise ValidationError("periods must be >= 1", field="periods", value=self.periods)

    def evaluate(self, market: MarketData) -> SignalSnapshot:
        score = composite_score(market, self.weights)
        alpha = expected_returns(score, market.latest("volatility"), ic=self.ic,
                                 periods=self.periods)
        return SignalSnapshot(as_of=market.now, score=score, alpha=alpha, name=self.name)
