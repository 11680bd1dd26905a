"""Solver forms: what a constraint or a term is, written for a solver that is not CVXPY.

Every constraint owns three views of one rule: its CVXPY rows (``build``), its NumPy margins
(``margins``) and, here, its solver form (``solver_form``), a :class:`LinearForm`:

* per-name bounds ``lower <= w <= upper`` ((N,) arrays, or None);
* blocks of linear rows ``lo <= M v <= hi`` where ``v`` is the weights ``w`` or the absolute
  trades ``|w - w0|`` (``on="abs_trade"``, used by turnover: convex because the rows only cap
  it from above with ``M >= 0``).

``None`` is the documented "not linear" answer (a cone such as tracking error, a gross
exposure with shorts allowed): the direct path then steps aside and the CVXPY engine solves.
Terms answer with a :class:`TermForm` (linear, |trade| rates, a separable power of |trade|,
the quadratic risk), or None.

Units as everywhere in :mod:`keel.optimize`: weights and trades are fractions of NAV.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import scipy.sparse as sp

Block = Literal["w", "abs_trade"]


@dataclass(frozen=True)
class LinearRows:
    """``lo <= matrix @ v <= hi`` (``matrix`` (m, N) sparse; ``lo``/``hi`` (m,), +-inf free)."""

    matrix: sp.csr_matrix
    lo: np.ndarray
    hi: np.ndarray
    on: Block = "w"

    def __post_init__(self) -> None:
        m = self.matrix.shape[0]
        if self.lo.shape != (m,) or self.hi.shape != (m,):
            raise ValueError("lo/hi must have one entry per row")
        if self.on == "abs_trade" and (np.any(np.isfinite(self.lo))
                                       or (self.matrix.data < 0).any()):
            raise ValueError("rows on |trade| may only cap a non-negative combination")


@dataclass(frozen=True)
class LinearForm:
    """A constraint in solver form: bounds on ``w`` and linear rows."""

    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    rows: tuple[LinearRows, ...] = ()


@dataclass(frozen=True)
class TermForm:
    """A term in solver form, as a *minimisation* contribution (utility sign flipped).

    Attributes:
        linear: (N,) ``q`` with contribution ``q'w``.
        abs_trade: (N,) >= 0 rates on ``|w - w0|``.
        power: (N,) >= 0 coefficients of ``|w - w0| ** exponent``.
        exponent: the power's exponent (> 1).
        risk_aversion: ``gamma`` of ``gamma (w - b)' Sigma (w - b)`` (0: no risk term).
        benchmark_relative: ``b`` is ``inputs.benchmark`` (else 0).
    """

    linear: np.ndarray | None = None
    abs_trade: np.ndarray | None = None
    power: np.ndarray | None = None
    exponent: float = 1.0
    risk_aversion: float = 0.0
    benchmark_relative: bool = False


@lru_cache(maxsize=16)
def sum_row(n: int) -> sp.csr_matrix:
    """(1, N) row of ones, one shared object per N (read-only by convention: solver forms
    are never modified in place)."""
    return sp.csr_matrix((np.ones(n), np.arange(n, dtype=np.int32), np.array([0, n],
                                                                              dtype=np.int32)),
                         shape=(1, n))


def one(value: float) -> np.ndarray:
    return np.array([float(value)])
