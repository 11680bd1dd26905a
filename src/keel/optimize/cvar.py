"""`MeanCVaR`: ``maximise alpha'w - lambda * CVaR_beta(-R w) - cost`` as a scenario LP.

Rockafellar-Uryasev: ``CVaR = min_z z + sum_t max(-r_t'w - z, 0) / ((1 - beta) T)``, linear
in ``(w, z, u)``, so with linear constraints and L1 costs the whole problem is an LP (HiGHS),
and Clarabel takes the rest (cones from impact costs or tracking error).

The solve goes through a :class:`CVaRBackend`; the default runs the shared CVXPY engine. A
different backend (a GPU first-order method, a cutting-plane solver) implements the same
one-method protocol and is passed as ``backend=``; callers of ``MeanCVaR.solve`` do not change.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import cvxpy as cp
import numpy as np

from keel.costs.base import CostModel
from keel.errors import ValidationError
from keel.optimize.build import BuildContext, require
from keel.optimize.constraints import Constraint
from keel.optimize.engine import ConvexPortfolioProblem, Solver
from keel.optimize.inputs import PortfolioInputs, fingerprint
from keel.optimize.result import OptimizationResult
from keel.optimize.scenarios import cvar
from keel.optimize.terms import Alpha, Term, TransactionCost


class CVaRRisk(Term):
    """``aversion * CVaR_beta`` of the portfolio loss ``-R w`` over ``inputs.scenarios``.

    Scenarios are compiled in as constants (they change every period; a (T x N) parameter
    would make compilation far slower than rebuilding).
    """

    kind = "risk"

    def __init__(self, beta: float = 0.95, aversion: float = 1.0) -> None:
        if not 0 < beta < 1:
            raise ValidationError("beta must be in (0, 1)", field="beta", value=beta)
        if not aversion >= 0:
            raise ValidationError("aversion must be >= 0", field="aversion", value=aversion)
        self.beta, self.aversion = float(beta), float(aversion)

    @property
    def name(self) -> str:
        return f"CVaR{self.beta:g}"

    def expr(self, ctx: BuildContext) -> cp.Expression:
        r = require(ctx.inputs, "scenarios", self.name)
        t = r.shape[0]
        z = cp.Variable(name="var_level")
        tail = cp.sum(cp.pos(-(r @ ctx.w) - z)) / ((1.0 - self.beta) * t)
        return -self.aversion * (z + tail)

    def value(self, w: np.ndarray, inputs: PortfolioInputs) -> float:
        r = require(inputs, "scenarios", self.name)
        return self.aversion * cvar(-(r @ w), self.beta)

    def structure(self, inputs: PortfolioInputs) -> Hashable:
        return fingerprint(inputs.scenarios)


@runtime_checkable
class CVaRBackend(Protocol):
    """Solves a mean-CVaR problem given as terms + constraints + inputs."""

    def solve(self, terms: Sequence[Term], constraints: Sequence[Constraint],
              inputs: PortfolioInputs) -> OptimizationResult: ...


class CvxpyBackend:
    """The default backend: the shared CVXPY engine, HiGHS then Clarabel."""

    def __init__(self, solvers: Sequence[Solver | str] = (Solver.HIGHS, Solver.CLARABEL),
                 solver_options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.solvers = solvers
        self.solver_options = solver_options
        self._engine: ConvexPortfolioProblem | None = None
        self._built_for: tuple[object, ...] = ()

    def solve(self, terms: Sequence[Term], constraints: Sequence[Constraint],
              inputs: PortfolioInputs) -> OptimizationResult:
        # the engine is reused for the very same term/constraint objects (held, compared by
        # identity: a held object's id cannot be recycled)
        parts = (*terms, *constraints)
        same = len(parts) == len(self._built_for) and all(
            a is b for a, b in zip(parts, self._built_for, strict=True))
        if self._engine is None or not same:
            self._engine = ConvexPortfolioProblem(terms, constraints, solvers=self.solvers,
                                                  solver_options=self.solver_options)
            self._built_for = parts
        return self._engine.solve(inputs)


class MeanCVaR:
    """Mean-CVaR optimizer over scenarios in ``inputs.scenarios`` ((T, N) returns).

    Args:
        constraints: the same constraint objects as :class:`MeanVariance`.
        beta: CVaR level (0.95: mean loss in the worst 5% of scenarios).
        cvar_aversion: lambda; the default terms are ``Alpha() - lambda CVaR - costs``.
        costs: cost models added as terms.
        terms: overrides the default terms (e.g. ``[CVaRRisk(0.95)]`` for minimum CVaR).
        backend: how to solve (default: the LP straight to HiGHS,
            :class:`~keel.optimize.cvar_highs.HighsDirectBackend`, which hands anything that
            is not an LP to :class:`CvxpyBackend`).
    """

    def __init__(self, constraints: Sequence[Constraint] = (), *, beta: float = 0.95,
                 cvar_aversion: float = 1.0, costs: Sequence[CostModel] = (),
                 terms: Sequence[Term] | None = None,
                 backend: CVaRBackend | None = None) -> None:
        if terms is None:
            terms = [Alpha(), CVaRRisk(beta, cvar_aversion),
                     *[TransactionCost(c) for c in costs]]
        self.terms = list(terms)
        self.constraints = list(constraints)
        if backend is None:
            from keel.optimize.cvar_highs import HighsDirectBackend

            backend = HighsDirectBackend()
        self.backend = backend
        if not isinstance(self.backend, CVaRBackend):
            raise ValidationError("backend must implement solve(terms, constraints, inputs)",
                                  field="backend", value=type(backend).__name__)

    def solve(self, inputs: PortfolioInputs) -> OptimizationResult:
        """Target weights; same result, fallbacks and errors as ``MeanVariance.solve``."""
        require(inputs, "scenarios", "MeanCVaR")
        return self.backend.solve(self.terms, self.constraints, inputs)
