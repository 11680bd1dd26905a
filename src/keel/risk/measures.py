"""Risk measures as plain functions on arrays.

Conventions: ``returns`` are simple returns per period, (T,) for one portfolio or (T, N) for
N columns evaluated at once (results then have shape (N,)). VaR and CVaR are *losses* as a
positive fraction of value over ``horizon`` periods (21 trading days by default, about one
month) at ``confidence`` (0.95 -> the 5% left tail). Horizon aggregation:

- historical: compounded returns over *overlapping* windows of ``horizon`` periods;
- parametric: i.i.d. scaling, mean ``* h``, volatility ``* sqrt(h)``, skewness ``/ sqrt(h)``,
  excess kurtosis ``/ h``;
- Monte Carlo: ``horizon`` daily draws per path, compounded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from keel.errors import ValidationError
from keel.risk._input import check_confidence, check_positive_int
from keel.risk.base import FactorCovariance

#: Default horizon in trading days (one month).
DEFAULT_HORIZON = 21


def _arr(returns: Any, name: str = "returns", min_obs: int = 2) -> np.ndarray:
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise ValidationError(f"{name} must be (T,) or (T, N)", field=name, value=x.shape)
    if x.shape[0] < min_obs:
        raise ValidationError(f"{name} has too few observations: need at least {min_obs}",
                              field=name, value=x.shape[0])
    if not np.all(np.isfinite(x)):
        raise ValidationError(f"{name} has NaN or infinite values", field=name)
    return x


def _out(x: np.ndarray) -> Any:
    return float(x) if np.ndim(x) == 0 else x


def volatility(returns: Any, *, periods_per_year: float | None = None, ddof: int = 1) -> Any:
    """Standard deviation of returns per column; annualised by ``sqrt(periods_per_year)``."""
    x = _arr(returns)
    s = x.std(axis=0, ddof=ddof)
    if periods_per_year is not None:
        s = s * np.sqrt(float(periods_per_year))
    return _out(s)


def scale_to_horizon(volatility_1: Any, horizon: int = DEFAULT_HORIZON) -> Any:
    """One-period volatility to ``horizon`` periods by the square-root-of-time rule."""
    h = check_positive_int(horizon, "horizon")
    return volatility_1 * np.sqrt(h)


def horizon_returns(returns: Any, horizon: int = DEFAULT_HORIZON) -> np.ndarray:
    """Compounded returns over every overlapping window of ``horizon`` periods.

    (T,) -> (T - h + 1,); (T, N) -> (T - h + 1, N).
    """
    h = check_positive_int(horizon, "horizon")
    x = _arr(returns, min_obs=h)
    if np.any(x <= -1.0):
        raise ValidationError("returns must be > -1 to compound", field="returns")
    c = np.cumsum(np.log1p(x), axis=0)
    c = np.concatenate([np.zeros((1, *c.shape[1:])), c], axis=0)
    return np.expm1(c[h:] - c[:-h])


def historical_var(returns: Any, confidence: float = 0.95,
                   horizon: int = DEFAULT_HORIZON) -> Any:
    """Historical VaR: the ``confidence`` quantile of losses over overlapping windows.

    The quantile uses linear interpolation (``numpy.quantile`` default).
    """
    c = check_confidence(confidence)
    losses = -horizon_returns(returns, horizon)
    return _out(np.quantile(losses, c, axis=0))


def historical_cvar(returns: Any, confidence: float = 0.95,
                    horizon: int = DEFAULT_HORIZON) -> Any:
    """Historical CVaR (expected shortfall): mean loss at or beyond the historical VaR."""
    c = check_confidence(confidence)
    losses = -horizon_returns(returns, horizon)
    var = np.quantile(losses, c, axis=0)
    tail = losses >= var
    return _out(np.sum(losses * tail, axis=0) / np.sum(tail, axis=0))


def _moments(x: np.ndarray, horizon: int, include_mean: bool
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    mu = x.mean(axis=0) * horizon if include_mean else np.zeros(x.shape[1:])
    sd = x.std(axis=0, ddof=1) * np.sqrt(horizon)
    skew = stats.skew(x, axis=0, bias=False) / np.sqrt(horizon)
    kurt = stats.kurtosis(x, axis=0, fisher=True, bias=False) / horizon
    return mu, sd, skew, kurt


def normal_var(returns: Any, confidence: float = 0.95, horizon: int = DEFAULT_HORIZON, *,
               include_mean: bool = True) -> Any:
    """Gaussian VaR ``sigma_h z_c - mu_h`` from the sample mean and volatility."""
    c = check_confidence(confidence)
    h = check_positive_int(horizon, "horizon")
    mu, sd, _, _ = _moments(_arr(returns, min_obs=4), h, include_mean)
    return _out(sd * stats.norm.ppf(c) - mu)


def normal_cvar(returns: Any, confidence: float = 0.95, horizon: int = DEFAULT_HORIZON, *,
                include_mean: bool = True) -> Any:
    """Gaussian CVaR ``sigma_h phi(z_c) / (1 - c) - mu_h``."""
    c = check_confidence(confidence)
    h = check_positive_int(horizon, "horizon")
    mu, sd, _, _ = _moments(_arr(returns, min_obs=4), h, include_mean)
    return _out(sd * stats.norm.pdf(stats.norm.ppf(c)) / (1.0 - c) - mu)


def cornish_fisher_quantile(p: Any, skew: Any, excess_kurtosis: Any) -> Any:
    """Cornish-Fisher adjusted standard-normal quantile at probability ``p``."""
    z = stats.norm.ppf(p)
    return (z + (z**2 - 1) * skew / 6 + (z**3 - 3 * z) * excess_kurtosis / 24
            - (2 * z**3 - 5 * z) * skew**2 / 36)


def cornish_fisher_var(returns: Any, confidence: float = 0.95,
                       horizon: int = DEFAULT_HORIZON, *, include_mean: bool = True) -> Any:
    """Modified (Cornish-Fisher) VaR using sample skewness and excess kurtosis."""
    c = check_confidence(confidence)
    h = check_positive_int(horizon, "horizon")
    mu, sd, skew, kurt = _moments(_arr(returns, min_obs=4), h, include_mean)
    return _out(-(mu + sd * cornish_fisher_quantile(1.0 - c, skew, kurt)))


def cornish_fisher_tail_mean(alpha: float, skew: Any, excess_kurtosis: Any) -> Any:
    """Mean of the Cornish-Fisher quantile over ``p in (0, alpha)``, in closed form.

    With ``p = Phi(z)`` the Cornish-Fisher quantile is a cubic in ``z``, so the tail mean is a
    combination of truncated standard-normal moments ``M_k = E[z^k; z < z_alpha]``
    (``M_k = -a^(k-1) phi(a) + (k-1) M_(k-2)``).
    """
    a = stats.norm.ppf(alpha)
    phi = stats.norm.pdf(a)
    m0 = alpha
    m1 = -phi
    m2 = -a * phi + m0
    m3 = -a * a * phi + 2 * m1
    s, k = skew, excess_kurtosis
    total = m1 + s / 6 * (m2 - m0) + k / 24 * (m3 - 3 * m1) - s * s / 36 * (2 * m3 - 5 * m1)
    return total / alpha


def cornish_fisher_cvar(returns: Any, confidence: float = 0.95,
                        horizon: int = DEFAULT_HORIZON, *, include_mean: bool = True) -> Any:
    """Modified CVaR: the Cornish-Fisher quantile averaged over the tail ``p in (0, 1-c)``.

    Exact (see :func:`cornish_fisher_tail_mean`); with zero skewness and excess kurtosis it
    equals :func:`normal_cvar`.
    """
    c = check_confidence(confidence)
    h = check_positive_int(horizon, "horizon")
    mu, sd, skew, kurt = _moments(_arr(returns, min_obs=4), h, include_mean)
    return _out(-(mu + sd * cornish_fisher_tail_mean(1.0 - c, skew, kurt)))


def monte_carlo_var_cvar(model: FactorCovariance, weights: Any, confidence: float = 0.95,
                         horizon: int = DEFAULT_HORIZON, *, n_paths: int = 20_000,
                         mean: Any = None, dof: float | None = None,
                         seed: int | np.random.Generator | None = None
                         ) -> tuple[float, float]:
    """VaR and CVaR of ``weights`` by simulating the factor model ``B F B' + D``.

    Each path draws ``horizon`` daily factor returns ``f ~ N(0, F)`` and specific returns
    ``e ~ N(0, D)`` (or Student-t with ``dof`` degrees of freedom, scaled to the same
    covariance), forms the portfolio's daily return ``w'(mean + B f + e)`` and compounds it.
    Only the K factors and one aggregated specific term are drawn per day (the specific part
    of a portfolio is a single normal with variance ``sum(w^2 d)``), so the cost is
    O(paths x horizon x K) whatever N is.

    Returns:
        ``(var, cvar)`` as positive losses over the horizon.
    """
    c = check_confidence(confidence)
    h = check_positive_int(horizon, "horizon")
    n = check_positive_int(n_paths, "n_paths")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (model.n_assets,):
        raise ValidationError(f"weights must be ({model.n_assets},)", field="weights",
                              value=w.shape)
    rng = np.random.default_rng(seed)
    x = model.exposures.T @ w
    a = model.factor_sqrt().T @ x  # portfolio loading on independent unit shocks
    spec = float(np.sqrt(np.sum(w * w * model.specific_variance)))
    drift = 0.0 if mean is None else float(np.asarray(mean, dtype=np.float64) @ w)
    z = rng.standard_normal((n, h, len(a) + 1))
    if dof is not None:
        if not float(dof) > 2:
            raise ValidationError("dof must be > 2", field="dof", value=dof)
        g = rng.chisquare(dof, size=(n, h, 1)) / dof
        z = z / np.sqrt(g) * np.sqrt((dof - 2) / dof)
    daily = drift + z[..., :-1] @ a + spec * z[..., -1]
    total = np.expm1(np.sum(np.log1p(np.clip(daily, -0.999999, None)), axis=1))
    losses = -total
    var = float(np.quantile(losses, c))
    return var, float(losses[losses >= var].mean())


def drawdowns(returns: Any) -> np.ndarray:
    """Drawdown from the running peak of wealth ``prod(1 + r)`` (starting at 1), >= 0."""
    x = _arr(returns, min_obs=1)
    wealth = np.cumprod(1.0 + x, axis=0)
    ones = np.ones((1, *wealth.shape[1:]))
    peak = np.maximum.accumulate(np.concatenate([ones, wealth], axis=0), axis=0)[1:]
    return 1.0 - wealth / peak


def max_drawdown(returns: Any) -> Any:
    """Largest peak-to-trough loss of wealth, a fraction in [0, 1]."""
    return _out(drawdowns(returns).max(axis=0))


def portfolio_returns(returns: Any, weights: Any) -> np.ndarray:
    """(T,) returns of fixed weights rebalanced every period: ``R w``."""
    x = _arr(returns)
    w = np.asarray(weights, dtype=np.float64)
    if x.ndim != 2 or w.shape != (x.shape[1],):
        raise ValidationError("weights must match the returns' columns", field="weights",
                              value=w.shape)
    return x @ w
