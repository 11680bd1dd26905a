"""Scenario risk measures beyond variance and CVaR: CDaR and EVaR, as measures and as terms.

Both are convex in the weights, so they enter the same :class:`~keel.optimize.engine.
ConvexPortfolioProblem` as :class:`~keel.optimize.cvar.CVaRRisk` and give the same
:class:`~keel.optimize.result.OptimizationResult` (objective split recomputed by ``value``).

* **CDaR** (Chekhlov, Uryasev & Zabarankin 2005): the CVaR at level ``beta`` of the drawdowns of
  the *uncompounded* cumulative return path ``c_t = sum_{s <= t} r_s' w`` (from a start at 0),
  drawdown ``d_t = max(0, max_{s <= t} c_s) - c_t``. Uncompounded keeps it linear in ``w``: a
  linear program, built as the standard LP in the drawdowns (``d >= 0``,
  ``d_t - d_{t-1} + r_t' w >= 0``: bidiagonal rows, the scenario matrix entered once).
  ``inputs.scenarios`` must be historical returns in time order.
* **EVaR** (Ahmadi-Javid 2012): the entropic value at risk of the loss ``L = -R w``,
  ``inf_{z > 0} z ln(mean(exp(L / z)) / (1 - beta))``, the tightest Chernoff bound on VaR; it
  bounds CVaR from above. An exponential-cone program (Clarabel or SCS).

Units: per period of the scenarios (daily returns give daily CDaR/EVaR).
"""

from __future__ import annotations

from collections.abc import Hashable

import cvxpy as cp
import numpy as np
from cvxpy.transforms import indicator
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

from keel.errors import ValidationError
from keel.optimize.build import BuildContext, require
from keel.optimize.inputs import PortfolioInputs, fingerprint
from keel.optimize.scenarios import cvar
from keel.optimize.terms import Term


def _beta(beta: float) -> float:
    if not 0 < beta < 1:
        raise ValidationError("beta must be in (0, 1)", field="beta", value=beta)
    return float(beta)


def drawdown_path(returns: np.ndarray) -> np.ndarray:
    """(T,) drawdowns of the uncompounded cumulative path of per-period ``returns`` (T,)."""
    c = np.cumsum(np.asarray(returns, dtype=np.float64))
    peak = np.maximum.accumulate(np.maximum(c, 0.0))
    return peak - c


def cdar(returns: np.ndarray, beta: float = 0.95) -> float:
    """Conditional drawdown at risk of a portfolio return path (T,), uncompounded."""
    return cvar(drawdown_path(returns), _beta(beta))


def evar(losses: np.ndarray, beta: float = 0.95) -> float:
    """Entropic value at risk of equally likely ``losses`` (T,).

    The one-dimensional problem is convex in ``z`` (a perspective); it is solved over ``log z``
    by bounded Brent search and compared with its ``z -> 0`` limit ``max(L)``.
    """
    loss = np.asarray(losses, dtype=np.float64)
    if loss.ndim != 1 or loss.size == 0 or not np.all(np.isfinite(loss)):
        raise ValidationError("losses must be a finite non-empty (T,) array", field="losses")
    b = _beta(beta)
    # EVaR is translation-equivariant and positively homogeneous: solve for the centred loss
    # scaled to max |x| = 1, where the optimal z sits well inside [1e-6, 1e6].
    centre = float(loss.mean())
    scale = float(np.max(np.abs(loss - centre)))
    if scale < 1e-300:
        return centre
    x = (loss - centre) / scale
    shift = np.log(x.size * (1.0 - b))

    def f(log_z: float) -> float:
        z = np.exp(log_z)
        return float(z * (logsumexp(x / z) - shift))

    best = minimize_scalar(f, bounds=(np.log(1e-6), np.log(1e6)), method="bounded",
                           options={"xatol": 1e-12, "maxiter": 500})
    return centre + scale * min(float(best.fun), float(x.max()))


class _ScenarioRisk(Term):
    """A risk term of ``inputs.scenarios`` at level ``beta``, scaled by ``aversion``."""

    kind = "risk"
    label = ""

    def __init__(self, beta: float = 0.95, aversion: float = 1.0) -> None:
        if not aversion >= 0:
            raise ValidationError("aversion must be >= 0", field="aversion", value=aversion)
        self.beta, self.aversion = _beta(beta), float(aversion)

    @property
    def name(self) -> str:
        return f"{self.label}{self.beta:g}"

    def measure(self, portfolio_returns: np.ndarray) -> float:
        """The risk measure of a (T,) portfolio return path."""
        raise NotImplementedError

    def value(self, w: np.ndarray, inputs: PortfolioInputs) -> float:
        r = require(inputs, "scenarios", self.name)
        return self.aversion * self.measure(r @ w)

    def structure(self, inputs: PortfolioInputs) -> Hashable:
        return fingerprint(inputs.scenarios)


class CDaRRisk(_ScenarioRisk):
    """``aversion * CDaR_beta`` of the portfolio's historical return path (a linear program)."""

    label = "CDaR"

    def expr(self, ctx: BuildContext) -> cp.Expression:
        # The standard LP (Chekhlov et al. 2005), written in the drawdowns: with p = R w the
        # period returns and u_t the running peak (u_t >= u_{t-1}, u_t >= c_t = sum p, u >= 0),
        # d_t = u_t - c_t >= 0 and u_t >= u_{t-1} reads d_t - d_{t-1} + p_t >= 0 (d_0 = 0):
        # bidiagonal rows, and the dense scenario matrix enters the KKT system once (through
        # p). The smallest feasible d is the drawdown path, and CDaR is non-decreasing in d, so
        # the optimum is exact. The rows ride in the objective as an indicator (0 when they
        # hold) so the term stays one expression.
        r = require(ctx.inputs, "scenarios", self.name)
        t = r.shape[0]
        p = cp.Variable(t, name="cdar_returns")
        d = cp.Variable(t, nonneg=True, name="cdar_drawdown")
        level = cp.Variable(name="cdar_level")
        rows = [p == r @ ctx.w, d[0] + p[0] >= 0]
        if t > 1:
            rows.append(d[1:] - d[:-1] + p[1:] >= 0)
        tail = cp.sum(cp.pos(d - level)) / ((1.0 - self.beta) * t)
        return -self.aversion * (level + tail) - indicator(rows)

    def measure(self, portfolio_returns: np.ndarray) -> float:
        return cdar(portfolio_returns, self.beta)


class EVaRRisk(_ScenarioRisk):
    """``aversion * EVaR_beta`` of the portfolio loss ``-R w`` (an exponential-cone program)."""

    label = "EVaR"

    def expr(self, ctx: BuildContext) -> cp.Expression:
        r = require(ctx.inputs, "scenarios", self.name)
        t = r.shape[0]
        z = cp.Variable(nonneg=True, name="evar_z")
        # z * logsumexp(L / z) as the perspective of logsumexp (exponential cones), L = -R w
        entropic = cp.perspective(cp.log_sum_exp(-(r @ ctx.w)), z)
        return -self.aversion * (entropic - z * float(np.log(t * (1.0 - self.beta))))

    def measure(self, portfolio_returns: np.ndarray) -> float:
        return evar(-portfolio_returns, self.beta)
