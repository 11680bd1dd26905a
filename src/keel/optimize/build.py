"""The build context shared by terms and constraints: the weight variable and its parameters.

A problem is compiled once per *structure* (universe, risk-model shape, sector map, cost
coefficients) and re-solved each period by updating ``cvxpy.Parameter`` values (DPP), so
CVXPY's canonicalisation is paid once. Every parameter is registered with the function that
computes its value from a :class:`PortfolioInputs`; :meth:`BuildContext.update` refreshes all.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import cvxpy as cp
import numpy as np

from keel.errors import ValidationError
from keel.optimize.inputs import PortfolioInputs
from keel.risk.base import FactorCovariance

ParamFn = Callable[[PortfolioInputs], Any]


def require(inputs: PortfolioInputs, name: str, who: str) -> Any:
    """``inputs.<name>``, or a ValidationError saying which component needs it."""
    value = getattr(inputs, name)
    if value is None:
        raise ValidationError(f"{who} needs inputs.{name}", field=name, component=who)
    return value


def dense_sqrt(cov: np.ndarray) -> np.ndarray:
    """(N, N) ``L`` with ``L L' = cov`` (Cholesky; eigen-clipped when only semidefinite)."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(cov)
        return vecs * np.sqrt(np.clip(vals, 0.0, None))


def factor_of(inputs: PortfolioInputs) -> FactorCovariance:
    """``inputs.risk`` as a FactorCovariance (ValidationError otherwise)."""
    risk = inputs.risk
    if not isinstance(risk, FactorCovariance):
        raise ValidationError("a factored risk model is needed", field="risk",
                              value=type(risk).__name__)
    return risk


def dense_of(inputs: PortfolioInputs) -> np.ndarray:
    """``inputs.risk`` as a dense (N, N) covariance (ValidationError otherwise)."""
    risk = inputs.risk
    if not isinstance(risk, np.ndarray):
        raise ValidationError("a dense covariance is needed", field="risk",
                              value=type(risk).__name__)
    return risk


def factor_loadings(fc: FactorCovariance) -> np.ndarray:
    """(K, N) ``X = L' B'`` so that ``w' B F B' w = ||X w||^2``."""
    return np.ascontiguousarray(fc.factor_sqrt().T @ fc.exposures.T)


class BuildContext:
    """Variables and parameters of one compiled problem.

    Attributes:
        inputs: the inputs the problem was compiled with (their *values* are refreshed through
            parameters; their *structure* is fixed).
        w: (N,) weight variable (fraction of NAV).
        w0: (N,) parameter, current weights.
        trade: ``w - w0`` (NAV units).
    """

    def __init__(self, inputs: PortfolioInputs) -> None:
        self.inputs = inputs
        self.n = inputs.n
        self.w = cp.Variable(self.n, name="w")
        self._params: dict[str, tuple[cp.Parameter, ParamFn]] = {}
        self.w0: cp.Expression = self.param("current", (self.n,), lambda x: x.current)
        self.trade = self.w - self.w0

    def param(self, key: str, shape: tuple[int, ...], fn: ParamFn, *,
              nonneg: bool = False) -> cp.Parameter:
        """A named parameter whose value is ``fn(inputs)``; created once per key."""
        if key in self._params:
            return self._params[key][0]
        p = cp.Parameter(shape, name=key, nonneg=nonneg)
        p.value = _checked(fn(self.inputs), shape, key)
        self._params[key] = (p, fn)
        return p

    def update(self, inputs: PortfolioInputs) -> None:
        """Refresh every parameter from new inputs of the same structure."""
        for key, (p, fn) in self._params.items():
            p.value = _checked(fn(inputs), p.shape, key)
        self.inputs = inputs

    # ---------------------------------------------------------------- shared risk pieces

    def variance(self, offset: str | None = None) -> cp.Expression:
        """Variance per period of ``w - offset`` (``offset`` an inputs field, e.g. benchmark)."""
        vecs = self.risk_vectors(offset)
        total = cp.sum_squares(vecs[0])
        for v in vecs[1:]:
            total = total + cp.sum_squares(v)
        return total

    def risk_vectors(self, offset: str | None = None) -> list[cp.Expression]:
        """Affine vectors whose total squared norm is the variance of ``w - offset``.

        Factor risk: ``[X w - X b, d^½ w - d^½ b]`` with ``X = L' B'`` (K x N), so the N x N
        covariance is never formed. Dense risk: ``[L' w - L' b]``.
        """
        risk = require(self.inputs, "risk", "risk term")
        n = self.n

        def off(x: PortfolioInputs) -> np.ndarray:
            return np.zeros(n) if offset is None else np.asarray(getattr(x, offset))

        if offset is not None:
            require(self.inputs, offset, "risk term")
        if isinstance(risk, FactorCovariance):
            k = risk.n_factors
            x_par = self.param("risk_X", (k, n), lambda x: factor_loadings(factor_of(x)))
            d_par = self.param("risk_dsqrt", (n,),
                               lambda x: np.sqrt(factor_of(x).specific_variance), nonneg=True)
            if offset is None:
                return [x_par @ self.w, cp.multiply(d_par, self.w)]
            xb = self.param(f"risk_Xb_{offset}", (k,),
                            lambda x: factor_loadings(factor_of(x)) @ off(x))
            db = self.param(f"risk_db_{offset}", (n,),
                            lambda x: np.sqrt(factor_of(x).specific_variance) * off(x))
            return [x_par @ self.w - xb, cp.multiply(d_par, self.w) - db]
        lt = self.param("risk_Lt", (n, n), lambda x: dense_sqrt(dense_of(x)).T)
        if offset is None:
            return [lt @ self.w]
        lb = self.param(f"risk_Lb_{offset}", (n,), lambda x: dense_sqrt(dense_of(x)).T @ off(x))
        return [lt @ self.w - lb]


def _checked(value: Any, shape: tuple[int, ...], key: str) -> np.ndarray | float:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != tuple(shape):
        raise ValidationError(f"parameter {key} changed shape: recompile needed", field=key,
                              value=arr.shape)
    if not np.isfinite(arr).all():
        raise ValidationError(f"parameter {key} must be finite", field=key)
    return arr


def structure_key(inputs: PortfolioInputs, components: list[Any]) -> Hashable:
    """What must match for a compiled problem to be reused with new inputs."""
    risk = inputs.risk
    if risk is None:
        rk: Hashable = None
    elif isinstance(risk, FactorCovariance):
        rk = ("factor", risk.n_factors)
    else:
        rk = ("dense",)
    parts = [tuple(inputs.symbols), rk,
             tuple(name for name in ("betas", "adv_weight", "benchmark", "scenarios",
                                     "trade_context", "sectors")
                   if getattr(inputs, name) is not None)]
    parts.extend(c.structure(inputs) for c in components)
    return tuple(parts)
