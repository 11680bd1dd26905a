"""A simple market regime detector: trend strength x volatility -> one of five regimes.

Trend strength is Kaufman's efficiency ratio over ``trend_window`` sessions,
``|P_t - P_{t-n}| / sum |P_i - P_{i-1}|`` in [0, 1] (1 = a straight line, ~0 = noise).
Volatility is the ratio of short to long realised volatility of log returns (1 = usual).

============================  ==========================  ==================
trend strength                vol ratio                   regime (multiplier)
============================  ==========================  ==================
>= ``trend_threshold``        >= ``high_vol``             volatile-trending (1.0)
>= ``trend_threshold``        <  ``high_vol``             trending (1.2)
<  ``trend_threshold``        >= ``high_vol``             choppy (0.7)
<  ``trend_threshold``        <= ``low_vol``              quiet-choppy (0.5)
<  ``trend_threshold``        in between                  mean-reverting (0.9)
============================  ==========================  ==================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from keel.errors import DataError


class Regime(StrEnum):
    TRENDING = "trending"
    VOLATILE_TRENDING = "volatile_trending"
    MEAN_REVERTING = "mean_reverting"
    CHOPPY = "choppy"
    QUIET_CHOPPY = "quiet_choppy"


DEFAULT_MULTIPLIERS: dict[Regime, float] = {
    Regime.TRENDING: 1.2, Regime.VOLATILE_TRENDING: 1.0, Regime.MEAN_REVERTING: 0.9,
    Regime.CHOPPY: 0.7, Regime.QUIET_CHOPPY: 0.5,
}


def efficiency_ratio(prices: np.ndarray, window: int) -> float:
    """Kaufman efficiency ratio of the last ``window`` steps of a 1-D price array."""
    p = np.asarray(prices, dtype=np.float64)[-(window + 1):]
    path = float(np.abs(np.diff(p)).sum())
    return 0.0 if path == 0 else abs(float(p[-1] - p[0])) / path


@dataclass(frozen=True)
class RegimeReading:
    regime: Regime
    trend_strength: float
    vol_ratio: float


@dataclass(frozen=True)
class RegimeDetector:
    """Classifies a price series (oldest first); thresholds as in the module table."""

    trend_window: int = 20
    vol_short: int = 20
    vol_long: int = 252
    trend_threshold: float = 0.3
    high_vol: float = 1.25
    low_vol: float = 0.75

    def detect(self, prices: pd.Series | np.ndarray) -> RegimeReading:
        p = np.asarray(prices, dtype=np.float64)
        need = max(self.trend_window, self.vol_short) + 1
        if p.ndim != 1 or len(p) < need:
            raise DataError(f"regime detection needs at least {need} prices",
                            field="market_prices", value=len(p))
        if not np.all(np.isfinite(p)) or np.any(p <= 0):
            raise DataError("market prices must be finite and > 0", field="market_prices")
        er = efficiency_ratio(p, self.trend_window)
        r = np.diff(np.log(p))
        long_sd = float(r[-self.vol_long:].std(ddof=1))
        ratio = float(r[-self.vol_short:].std(ddof=1)) / long_sd if long_sd > 0 else 1.0
        if er >= self.trend_threshold:
            regime = Regime.VOLATILE_TRENDING if ratio >= self.high_vol else Regime.TRENDING
        elif ratio >= self.high_vol:
            regime = Regime.CHOPPY
        elif ratio <= self.low_vol:
            regime = Regime.QUIET_CHOPPY
        else:
            regime = Regime.MEAN_REVERTING
        return RegimeReading(regime, er, ratio)
