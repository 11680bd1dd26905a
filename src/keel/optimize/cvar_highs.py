"""A direct HiGHS backend for mean-CVaR: the scenario LP without CVXPY.

Rockafellar-Uryasev in solver form, columns ``[w (N), t (N, |trade|, when needed), z, u (T)]``:

    minimise   -alpha'w + c't + a * (z + sum(u) / ((1 - beta) T))
    subject to -R w - z - u <= 0,   u >= 0,   the portfolio's linear constraints,

with the constraints translated by :mod:`keel.optimize.fastqp` (bounds become column bounds).
Scenario rows are generated lazily: only the tail matters at the optimum (``u_t = 0`` for every
scenario whose loss is below ``z``), so the master starts with the ``3 (1 - beta) T`` worst
scenarios of an equal-weight guess and adds every scenario whose loss exceeds ``z`` at the
master's answer, re-solving warm (HiGHS keeps its basis across ``addRows``). When no omitted
row is violated, the master's optimum is feasible, hence optimal, for the full LP: the answer
is exact, not an approximation. At N = 500, T = 1,000 this is about 3x faster than the full LP
on the same solver, and 6x at N = 2,000. Problems outside the LP class (cones, non-linear
costs, custom constraints) go to the fallback backend.

A cutting-plane variant (adding one worst-scenario cut per iterate, Kunzi-Bay & Mayer) was
tried here and dropped: at N = 500 Kelley-type cuts needed more than 500 iterations.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from keel.optimize import fastqp
from keel.optimize.constraints import Constraint
from keel.optimize.cvar import CVaRRisk, CvxpyBackend
from keel.optimize.engine import ConvexPortfolioProblem
from keel.optimize.inputs import PortfolioInputs
from keel.optimize.result import OptimizationResult, OptimizationStatus, SolverAttempt
from keel.optimize.terms import Term


@contextmanager
def _stdout_silenced() -> Iterator[None]:
    """Route file descriptor 1 to /dev/null: highspy prints its banner from C++ when a
    ``Highs`` object is built, before ``output_flag`` can be set."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (embedded interpreter): nothing to protect
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def quiet_highs() -> Any:
    """A ``highspy.Highs`` with no output at all (banner included)."""
    import highspy

    with _stdout_silenced():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    return h


class HighsDirectBackend:
    """Mean-CVaR as an LP passed straight to HiGHS, scenario rows generated lazily.

    Args:
        initial_factor: the first master holds ``initial_factor * (1 - beta) T`` scenarios
            (the worst for an equal-weight guess).
        max_rounds: row-generation rounds before handing over to ``fallback``.
        options: HiGHS options.
    """

    name = "HIGHS-direct"

    def __init__(self, fallback: CvxpyBackend | None = None, *, initial_factor: int = 3,
                 max_rounds: int = 50, **options: str | float | int | bool) -> None:
        self.fallback = fallback if fallback is not None else CvxpyBackend()
        self.initial_factor, self.max_rounds = initial_factor, max_rounds
        self.options = dict(options)

    def solve(self, terms: Sequence[Term], constraints: Sequence[Constraint],
              inputs: PortfolioInputs) -> OptimizationResult:
        t0 = time.perf_counter()
        cvars = [t for t in terms if isinstance(t, CVaRRisk)]
        others = [t for t in terms if not isinstance(t, CVaRRisk)]
        spec = None
        if len(cvars) == 1 and inputs.scenarios is not None:
            spec = fastqp.translate(others, constraints, inputs)
        if spec is None or spec.gamma or spec.power is not None:
            return self.fallback.solve(terms, constraints, inputs)
        out = self._lp(spec, cvars[0], inputs)
        secs = time.perf_counter() - t0
        engine = ConvexPortfolioProblem(terms, constraints)
        if out is None or engine.max_violation(out[0], inputs) > engine.feasibility_tol:
            res = self.fallback.solve(terms, constraints, inputs)
            why = "not_solved" if out is None else "constraint_violation"
            return replace(res, fallback_trail=(SolverAttempt(self.name, why, secs),
                                                *res.fallback_trail))
        w, obj, name_duals, row_duals = out
        trail = [SolverAttempt(self.name, "ok", secs, "optimal")]
        duals = engine.answer_duals(name_duals, row_duals, w, inputs, spec.bound_owner)
        return engine._result(inputs, w, OptimizationStatus.OPTIMAL, self.name, obj, trail,
                              [], time.perf_counter() - t0, 0.0, duals)

    def _lp(self, spec: fastqp._Spec, term: CVaRRisk, inputs: PortfolioInputs
            ) -> tuple[np.ndarray, float, np.ndarray, dict[int, float]] | None:
        """(w, utility, |column dual| of each w, largest |row dual| per constraint)."""
        import highspy

        r = inputs.scenarios
        assert r is not None and spec.q_w is not None and spec.cost_t is not None
        n, t_s = inputs.n, r.shape[0]
        nt = n if spec.need_t else 0
        inf = highspy.kHighsInf
        ncol = n + nt + 1 + t_s
        cost = np.concatenate([spec.q_w, spec.cost_t[:nt], [term.aversion],
                               np.full(t_s, term.aversion / ((1.0 - term.beta) * t_s))])
        lb = np.concatenate([spec.lb, np.zeros(nt), [-inf], np.zeros(t_s)])
        ub = np.concatenate([spec.ub, np.full(nt, inf), [inf], np.full(t_s, inf)])
        lb, ub = np.where(np.isfinite(lb), lb, -inf), np.where(np.isfinite(ub), ub, inf)

        def pad(w_part: sp.spmatrix, t_part: sp.spmatrix | None = None) -> sp.spmatrix:
            m = w_part.shape[0]
            return sp.hstack([w_part, t_part if t_part is not None else
                              sp.csr_matrix((m, nt)), sp.csr_matrix((m, 1 + t_s))])

        # Scenario rows are generated lazily: start from the worst scenarios of a feasible
        # guess and add every scenario whose loss exceeds z at the master's answer. Omitted
        # rows satisfied with u_t = 0 make the master's optimum optimal for the full LP.
        guess = np.clip(np.full(n, 1.0 / n), spec.lb, spec.ub)
        k_tail = max(1, int(np.ceil((1.0 - term.beta) * t_s)))
        first = min(t_s, self.initial_factor * k_tail)
        active = np.zeros(t_s, dtype=bool)
        active[np.argpartition(r @ guess, first - 1)[:first]] = True

        def scen_rows(idx: np.ndarray) -> sp.csr_matrix:
            m = len(idx)
            u_part = sp.csr_matrix((-np.ones(m), (np.arange(m), idx)), shape=(m, t_s))
            return sp.hstack([sp.csr_matrix(-r[idx]), sp.csr_matrix((m, nt)),
                              sp.csr_matrix(-np.ones((m, 1))), u_part], format="csr")

        idx0 = np.flatnonzero(active)
        rows = [scen_rows(idx0)]
        lo, hi = [np.full(len(idx0), -inf)], [np.zeros(len(idx0))]
        owner = [np.full(len(idx0), -1)]
        if spec.need_t:
            eye = sp.identity(n, format="csr")
            rows += [pad(-eye, eye), pad(eye, eye)]
            lo += [-inputs.current, inputs.current]
            hi += [np.full(n, inf), np.full(n, inf)]
            owner.append(np.full(2 * n, -1))
        for row in spec.rows:
            m = sp.csr_matrix(row.matrix())
            rows.append(pad(sp.csr_matrix((m.shape[0], n)), m) if row.block == "t"
                        else pad(m))
            lo.append(np.where(np.isfinite(row.lo), row.lo, -inf))
            hi.append(np.where(np.isfinite(row.hi), row.hi, inf))
            owner.append(np.full(m.shape[0], row.owner))
        own = np.concatenate(owner)
        a = sp.vstack(rows, format="csc")
        h = quiet_highs()
        for k, v in self.options.items():
            h.setOptionValue(k, v)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = ncol, a.shape[0]
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, lb, ub
        lp.row_lower_, lp.row_upper_ = np.concatenate(lo), np.concatenate(hi)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_ = a.indptr, a.indices
        lp.a_matrix_.value_ = a.data
        h.passModel(lp)
        for _ in range(self.max_rounds):
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return None
            x = np.asarray(h.getSolution().col_value)
            w, z = x[:n], x[n + nt]
            viol = (-(r @ w) - z > 1e-12) & ~active
            if not viol.any():
                sol = h.getSolution()
                row_dual = np.abs(np.asarray(sol.row_dual)[:len(own)])
                row_duals = {int(o): float(row_dual[own == o].max())
                             for o in np.unique(own) if o >= 0}
                return w, -float(cost @ x), np.abs(np.asarray(sol.col_dual)[:n]), row_duals
            add = np.flatnonzero(viol)
            active[add] = True
            m = scen_rows(add).tocsr()
            h.addRows(len(add), np.full(len(add), -inf), np.zeros(len(add)), m.nnz,
                      m.indptr[:-1].astype(np.int32), m.indices.astype(np.int32), m.data)
        return None
