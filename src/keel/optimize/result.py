"""`OptimizationResult`: target weights with the explanation of how they were reached."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd


class OptimizationStatus(StrEnum):
    OPTIMAL = "optimal"
    OPTIMAL_INACCURATE = "optimal_inaccurate"
    #: every solver failed: the safe portfolio (current weights) is returned
    HOLD_FALLBACK = "hold_fallback"


@dataclass(frozen=True)
class SolverAttempt:
    """One solver tried: ``outcome`` is ``ok`` or why it was not accepted."""

    solver: str
    outcome: str
    seconds: float
    message: str = ""


@dataclass(frozen=True)
class BindingConstraint:
    """A constraint active at the optimum.

    Attributes:
        name: the constraint's name (``WeightBounds``, a label, ...).
        dual: largest absolute dual value over its rows (marginal utility per unit of
            relaxation; NaN when the solver gave none).
        n_binding: number of its scalar rows within tolerance of their bound.
        symbols: binding names for per-name constraints (at most 20 listed).
    """

    name: str
    dual: float
    n_binding: int
    symbols: tuple[str, ...] = ()


@dataclass(frozen=True)
class OptimizationResult:
    """The decision and why.

    Attributes:
        weights: target weights (fraction of NAV) by symbol.
        trades: ``weights - current`` by symbol.
        status: optimal, optimal_inaccurate or hold_fallback.
        objective: utility ``alpha - risk - cost`` at ``weights`` (NumPy recomputation).
        objective_split: ``{alpha, risk, cost, utility}`` recomputed per term with NumPy.
        term_values: the same per term name.
        solver_objective: the solver's own objective value (NaN on fallback).
        binding: constraints active at the optimum with their duals.
        solver: the solver whose answer was accepted (None on fallback).
        fallback_trail: every solver tried, in order, with its outcome.
        solve_time_s: wall time of this call (compile included when it happened).
        compile_time_s: time spent building the problem in this call (0 on a re-solve).
        max_violation: largest constraint violation at ``weights`` (NumPy check).
        messages: human-readable notes (fallbacks, recompiles, warnings).
    """

    weights: pd.Series
    trades: pd.Series
    status: OptimizationStatus
    objective: float
    objective_split: dict[str, float]
    term_values: dict[str, float]
    solver_objective: float
    binding: tuple[BindingConstraint, ...]
    solver: str | None
    fallback_trail: tuple[SolverAttempt, ...]
    solve_time_s: float
    compile_time_s: float
    max_violation: float
    messages: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.status is not OptimizationStatus.HOLD_FALLBACK

    def table(self) -> pd.DataFrame:
        """symbol x (current, target, trade) for names held or traded."""
        cur = self.weights - self.trades
        df = pd.DataFrame({"current": cur, "target": self.weights, "trade": self.trades})
        keep = (df.abs() > 1e-9).any(axis=1)
        return df[keep].sort_values("target", ascending=False)

    def explain(self) -> dict[str, Any]:
        """A JSON-friendly explanation."""
        return {
            "status": self.status.value,
            "solver": self.solver,
            "objective": _f(self.objective),
            "solver_objective": _f(self.solver_objective),
            "objective_split": {k: _f(v) for k, v in self.objective_split.items()},
            "term_values": {k: _f(v) for k, v in self.term_values.items()},
            "binding": [{"name": b.name, "dual": _f(b.dual), "n_binding": b.n_binding,
                         "symbols": list(b.symbols)} for b in self.binding],
            "fallback_trail": [{"solver": a.solver, "outcome": a.outcome,
                                "seconds": a.seconds, "message": a.message}
                               for a in self.fallback_trail],
            "solve_time_s": self.solve_time_s,
            "compile_time_s": self.compile_time_s,
            "max_violation": self.max_violation,
            "messages": list(self.messages),
            "gross": float(self.weights.abs().sum()),
            "net": float(self.weights.sum()),
            "turnover": float(self.trades.abs().sum()),
            "n_positions": int((self.weights.abs() > 1e-9).sum()),
        }


def _f(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)
