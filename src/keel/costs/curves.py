"""Convex per-interval impact curves ``g_t(x)``: cost in currency of trading ``x >= 0`` shares.

A curve family holds T curves (one per interval, or T=1 for a single fitted curve) as arrays,
and gives the value, the gradient and a CVXPY expression of ``sum_t g_t(x_t)``. The optimal
split (``keel.costs.allocation``) and the impact fits (``keel.costs.impact``) share them.

* :class:`QuadraticCurves`: ``a_t x^2 + b_t x`` (linear when ``a_t = 0``), ``a_t >= 0``.
* :class:`PowerCurves`: ``c_t x^d_t`` with ``c_t >= 0`` and ``d_t >= 1`` (convex on x >= 0).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from keel.costs._validate import check_array
from keel.errors import ValidationError

if TYPE_CHECKING:
    import cvxpy as cp


class IntervalCosts(ABC):
    """T convex curves ``g_t`` on ``x >= 0`` (shares -> currency)."""

    kind: str = ""

    @property
    @abstractmethod
    def n(self) -> int:
        """Number of curves T."""

    @abstractmethod
    def value(self, x: np.ndarray) -> np.ndarray:
        """(T,) costs ``g_t(x_t)`` for x of shape (T,) (or broadcastable)."""

    @abstractmethod
    def grad(self, x: np.ndarray) -> np.ndarray:
        """(T,) derivatives ``g_t'(x_t)``."""

    @abstractmethod
    def cvx(self, x: cp.Expression) -> cp.Expression:
        """Convex scalar ``sum_t g_t(x_t)`` for an (T,) CVXPY expression ``x >= 0``."""

    @abstractmethod
    def params(self) -> dict[str, list[float]]:
        """Coefficient arrays by name (JSON-friendly)."""

    @abstractmethod
    def take(self, idx: np.ndarray) -> IntervalCosts:
        """The curves at positions ``idx`` (e.g. one fitted curve repeated T times)."""

    @abstractmethod
    def rescaled(self, x_scale: float, cost_scale: float) -> IntervalCosts:
        """Curves ``h_t(y) = g_t(x_scale * y) / cost_scale`` (well-scaled for a solver)."""

    def total(self, x: np.ndarray) -> float:
        return float(np.sum(self.value(np.asarray(x, dtype=np.float64))))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params()}


class QuadraticCurves(IntervalCosts):
    """``g_t(x) = a_t x^2 + b_t x``, ``a_t >= 0`` (currency/share^2), ``b_t`` (currency/share)."""

    kind = "quadratic"

    def __init__(self, a: Any, b: Any) -> None:
        b_arr = np.atleast_1d(np.asarray(b, dtype=np.float64))
        self.a = check_array(np.broadcast_to(np.asarray(a, dtype=np.float64), b_arr.shape), "a")
        if not np.all(np.isfinite(b_arr)):
            raise ValidationError("b must be finite", field="b")
        self.b = b_arr

    @property
    def n(self) -> int:
        return len(self.b)

    def value(self, x: np.ndarray) -> np.ndarray:
        return self.a * x**2 + self.b * x

    def grad(self, x: np.ndarray) -> np.ndarray:
        return 2 * self.a * x + self.b

    def cvx(self, x: cp.Expression) -> cp.Expression:
        import cvxpy as cp

        return cp.sum(cp.multiply(self.a, cp.square(x))) + self.b @ x

    def params(self) -> dict[str, list[float]]:
        return {"a": self.a.tolist(), "b": self.b.tolist()}

    def rescaled(self, x_scale: float, cost_scale: float) -> QuadraticCurves:
        return QuadraticCurves(self.a * x_scale**2 / cost_scale, self.b * x_scale / cost_scale)

    def take(self, idx: np.ndarray) -> QuadraticCurves:
        return QuadraticCurves(self.a[idx], self.b[idx])


class PowerCurves(IntervalCosts):
    """``g_t(x) = c_t x^d_t`` with ``c_t >= 0`` and ``d_t >= 1``."""

    kind = "power"

    def __init__(self, c: Any, d: Any) -> None:
        c_arr = np.atleast_1d(np.asarray(c, dtype=np.float64))
        self.c = check_array(c_arr, "c")
        self.d = check_array(np.broadcast_to(np.asarray(d, dtype=np.float64), c_arr.shape), "d")
        if np.any(self.d < 1):
            raise ValidationError("d must be >= 1 for a convex curve", field="d",
                                  value=float(self.d.min()))

    @property
    def n(self) -> int:
        return len(self.c)

    def value(self, x: np.ndarray) -> np.ndarray:
        return self.c * np.power(np.maximum(x, 0.0), self.d)

    def grad(self, x: np.ndarray) -> np.ndarray:
        return self.c * self.d * np.power(np.maximum(x, 0.0), self.d - 1)

    def cvx(self, x: cp.Expression) -> cp.Expression:
        import cvxpy as cp

        total: cp.Expression = cp.Constant(0.0)
        for d in np.unique(self.d):  # one vector atom per distinct exponent
            coef = np.where(self.d == d, self.c, 0.0)
            if np.any(coef > 0):
                total = total + cp.sum(cp.multiply(coef, cp.power(x, float(d))))
        return total

    def params(self) -> dict[str, list[float]]:
        return {"c": self.c.tolist(), "d": self.d.tolist()}

    def rescaled(self, x_scale: float, cost_scale: float) -> PowerCurves:
        return PowerCurves(self.c * x_scale**self.d / cost_scale, self.d)

    def take(self, idx: np.ndarray) -> PowerCurves:
        return PowerCurves(self.c[idx], self.d[idx])


def curves_from_dict(d: dict[str, Any]) -> IntervalCosts:
    """Inverse of ``to_dict`` (``kind`` = quadratic, linear or power)."""
    kind = d.get("kind")
    if kind in ("quadratic", "linear"):
        return QuadraticCurves(d.get("a", 0.0), d["b"])
    if kind == "power":
        return PowerCurves(d["c"], d["d"])
    raise ValidationError("unknown curve kind", field="kind", value=kind)
