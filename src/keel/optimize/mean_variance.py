"""`MeanVariance`: ``maximise alpha'w - gamma * risk(w) - cost(w - w0)`` under constraints.

CVXPY with Clarabel by default, then OSQP, then SCS. The problem is compiled once per
structure with ``cvxpy.Parameter`` s (DPP) and re-solved each period with new alpha, holdings
and risk values; OSQP and SCS are warm-started from the previous answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from keel.costs.base import CostModel
from keel.optimize.constraints import Constraint
from keel.optimize.dual_as import BackOff, DualActiveSet
from keel.optimize.engine import ConvexPortfolioProblem, Solver
from keel.optimize.fastqp import ClarabelDirect, PDASDirect
from keel.optimize.limits import SolverLimits
from keel.optimize.piqp_direct import PIQPDirect
from keel.optimize.terms import Alpha, Risk, Term, TransactionCost


class MeanVariance(ConvexPortfolioProblem):
    """Mean-variance optimizer.

    Args:
        terms: the objective terms; default ``[Alpha(), Risk(risk_aversion)]`` plus one
            :class:`TransactionCost` per model in ``costs``.
        constraints: constraint objects, e.g. ``[Budget(), LongOnly(), WeightBounds(upper=.1)]``.
        risk_aversion: gamma of the default risk term (per-period variance units).
        costs: cost models added as terms when ``terms`` is not given.
        solvers: fallback chain (default Clarabel, OSQP, SCS).

    Example::

        mv = MeanVariance(constraints=[Budget(), LongOnly(), WeightBounds(upper=0.1)],
                          risk_aversion=5.0)
        result = mv.solve(PortfolioInputs.build(alpha, current, risk=factor_cov))
    """

    default_solvers = (Solver.CLARABEL, Solver.OSQP, Solver.SCS)

    def __init__(self, terms: Sequence[Term] | None = None,
                 constraints: Sequence[Constraint] = (), *, risk_aversion: float = 1.0,
                 costs: Sequence[CostModel] = (),
                 solvers: Sequence[Solver | str] | None = None,
                 solver_options: Mapping[str, Mapping[str, Any]] | None = None,
                 feasibility_tol: float = 1e-6, binding_tol: float = 1e-6,
                 diagnose: bool = True, direct: Sequence[Any] | None = None,
                 limits: SolverLimits | None = None) -> None:
        if terms is None:
            terms = [Alpha(), Risk(risk_aversion), *[TransactionCost(c) for c in costs]]
        if direct is None:
            direct = [PDASDirect(), BackOff(DualActiveSet()), ClarabelDirect(), PIQPDirect()]
        super().__init__(terms, constraints, solvers=solvers, solver_options=solver_options,
                         feasibility_tol=feasibility_tol, binding_tol=binding_tol,
                         diagnose=diagnose, direct=direct, limits=limits)
