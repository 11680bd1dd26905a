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
from keel.optimize.cvar import CVaRBackend, CVaRRisk, CvxpyBackend, MeanCVaR
from keel.optimize.engine import ConvexPortfolioProblem, Solver
from keel.optimize.greedy import GreedyRotation, Reason, RotationResult
from keel.optimize.heuristics import (
    equal_weight,
    fractional_kelly,
    inverse_volatility,
    risk_contributions,
    risk_parity,
    volatility_target,
)
from keel.optimize.inputs import PortfolioInputs
from keel.optimize.mean_variance import MeanVariance
from keel.optimize.result import (
    BindingConstraint,
    OptimizationResult,
    OptimizationStatus,
    SolverAttempt,
)
from keel.optimize.scenarios import cvar, factor_scenarios, historical_scenarios
from keel.optimize.terms import Alpha, HoldingCost, Risk, Term, TransactionCost

__all__ = [
    "Alpha",
    "BetaNeutral",
    "BindingConstraint",
    "Budget",
    "BudgetKind",
    "CVaRBackend",
    "CVaRRisk",
    "Constraint",
    "ConvexPortfolioProblem",
    "CvxpyBackend",
    "FactorExposureBounds",
    "GreedyRotation",
    "GrossExposure",
    "HoldingCost",
    "Liquidity",
    "LongOnly",
    "MeanCVaR",
    "MeanVariance",
    "MinCash",
    "NetExposure",
    "OptimizationResult",
    "OptimizationStatus",
    "PortfolioInputs",
    "Reason",
    "Risk",
    "RotationResult",
    "SectorCaps",
    "Solver",
    "SolverAttempt",
    "Term",
    "TrackingError",
    "TransactionCost",
    "Turnover",
    "WeightBounds",
    "cvar",
    "equal_weight",
    "factor_scenarios",
    "fractional_kelly",
    "historical_scenarios",
    "inverse_volatility",
    "risk_contributions",
    "risk_parity",
    "volatility_target",
]
