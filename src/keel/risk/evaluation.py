"""Out-of-sample checks of a risk model's volatility forecasts.

The bias statistic of a portfolio is the standard deviation of its standardised returns
``z_t = r_t / sigma_hat_t`` (realised return over the volatility predicted *before* it).
A calibrated model gives ``b ~ 1`` (within about ``1 +- sqrt(2/T)`` for T observations);
``b > 1`` means risk is under-predicted, ``b < 1`` over-predicted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.errors import ValidationError


@dataclass(frozen=True)
class BiasResult:
    """Bias statistic with its approximate 95% band for T observations."""

    bias: float
    n_obs: int
    lower: float
    upper: float

    @property
    def within_band(self) -> bool:
        return self.lower <= self.bias <= self.upper


def bias_statistic(realised: Any, predicted_vol: Any) -> BiasResult:
    """Bias statistic of (T,) realised returns against (T,) predicted volatilities.

    Raises:
        ValidationError: different shapes, fewer than 3 observations, or a non-positive
            predicted volatility.
    """
    r = np.asarray(realised, dtype=np.float64)
    s = np.asarray(predicted_vol, dtype=np.float64)
    if r.shape != s.shape or r.ndim != 1:
        raise ValidationError("realised and predicted_vol must be (T,) each",
                              field="predicted_vol", value=(r.shape, s.shape))
    if len(r) < 3:
        raise ValidationError("need at least 3 observations", field="realised",
                              value=len(r))
    if np.any(~(s > 0)):
        raise ValidationError("predicted volatility must be > 0", field="predicted_vol")
    z = r / s
    b = float(np.std(z, ddof=1))
    half = 1.96 * np.sqrt(2.0 / len(r))
    return BiasResult(b, len(r), 1.0 - half, 1.0 + half)
