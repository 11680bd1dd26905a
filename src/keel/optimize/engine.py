"""The convex-problem engine shared by `MeanVariance` and `MeanCVaR`.

Compile once per structure, update parameters each period, try solvers in order, verify the
answer with NumPy (every constraint's margins), fall back to holding the current weights when
every solver fails, and diagnose infeasibility with elastic slacks.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import cvxpy as cp
import numpy as np
import pandas as pd

from keel.errors import InfeasibleError, NonConvexError, ValidationError
from keel.optimize.build import BuildContext, structure_key
from keel.optimize.constraints import Constraint, unique_names
from keel.optimize.inputs import PortfolioInputs
from keel.optimize.limits import SolverLimits
from keel.optimize.result import (
    BindingConstraint,
    OptimizationResult,
    OptimizationStatus,
    SolverAttempt,
)
from keel.optimize.terms import Term, objective_split


class Solver(StrEnum):
    CLARABEL = "CLARABEL"
    OSQP = "OSQP"
    SCS = "SCS"
    HIGHS = "HIGHS"


#: accuracy settings good enough for the 1e-6 verification below; portfolio objectives are
#: small numbers (1e-3 per day), so the absolute gap must be far below Clarabel's default
DEFAULT_OPTIONS: dict[Solver, dict[str, Any]] = {
    Solver.CLARABEL: {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-10, "tol_feas": 1e-10,
                      "tol_ktratio": 1e-8},
    Solver.OSQP: {"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iter": 50_000, "polishing": True},
    Solver.SCS: {"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iters": 50_000},
    Solver.HIGHS: {},
}

_INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)
_UNBOUNDED = (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE)


@dataclass
class Compiled:
    """A built problem and the map from constraint objects to their CVXPY rows."""

    key: Hashable
    ctx: BuildContext
    problem: cp.Problem
    rows: list[list[cp.Constraint]]
    dpp: bool
    compile_time_s: float


class ConvexPortfolioProblem:
    """``maximise sum(terms)`` subject to ``constraints``, solved with a fallback chain.

    Args:
        terms: objective terms (``Alpha()``, ``Risk(5.0)``, ``TransactionCost(model)``, ...).
        constraints: constraint objects.
        solvers: tried in order; a failure, a non-optimal status or an answer violating a
            constraint by more than ``feasibility_tol`` moves on to the next one.
        solver_options: per-solver keyword overrides.
        feasibility_tol: largest accepted constraint violation (NAV units).
        binding_tol: a row within this of its bound is reported as binding.
        diagnose: run the elastic-slack diagnosis when a solver reports infeasibility.
        direct: solvers of the direct QP path (:mod:`keel.optimize.fastqp`), tried first when
            the problem is a factor-form QP; the CVXPY chain follows if they fail.
        limits: time limit and iteration cap per solve attempt (:class:`SolverLimits`); an
            attempt that reaches one is recorded as ``limit`` and the next solver is tried.
    """

    default_solvers: tuple[Solver, ...] = (Solver.CLARABEL, Solver.OSQP, Solver.SCS)

    def __init__(self, terms: Sequence[Term], constraints: Sequence[Constraint] = (), *,
                 solvers: Sequence[Solver | str] | None = None,
                 solver_options: Mapping[str, Mapping[str, Any]] | None = None,
                 feasibility_tol: float = 1e-6, binding_tol: float = 1e-6,
                 diagnose: bool = True, direct: Sequence[Any] = (),
                 limits: SolverLimits | None = None) -> None:
        for t in terms:
            if not isinstance(t, Term):
                raise ValidationError("terms must be Term objects", field="terms",
                                      value=type(t).__name__)
        for c in constraints:
            if not isinstance(c, Constraint):
                raise ValidationError("constraints must be Constraint objects",
                                      field="constraints", value=type(c).__name__)
        try:
            self.solvers = tuple(Solver(str(s).upper())
                                 for s in (solvers or self.default_solvers))
        except ValueError as exc:
            raise ValidationError(str(exc), field="solvers", value=solvers) from None
        if not self.solvers:
            raise ValidationError("give at least one solver", field="solvers")
        self.terms = list(terms)
        self.constraints = list(constraints)
        self.solver_options = {Solver(str(k).upper()): dict(v)
                               for k, v in (solver_options or {}).items()}
        self.feasibility_tol = float(feasibility_tol)
        self.binding_tol = float(binding_tol)
        self.diagnose = diagnose
        self.direct = list(direct)
        self.limits = limits or SolverLimits()
        if self.limits.active:  # the same caps under each direct solver's own names, applied
            self.direct = [self._capped(s) for s in self.direct]  # to copies, never the caller's
        self._compiled: Compiled | None = None
        self._qp: Any = None
        self._memo: tuple[np.ndarray, PortfolioInputs, list[np.ndarray]] | None = None

    def _capped(self, solver: Any) -> Any:
        """``solver`` under the caps: a capped copy when a cap changes it (never the caller's
        object), else the solver itself, so the state a caller keeps in it (a warm start, a
        back-off) lives on across rebuilds."""
        if hasattr(solver, "inner"):  # a wrapper (dual_as.BackOff): cap what it wraps
            inner = self._capped(solver.inner)
            if inner is solver.inner:
                return solver
            capped = copy.copy(solver)
            capped.inner = inner
            return capped
        if hasattr(solver, "settings") and hasattr(solver, "name"):
            opts = self.limits.options(solver.name)
            if not opts:
                return solver
            capped = copy.copy(solver)
            capped.settings = {**solver.settings, **opts}
            return capped
        cap = self.limits.max_iter
        if hasattr(solver, "max_iter") and cap is not None and cap < solver.max_iter:
            capped = copy.copy(solver)
            capped.max_iter = cap
            return capped
        return solver

    # ------------------------------------------------------------------ build

    def compile(self, inputs: PortfolioInputs) -> Compiled:
        """Build the CVXPY problem (checks convexity now: NonConvexError names the piece)."""
        t0 = time.perf_counter()
        ctx = BuildContext(inputs)
        objective: cp.Expression | float = 0.0
        for t in self.terms:
            e = t.expr(ctx)
            if not (e.is_dcp() and e.is_concave()):
                raise NonConvexError("objective term is not concave (cannot be maximised)",
                                     field="terms", value=t.name)
            objective = objective + e
        rows: list[list[cp.Constraint]] = []
        for c, name in zip(self.constraints, unique_names(self.constraints), strict=True):
            built = c.build(ctx)
            for con in built:
                if not con.is_dcp():
                    raise NonConvexError("constraint is not convex", field="constraints",
                                         value=name)
            rows.append(built)
        problem = cp.Problem(cp.Maximize(objective), [r for rs in rows for r in rs])
        return Compiled(key=structure_key(inputs, self.terms + self.constraints), ctx=ctx,
                        problem=problem, rows=rows, dpp=bool(problem.is_dcp(dpp=True)),  # type: ignore[call-arg]
                        compile_time_s=time.perf_counter() - t0)

    def _prepare(self, inputs: PortfolioInputs) -> tuple[Compiled, bool]:
        key = structure_key(inputs, self.terms + self.constraints)
        c = self._compiled
        if c is not None and c.key == key:
            c.ctx.update(inputs)
            return c, False
        self._compiled = self.compile(inputs)
        return self._compiled, True

    # ------------------------------------------------------------------ solve

    def solve(self, inputs: PortfolioInputs) -> OptimizationResult:
        """Target weights for ``inputs``.

        Raises:
            InfeasibleError: no portfolio satisfies the constraints; ``culprits`` names the
                constraint families that must give and by how much.
            NonConvexError: a term or constraint is not convex (at compile).
        Solver failures never raise: the next solver is tried, then the current weights are
        held, and the result says so.
        """
        t0 = time.perf_counter()
        trail: list[SolverAttempt] = []
        messages: list[str] = []
        if self.direct:
            done = self._solve_direct(inputs, trail)
            if done is not None:
                w, used_name, duals, obj, build_s = done
                if build_s:
                    messages.append(f"built the direct QP in {build_s * 1e3:.1f} ms")
                return self._result(inputs, w, OptimizationStatus.OPTIMAL, used_name, obj,
                                    trail, messages, time.perf_counter() - t0, build_s, duals)
        comp, fresh = self._prepare(inputs)
        if fresh:
            messages.append(f"compiled ({'DPP' if comp.dpp else 'non-DPP'}) in "
                            f"{comp.compile_time_s * 1e3:.1f} ms")
        w_ok: np.ndarray | None = None
        used: Solver | None = None
        status = OptimizationStatus.HOLD_FALLBACK
        solver_obj = float("nan")
        for solver in self.solvers:
            ts = time.perf_counter()
            outcome, msg = self._try(comp, solver)
            secs = time.perf_counter() - ts
            if outcome == "infeasible":
                trail.append(SolverAttempt(solver.value, "infeasible", secs, msg))
                if self.diagnose:
                    from keel.optimize.diagnose import diagnose_infeasible

                    culprits = diagnose_infeasible(inputs, self.constraints, self.solvers)
                    if culprits:
                        names = ", ".join(culprits)
                        raise InfeasibleError(
                            f"no portfolio satisfies the constraints; relax {names}",
                            culprits=culprits, trail=[a.solver for a in trail])
                    messages.append(f"{solver.value} reported infeasible but the elastic "
                                    "diagnosis found a feasible point")
                continue
            if outcome != "ok":
                trail.append(SolverAttempt(solver.value, outcome, secs, msg))
                continue
            w = np.asarray(comp.ctx.w.value, dtype=np.float64)
            viol = self.max_violation(w, inputs)
            if viol > self.feasibility_tol:
                trail.append(SolverAttempt(solver.value, "constraint_violation", secs,
                                           f"max violation {viol:.3g}"))
                continue
            trail.append(SolverAttempt(solver.value, "ok", secs, comp.problem.status))
            w_ok, used = w, solver
            status = (OptimizationStatus.OPTIMAL if comp.problem.status == cp.OPTIMAL
                      else OptimizationStatus.OPTIMAL_INACCURATE)
            solver_obj = float(comp.problem.value)
            break
        if w_ok is None:
            w_ok = inputs.current.copy()
            messages.append("every solver failed: holding the current weights ("
                            + "; ".join(f"{a.solver}: {a.outcome}" for a in trail) + ")")
        return self._result(inputs, w_ok, status, None if used is None else used.value,
                            solver_obj, trail, messages, time.perf_counter() - t0,
                            comp.compile_time_s if fresh else 0.0,
                            None if used is None else self._cvxpy_duals(comp.rows))

    def _solve_direct(self, inputs: PortfolioInputs, trail: list[SolverAttempt]
                      ) -> tuple[np.ndarray, str, list[float], float, float] | None:
        """The direct solvers in order (structured ones on the solver form, QP ones on the
        assembled QP); each answer is verified against every constraint's margins."""
        from keel.optimize import fastqp

        tb = time.perf_counter()
        spec = fastqp.translate(self.terms, self.constraints, inputs)
        if spec is None:
            return None
        build_s = 0.0
        qp = None
        for solver in self.direct:
            ts = time.perf_counter()
            if hasattr(solver, "solve_structured"):
                try:
                    ans = solver.solve_structured(spec, inputs)
                except (ValueError, ArithmeticError, RuntimeError, ImportError) as exc:
                    trail.append(SolverAttempt(solver.name, "error",
                                               time.perf_counter() - ts, str(exc)[:200]))
                    continue
                if ans is None:
                    continue  # not applicable to this problem
                secs = time.perf_counter() - ts
                if ans.w is None:
                    trail.append(SolverAttempt(solver.name, "not_solved", secs, ans.status))
                    continue
                viol = self.max_violation(ans.w, inputs)
                if viol > self.feasibility_tol:
                    trail.append(SolverAttempt(solver.name, "constraint_violation", secs,
                                               f"max violation {viol:.3g}"))
                    continue
                trail.append(SolverAttempt(solver.name, "ok", secs, ans.status))
                if getattr(solver, "last_build_s", 0.0):
                    build_s = ts - tb + solver.last_build_s
                obj = -fastqp.spec_value(spec, ans.w, inputs)
                duals = self.answer_duals(ans.name_duals, ans.row_duals, ans.w, inputs,
                                           spec.bound_owner)
                return ans.w, solver.name, duals, obj, build_s
            if spec.power is not None and not getattr(solver, "cones", False):
                continue  # a QP solver cannot take a power cost
            if qp is None:
                old = self._qp
                qp = fastqp.assemble(spec, inputs, old)
                self._qp = qp
                if old is None or old.matrix_key != qp.matrix_key:
                    build_s = time.perf_counter() - tb
            try:
                status, x, y = solver.solve(qp)
            except (ValueError, ArithmeticError, RuntimeError, ImportError) as exc:
                status, x, y = f"error: {exc}", None, None
            secs = time.perf_counter() - ts
            if x is None or y is None:
                trail.append(SolverAttempt(solver.name, "not_solved", secs, status))
                continue
            w = np.asarray(x[:inputs.n])
            viol = self.max_violation(w, inputs)
            if viol > self.feasibility_tol:
                trail.append(SolverAttempt(solver.name, "constraint_violation", secs,
                                           f"max violation {viol:.3g}"))
                continue
            trail.append(SolverAttempt(solver.name, "ok", secs, status))
            for other in self.direct:  # warm the structured solvers for the next re-solve
                if hasattr(other, "seed"):
                    other.seed(spec, inputs, w)
            obj = -float(0.5 * x @ (qp.P @ x) + qp.q @ x)
            ay = np.abs(y)
            rows = {int(o): float(ay[qp.owners == o].max()) for o in np.unique(qp.owners)
                    if o >= 0}
            duals = self.answer_duals(ay[:inputs.n], rows, w, inputs, spec.bound_owner)
            return w, solver.name, duals, obj, build_s
        return None

    def answer_duals(self, name_duals: np.ndarray, row_duals: dict[int, float],
                      w: np.ndarray, inputs: PortfolioInputs, bound_owner: list[int]
                      ) -> list[float]:
        """Largest |dual| per constraint: its rows', and for a per-name bound owner the
        bound multipliers of the names where that constraint binds."""
        out = []
        for i in range(len(self.constraints)):
            vals = [row_duals[i]] if i in row_duals else []
            if i in bound_owner and name_duals.size == inputs.n:
                m = self.margins(w, inputs)[i]
                if m.size % inputs.n == 0 and m.size:
                    hit = (m.reshape(-1, inputs.n) <= self.binding_tol).any(axis=0)
                    if hit.any():
                        vals.append(float(name_duals[hit].max()))
            out.append(max(vals) if vals else float("nan"))
        return out

    @staticmethod
    def _cvxpy_duals(rows: list[list[cp.Constraint]]) -> list[float]:
        out = []
        for rs in rows:
            duals = [np.max(np.abs(np.atleast_1d(r.dual_value))) for r in rs
                     if r.dual_value is not None and np.size(r.dual_value)]
            out.append(float(max(duals)) if duals else float("nan"))
        return out

    def _try(self, comp: Compiled, solver: Solver) -> tuple[str, str]:
        opts = {**DEFAULT_OPTIONS.get(solver, {}), **self.limits.options(solver.value),
                **self.solver_options.get(solver, {})}
        try:
            comp.problem.solve(solver=solver.value, warm_start=True, **opts)
        except cp.error.SolverError as exc:
            return "solver_error", str(exc).splitlines()[0][:200]
        except (ValueError, ArithmeticError, RuntimeError) as exc:
            return "error", f"{type(exc).__name__}: {str(exc)[:200]}"
        st = comp.problem.status
        if st in _INFEASIBLE:
            return "infeasible", st
        if st in _UNBOUNDED:
            return "unbounded", "add a risk term or bounds"
        if st == cp.USER_LIMIT:
            return "limit", f"{self.limits.describe()} reached"
        if st not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or comp.ctx.w.value is None:
            return "not_solved", str(st)
        if not np.all(np.isfinite(comp.ctx.w.value)):
            return "not_finite", ""
        return "ok", st

    # ------------------------------------------------------------------ reporting

    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> list[np.ndarray]:
        """Every constraint's margins at ``w`` (memoised for the last ``(w, inputs)``).

        The memo holds the inputs object it was computed for (so its identity cannot be
        recycled) and a copy of ``w`` compared by value."""
        m = self._memo
        if m is not None and m[1] is inputs and m[0].shape == np.shape(w) \
                and np.array_equal(m[0], w):
            return m[2]
        out = [c.margins(w, inputs) for c in self.constraints]
        self._memo = (np.array(w, dtype=np.float64, copy=True), inputs, out)
        return out

    def max_violation(self, w: np.ndarray, inputs: PortfolioInputs) -> float:
        """Largest violation of any constraint at ``w`` (NumPy)."""
        worst = [float(-np.min(m)) for m in self.margins(w, inputs) if m.size]
        return max([0.0, *worst])

    def binding(self, w: np.ndarray, inputs: PortfolioInputs,
                duals: list[float] | None = None) -> tuple[BindingConstraint, ...]:
        """Constraints within ``binding_tol`` of a bound, with their largest |dual|."""
        out = []
        names = unique_names(self.constraints)
        all_m = self.margins(w, inputs)
        for i, (c, name) in enumerate(zip(self.constraints, names, strict=True)):
            m = all_m[i]
            mask = m <= self.binding_tol
            if not mask.any():
                continue
            dual = float("nan") if duals is None else duals[i]
            syms: tuple[str, ...] = ()
            n = inputs.n
            if c.per_name and m.size % n == 0:
                hit = mask.reshape(-1, n).any(axis=0)
                # scalar look-ups: boolean indexing of an Arrow-backed index costs ~1 ms
                syms = tuple(str(inputs.symbols[i]) for i in np.flatnonzero(hit)[:20])
            out.append(BindingConstraint(name, dual, int(mask.sum()), syms))
        return tuple(out)

    def _result(self, inputs: PortfolioInputs, w: np.ndarray, status: OptimizationStatus,
                used: str | None, solver_obj: float, trail: list[SolverAttempt],
                messages: list[str], elapsed: float, compile_s: float,
                duals: list[float] | None) -> OptimizationResult:
        split, detail = objective_split(self.terms, w, inputs)
        held = status is OptimizationStatus.HOLD_FALLBACK
        viol = self.max_violation(w, inputs)
        if held and viol > self.feasibility_tol:
            messages.append(f"the held portfolio violates the constraints by {viol:.3g}")
        return OptimizationResult(
            weights=pd.Series(w, index=inputs.symbols, name="weight"),
            trades=pd.Series(w - inputs.current, index=inputs.symbols, name="trade"),
            status=status, objective=split["utility"], objective_split=split,
            term_values=detail, solver_objective=solver_obj,
            binding=self.binding(w, inputs, duals), solver=used,
            fallback_trail=tuple(trail), solve_time_s=elapsed, compile_time_s=compile_s,
            max_violation=viol, messages=tuple(messages))
