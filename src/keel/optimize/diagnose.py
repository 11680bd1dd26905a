"""Infeasibility diagnosis: relax each constraint family with an elastic slack.

Each constraint object gets one non-negative scalar slack that loosens all of its rows by that
amount (in the constraint's own units: weight, NAV, volatility). Minimising the sum of slacks
finds the smallest joint relaxation that makes the problem feasible; the families with a
positive slack are the ones that must give, and the slack is by how much.
"""

from __future__ import annotations

from collections.abc import Sequence

import cvxpy as cp

from keel.optimize.build import BuildContext
from keel.optimize.constraints import Constraint, unique_names
from keel.optimize.inputs import PortfolioInputs


def elastic_slacks(inputs: PortfolioInputs, constraints: Sequence[Constraint],
                   solvers: Sequence[str]) -> dict[str, float] | None:
    """Minimal slack per constraint name (all of them), or None if no solver managed."""
    ctx = BuildContext(inputs)
    names = unique_names(list(constraints))
    slacks = [cp.Variable(nonneg=True, name=f"relax_{i}") for i in range(len(names))]
    rows = [r for c, s in zip(constraints, slacks, strict=True) for r in c.build(ctx, s)]
    # A tiny pull towards the current weights keeps the point (and the slacks) unique.
    obj = cp.sum(cp.hstack(slacks)) + 1e-9 * cp.sum_squares(ctx.trade) if slacks else 0.0
    problem = cp.Problem(cp.Minimize(obj), rows)
    for solver in list(dict.fromkeys([*map(str, solvers), "CLARABEL", "SCS"])):
        if solver in ("HIGHS", "OSQP"):
            continue
        try:
            problem.solve(solver=solver)
        except (cp.error.SolverError, ValueError, ArithmeticError):
            continue
        if problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            return {n: float(s.value) for n, s in zip(names, slacks, strict=True)}  # type: ignore[arg-type]
    return None


def diagnose_infeasible(inputs: PortfolioInputs, constraints: Sequence[Constraint],
                        solvers: Sequence[str], tol: float = 1e-6) -> dict[str, float]:
    """The constraint families that must give and by how much (empty: feasible after all)."""
    slacks = elastic_slacks(inputs, constraints, solvers)
    if slacks is None:
        return {}
    return {k: v for k, v in slacks.items() if v > tol}
