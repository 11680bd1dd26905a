"""keel.optimize: signals + risk + costs + holdings -> target weights with reasons.

Composable objective terms (:mod:`~keel.optimize.terms`) and constraints
(:mod:`~keel.optimize.constraints`) feed :class:`MeanVariance` and :class:`MeanCVaR`; the
heuristics and :class:`GreedyRotation` need no solver. Every solver-based answer is an
:class:`OptimizationResult` that explains itself.
"""

from keel.optimize.constraints import (
    BetaNeutral,
    Budget,
    BudgetKind,
    Constraint,
    FactorExposureBounds,
    GrossExposure,
    Liquidity,
    LongOnly,
    MinCash,
    NetExposure,
    SectorCaps,
    TrackingError,
    Turnover,
    WeightBounds,
)
from keel.optimize.engine import ConvexPortfolioProblem, Solver
from keel.optimize.inputs import PortfolioInputs
from keel.optimize.mean_variance import MeanVariance
from keel.optimize.result import (
    BindingConstraint,
    OptimizationResult,
    OptimizationStatus,
    SolverAttempt,
)
from keel.optimize.terms import Alpha, HoldingCost, Risk, Term, TransactionCost

__all__ = [
    "Alpha", "BetaNeutral", "BindingConstraint", "Budget", "BudgetKind", "Constraint",
    "ConvexPortfolioProblem", "FactorExposureBounds", "GrossExposure", "HoldingCost",
    "Liquidity", "LongOnly", "MeanVariance", "MinCash", "NetExposure", "OptimizationResult",
    "OptimizationStatus", "PortfolioInputs", "Risk", "SectorCaps", "Solver", "SolverAttempt",
    "Term", "TrackingError", "TransactionCost", "Turnover", "WeightBounds",
]
