"""PIQP on the direct QP: the second direct solver of the fast path (after Clarabel).

PIQP (proximal interior point, BSD-2, `pip install piqp`) takes the QP of
:func:`keel.optimize.fastqp.assemble` with the weight bounds as variable bounds, the equality
rows (budget, the factor rows ``X w - y = X b``) as ``A x = b`` and the rest as
``h_l <= G x <= h_u``. Measured on the full desk problem it needs the same 18-26 iterations as
Clarabel; it was cheaper per iteration while factor bounds were dense rows and is slightly
dearer now that they sit on ``y`` (docs/optimize.md), so it is the fallback, a different
algorithm before CVXPY. Its Ruiz preconditioner is switched off because on portfolio data
(entries 1e-4 to 1) it multiplied the iteration count by six.
The solver, with its symbolic factorisation, is kept while the matrices are unchanged (the
QP's content key): a re-solve updates vectors only. A buy/sell-split form (bounds instead of
the ``t >= |w - w0|`` rows) was tried and dropped: its dense rows act on twice the columns and
each iteration cost twice as much.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keel.optimize.fastqp import QP


class PIQPDirect:
    """PIQP on the cached QP (see the module docstring)."""

    name = "PIQP-direct"

    def __init__(self, **settings: Any) -> None:
        self.settings = {"eps_abs": 1e-11, "eps_rel": 1e-11, "max_iter": 200,
                         "preconditioner_iter": 0, **settings}
        self._solver: Any = None
        self._key: tuple[str, bytes] | None = None

    def solve(self, qp: QP) -> tuple[str, np.ndarray | None, np.ndarray | None]:
        import piqp

        if qp.power_exponent:
            return "not_applicable: power cost", None, None
        n = qp.n
        nv = qp.P.shape[0]
        x_l = np.full(nv, -np.inf)
        x_u = np.full(nv, np.inf)
        x_l[:n], x_u[:n] = qp.lo[:n], qp.hi[:n]  # the first n rows of A are w itself
        if np.any(x_l > x_u):
            return "infeasible", None, None
        lo, hi = qp.lo[n:], qp.hi[n:]
        eq = lo == hi
        key = (qp.matrix_key, np.packbits(eq).tobytes())
        args = dict(c=qp.q, b=lo[eq], h_l=lo[~eq], h_u=hi[~eq], x_l=x_l, x_u=x_u)
        if self._solver is None or key != self._key:
            a = qp.A.tocsr()[n:]
            self._solver = piqp.SparseSolver()
            for name, v in self.settings.items():
                setattr(self._solver.settings, name, v)
            self._solver.setup(qp.P, qp.q, a[eq].tocsc(), args["b"], a[~eq].tocsc(),
                               args["h_l"], args["h_u"], x_l, x_u)
            self._key = key
        else:
            self._solver.update(**args)
        status = self._solver.solve()
        if status != piqp.PIQP_SOLVED:
            self._key = None  # rebuild next time rather than trust a stalled state
            return str(status).lower(), None, None
        res = self._solver.result
        x = np.asarray(res.x)
        if not np.all(np.isfinite(x)):
            return "not_finite", None, None
        # duals in the QP's row order: bound rows first, then the rest (signs do not matter:
        # the engine reports |dual|)
        y = np.zeros(qp.A.shape[0])
        y[:n] = (np.asarray(res.z_bu) - np.asarray(res.z_bl))[:n]
        rest = np.zeros(len(lo))
        rest[eq] = np.asarray(res.y)
        rest[~eq] = np.asarray(res.z_u) - np.asarray(res.z_l)
        y[n:] = rest
        return "solved", x, y
