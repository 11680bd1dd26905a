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
        initial_columns: long-only problems with more than 4x this many names also generate
            columns (names), starting from this many of least scenario risk
            (:meth:`_lp_columns`); measured at N = 2,000, T = 1,000: 2.0 s against 4.0 s CPU
            for rows alone in the same run (load ~12); at N = 500 it was slower (0.47 vs 0.34 s).
        max_rounds: row-generation rounds before handing over to ``fallback``.
        options: HiGHS options.
    """

    name = "HIGHS-direct"

    def __init__(self, fallback: CvxpyBackend | None = None, *, initial_factor: int = 3,
                 max_rounds: int = 50, initial_columns: int = 250,
                 **options: str | float | int | bool) -> None:
        self.fallback = fallback if fallback is not None else CvxpyBackend()
        self.initial_factor, self.max_rounds = initial_factor, max_rounds
        self.initial_columns = initial_columns
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
        out = self._lp_columns(spec, cvars[0], inputs)
        if out is None:
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

    def _lp_columns(self, spec: fastqp._Spec, term: CVaRRisk, inputs: PortfolioInputs
                    ) -> tuple[np.ndarray, float, np.ndarray, dict[int, float]] | None:
        """Rows *and* columns generated: long-only problems without trade terms.

        The min-CVaR portfolio holds few names, so the master starts with the
        ``initial_columns`` names of least scenario risk (the others held at 0) and prices the
        rest with the master's row duals: a name whose reduced cost ``c_i - a_i' pi`` is
        negative enters (the most negative first), and every scenario whose loss exceeds ``z``
        at the master's answer is added as a row. When neither a column prices out nor a row is
        violated, the master's optimum is optimal for the full LP (exact, as the rows-only
        method). None when not applicable (shorts allowed, |trade| terms, rows on |trade|).
        """
        import highspy

        r = inputs.scenarios
        assert r is not None and spec.q_w is not None
        n, t_s = inputs.n, r.shape[0]
        if spec.need_t or np.any(spec.lb != 0.0) or any(row.block != "w" for row in spec.rows) \
                or n <= 4 * self.initial_columns:
            return None  # (a master of a quarter of the names or more gains nothing)
        inf = highspy.kHighsInf
        k_tail = max(1, int(np.ceil((1.0 - term.beta) * t_s)))
        q = spec.q_w
        ub = np.where(np.isfinite(spec.ub), spec.ub, inf)
        spec_m = [sp.csr_matrix(row.matrix()) for row in spec.rows]
        m_all = sp.vstack(spec_m, format="csc") if spec_m else sp.csc_matrix((0, n))
        spec_lo = np.concatenate([np.asarray(row.lo, float) for row in spec.rows]) \
            if spec.rows else np.zeros(0)
        spec_hi = np.concatenate([np.asarray(row.hi, float) for row in spec.rows]) \
            if spec.rows else np.zeros(0)
        own = np.concatenate([np.full(len(row.lo), row.owner) for row in spec.rows]) \
            if spec.rows else np.zeros(0, dtype=int)
        # first columns: least scenario risk (plus alpha), enough to meet any cap
        score = q + term.aversion * r.std(axis=0)
        k0 = min(n, max(self.initial_columns, int(np.ceil(3.0 / max(
            float(np.min(spec.ub[np.isfinite(spec.ub)], initial=1.0)), 1e-3)))))
        cols = list(np.argsort(score)[:k0])
        in_s = np.zeros(n, dtype=bool)
        in_s[cols] = True
        guess = np.zeros(n)
        guess[cols] = 1.0 / k0
        first = min(t_s, self.initial_factor * k_tail)
        active = np.zeros(t_s, dtype=bool)
        active[np.argpartition(r @ guess, first - 1)[:first]] = True
        row_scen = list(np.flatnonzero(active))  # HiGHS row j: scenario row_scen[j], then
        n_spec = m_all.shape[0]  # the spec rows follow the first scenario rows
        # columns: [z, u (T), w of ``cols`` in order]; rows: first scenarios, spec, added
        c_idx = np.asarray(cols)

        def scen_block(idx: np.ndarray) -> sp.csr_matrix:
            m = len(idx)
            zu = sp.csr_matrix((-np.ones(2 * m), (np.r_[np.arange(m), np.arange(m)],
                                                  np.r_[np.zeros(m, int), 1 + idx])),
                               shape=(m, 1 + t_s))
            return sp.hstack([zu, sp.csr_matrix(-r[np.ix_(idx, c_idx)])], format="csr")

        idx0 = np.asarray(row_scen)
        blocks = [scen_block(idx0)]
        if n_spec:
            blocks.append(sp.hstack([sp.csr_matrix((n_spec, 1 + t_s)),
                                     m_all[:, c_idx]], format="csr"))
        a = sp.vstack(blocks, format="csc")
        cost = np.concatenate([[term.aversion],
                               np.full(t_s, term.aversion / ((1.0 - term.beta) * t_s)),
                               q[c_idx]])
        h = quiet_highs()
        for k, v in self.options.items():
            h.setOptionValue(k, v)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(cost), a.shape[0]
        lp.col_cost_ = cost
        lp.col_lower_ = np.concatenate([[-inf], np.zeros(t_s), np.zeros(k0)])
        lp.col_upper_ = np.concatenate([[inf], np.full(t_s, inf), ub[c_idx]])
        lp.row_lower_ = np.concatenate([np.full(len(idx0), -inf),
                                        np.where(np.isfinite(spec_lo), spec_lo, -inf)])
        lp.row_upper_ = np.concatenate([np.zeros(len(idx0)),
                                        np.where(np.isfinite(spec_hi), spec_hi, inf)])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_ = a.indptr, a.indices
        lp.a_matrix_.value_ = a.data
        h.passModel(lp)
        n0 = len(idx0)
        for _ in range(self.max_rounds * 4):
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return None
            sol = h.getSolution()
            x = np.asarray(sol.col_value)
            z = x[0]
            w = np.zeros(n)
            w[c_idx] = x[1 + t_s:]
            viol = (-(r @ w) - z > 1e-12) & ~active
            y = np.asarray(sol.row_dual)
            # reduced costs of the names left out: c_i - a_i' y (HiGHS: col_dual = c - A'y)
            scen_rows = np.asarray(row_scen)
            y_scen = np.concatenate([y[:n0], y[n0 + n_spec:]])
            y_spec = y[n0:n0 + n_spec]
            rc = q + r[scen_rows].T @ y_scen - m_all.T @ y_spec
            enter = ~in_s & (rc < -1e-9) & (ub > 0)
            if not viol.any() and not enter.any():
                name_duals = np.abs(rc)
                name_duals[c_idx] = np.abs(np.asarray(sol.col_dual)[1 + t_s:])
                row_duals = {int(o): float(np.abs(y_spec[own == o]).max())
                             for o in np.unique(own) if o >= 0}
                return w, -float(cost @ x), name_duals, row_duals
            if enter.any():
                cand = np.flatnonzero(enter)
                new = cand[np.argsort(rc[cand])[:max(50, k0 // 2)]]
                # the new columns' entries in every current row (scenario rows in HiGHS
                # order: the first block, then the spec rows, then the added scenarios)
                order = np.r_[scen_rows[:n0], np.full(n_spec, -1), scen_rows[n0:]]
                dense = np.zeros((len(order), len(new)))
                is_s = order >= 0
                dense[is_s] = -r[np.ix_(order[is_s], new)]
                if n_spec:
                    dense[n0:n0 + n_spec] = m_all[:, new].toarray()
                cm = sp.csc_matrix(dense)
                h.addCols(len(new), q[new], np.zeros(len(new)), ub[new], cm.nnz,
                          cm.indptr[:-1].astype(np.int32), cm.indices.astype(np.int32),
                          cm.data)
                in_s[new] = True
                c_idx = np.r_[c_idx, new]
                cost = np.r_[cost, q[new]]
            if viol.any():
                add = np.flatnonzero(viol)
                active[add] = True
                row_scen += list(add)
                m = scen_block(add).tocsr()
                h.addRows(len(add), np.full(len(add), -inf), np.zeros(len(add)), m.nnz,
                          m.indptr[:-1].astype(np.int32), m.indices.astype(np.int32),
                          m.data)
        return None

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
