"""Production caps on one solve attempt: a wall-clock time limit and an iteration cap.

A solver that reaches a cap stops and reports it; the engine records the attempt as ``limit``
in the result's ``fallback_trail`` (with which cap) and tries the next solver, then holds the
current weights, so a pathological problem can never stall a trading cycle. ``None`` leaves the
solver's own default. The same caps reach the direct-path solvers (Clarabel, OSQP, PIQP) under
their own option names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from keel.errors import ValidationError


@dataclass(frozen=True)
class SolverLimits:
    """Caps per solve attempt.

    Attributes:
        time_limit_s: wall seconds per attempt (> 0), or None.
        max_iter: iterations per attempt (interior-point or ADMM, >= 1), or None.
    """

    time_limit_s: float | None = None
    max_iter: int | None = None

    def __post_init__(self) -> None:
        t = self.time_limit_s
        if t is not None and not (math.isfinite(t) and t > 0):
            raise ValidationError("time limit must be a finite number of seconds > 0",
                                  field="time_limit_s", value=t)
        m = self.max_iter
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ValidationError("iteration cap must be an integer >= 1", field="max_iter",
                                  value=m)

    @property
    def active(self) -> bool:
        return self.time_limit_s is not None or self.max_iter is not None

    def describe(self) -> str:
        parts = []
        if self.time_limit_s is not None:
            parts.append(f"time limit {self.time_limit_s:g} s")
        if self.max_iter is not None:
            parts.append(f"iteration cap {self.max_iter}")
        return " / ".join(parts) or "no limits"

    def options(self, solver: str) -> dict[str, Any]:
        """The caps as ``solver``'s own options (CVXPY names: CLARABEL, OSQP, SCS, HIGHS; direct
        names: CLARABEL-direct, OSQP-direct, PIQP-direct)."""
        name = solver.upper().removesuffix("-DIRECT")
        t, m = self.time_limit_s, self.max_iter
        out: dict[str, Any] = {}
        if name in ("CLARABEL", "OSQP"):
            if t is not None:
                out["time_limit"] = t
            if m is not None:
                out["max_iter"] = m
        elif name == "SCS":
            if t is not None:
                out["time_limit_secs"] = t
            if m is not None:
                out["max_iters"] = m
        elif name == "HIGHS":
            if t is not None:
                out["time_limit"] = t
            if m is not None:
                out["simplex_iteration_limit"] = m
                out["ipm_iteration_limit"] = m
        elif name == "PIQP" and m is not None:
            out["max_iter"] = m
        return out
