"""keel.costs: transaction-cost models, market impact from order books, optimal order splitting.

One cost object serves the optimizer (``expr``: a convex CVXPY expression in NAV units), the
backtest (``cost``: a realised charge in currency and bps) and TCA (``AdaptiveCost`` learns
from fills). Heavy modules (impact, allocation) import lazily from their own paths.
"""

from keel.costs.adaptive import AdaptiveCost
from keel.costs.almgren_chriss import (
    ACParams,
    AlmgrenChriss,
    ac_expected_cost,
    ac_trajectory,
    ac_variance,
    efficient_frontier,
)
from keel.costs.base import CompositeCost, CostEstimate, CostModel, TradeContext
from keel.costs.models import Commission, SpreadCost, SpreadCurve, SquareRootImpact
from keel.costs.order_types import OrderInputs, OrderTypeEstimate, estimate_order_types

__all__ = [
    "ACParams", "AdaptiveCost", "AlmgrenChriss", "Commission", "CompositeCost", "CostEstimate",
    "CostModel", "OrderInputs", "OrderTypeEstimate", "SpreadCost", "SpreadCurve",
    "SquareRootImpact", "TradeContext",
    "ac_expected_cost", "ac_trajectory", "ac_variance", "efficient_frontier",
    "estimate_order_types",
]
