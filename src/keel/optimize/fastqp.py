"""Direct factor-form QP for OSQP / Clarabel: the fast path of `MeanVariance`.

CVXPY's per-solve overhead (parameter mapping, canonicalisation bookkeeping, result
unpacking) dominates a warm re-solve of a few-ms problem. When every term and constraint is
linear or the factor-form quadratic, the problem is written here straight into solver form

    minimise   1/2 x'Px + q'x     subject to   l <= A x <= u,
    x = [w (N), y (K), t (N, only when |trade| is needed)],
    P = blockdiag(2 gamma D, 2 gamma I_K, 0),  rows  X w - y = X b,  t >= |w - w0|,

with ``X = L' B'`` (K x N; a dense model uses ``X = L'``), so nothing N x N is formed. The
matrices are kept between solves: a new alpha or new holdings only change ``q``, ``l``, ``u``,
and OSQP is re-solved warm from the previous primal/dual point on its cached factorisation.
A problem the translation does not cover (a cone, a non-linear cost, a custom constraint)
returns ``None`` and the caller uses the CVXPY engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from keel.optimize import constraints as cm
from keel.optimize.build import dense_sqrt, factor_loadings
from keel.optimize.forms import LinearForm
from keel.optimize.inputs import PortfolioInputs, fingerprint
from keel.optimize.terms import Term
from keel.risk.base import FactorCovariance

INF = np.inf
MatFn = Callable[[], sp.spmatrix]


@dataclass
class Answer:
    """A structured solver's answer: weights, |dual| per name (bounds) and per row owner."""

    status: str
    w: np.ndarray | None
    name_duals: np.ndarray
    row_duals: dict[int, float]


@dataclass
class _Row:
    owner: int
    matrix: MatFn
    lo: np.ndarray
    hi: np.ndarray
    block: str = "w"  # the variable block the rows act on: w or t (= |w - w0|)


@dataclass
class _Spec:
    n: int
    lb: np.ndarray
    ub: np.ndarray
    bound_owner: list[int] = field(default_factory=list)
    rows: list[_Row] = field(default_factory=list)
    need_t: bool = False
    q_w: np.ndarray | None = None
    cost_t: np.ndarray | None = None
    gamma: float = 0.0
    offset: np.ndarray | None = None
    #: separable power cost ``sum power_i |w_i - w0_i| ** exponent`` (None: none)
    power: np.ndarray | None = None
    exponent: float = 1.0


def spec_value(s: _Spec, w: np.ndarray, inputs: PortfolioInputs) -> float:
    """The minimised objective at ``w`` (NumPy): ``q'w + c'|t| + power'|t|^e + gamma var``."""
    assert s.q_w is not None and s.cost_t is not None
    t = np.abs(w - inputs.current)
    val = float(s.q_w @ w) + float(s.cost_t @ t)
    if s.power is not None:
        val += float(s.power @ t ** s.exponent)
    if s.gamma:
        val += s.gamma * inputs.variance(w if s.offset is None else w - s.offset)
    return val


def _const(m: sp.spmatrix) -> MatFn:
    return lambda: m


def translate(terms: Sequence[Term], constraints: Sequence[cm.Constraint],
              inputs: PortfolioInputs) -> _Spec | None:
    """The solver-form pieces, assembled from each term's and constraint's own
    ``solver_form``; None when one of them has none (the CVXPY engine then solves)."""
    n = inputs.n
    s = _Spec(n=n, lb=np.full(n, -INF), ub=np.full(n, INF), q_w=np.zeros(n),
              cost_t=np.zeros(n))
    forms: list[LinearForm | None] = [c.solver_form(inputs, False) for c in constraints]
    lb = np.full(n, -INF)
    for f in forms:
        if f is not None and f.lower is not None:
            lb = np.maximum(lb, f.lower)
    nonneg = bool(np.all(lb >= 0))
    if nonneg:  # a gross or long cap is linear once w >= 0 is known
        forms = [c.solver_form(inputs, True) if f is None else f
                 for c, f in zip(constraints, forms, strict=True)]
    for i, f in enumerate(forms):
        if f is None:
            return None
        if f.lower is not None or f.upper is not None:
            if f.lower is not None:
                s.lb = np.maximum(s.lb, f.lower)
            if f.upper is not None:
                s.ub = np.minimum(s.ub, f.upper)
            s.bound_owner.append(i)
        for r in f.rows:
            block = "t" if r.on == "abs_trade" else "w"
            s.need_t |= block == "t"
            s.rows.append(_Row(i, _const(r.matrix), np.asarray(r.lo, dtype=np.float64),
                               np.asarray(r.hi, dtype=np.float64), block))
    assert s.q_w is not None and s.cost_t is not None
    for t in terms:
        tf = t.solver_form(inputs, nonneg)
        if tf is None:
            return None
        if tf.linear is not None:
            s.q_w += tf.linear
        if tf.abs_trade is not None and np.any(tf.abs_trade):
            s.cost_t += tf.abs_trade
            s.need_t = True
        if tf.power is not None:
            if s.power is not None and tf.exponent != s.exponent:
                return None
            s.power = tf.power if s.power is None else s.power + tf.power
            s.exponent = tf.exponent
        if tf.risk_aversion:
            if s.gamma or inputs.risk is None:
                return None
            s.gamma = tf.risk_aversion
            if tf.benchmark_relative:
                s.offset = inputs.benchmark
    return s


@dataclass
class QP:
    """Solver-form data; ``owners`` maps each row of ``A`` to its constraint (-1: internal)."""

    P: sp.csc_matrix
    q: np.ndarray
    A: sp.csc_matrix
    lo: np.ndarray
    hi: np.ndarray
    n: int
    k: int
    need_t: bool
    owners: np.ndarray
    matrix_key: str
    x_mat: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    d: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: > 0: the last n variables ``p`` are epigraphs ``p_i >= t_i ** power_exponent`` of a
    #: power cost, which only a conic solver (ClarabelDirect) can take
    power_exponent: float = 0.0
    #: the risk model ``x_mat``/``d`` were built from, held (so its id cannot be recycled)
    #: and compared by identity before anything is recomputed or fingerprinted
    risk_src: Any = None
    risk_key: str = ""
    #: ``_on_factor_rows`` answers per source matrix (held) for this ``x_mat``
    row_memo: dict[int, tuple[Any, Any]] = field(default_factory=dict)


def _risk_blocks(inputs: PortfolioInputs) -> tuple[np.ndarray, np.ndarray]:
    risk = inputs.risk
    if isinstance(risk, FactorCovariance):
        return factor_loadings(risk), risk.specific_variance
    assert isinstance(risk, np.ndarray)
    return dense_sqrt(risk).T, np.zeros(inputs.n)


def _on_factor_rows(rows: list[_Row], x_mat: np.ndarray, b: np.ndarray,
                    memo: dict[int, tuple[Any, Any]] | None = None
                    ) -> tuple[list[_Row], list[sp.csr_matrix]]:
    """Dense row blocks on ``w`` that lie in the row space of ``X`` (factor exposure bounds:
    ``B' = L'^-1 X``) are rewritten as K-wide rows on ``y = X (w - b)``: ``M w = T y + T X b``
    with ``T = M X^+``. Decided by content (the residual of ``T X = M``), not by class; a
    (K, N) dense block becomes (K, K), which an interior-point KKT system feels."""
    k, n = x_mat.shape
    out_rows, out_mats = [], []
    gram: np.ndarray | None = None  # X X', formed only when a row block needs it (K^2 N)
    for r in rows:
        src = r.matrix()
        m = src if isinstance(src, sp.csr_matrix) else sp.csr_matrix(src)
        if k and r.block == "w" and m.nnz >= 0.5 * m.shape[0] * n:
            # ``memo`` (kept by the caller for one ``x_mat``) holds each source matrix with its
            # answer, so a matrix object seen before (same model) is not solved again
            hit = memo.get(id(src)) if memo is not None else None
            if hit is not None and hit[0] is src:
                t = hit[1]
            else:
                dense = m.toarray()
                if gram is None:
                    gram = x_mat @ x_mat.T
                try:
                    t = np.linalg.solve(gram, x_mat @ dense.T).T
                except np.linalg.LinAlgError:
                    t = None
                if t is not None and np.abs(t @ x_mat - dense).max() > 1e-10 * max(
                        1.0, float(np.abs(dense).max())):
                    t = None
                if memo is not None:
                    if len(memo) >= 64:  # rows rebuilt every solve (a beta row) never hit
                        memo.clear()
                    memo[id(src)] = (src, t)
            if t is not None:
                shift = t @ (x_mat @ b) if np.any(b) else np.zeros(t.shape[0])
                out_rows.append(_Row(r.owner, _const(sp.csr_matrix(t)), r.lo - shift,
                                     r.hi - shift, "y"))
                out_mats.append(sp.csr_matrix(t))
                continue
        out_rows.append(r)
        out_mats.append(m)
    return out_rows, out_mats


def assemble(s: _Spec, inputs: PortfolioInputs, cached: QP | None) -> QP:
    """Vectors always; matrices only when their inputs changed (else reuse ``cached``)."""
    n = s.n
    need_t = s.need_t or s.power is not None
    nt = n if need_t else 0
    npw = n if s.power is not None else 0  # epigraph p >= |t|^e of a power cost (cones)
    # the cached blocks are reused only for the very object they were built from (held by the
    # cache, so a dropped model's id cannot be recycled); any other object is rebuilt and
    # compared by content (the fingerprint below)
    risk = inputs.risk if s.gamma else None
    if cached is not None and risk is not None and cached.risk_src is risk:
        x_mat, d, risk_key = cached.x_mat, cached.d, cached.risk_key
    elif s.gamma:
        x_mat, d = _risk_blocks(inputs)
        risk_key = fingerprint(x_mat, d)
    else:
        x_mat, d, risk_key = np.zeros((0, n)), np.zeros(n), ""
    b = np.zeros(n) if s.offset is None else s.offset
    memo = cached.row_memo if cached is not None and cached.x_mat is x_mat else {}
    rows, mats = _on_factor_rows(s.rows, x_mat, b, memo)
    shape = [np.array([r.owner, "wyt".index(r.block), len(r.lo)]) for r in rows]
    key = fingerprint(np.frombuffer(risk_key.encode(), dtype=np.uint8),
                      np.array([s.gamma, nt, npw, s.exponent]), *shape,
                      *[a for m in mats for a in (m.data, m.indices, m.indptr)])
    k = x_mat.shape[0]
    assert s.q_w is not None and s.cost_t is not None
    q = np.concatenate([s.q_w - 2 * s.gamma * d * b, np.zeros(k),
                        s.cost_t if need_t else np.zeros(0),
                        s.power if s.power is not None else np.zeros(0)])
    xb = x_mat @ b if s.offset is not None else np.zeros(k)  # (a dense X is N x N)
    lo = [s.lb, xb]
    hi = [s.ub, xb]
    owners = [np.full(n, -2), np.full(k, -1)]
    if need_t:
        lo += [-inputs.current, inputs.current]
        hi += [np.full(n, INF), np.full(n, INF)]
        owners += [np.full(2 * n, -1)]
    for r in rows:
        lo.append(np.asarray(r.lo, dtype=np.float64))
        hi.append(np.asarray(r.hi, dtype=np.float64))
        owners.append(np.full(len(r.lo), r.owner))
    lo_v, hi_v = np.concatenate(lo), np.concatenate(hi)
    if cached is not None and cached.matrix_key == key:
        return QP(cached.P, q, cached.A, lo_v, hi_v, n, k, need_t, cached.owners, key,
                  x_mat, d, s.exponent if npw else 0.0, risk, risk_key, memo)
    p = sp.block_diag([sp.diags(2 * s.gamma * d), 2 * s.gamma * sp.identity(k),
                       sp.csr_matrix((nt + npw, nt + npw))], format="csc")
    eye = sp.identity(n, format="csr")
    z_nk, z_kt = sp.csr_matrix((n, k)), sp.csr_matrix((k, nt))

    def zp(rows: int) -> sp.csr_matrix:
        return sp.csr_matrix((rows, npw))

    blocks: list[list[Any]] = [[eye, z_nk, sp.csr_matrix((n, nt)), zp(n)],
                               [sp.csr_matrix(x_mat), -sp.identity(k), z_kt, zp(k)]]
    if need_t:
        blocks += [[-eye, z_nk, eye, zp(n)], [eye, z_nk, eye, zp(n)]]
    for r, m in zip(rows, mats, strict=True):
        mr = m.shape[0]
        blk = {"w": sp.csr_matrix((mr, n)), "y": sp.csr_matrix((mr, k)),
               "t": sp.csr_matrix((mr, nt))}
        blk[r.block] = m
        blocks.append([blk["w"], blk["y"], blk["t"], zp(mr)])
    a = sp.bmat(blocks, format="csc")
    return QP(p, q, a, lo_v, hi_v, n, k, need_t, np.concatenate(owners), key, x_mat, d,
              s.exponent if npw else 0.0, risk, risk_key, memo)


class OSQPDirect:
    """OSQP on the cached QP, warm-started between solves."""

    name = "OSQP-direct"

    def __init__(self, **settings: Any) -> None:
        self.settings = {"eps_abs": 1e-7, "eps_rel": 1e-7, "max_iter": 20_000,
                         "polishing": True, "verbose": False, "warm_starting": True,
                         **settings}
        self._solver: Any = None
        self._key: str | None = None
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None

    def solve(self, qp: QP) -> tuple[str, np.ndarray | None, np.ndarray | None]:
        import osqp

        if qp.power_exponent:
            return "not_applicable: power cost", None, None

        lo = np.maximum(qp.lo, -1e30)
        hi = np.minimum(qp.hi, 1e30)
        if self._solver is None or self._key != qp.matrix_key:
            self._solver = osqp.OSQP()
            self._solver.setup(qp.P, qp.q, qp.A, lo, hi, **self.settings)
            self._key = qp.matrix_key
            if self._x is not None and self._x.size == qp.P.shape[0] \
                    and self._y is not None and self._y.size == qp.A.shape[0]:
                self._solver.warm_start(x=self._x, y=self._y)
        else:
            self._solver.update(q=qp.q, l=lo, u=hi)
        res = self._solver.solve()
        status = str(res.info.status).lower()
        if "solved" not in status or "inaccurate" in status or res.x is None \
                or not np.all(np.isfinite(res.x)):
            self._x = self._y = None
            return status, None, None
        self._x, self._y = res.x.copy(), res.y.copy()
        return "solved", res.x, res.y


class ClarabelDirect:
    """Clarabel interior point on the same QP; the solver (KKT structure, symbolic
    factorisation) is kept and only ``q`` and ``b`` are updated when the matrices are."""

    name = "CLARABEL-direct"
    #: takes the power cones of an impact cost (see ``QP.power_exponent``)
    cones = True

    def __init__(self, **settings: Any) -> None:
        self.settings = {"verbose": False, "tol_gap_abs": 1e-12, "tol_gap_rel": 1e-10,
                         "tol_feas": 1e-10, "tol_ktratio": 1e-8, "presolve_enable": False,
                         "iterative_refinement_enable": False,
                         **settings}
        self._solver: Any = None
        self._key: tuple[str, bytes] | None = None

    def solve(self, qp: QP) -> tuple[str, np.ndarray | None, np.ndarray | None]:
        import clarabel

        eq = np.isfinite(qp.lo) & np.isfinite(qp.hi) & (qp.lo == qp.hi)
        up = np.isfinite(qp.hi) & ~eq
        dn = np.isfinite(qp.lo) & ~eq
        nv = qp.P.shape[0]
        npw = qp.n if qp.power_exponent else 0
        # power cones (p_i, 1, t_i): p_i^(1/e) >= |t_i|, i.e. p_i >= |t_i|^e
        b_cone = np.tile([0.0, 1.0, 0.0], npw)
        b_all = np.concatenate([qp.hi[eq], qp.hi[up], -qp.lo[dn], b_cone])
        key = (qp.matrix_key, np.packbits(np.concatenate([eq, up, dn])).tobytes())
        if self._solver is not None and key == self._key:
            self._solver.update(q=qp.q, b=b_all)
        else:
            a = qp.A.tocsr()
            parts = [a[eq], a[up], -a[dn]]
            if npw:
                t0, p0 = nv - 2 * npw, nv - npw
                i = np.arange(npw)
                rows = np.concatenate([3 * i, 3 * i + 2])
                cols = np.concatenate([p0 + i, t0 + i])
                parts.append(sp.csr_matrix((-np.ones(2 * npw), (rows, cols)),
                                           shape=(3 * npw, nv)))
            a_all = sp.vstack(parts, format="csc")
            cones = []
            if eq.any():
                cones.append(clarabel.ZeroConeT(int(eq.sum())))
            if up.any() or dn.any():
                cones.append(clarabel.NonnegativeConeT(int(up.sum() + dn.sum())))
            if npw:
                cones += [clarabel.PowerConeT(1.0 / qp.power_exponent)] * npw
            st = clarabel.DefaultSettings()
            for k, v in self.settings.items():
                setattr(st, k, v)
            self._solver = clarabel.DefaultSolver(sp.triu(qp.P, format="csc"), qp.q, a_all,
                                                  b_all, cones, st)
            self._key = key
        sol = self._solver.solve()
        status = str(sol.status)
        if status not in ("Solved", "AlmostSolved") or not np.all(np.isfinite(sol.x)):
            return status.lower(), None, None
        z = np.asarray(sol.z)[:len(sol.z) - 3 * npw]
        y = np.zeros(qp.A.shape[0])
        ne, nu = int(eq.sum()), int(up.sum())
        y[eq] = z[:ne]
        y[up] += z[ne:ne + nu]
        y[dn] -= z[ne + nu:]
        return "solved", np.asarray(sol.x), y


class PDASDirect:
    """Primal-dual active set (semismooth Newton) for box + budget + factor risk problems.

    Applies when the QP is ``min gamma w'(D + B F B')w - alpha'w`` with per-name bounds and at
    most one budget row (long-only with caps, per-name turnover and liquidity boxes): each
    iteration fixes the names at a bound, solves the free names' KKT system with Woodbury
    (O(N K^2), nothing N x N) and updates the active sets from the multipliers; identical sets
    twice in a row satisfy all KKT conditions. A re-solve starts from the previous active set,
    so a small change converges in a few iterations. Anything else returns None (the next
    direct solver takes it) and non-convergence returns a failure, never a wrong answer: the
    engine verifies the weights against every constraint as for any solver.
    """

    name = "PDAS-direct"

    def __init__(self, max_iter: int = 50, tol: float = 1e-10) -> None:
        self.max_iter, self.tol = max_iter, tol
        self._w: np.ndarray | None = None
        self._mu: np.ndarray | None = None

    def solve(self, qp: QP) -> tuple[str, np.ndarray | None, np.ndarray | None]:
        return "not_applicable", None, None

    def solve_structured(self, s: _Spec, inputs: PortfolioInputs) -> Answer | None:
        """An :class:`Answer`, or None when not applicable."""
        got = self._solve(s, inputs)
        if got is None:
            return None
        status, w, mu, nu = got
        budget = [r.owner for r in s.rows]
        rows = {budget[0]: abs(nu)} if budget and w is not None else {}
        return Answer(status, w, np.abs(mu) if w is not None else np.zeros(s.n), rows)

    def _solve(self, s: _Spec, inputs: PortfolioInputs
               ) -> tuple[str, np.ndarray | None, np.ndarray, float] | None:
        """(status, w, mu per name, nu of the budget row) or None when not applicable."""
        fc = inputs.risk
        if (not isinstance(fc, FactorCovariance) or s.need_t or not s.gamma
                or s.power is not None
                or s.offset is not None or np.any(fc.specific_variance <= 0)):
            return None
        budget = [r for r in s.rows if r.block == "w"]
        if len(budget) > 1 or (budget and not (
                budget[0].lo.size == 1 and budget[0].lo[0] == budget[0].hi[0]
                and sp.csr_matrix(budget[0].matrix()).nnz == s.n
                and np.all(sp.csr_matrix(budget[0].matrix()).data == 1.0))):
            return None
        if np.any(s.lb > s.ub):
            return "infeasible", None, np.zeros(0), 0.0
        assert s.q_w is not None
        target = float(budget[0].lo[0]) if budget else None
        g2 = 2.0 * s.gamma
        b, f, d = fc.exposures, fc.factor_covariance, fc.specific_variance
        q = s.q_w
        lb, ub = s.lb, s.ub

        def hmul(v: np.ndarray) -> np.ndarray:
            return g2 * fc.matvec(v)

        c = float(np.mean(g2 * fc.diag()))
        n = s.n
        w = self._w if self._w is not None and self._w.size == n else np.clip(
            np.full(n, 0.0 if target is None else target / n), lb, ub)
        mu = self._mu if self._mu is not None and self._mu.size == n else np.zeros(n)
        prev: tuple[bytes, bytes] | None = None
        for _ in range(self.max_iter):
            up = (mu + c * (w - ub) > 0) & np.isfinite(ub)
            lo = (mu + c * (w - lb) < 0) & np.isfinite(lb) & ~up
            free = ~(up | lo)
            if target is not None and not free.any():
                # every name at a bound cannot meet a budget in general: free the name
                # whose active-set test was the least decisive
                score = np.where(up, mu + c * (w - ub), -(mu + c * (w - lb)))
                i = int(np.argmin(score))
                up[i] = lo[i] = False
                free[i] = True
            key = (np.packbits(up).tobytes(), np.packbits(lo).tobytes())
            w_a = np.where(up, ub, np.where(lo, lb, 0.0))
            rhs = -(q + hmul(w_a))[free]
            bf, df = b[free], d[free]
            gd = bf / df[:, None]
            m = np.eye(f.shape[0]) + f @ (bf.T @ gd)
            cols = np.column_stack([rhs, np.ones(int(free.sum()))])
            xd = cols / df[:, None]
            sol = (xd - gd @ np.linalg.solve(m, f @ (bf.T @ xd))) / g2
            x_r, x_e = sol[:, 0], sol[:, 1]
            nu = 0.0
            if target is not None:
                denom = float(x_e.sum())
                if abs(denom) < 1e-300:
                    return "singular", None, np.zeros(0), 0.0
                nu = (float(x_r.sum()) + float(w_a.sum()) - target) / denom
            w = w_a.copy()
            w[free] = x_r - nu * x_e
            mu = -(hmul(w) + q + nu)
            mu[free] = 0.0
            if key == prev:
                ok_w = np.all(w <= ub + 1e-9) and np.all(w >= lb - 1e-9)
                ok_mu = np.all(mu[up] >= -self.tol) and np.all(mu[lo] <= self.tol)
                if ok_w and ok_mu:
                    self._w, self._mu = w.copy(), mu.copy()
                    return "solved", w, mu, nu
            prev = key
        self._w = self._mu = None
        return "max_iter", None, np.zeros(0), 0.0
