"""Return scenarios for mean-CVaR: historical windows and factor Monte Carlo; exact CVaR."""

from __future__ import annotations

import numpy as np
import pandas as pd

from keel.errors import ValidationError
from keel.risk.base import FactorCovariance


def historical_scenarios(returns: pd.DataFrame, window: int | None = None) -> pd.DataFrame:
    """The last ``window`` rows of ``returns`` (dates x symbols), NaN refused."""
    df = returns if window is None else returns.iloc[-window:]
    if df.isna().any().any():
        col = df.columns[df.isna().any().to_numpy()][0]
        raise ValidationError("scenario returns have NaN", field="returns", symbol=str(col))
    if len(df) < 2:
        raise ValidationError("need at least 2 scenarios", field="window", value=len(df))
    return df


def factor_scenarios(fc: FactorCovariance, n_scenarios: int, *,
                     mean: pd.Series | None = None,
                     rng: np.random.Generator | int = 0) -> pd.DataFrame:
    """Monte Carlo returns ``mean + B f + e`` with ``f ~ N(0, F)``, ``e ~ N(0, D)``.

    O(T (N + K^2)); the N x N covariance is never formed.
    """
    if n_scenarios < 2:
        raise ValidationError("n_scenarios must be >= 2", field="n_scenarios",
                              value=n_scenarios)
    gen = np.random.default_rng(rng)
    f = gen.standard_normal((n_scenarios, fc.n_factors)) @ fc.factor_sqrt().T
    e = gen.standard_normal((n_scenarios, fc.n_assets)) * np.sqrt(fc.specific_variance)
    r = f @ fc.exposures.T + e
    if mean is not None:
        r += mean.reindex(fc.symbols).fillna(0.0).to_numpy()[None, :]
    return pd.DataFrame(r, columns=fc.symbols)


def cvar(losses: np.ndarray, beta: float = 0.95) -> float:
    """Exact Rockafellar-Uryasev CVaR of equally likely ``losses`` at level ``beta``.

    ``min_z z + mean(max(L - z, 0)) / (1 - beta)``, evaluated at every sorted loss (the
    minimum of this piecewise-linear function sits on one of them); O(T log T).
    """
    loss = np.sort(np.asarray(losses, dtype=np.float64))
    t = loss.size
    tail = np.cumsum(loss[::-1])[::-1]  # sum of loss[j:]
    j = np.arange(t)
    excess = tail - (t - j) * loss  # sum over i >= j of (loss_i - loss_j)
    vals = loss + excess / ((1.0 - beta) * t)
    return float(vals.min())
