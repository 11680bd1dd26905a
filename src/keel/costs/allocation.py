"""Optimal split of a parent order of S shares over T intervals.

    minimise   sum_t g_t(x_t)
    subject to sum_t x_t = S,  0 <= x_t <= u_t,  u_t = min(cap * S, caps_t)

with convex ``g_t`` (:mod:`keel.costs.curves`). Three solvers:

* ``exact`` (linear/quadratic ``g_t``): KKT water-filling. ``x_t(lambda) = clip((lambda - b_t) /
  (2 a_t), 0, u_t)`` (a step at ``b_t`` when ``a_t = 0``); ``sum_t x_t(lambda)`` is piecewise
  linear and non-decreasing in the multiplier ``lambda``, so sorting its 2T breakpoints and a
  cumulative sum locate ``lambda*`` in O(T log T), with no iteration and no tolerance.
* ``slsqp``: SciPy SLSQP on any convex curves (uses their gradients).
* ``cvxpy``: CVXPY (Clarabel, then SCS) on any convex curves.

``auto`` uses ``exact`` when it applies, else ``cvxpy`` then ``slsqp``; each failure is recorded
in ``trail`` and the next solver runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from keel.costs.curves import IntervalCosts, QuadraticCurves
from keel.errors import InfeasibleError, KeelError, SolverError, ValidationError


class SplitSolver(StrEnum):
    AUTO = "auto"
    EXACT = "exact"
    SLSQP = "slsqp"
    CVXPY = "cvxpy"


@dataclass(frozen=True)
class AllocationResult:
    """An optimal split.

    Attributes:
        shares: (T,) shares per interval, summing to ``total_shares``.
        cost: ``sum_t g_t(shares_t)``, currency.
        uniform_cost: cost of the uniform split ``S/T`` per interval, currency (it may break
            the caps; ``uniform_feasible`` says).
        improvement_pct: ``100 * (uniform_cost - cost) / uniform_cost``.
        solver: the solver that produced ``shares``.
        trail: what was tried before, with the reason it was abandoned.
        multiplier: the KKT multiplier ``lambda*`` (marginal cost of one more share), when known.
    """

    shares: np.ndarray
    cost: float
    uniform_cost: float
    improvement_pct: float
    solver: SplitSolver
    uniform_feasible: bool
    trail: tuple[str, ...] = ()
    multiplier: float | None = None

    @property
    def total_shares(self) -> float:
        return float(self.shares.sum())


def upper_bounds(total_shares: float, n: int, cap: float | None = None,
                 caps: np.ndarray | None = None) -> np.ndarray:
    """(T,) per-interval limits ``min(cap * S, caps_t)`` (inf where unlimited).

    Raises:
        ValidationError: negative ``total_shares``, ``cap`` or ``caps``, or ``caps`` of the wrong
            shape; InfeasibleError: the limits add up to less than ``total_shares``.
    """
    s = float(total_shares)
    if not np.isfinite(s) or s < 0:
        raise ValidationError("total_shares must be finite and >= 0", field="total_shares",
                              value=total_shares)
    if n < 1:
        raise ValidationError("need at least one interval", field="intervals", value=n)
    u = np.full(n, np.inf)
    if cap is not None:
        if not np.isfinite(cap) or cap < 0:
            raise ValidationError("cap must be a finite fraction >= 0", field="cap", value=cap)
        u = np.minimum(u, cap * s)
    if caps is not None:
        c = np.asarray(caps, dtype=np.float64)
        if c.shape != (n,):
            raise ValidationError(f"caps must have shape ({n},)", field="caps", value=c.shape)
        if np.any(np.isnan(c) | (c < 0)):
            i = int(np.argmax(np.isnan(c) | (c < 0)))
            raise ValidationError("caps must be >= 0", field="caps", value=float(c[i]), index=i)
        u = np.minimum(u, c)
    room = float(u.sum())
    if room < s * (1 - 1e-12):
        name = "caps" if caps is not None else "cap"
        raise InfeasibleError(f"total_shares {s:g} exceeds the sum of the interval limits "
                              f"{room:g}", field=name, value=room,
                              culprits={name: s - room})
    return u


def exact_quadratic_split(total_shares: float, a: np.ndarray, b: np.ndarray,
                          upper: np.ndarray) -> tuple[np.ndarray, float]:
    """KKT water-filling for ``sum a x^2 + b x``; returns (x (T,), lambda*). O(T log T).

    Assumes validated inputs: ``a >= 0``, ``upper >= 0`` with ``sum(upper) >= total_shares``.
    """
    s = float(total_shares)
    n = len(b)
    x = np.zeros(n)
    if s <= 0:
        return x, float(np.min(b))
    quad = a > 0
    safe_a = np.where(quad, a, 1.0)
    # every curve contributes events at its breakpoints: slope changes (quadratic) or a jump
    # (linear). Positions: b (start) and, for quadratics, b + 2 a u (end; inf when unbounded).
    slope = np.where(quad, 0.5 / safe_a, 0.0)
    pos = np.concatenate([b, b[quad] + 2.0 * a[quad] * upper[quad]])
    d_slope = np.concatenate([slope, -slope[quad]])
    jump = np.concatenate([np.where(quad, 0.0, upper), np.zeros(len(pos) - n)])
    order = np.argsort(pos, kind="stable")
    pos, d_slope, jump = pos[order], d_slope[order], jump[order]
    nf = int(np.searchsorted(pos, np.inf))  # infinite positions sort last; F is inf there
    pos, d_slope, jump = pos[:nf], d_slope[:nf], jump[:nf]
    c1 = np.cumsum(d_slope)
    c0 = np.cumsum(d_slope * pos)
    jmp = np.cumsum(jump)
    # F just right of each position, taking all events at equal positions together
    last_of_tie = np.searchsorted(pos, pos, side="right") - 1
    f_right = c1[last_of_tie] * pos - c0[last_of_tie] + jmp[last_of_tie]
    k = int(np.searchsorted(np.maximum.accumulate(f_right), s, side="left"))
    if k < nf:
        p_k = float(pos[k])
        first_of_tie = int(np.searchsorted(pos, p_k, side="left"))
    else:  # beyond the last finite breakpoint: F grows linearly for ever (unbounded quadratics)
        p_k, first_of_tie = np.inf, nf
    if first_of_tie == 0:
        prev_c1 = prev_c0 = prev_j = 0.0
    else:
        prev_c1, prev_c0, prev_j = c1[first_of_tie - 1], c0[first_of_tie - 1], jmp[first_of_tie - 1]
    f_left = prev_c1 * p_k - prev_c0 + prev_j if k < nf else np.inf
    if f_left >= s and prev_c1 > 0:
        lam = (s - prev_j + prev_c0) / prev_c1  # inside the linear piece before p_k
        partial = np.zeros(n, dtype=bool)
    else:
        lam = p_k  # a jump at p_k absorbs the remainder
        partial = ~quad & (b == lam)
    xq = np.minimum(np.maximum((lam - b) / (2.0 * safe_a), 0.0), upper)
    x = np.where(quad, xq, np.where(b < lam, upper, 0.0))
    if partial.any():
        x[partial] = 0.0
        rest = max(s - float(x.sum()), 0.0)
        unbounded = partial & np.isinf(upper)
        if unbounded.any():  # equal shares among the unbounded cheapest intervals
            x[unbounded] = rest / int(unbounded.sum())
        else:
            x[partial] = upper[partial] * (rest / float(upper[partial].sum()))
    return _fix_total(x, s, upper), float(lam)


def _fix_total(x: np.ndarray, s: float, upper: np.ndarray) -> np.ndarray:
    """Put the last rounding residual on one interval with room, so the sum is exactly ``s``."""
    x = np.clip(x, 0.0, upper)
    resid = s - float(x.sum())
    if resid != 0.0:
        room = (upper - x) if resid > 0 else x.copy()
        # prefer an interval already trading, so a zero stays exactly zero
        i = int(np.argmax(np.where(x > 0, room, -1.0))) if np.any((x > 0) & (room > 0)) \
            else int(np.argmax(room))
        x[i] += resid if abs(resid) <= room[i] else np.sign(resid) * room[i]
    return x


def _scale(costs: IntervalCosts, s: float, n: int) -> float:
    base = costs.total(np.full(n, s / n))
    return base if base > 0 else 1.0


def slsqp_split(total_shares: float, costs: IntervalCosts, upper: np.ndarray) -> np.ndarray:
    """SciPy SLSQP on ``y = x / S``; starts from the projection of the uniform split."""
    from scipy.optimize import minimize

    s, n = float(total_shares), costs.n
    if s <= 0:
        return np.zeros(n)
    scale = _scale(costs, s, n)
    uy = np.minimum(upper / s, 1.0)
    y0, _ = exact_quadratic_split(1.0, np.ones(n), np.full(n, -2.0 / n), uy)
    h = costs.rescaled(s, scale)
    res = minimize(h.total, y0, jac=h.grad, method="SLSQP",
                   bounds=list(zip(np.zeros(n), uy, strict=True)),
                   constraints=[{"type": "eq", "fun": lambda y: y.sum() - 1.0,
                                 "jac": lambda y: np.ones_like(y)}],
                   options={"ftol": 1e-12, "maxiter": 1000})
    if not res.success:
        raise SolverError(f"SLSQP failed: {res.message}", field="solver", value="slsqp")
    return _fix_total(s * res.x, s, upper)


def cvxpy_split(total_shares: float, costs: IntervalCosts, upper: np.ndarray) -> np.ndarray:
    """CVXPY (Clarabel, then SCS) on ``y = x / S``."""
    import cvxpy as cp

    s, n = float(total_shares), costs.n
    if s <= 0:
        return np.zeros(n)
    scale = _scale(costs, s, n)
    y = cp.Variable(n, nonneg=True)
    cons = [cp.sum(y) == 1]
    fin = np.isfinite(upper)
    if fin.any():
        cons.append(y[np.flatnonzero(fin)] <= np.minimum(upper[fin] / s, 1.0))
    # solve in y = x / S with costs / uniform cost: conic solvers lose accuracy on raw shares
    prob = cp.Problem(cp.Minimize(costs.rescaled(s, scale).cvx(y)), cons)
    if not prob.is_dcp():
        raise SolverError("allocation problem is not DCP", field="costs")
    errors = []
    for solver in (cp.CLARABEL, cp.SCS):
        try:
            prob.solve(solver=solver)
        except cp.error.SolverError as exc:
            errors.append(f"{solver}: {exc}")
            continue
        if prob.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and y.value is not None:
            return _fix_total(s * np.asarray(y.value), s, upper)
        errors.append(f"{solver}: {prob.status}")
    raise SolverError("CVXPY failed: " + "; ".join(errors), field="solver", value="cvxpy")


def optimal_split(total_shares: float, costs: IntervalCosts, *, cap: float | None = None,
                  caps: np.ndarray | None = None,
                  solver: SplitSolver | str = SplitSolver.AUTO) -> AllocationResult:
    """Split ``total_shares`` over ``costs.n`` intervals at least cost.

    Args:
        total_shares: S >= 0 shares.
        costs: the T interval curves ``g_t``.
        cap: optional per-interval limit as a fraction of S (``x_t <= cap * S``).
        caps: optional (T,) per-interval limits in shares (e.g. participation * volume_t).
        solver: ``auto``, ``exact``, ``slsqp`` or ``cvxpy``.

    Raises:
        ValidationError: bad S, caps or solver (``exact`` on non-quadratic curves);
        InfeasibleError: S exceeds the sum of the limits (field ``cap``/``caps``);
        SolverError: every solver tried failed (``trail`` in the message).
    """
    n = costs.n
    upper = upper_bounds(total_shares, n, cap, caps)
    s = float(total_shares)
    choice = SplitSolver(solver)
    is_quad = isinstance(costs, QuadraticCurves)
    if choice is SplitSolver.EXACT and not is_quad:
        raise ValidationError("the exact solver needs linear or quadratic curves",
                              field="solver", value=costs.kind)
    chain = ([choice] if choice is not SplitSolver.AUTO
             else ([SplitSolver.EXACT] if is_quad else []) + [SplitSolver.CVXPY,
                                                              SplitSolver.SLSQP])
    trail: list[str] = []
    for which in chain:
        try:
            lam = None
            if which is SplitSolver.EXACT:
                assert isinstance(costs, QuadraticCurves)
                x, lam = exact_quadratic_split(s, costs.a, costs.b, upper)
            elif which is SplitSolver.CVXPY:
                x = cvxpy_split(s, costs, upper)
            else:
                x = slsqp_split(s, costs, upper)
        except KeelError as exc:
            trail.append(f"{which.value}: {exc}")
            continue
        cost = costs.total(x)
        uniform = np.full(n, s / n)
        ucost = costs.total(uniform)
        imp = 100.0 * (ucost - cost) / ucost if ucost > 0 else 0.0
        return AllocationResult(shares=x, cost=cost, uniform_cost=ucost, improvement_pct=imp,
                                solver=which, uniform_feasible=bool(np.all(uniform <= upper)),
                                trail=tuple(trail), multiplier=lam)
    raise SolverError("every allocation solver failed", field="solver", trail=trail)
