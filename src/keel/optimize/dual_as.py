"""A warm-started dual active-set solver for the full factor-form desk problem.

The direct QP of :mod:`keel.optimize.fastqp` with a factor risk model,

    minimise   sum_i [gamma d_i (w_i - b_i)^2 + q_i w_i + c_i |w_i - w0_i|] + gamma ||y||^2
    subject to lb <= w <= ub,  X w - y = X b  (mu),  lo <= M w <= hi  (rows on w),
               lo <= T y <= hi  (rows on y, e.g. factor bounds),
               A |w - w0| <= hi  (rows on |trade|, A >= 0: turnover),

is strictly convex and *separable per name* once the coupling rows are dualised: for fixed
multipliers ``z`` each ``w_i`` is a clipped soft-threshold around ``w0_i`` (the L1 cost and the
turnover multipliers widen the no-trade band) and ``y`` is a closed form. The dual has only
``K + m`` variables (K factors, m coupling rows: budget, sectors, beta, factor bounds,
turnover; a few dozen), so a semismooth Newton step is one ``(K+m) x (K+m)`` solve built in
``O(N (K+m)^2)``; nothing N x N is formed and no KKT system of size N is factorised.

Each iteration fixes the current *pieces* (names at a bound, at their current holding, buying
or selling freely; rows at their upper/lower bound or inactive, by the primal-dual active-set
rule) and solves the piece's linear system for the multipliers. The same pieces twice in a row
satisfy every KKT condition exactly (up to rounding), which is checked before returning. A
re-solve starts from the previous multipliers, so a new alpha or new holdings usually settles in
two to five iterations. The method is not globally convergent: a cycle or the iteration cap
returns a failure (never a wrong answer) and the next direct solver (Clarabel) takes the
problem; its answer then *seeds* this solver's multipliers (:meth:`DualActiveSet.seed`, a least
squares crossover on the answer's pieces) for the next re-solve.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from keel.optimize.fastqp import Answer, _on_factor_rows, _Spec
from keel.optimize.inputs import PortfolioInputs
from keel.risk.base import FactorCovariance

EQ, INEQ, ABS = 0, 1, 2


@dataclass
class _Struct:
    """The constant part of a problem: matrices by dual row, kept between solves."""

    risk: FactorCovariance  # held (kept alive) and compared by identity first
    x_mat: np.ndarray  # (K, N)
    d: np.ndarray  # (N,)
    gamma: float
    raw: list[tuple[int, str, sp.csr_matrix]]  # the rows' source matrices (content check)
    ew: np.ndarray  # (K + m_w, N): X then rows on w
    ty: np.ndarray  # (m_y, K): rows on y
    at: np.ndarray  # (m_t, N): rows on |trade|
    owners: np.ndarray  # (m,) constraint index (-1: the factor rows)
    blocks: list[str]  # block of each spec row after the factor rewrite (w / y / t)
    k: int
    m_w: int
    m_y: int
    m_t: int


def _csr(m: sp.spmatrix) -> sp.csr_matrix:
    return m if isinstance(m, sp.csr_matrix) else sp.csr_matrix(m)


def _same_matrix(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    if a is b:
        return True
    return (a.shape == b.shape and np.array_equal(a.indptr, b.indptr)
            and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data))


class DualActiveSet:
    """Semismooth Newton / primal-dual active set on the dual of the factor-form QP.

    Applies to: a :class:`FactorCovariance` risk with every specific variance > 0, a risk
    aversion > 0, linear and L1 (|trade|) costs, per-name bounds and any linear rows on the
    weights, on the factor exposures or on |trade| (no power cost). Anything else returns
    None (the next direct solver takes it).

    Args:
        max_iter: Newton steps before giving up (the problem then goes to the next solver).
        tol: accepted residual of the active rows (NAV units) at convergence.
    """

    name = "DUALAS-direct"

    def __init__(self, max_iter: int = 40, tol: float = 1e-9) -> None:
        self.max_iter, self.tol = max_iter, tol
        self._st: _Struct | None = None
        self._z: np.ndarray | None = None
        self.last_iterations = 0
        #: seconds spent building the structure in the last solve (0: reused)
        self.last_build_s = 0.0

    def solve(self, qp: object) -> tuple[str, None, None]:
        return "not_applicable", None, None

    # ------------------------------------------------------------------ structure

    def _struct(self, s: _Spec, inputs: PortfolioInputs) -> _Struct | None:
        fc = inputs.risk
        if (not isinstance(fc, FactorCovariance) or not s.gamma or s.power is not None
                or fc.n_assets != s.n):
            return None
        raw = [(r.owner, r.block, _csr(r.matrix())) for r in s.rows]
        st = self._st
        if st is not None and st.gamma == s.gamma and len(st.raw) == len(raw) and all(
                o1 == o2 and b1 == b2 and _same_matrix(m1, m2)
                for (o1, b1, m1), (o2, b2, m2) in zip(st.raw, raw, strict=True)):
            if st.risk is fc:
                return st
            if (np.array_equal(st.risk.exposures, fc.exposures)
                    and np.array_equal(st.risk.factor_covariance, fc.factor_covariance)
                    and np.array_equal(st.risk.specific_variance, fc.specific_variance)):
                st.risk = fc  # same content: hold the new object
                return st
        d = fc.specific_variance
        if np.any(d <= 0):
            return None
        from keel.optimize.build import factor_loadings

        x_mat = factor_loadings(fc)
        b = np.zeros(s.n) if s.offset is None else s.offset
        rows, mats = _on_factor_rows(s.rows, x_mat, b)
        k = x_mat.shape[0]
        w_rows, y_rows, t_rows = [], [], []
        own_w, own_y, own_t = [], [], []
        for r, m in zip(rows, mats, strict=True):
            dense = m.toarray()
            if r.block == "t":
                if np.any(dense < 0) or np.any(np.isfinite(r.lo)):
                    return None
                t_rows.append(dense)
                own_t.append(np.full(len(r.lo), r.owner))
            elif r.block == "y":
                y_rows.append(dense)
                own_y.append(np.full(len(r.lo), r.owner))
            else:
                w_rows.append(dense)
                own_w.append(np.full(len(r.lo), r.owner))
        n = s.n
        ew = np.vstack([x_mat, *w_rows]) if w_rows else x_mat.copy()
        ty = np.vstack(y_rows) if y_rows else np.zeros((0, k))
        at = np.vstack(t_rows) if t_rows else np.zeros((0, n))
        owners = np.concatenate([np.full(k, -1), *own_w, *own_y, *own_t]).astype(int)
        self._st = _Struct(fc, x_mat, d, float(s.gamma), raw, np.ascontiguousarray(ew),
                           ty, np.ascontiguousarray(at), owners,
                           [r.block for r in rows], k, ew.shape[0] - k, ty.shape[0],
                           at.shape[0])
        self._z = None
        return self._st

    @staticmethod
    def _targets(st: _Struct, s: _Spec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lo, hi, kind) per dual row for this solve (row bounds are data, not structure);
        rows rewritten onto ``y`` get their shift ``T X b`` back (see ``_on_factor_rows``)."""
        b = np.zeros(s.n) if s.offset is None else s.offset
        xb = st.x_mat @ b if s.offset is not None else np.zeros(st.k)
        wl, wh, yl, yh, tl, th = [], [], [], [], [], []
        ycount = 0
        for blk, r in zip(st.blocks, s.rows, strict=True):
            lo, hi = np.asarray(r.lo, dtype=np.float64), np.asarray(r.hi, dtype=np.float64)
            if blk == "t":
                tl.append(lo)
                th.append(hi)
            elif blk == "y":
                shift = st.ty[ycount:ycount + len(lo)] @ xb
                yl.append(lo - shift)
                yh.append(hi - shift)
                ycount += len(lo)
            else:
                wl.append(lo)
                wh.append(hi)
        lo_v = np.concatenate([xb, *wl, *yl, *tl])
        hi_v = np.concatenate([xb, *wh, *yh, *th])
        kind = np.where(np.isfinite(lo_v) & (lo_v == hi_v), EQ, INEQ)
        kind[len(kind) - st.m_t:] = ABS
        kind[:st.k] = EQ
        return lo_v, hi_v, kind

    # ------------------------------------------------------------------ the pieces

    def solve_structured(self, s: _Spec, inputs: PortfolioInputs) -> Answer | None:
        t0 = time.perf_counter()
        old = self._st
        st = self._struct(s, inputs)
        self.last_build_s = time.perf_counter() - t0 if st is not old else 0.0
        if st is None:
            return None
        n = s.n
        if np.any(s.lb > s.ub):
            return Answer("infeasible: bounds", None, np.zeros(n), {})
        lo, hi, kind = self._targets(st, s)
        assert s.q_w is not None and s.cost_t is not None
        g2 = 2.0 * st.gamma
        a = g2 * st.d
        b = np.zeros(n) if s.offset is None else s.offset
        prob = _Problem(st, s.q_w - a * b, s.cost_t, s.lb, s.ub, inputs.current, a, lo, hi,
                        kind)
        m = len(st.owners)
        z = self._z if self._z is not None and self._z.size == m else np.zeros(m)
        prev: tuple[bytes, ...] | None = None
        p = prob.at(prob.project(z))
        for it in range(self.max_iter):
            p.prepare()
            if p.key == prev and p.converged(self.tol):
                self._z = p.z.copy()
                self.last_iterations = it
                return Answer("solved", p.w, p.name_duals(), p.row_duals())
            prev = p.key
            nxt = None
            scale = float(np.max(np.diag(p.j), initial=1.0))
            for lam in (0.0, 1e-10 * scale, 1e-7 * scale, 1e-4 * scale, 1e-1 * scale):
                z_new = p.newton(lam)
                if z_new is not None:
                    nxt = prob.search(p, z_new)
                if nxt is not None:
                    break
            if nxt is None:
                break
            p = nxt
        self._z = None
        self.last_iterations = self.max_iter
        return Answer("max_iter", None, np.zeros(n), {})

    def seed(self, s: _Spec, inputs: PortfolioInputs, w: np.ndarray) -> None:
        """Multipliers for the next re-solve from another solver's answer ``w`` (a least
        squares fit of the stationarity conditions on ``w``'s pieces)."""
        st = self._struct(s, inputs)
        if st is None or np.any(s.lb > s.ub):
            return
        assert s.q_w is not None and s.cost_t is not None
        lo, hi, kind = self._targets(st, s)
        n = s.n
        a = 2.0 * st.gamma * st.d
        b = np.zeros(n) if s.offset is None else s.offset
        prob = _Problem(st, s.q_w - a * b, s.cost_t, s.lb, s.ub, inputs.current, a, lo, hi,
                        kind)
        self._z = prob.crossover(np.asarray(w, dtype=np.float64))


class _Problem:
    """One solve's data (vectors) over a structure."""

    def __init__(self, st: _Struct, q: np.ndarray, c: np.ndarray, lb: np.ndarray,
                 ub: np.ndarray, w0: np.ndarray, a: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray, kind: np.ndarray) -> None:
        self.kind = kind
        self.st, self.q, self.c, self.lb, self.ub, self.w0, self.a = st, q, c, lb, ub, w0, a
        self.inv_a = 1.0 / a
        self.lo, self.hi = lo, hi
        self.lo_fin = np.where(np.isfinite(lo), lo, 0.0)
        self.hi_fin = np.where(np.isfinite(hi), hi, 0.0)
        ineq = kind != EQ
        self.z_lo = np.where(ineq & ~np.isfinite(lo), 0.0, -np.inf)
        self.z_hi = np.where(ineq & ~np.isfinite(hi), 0.0, np.inf)
        k, mw, my = st.k, st.m_w, st.m_y
        self.i_lin = slice(0, k + mw)
        self.i_y = np.r_[np.arange(k), np.arange(k + mw, k + mw + my)]
        self.i_t = slice(k + mw + my, k + mw + my + st.m_t)
        self.m = len(st.owners)
        # the y block of the dual Hessian: Ey Ey' / (2 gamma), Ey = [-I; 0; T; 0]
        ey = np.zeros((self.m, k))
        ey[:k] = -np.eye(k)
        ey[k + mw:k + mw + my] = st.ty
        self.ey = ey
        self.jy = ey @ ey.T / (2.0 * st.gamma)

    def inner(self, z: np.ndarray) -> _Point:
        st = self.st
        tau = np.maximum(z[self.i_t], 0.0)
        g = self.q + st.ew.T @ z[self.i_lin]
        kap = self.c + st.at.T @ tau if st.m_t else self.c
        # buy at wb (> w0), sell at ws (< w0) or hold: wb <= ws since kap >= 0, so the
        # unclipped minimiser is w0 clipped to [wb, ws]
        wb = -(g + kap) * self.inv_a
        ws = wb + 2.0 * kap * self.inv_a
        u = np.minimum(np.maximum(self.w0, wb), ws)
        buy = u > self.w0
        sell = u < self.w0
        w = np.minimum(np.maximum(u, self.lb), self.ub)
        free = (buy | sell) & (u > self.lb) & (u < self.ub)
        y = -(self.ey.T @ z) / (2.0 * st.gamma)
        return _Point(self, z, w, y, g, kap, buy, sell, free)

    def at(self, z: np.ndarray) -> _Point:
        return self.inner(z)

    def project(self, z: np.ndarray) -> np.ndarray:
        """Multipliers with a sign the row allows (>= 0 on a row with no finite lower
        bound and on |trade| rows, <= 0 on a row with no finite upper bound)."""
        return np.minimum(np.maximum(z, self.z_lo), self.z_hi)

    def search(self, p: _Point, z_new: np.ndarray) -> _Point | None:
        """The full Newton step when it raises the dual, else a backtracking by quadratic
        interpolation (the dual is concave and piecewise quadratic along the step)."""
        step = z_new - p.z
        if not np.any(step):
            return None  # no move on a singular piece: the caller shifts (LM) and retries
        up = (p.z > 0) | ((p.z == 0) & (step > 0))
        slope = float(step @ (p.r - np.where(up, self.hi_fin, self.lo_fin)))
        t = 1.0
        for _ in range(16 if slope > 0 else 4):
            q = self.at(self.project(p.z + t * step))
            gain = q.phi - p.phi
            if gain > 0 or (gain == 0 and t == 1.0):
                return q
            if slope > 0:  # maximiser of the quadratic through phi(0), phi'(0), phi(t)
                t_new = slope * t * t / (2.0 * (slope * t - gain))
                t = min(max(t_new, 0.02 * t), 0.5 * t)
            else:
                t *= 0.5
            if t < 1e-14:
                break
        return None

    def residual(self, w: np.ndarray, y: np.ndarray) -> np.ndarray:
        st = self.st
        r_lin = st.ew @ w
        r_lin[:st.k] -= y
        return np.concatenate([r_lin, st.ty @ y, st.at @ np.abs(w - self.w0)])

    def jacobian(self, free: np.ndarray, sgn: np.ndarray) -> np.ndarray:
        """``J = E_F diag(1/a_F) E_F' + Ey Ey'/(2 gamma)`` with ``E = [Ew; 0; sgn * A]``:
        ``R(z') = R(z) - J (z' - z)`` while the pieces do not change."""
        st = self.st
        fi = np.flatnonzero(free)
        inv = self.inv_a[fi]
        j = self.jy.copy()
        e_lin = st.ew[:, fi]
        lin = self.i_lin
        j[lin, lin] += (e_lin * inv) @ e_lin.T
        if st.m_t:
            e_t = st.at[:, fi] * sgn[fi]
            cross = (e_lin * inv) @ e_t.T
            j[lin, self.i_t] += cross
            j[self.i_t, lin] += cross.T
            j[self.i_t, self.i_t] += (e_t * inv) @ e_t.T
        return j

    def crossover(self, w: np.ndarray) -> np.ndarray:
        """Least squares multipliers for a given optimum ``w``."""
        st = self.st
        tol = 1e-9
        x = w - self.w0
        sgn = np.where(x > tol, 1.0, np.where(x < -tol, -1.0, 0.0))
        free = (sgn != 0) & (w > self.lb + tol) & (w < self.ub - tol)
        y = st.x_mat @ w - self.lo[:st.k]  # y = X (w - b) = X w - X b
        r = self.residual(w, y)
        act = (self.kind == EQ) | (np.abs(r - self.hi) <= 1e-8) | (np.abs(r - self.lo) <= 1e-8)
        fi = np.flatnonzero(free)
        # stationarity of free names: e_i' z = -(a_i w_i + q_i + sgn_i c_i)
        e = np.zeros((self.m, len(fi)))
        e[self.i_lin] = st.ew[:, fi]
        if st.m_t:
            e[self.i_t] = st.at[:, fi] * sgn[fi]
        rhs_w = -(self.a[fi] * w[fi] + self.q[fi] + sgn[fi] * self.c[fi])
        # stationarity of y: 2 gamma y + Ey' z = 0
        lhs = np.vstack([e.T, self.ey.T])[:, act]
        rhs = np.concatenate([rhs_w, -2.0 * st.gamma * y])
        z = np.zeros(self.m)
        if act.any():
            z[act] = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
        if st.m_t:
            z[self.i_t] = np.maximum(z[self.i_t], 0.0)
        return z


class _Point:
    """The inner minimiser at multipliers ``z`` and its pieces."""

    def __init__(self, pr: _Problem, z: np.ndarray, w: np.ndarray, y: np.ndarray,
                 g: np.ndarray, kap: np.ndarray, buy: np.ndarray, sell: np.ndarray,
                 free: np.ndarray) -> None:
        self.pr, self.z, self.w, self.y, self.g, self.kap = pr, z, w, y, g, kap
        self.free = free
        self.buy, self.sell = buy, sell
        self.sgn = np.sign(w - pr.w0)
        self.r = pr.residual(w, y)
        # the dual value: the Lagrangian at the inner minimiser minus the support terms
        lag = (float(w @ (0.5 * pr.a * w + pr.q)) + float(pr.c @ np.abs(w - pr.w0))
               + pr.st.gamma * float(y @ y) + float(z @ self.r))
        self.phi = lag - float(z @ np.where(z > 0, pr.hi_fin, pr.lo_fin))

    def prepare(self) -> None:
        """The piece's Jacobian, the rows' active sets and the key of the pieces."""
        pr = self.pr
        self.j = pr.jacobian(self.free, self.sgn)
        diag = np.diag(self.j)
        cst = 1.0 / np.where(diag > 1e-300, diag, 1.0)
        kind, z = pr.kind, self.z
        up = (kind != EQ) & (z + cst * (self.r - pr.hi) > 0)
        dn = (kind == INEQ) & ~up & (z + cst * (self.r - pr.lo) < 0)
        self.up, self.dn = up, dn
        self.act = (kind == EQ) | up | dn
        self.tgt = np.where(up, pr.hi, pr.lo)
        at_ub = self.w >= pr.ub
        self.key = (np.packbits(self.free).tobytes(), np.packbits(self.buy).tobytes(),
                    np.packbits(self.sell).tobytes(), np.packbits(at_ub).tobytes(),
                    np.packbits(up).tobytes(), np.packbits(dn).tobytes())

    def newton(self, lam: float = 0.0) -> np.ndarray | None:
        """Multipliers solving the current piece's system (rows of the active set at their
        target, the others at 0); ``lam`` > 0 adds a Levenberg-Marquardt shift for pieces
        where a row has no curvature (no free name in it)."""
        act = self.act
        z_new = np.zeros_like(self.z)
        if not act.any():
            return z_new
        ja = self.j[np.ix_(act, act)]
        rhs = (self.r - self.tgt + self.j @ self.z)[act]
        if lam:
            ja = ja + lam * np.eye(len(ja))
            rhs = rhs + lam * self.z[act]
        try:
            sol = np.linalg.solve(ja, rhs)
            if not np.all(np.isfinite(sol)):
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            sol = np.linalg.lstsq(ja, rhs, rcond=None)[0]
        if not np.all(np.isfinite(sol)):
            return None
        z_new[act] = sol
        return z_new

    def converged(self, tol: float) -> bool:
        pr = self.pr
        act = self.act
        scale = np.maximum(1.0, np.abs(self.tgt))
        if np.any(np.abs(self.r - self.tgt)[act] > tol * scale[act]):
            return False
        ina = ~act
        if np.any(self.r[ina] > pr.hi[ina] + tol) or np.any(self.r[ina] < pr.lo[ina] - tol):
            return False
        if np.any(self.z[ina] != 0.0):
            return False
        return bool(np.all(self.z[self.up] >= 0) and np.all(self.z[self.dn] <= 0))

    def name_duals(self) -> np.ndarray:
        pr = self.pr
        grad = pr.a * self.w + self.g + self.kap * self.sgn
        bound = ~self.free & ((self.w <= pr.lb) | (self.w >= pr.ub))
        return np.where(bound, np.abs(grad), 0.0)

    def row_duals(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for o, v in zip(self.pr.st.owners, np.abs(self.z), strict=True):
            if o >= 0:
                out[int(o)] = max(out.get(int(o), 0.0), float(v))
        return out


class BackOff:
    """A structured direct solver (:class:`DualActiveSet`) that the direct chain stops
    trying for a while after it fails to settle a re-solve (``MeanVariance``'s default chain
    and the desk engines use it).

    A re-solve the warm-started dual active set cannot settle within its step cap costs that
    cap *and* the next solver's answer. With ``f`` failures outstanding (each failure adds
    one, each success pays one back) a failure makes the wrapper sit out the next
    ``min(2**f, max_skip)`` solves (it answers "not applicable", so the next direct solver
    takes them). On the S&P 500 daily run 40% of its re-solves hit the cap and even its
    settled ones took longer than Clarabel (docs/benchmarks.md), so it backs off hard.
    While it sits out, the accepted answers still reach its :meth:`seed` (its multipliers
    stay warm for the next try).
    Answers are never altered: each is the inner solver's or the next solver's, verified
    by the optimizer as always.
    """

    def __init__(self, inner: Any, max_skip: int = 256) -> None:
        self.inner, self.max_skip = inner, max_skip
        self.name: str = inner.name
        self.failures = 0  # in a row
        self.skip = 0  # solves still to sit out
        #: (tried, settled, sat out) over the engine's life
        self.counts = [0, 0, 0]

    @property
    def last_build_s(self) -> float:
        return float(getattr(self.inner, "last_build_s", 0.0))

    def solve(self, qp: object) -> Any:
        return self.inner.solve(qp)

    def solve_structured(self, spec: Any, inputs: PortfolioInputs) -> Any:
        if self.skip > 0:
            self.skip -= 1
            self.counts[2] += 1
            return None
        self.counts[0] += 1
        try:
            ans = self.inner.solve_structured(spec, inputs)
        except Exception:
            self._failed()
            raise
        if ans is not None:
            if ans.w is None:
                self._failed()
            else:  # one success pays back one failure (not all: a solver that fails
                self.failures = max(self.failures - 1, 0)  # often stays backed off)
                self.counts[1] += 1
        return ans

    def _failed(self) -> None:
        self.failures += 1
        self.skip = min(2 ** self.failures, self.max_skip)

    def seed(self, spec: Any, inputs: PortfolioInputs, w: np.ndarray) -> None:
        if self.skip > 1:  # only the seed just before the next attempt is ever used
            return
        self.inner.seed(spec, inputs, w)
