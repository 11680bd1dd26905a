"""Vectorised execution simulation: the cost of executing a day's trades along a schedule.

An execution algorithm (TWAP, VWAP, IS from :mod:`keel.execution.schedule`) is reduced once to
its *slice shape*: the fraction ``x_k`` of every parent order traded in slice ``k``, the
fraction ``v_k`` of the day's volume expected in that slice (intraday volume profile), the
spread multiplier ``s_k`` at that time of day, and the elapsed session fraction ``c_k`` at the
slice mid. With the keel cost models, for a trade of notional ``Q`` in every name at once:

* spread: ``SpreadCost.cost_array(Q) * sum_k x_k s_k``;
* impact: square-root impact charged per slice at the slice's participation
  ``x_k |Q| / (v_k ADV)``, i.e. ``SquareRootImpact.cost_array(Q) * sum_k x_k^(1+b) v_k^-b``;
* commission: ``Commission.cost_array(Q)`` (per ticket, independent of slicing);
* timing: the price drifts with the next session's return ``r`` while the order works, so the
  average fill is ``p (1 + r * sum_k x_k c_k)`` (the Brownian-bridge mean path); a buy pays
  ``Q r tau`` more than at the arrival price (``tau = sum_k x_k c_k``).

This is a fill simulation from the cost model (no order manager per order), O(N) per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from keel.costs.base import TradeContext
from keel.costs.models import Commission, SpreadCost, SquareRootImpact
from keel.data.intraday import intraday_spread_curve, u_shaped_volume_curve
from keel.errors import ValidationError
from keel.execution.profile import GRID, VolumeProfile
from keel.execution.schedule import (
    Algo,
    ExecutionContext,
    ScheduleConfig,
    make_scheduler,
)
from keel.types import Order, Side, utc

#: a full XNYS session used to lay out the slices (the shape does not depend on the date)
_REFERENCE_OPEN = pd.Timestamp("2024-03-05 14:30", tz="UTC")


@dataclass(frozen=True)
class SliceShape:
    """One algorithm's slices, each (K,) float64.

    Attributes:
        algo: the algorithm name (``close`` = at the decision price with the day-average
            cost models unchanged: no timing, no intraday shape).
        qty: fraction of the parent per slice (sums to 1).
        volume: fraction of the day's volume expected in each slice (sums to 1).
        spread: spread multiplier (mean 1 over the day) at the slice mid.
        elapsed: session fraction elapsed at the slice mid, in [0, 1].
    """

    algo: str
    qty: np.ndarray
    volume: np.ndarray
    spread: np.ndarray
    elapsed: np.ndarray

    @property
    def spread_factor(self) -> float:
        return float(self.qty @ self.spread)

    def impact_factor(self, beta: float) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(self.qty > 0, self.qty ** (1.0 + beta) / self.volume ** beta, 0.0)
        return float(f.sum())

    @property
    def timing(self) -> float:
        return float(self.qty @ self.elapsed)


def _bin_sums(curve: np.ndarray, edges: np.ndarray) -> np.ndarray:
    cum = np.concatenate([[0.0], np.cumsum(curve)])
    return np.diff(np.interp(edges, np.linspace(0.0, 1.0, len(curve) + 1), cum))


def slice_shape(algo: str, *, n_slices: int = 13, urgency: float = 1.0,
                volume_curve: np.ndarray | None = None,
                spread_curve: np.ndarray | None = None) -> SliceShape:
    """The slice shape of ``algo`` (``close``, ``market``, ``twap``, ``vwap``, ``is``).

    ``volume_curve`` / ``spread_curve``: (390,) per-minute volume shares and spread multipliers
    (default: keel's U-shaped volume and open-wide spread curves).
    """
    vol = u_shaped_volume_curve(GRID) if volume_curve is None else np.asarray(volume_curve)
    spr = intraday_spread_curve(GRID) if spread_curve is None else np.asarray(spread_curve)
    name = str(algo).lower()
    if name == "close":
        one = np.ones(1)
        # the day-average cost models as they are, at the decision price
        return SliceShape("close", one, one, one, np.zeros(1))
    try:
        a = Algo(name)
    except ValueError:
        raise ValidationError("unknown execution algorithm (close, market, twap, vwap, is)",
                              field="execution.algos", value=algo) from None
    if a is Algo.POV:
        raise ValidationError("pov is not simulated in the backtest", field="execution.algos",
                              value=algo)
    profile = VolumeProfile(np.concatenate([[0.0], np.cumsum(vol)]) / vol.sum())
    sched = make_scheduler(a, ScheduleConfig(n_slices=n_slices), profile=profile,
                           urgency=urgency if a is Algo.IS else None)
    windows, bounds = sched.grid(_REFERENCE_OPEN)
    parent = Order("shape", "SHAPE", Side.BUY, Decimal(10_000), utc(2024, 3, 5))
    ctx = ExecutionContext(price=100.0, adv_shares=1e6, daily_volatility=0.02, spread_bps=5.0,
                           profile=profile)
    w = np.asarray(sched.weights(windows, bounds, parent, ctx), dtype=np.float64)
    w = w / w.sum()
    open_ = bounds[0]
    span = 390 * 60.0  # the reference session is a full day
    edges = np.array([(b - open_).total_seconds() / span for b in bounds])
    mids = 0.5 * (edges[1:] + edges[:-1])
    v = _bin_sums(vol / vol.sum(), edges)
    s_mid = np.interp(mids, (np.arange(GRID) + 0.5) / GRID, spr)
    return SliceShape(a.value, w, v, s_mid, mids)


@dataclass(frozen=True)
class ExecutionCosts:
    """Cost of one step's trades per name, currency, each (N,) float64 (>= 0 except timing)."""

    spread: np.ndarray
    impact: np.ndarray
    commission: np.ndarray
    timing: np.ndarray

    def total(self) -> np.ndarray:
        return self.spread + self.impact + self.commission + self.timing


class ExecutionSimulator:
    """Charges trades with keel's cost models along an algorithm's slice shape.

    Args:
        shape: the algorithm's :class:`SliceShape`.
        spread: the spread model (its ``cost_array`` is the day-average cost).
        impact: square-root impact (None: no impact).
        commission: commission model (None: free).
    """

    def __init__(self, shape: SliceShape, spread: SpreadCost, impact: SquareRootImpact | None,
                 commission: Commission | None) -> None:
        self.shape = shape
        self.spread = spread
        self.impact = impact
        self.commission = commission
        self._spread_f = shape.spread_factor
        self._impact_f = shape.impact_factor(impact.beta) if impact is not None else 0.0
        self._tau = shape.timing

    def costs(self, trades: np.ndarray, ctx: TradeContext, next_returns: np.ndarray
              ) -> ExecutionCosts:
        """Costs of ``trades`` (signed currency, (N,)) executed over the next session whose
        close-to-close returns are ``next_returns`` ((N,), used only for the timing term)."""
        zero = np.zeros_like(trades)
        spread = self.spread.cost_array(trades, ctx) * self._spread_f
        impact = (zero if self.impact is None
                  else self.impact.cost_array(trades, ctx) * self._impact_f)
        comm = zero if self.commission is None else self.commission.cost_array(trades, ctx)
        timing = trades * np.nan_to_num(next_returns) * self._tau
        return ExecutionCosts(spread, impact, comm, timing)
