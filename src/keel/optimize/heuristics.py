"""Solver-free allocation rules: equal weight, inverse vol, risk parity, vol target, Kelly.

All take and return ``pd.Series`` indexed by symbol at the edge and use vectorised NumPy inside.
A risk model is a :class:`FactorCovariance` (used in factored form: O(NK) per product, no
N x N matrix) or a dense covariance (``np.ndarray`` or ``pd.DataFrame``). Volatilities and
covariances are per period of the risk model unless stated.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from keel.errors import SolverError, ValidationError
from keel.optimize.inputs import align_series
from keel.risk.base import FactorCovariance

RiskModel: TypeAlias = FactorCovariance | np.ndarray | pd.DataFrame


def _dense(risk: np.ndarray | pd.DataFrame) -> np.ndarray:
    cov = risk.to_numpy(dtype=np.float64) if isinstance(risk, pd.DataFrame) else \
        np.asarray(risk, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValidationError("covariance must be square", field="risk", value=cov.shape)
    return cov


def cov_matvec(risk: RiskModel, x: np.ndarray) -> np.ndarray:
    """``Sigma @ x`` (x (N,) or (N, M)); O(NK) for a factor model."""
    if isinstance(risk, FactorCovariance):
        return risk.matvec(x)
    return _dense(risk) @ x


def cov_solve(risk: RiskModel, y: np.ndarray) -> np.ndarray:
    """``Sigma^-1 y``; factor models use Woodbury, O(NK^2), never N x N."""
    if isinstance(risk, FactorCovariance):
        d = risk.specific_variance
        if np.any(d <= 0):
            raise ValidationError("specific variance must be > 0 to invert", field="risk")
        b, f = risk.exposures, risk.factor_covariance
        dinv_y = y / d
        # (D + B F B')^-1 = D^-1 - D^-1 B (I + F B' D^-1 B)^-1 F B' D^-1 (no F^-1 needed)
        m = np.eye(risk.n_factors) + f @ (b.T @ (b / d[:, None]))
        return dinv_y - (b @ np.linalg.solve(m, f @ (b.T @ dinv_y))) / d
    return np.linalg.solve(_dense(risk), y)


def cov_diag(risk: RiskModel) -> np.ndarray:
    """Variances (N,)."""
    if isinstance(risk, FactorCovariance):
        return risk.diag()
    return np.diag(_dense(risk)).copy()


def _symbols(risk: RiskModel, symbols: pd.Index | None) -> pd.Index:
    if isinstance(risk, FactorCovariance):
        return pd.Index(risk.symbols)
    if isinstance(risk, pd.DataFrame):
        return pd.Index(risk.index.astype(str))
    if symbols is None:
        raise ValidationError("a bare array risk model needs symbols", field="symbols")
    return pd.Index(symbols)


def equal_weight(symbols: pd.Index | list[str]) -> pd.Series:
    """``1/N`` each."""
    idx = pd.Index(symbols)
    if len(idx) == 0:
        raise ValidationError("empty universe", field="symbols")
    return pd.Series(1.0 / len(idx), index=idx, name="weight")


def inverse_volatility(volatility: pd.Series) -> pd.Series:
    """Weights proportional to ``1 / vol``, summing to 1. Vol must be finite and > 0."""
    v = volatility.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(v) | (v <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValidationError("volatility must be finite and > 0", field="volatility",
                              symbol=str(volatility.index[i]), value=float(v[i]))
    w = 1.0 / v
    return pd.Series(w / w.sum(), index=volatility.index, name="weight")


def risk_contributions(weights: pd.Series | np.ndarray, risk: RiskModel) -> np.ndarray:
    """``w_i (Sigma w)_i / (w' Sigma w)``: each name's share of variance (sums to 1)."""
    w = np.asarray(weights, dtype=np.float64)
    sw = cov_matvec(risk, w)
    return w * sw / float(w @ sw)


def risk_parity(risk: RiskModel, budgets: pd.Series | None = None, *,
                symbols: pd.Index | None = None, tol: float = 1e-12) -> pd.Series:
    """Equal risk contribution (or contributions proportional to ``budgets``), long only.

    Solves Spinu's convex problem ``min 1/2 x'Sigma x - b' log x`` with L-BFGS-B (gradient
    ``Sigma x - b / x`` in O(NK) for a factor model) and normalises ``x`` to sum to 1; at the
    optimum ``x_i (Sigma x)_i = b_i``, so each name's risk share is its budget.
    """
    idx = _symbols(risk, symbols)
    n = len(idx)
    b = np.full(n, 1.0 / n) if budgets is None else align_series(budgets, idx, "budgets")
    assert b is not None
    if np.any(b <= 0):
        raise ValidationError("risk budgets must be > 0", field="budgets")
    b = b / b.sum()
    var = cov_diag(risk)
    if np.any(var <= 0):
        i = int(np.argmax(var <= 0))
        raise ValidationError("variance must be > 0", field="risk", symbol=str(idx[i]))
    scale = float(np.sqrt(np.mean(var)))
    x0 = np.sqrt(b / var) * 1.0

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        sx = cov_matvec(risk, x) / scale ** 2
        return 0.5 * float(x @ sx) - float(b @ np.log(x)), sx - b / x

    res = minimize(fg, x0 * scale, jac=True, method="L-BFGS-B",
                   bounds=[(1e-12, None)] * n,
                   options={"ftol": tol, "gtol": 1e-12, "maxiter": 10_000})
    x = res.x
    rc = risk_contributions(x, risk)
    if not np.all(np.isfinite(x)) or np.max(np.abs(rc - b)) > 1e-4:
        raise SolverError("risk parity did not converge", field="risk",
                          value=float(np.max(np.abs(rc - b))))
    return pd.Series(x / x.sum(), index=idx, name="weight")


def volatility_target(weights: pd.Series, risk: RiskModel, target_vol: float, *,
                      max_leverage: float = np.inf) -> pd.Series:
    """Scale ``weights`` so their volatility (per period of ``risk``) is ``target_vol``.

    The scale is capped at ``max_leverage`` (gross exposure); a zero-risk portfolio is
    returned unchanged.
    """
    if not (target_vol > 0 and np.isfinite(target_vol)):
        raise ValidationError("target_vol must be > 0", field="target_vol", value=target_vol)
    w = weights.to_numpy(dtype=np.float64)
    vol = float(np.sqrt(max(w @ cov_matvec(risk, w), 0.0)))
    if vol == 0:
        return weights.copy()
    scale = target_vol / vol
    gross = float(np.abs(w).sum())
    if gross * scale > max_leverage:
        scale = max_leverage / gross
    return (weights * scale).rename("weight")


def fractional_kelly(alpha: pd.Series, risk: RiskModel, fraction: float = 0.5, *,
                     max_weight: float | None = None,
                     max_gross: float | None = None) -> pd.Series:
    """``fraction * Sigma^-1 alpha`` (the growth-optimal bet, shrunk), then capped.

    Each |weight| is clipped to ``max_weight`` and the book scaled down to ``max_gross``.
    ``alpha`` and ``risk`` share units (per period). Factor models use Woodbury (no N x N).
    """
    if not 0 < fraction <= 1:
        raise ValidationError("fraction must be in (0, 1]", field="fraction", value=fraction)
    idx = _symbols(risk, pd.Index(alpha.index.astype(str)))
    a = align_series(pd.Series(alpha.to_numpy(), index=alpha.index.astype(str)), idx, "alpha")
    assert a is not None
    w = fraction * cov_solve(risk, a)
    if max_weight is not None:
        w = np.clip(w, -max_weight, max_weight)
    if max_gross is not None:
        g = float(np.abs(w).sum())
        if g > max_gross:
            w = w * (max_gross / g)
    return pd.Series(w, index=idx, name="weight")
