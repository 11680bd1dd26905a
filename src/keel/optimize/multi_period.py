"""Multi-period optimization (MPO): plan the trades of H periods at once, execute the first.

``maximise sum_h [ terms_h(w_h) ]`` over ``w_1 .. w_H`` subject to every constraint in every
period, where period ``h`` trades ``w_h - w_{h-1}`` (``w_0`` the current holdings): alpha, risk
and cost terms see each period's own inputs (per-period alpha forecasts, risk model and cost
context), and costs, including the 3/2-power impact, are charged on each period's trade. A plan
that spreads a large rebalance over several periods costs less impact than one trade; a
forecast that decays is acted on only while it pays for its costs (cvxportfolio's MPO,
Boyd et al. 2017, section 5).

The same :class:`~keel.optimize.terms.Term` and :class:`~keel.optimize.constraints.Constraint`
objects as the single-period engine build each period from a per-period context whose
"current" weights are the previous period's variable. ``H = 1`` is exactly the single-period
problem. The problem is compiled once per structure and re-solved as the window rolls (each
period's parameters refreshed from its new inputs); the first period's answer is reported as an
:class:`~keel.optimize.result.OptimizationResult` (objective split, binding constraints,
violations checked in NumPy against period 1's inputs), the whole plan beside it.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import pandas as pd

from keel.errors import NonConvexError, ValidationError
from keel.optimize.build import BuildContext, structure_key
from keel.optimize.constraints import Constraint
from keel.optimize.engine import DEFAULT_OPTIONS, ConvexPortfolioProblem, Solver
from keel.optimize.inputs import PortfolioInputs
from keel.optimize.result import OptimizationResult, OptimizationStatus, SolverAttempt
from keel.optimize.terms import Term, objective_split


class _PeriodContext(BuildContext):
    """A period's context: its ``current`` weights are the previous period's variable.

    ``period`` is 1 for the period traded now (a constraint may apply to it alone)."""

    def __init__(self, inputs: PortfolioInputs, previous: cp.Variable | None,
                 period: int = 1) -> None:
        super().__init__(inputs)
        self.period = period
        if previous is not None:
            self.w0 = previous
            self.trade = self.w - previous


@dataclass(frozen=True)
class MultiPeriodResult:
    """An H-period plan.

    Attributes:
        first: the first period's answer (the trade to execute now), as any engine reports it.
        plan: (H, N) planned weights per period (fractions of NAV), period 1 first.
        trades: (H, N) planned trades ``w_h - w_{h-1}``.
        objective: the solver's total utility over the horizon (NaN on fallback).
    """

    first: OptimizationResult
    plan: pd.DataFrame
    trades: pd.DataFrame
    objective: float


class MultiPeriod:
    """H-period mean-variance-cost planning with shared term and constraint objects.

    Args:
        terms: objective terms, applied in every period with that period's inputs.
        constraints: constraints, applied in every period.
        horizon: H >= 1 periods planned.
        solvers: CVXPY solvers tried in order (default Clarabel, then SCS).
        solver_options: per-solver options.
    """

    default_solvers = (Solver.CLARABEL, Solver.SCS)

    def __init__(self, terms: Sequence[Term], constraints: Sequence[Constraint] = (), *,
                 horizon: int, solvers: Sequence[Solver | str] | None = None,
                 solver_options: Mapping[str, Mapping[str, Any]] | None = None,
                 feasibility_tol: float = 1e-6) -> None:
        if not isinstance(horizon, int) or horizon < 1:
            raise ValidationError("horizon must be an integer >= 1", field="horizon",
                                  value=horizon)
        self.horizon = horizon
        # The single-period engine checks the pieces and reports on period 1 (margins, binding
        # constraints); MPO never asks it to solve.
        self._period = ConvexPortfolioProblem(terms, constraints,
                                              solvers=solvers or self.default_solvers,
                                              solver_options=solver_options,
                                              feasibility_tol=feasibility_tol, diagnose=False)
        self.terms = self._period.terms
        self.constraints = self._period.constraints
        self.solvers = self._period.solvers
        self.solver_options = self._period.solver_options
        self.feasibility_tol = feasibility_tol
        self._built: tuple[Hashable, list[_PeriodContext], cp.Problem] | None = None

    def _key(self, plan: Sequence[PortfolioInputs]) -> Hashable:
        return tuple(structure_key(x, self.terms + self.constraints) for x in plan)

    def _compile(self, plan: Sequence[PortfolioInputs]) -> tuple[list[_PeriodContext],
                                                                  cp.Problem]:
        contexts: list[_PeriodContext] = []
        objective: cp.Expression | float = 0.0
        cons: list[cp.Constraint] = []
        previous: cp.Variable | None = None
        for h, inputs in enumerate(plan):
            ctx = _PeriodContext(inputs, previous, h + 1)
            for t in self.terms:
                e = t.expr(ctx)
                if not (e.is_dcp() and e.is_concave()):
                    raise NonConvexError("objective term is not concave", field="terms",
                                         value=t.name, period=h + 1)
                objective = objective + e
            for c in self.constraints:
                cons += c.build(ctx)
            contexts.append(ctx)
            previous = ctx.w
        return contexts, cp.Problem(cp.Maximize(objective), cons)

    def _check(self, plan: Sequence[PortfolioInputs]) -> None:
        if len(plan) != self.horizon:
            raise ValidationError(f"need {self.horizon} periods of inputs", field="plan",
                                  value=len(plan))
        first = plan[0]
        for h, x in enumerate(plan[1:], start=2):
            if not x.symbols.equals(first.symbols):
                raise ValidationError("every period must have the same symbols in the same "
                                      "order", field=f"plan.{h}.symbols")

    def solve(self, plan: Sequence[PortfolioInputs]) -> MultiPeriodResult:
        """Plan ``H`` periods; ``plan[0].current`` are today's holdings, ``plan[h]`` carries
        period ``h + 1``'s alpha forecast, risk model and cost context (its ``current`` is
        ignored: it is the previous period's plan)."""
        self._check(plan)
        t0 = time.perf_counter()
        key = self._key(plan)
        messages: list[str] = []
        compile_s = 0.0
        if self._built is None or self._built[0] != key:
            tc = time.perf_counter()
            contexts, problem = self._compile(plan)
            compile_s = time.perf_counter() - tc
            self._built = (key, contexts, problem)
            messages.append(f"compiled {self.horizon}-period problem in {compile_s * 1e3:.1f} ms")
        else:
            _, contexts, problem = self._built
            for ctx, inputs in zip(contexts, plan, strict=True):
                ctx.update(inputs)
        trail: list[SolverAttempt] = []
        ok = False
        for solver in self.solvers:
            ts = time.perf_counter()
            opts = {**DEFAULT_OPTIONS.get(solver, {}), **self.solver_options.get(solver, {})}
            try:
                problem.solve(solver=solver.value, warm_start=True, **opts)
                status = problem.status
            except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
                status = f"error: {str(exc).splitlines()[0][:160]}"
            secs = time.perf_counter() - ts
            w1 = contexts[0].w.value
            good = status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and w1 is not None and \
                np.all(np.isfinite(w1))
            if good:
                viol = self._period.max_violation(np.asarray(w1, dtype=np.float64), plan[0])
                if viol > self.feasibility_tol:
                    trail.append(SolverAttempt(solver.value, "constraint_violation", secs,
                                               f"max violation {viol:.3g}"))
                    continue
                trail.append(SolverAttempt(solver.value, "ok", secs, str(status)))
                ok = True
                break
            trail.append(SolverAttempt(solver.value, "not_solved", secs, str(status)))
        first_inputs = plan[0]
        if ok:
            weights = np.vstack([np.asarray(c.w.value, dtype=np.float64) for c in contexts])
            used: str | None = trail[-1].solver
            status_enum = (OptimizationStatus.OPTIMAL if problem.status == cp.OPTIMAL
                           else OptimizationStatus.OPTIMAL_INACCURATE)
            total = float(problem.value)
        else:
            weights = np.tile(first_inputs.current, (self.horizon, 1))
            used, status_enum, total = None, OptimizationStatus.HOLD_FALLBACK, float("nan")
            messages.append("every solver failed: holding the current weights ("
                            + "; ".join(f"{a.solver}: {a.message}" for a in trail) + ")")
        w = weights[0]
        split, detail = objective_split(self.terms, w, first_inputs)
        first = OptimizationResult(
            weights=pd.Series(w, index=first_inputs.symbols, name="weight"),
            trades=pd.Series(w - first_inputs.current, index=first_inputs.symbols,
                             name="trade"),
            status=status_enum, objective=split["utility"], objective_split=split,
            term_values=detail, solver_objective=total,
            binding=self._period.binding(w, first_inputs), solver=used,
            fallback_trail=tuple(trail), solve_time_s=time.perf_counter() - t0,
            compile_time_s=compile_s, max_violation=self._period.max_violation(w, first_inputs),
            messages=tuple(messages))
        idx = pd.RangeIndex(1, self.horizon + 1, name="period")
        prev = np.vstack([first_inputs.current, weights[:-1]])
        return MultiPeriodResult(
            first=first,
            plan=pd.DataFrame(weights, index=idx, columns=first_inputs.symbols),
            trades=pd.DataFrame(weights - prev, index=idx, columns=first_inputs.symbols),
            objective=total)
