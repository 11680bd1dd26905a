"""Pre-trade estimate of one parent order executed as a market order, a limit order or a TWAP.

Every cost is measured against the arrival mid, in currency, for an order of ``Q`` shares at
price ``P`` with full spread ``s`` (fraction of mid), daily volatility ``sigma`` and average
daily volume ``V`` (shares). Horizons are in trading days (``minutes / 390``).

**Impact (square-root law on the order's own horizon).** An order of ``Q`` shares executed over
``h`` days at participation ``rho = Q / (V h)`` moves the price by the peak impact
``I(Q, h) = Y sigma sqrt(h) rho^beta`` (fraction of price): the same law as
:class:`keel.costs.models.SquareRootImpact`. With ``beta = 1/2`` (the default) it is the
classic ``Y sigma sqrt(Q / V)`` whatever the horizon; a fitted ``beta > 1/2`` makes a slower
order cheaper. Impact is concave in ``Q``; it never squeezes a daily *linear* law into a minute.

* **market**: the whole order at once over ``market_minutes``: it pays the half spread and the
  full peak impact, ``Q P (s/2 + I(Q, h_m))``.
* **TWAP**: ``n_slices`` children at a constant rate over ``horizon_minutes``. Under the
  square-root law the impact after a fraction ``u`` of the order is ``I(Q, H) sqrt(u)``, so the
  average paid is ``int_0^1 sqrt(u) du = 2/3`` of the peak (no decay during the order assumed:
  an upper bound): ``Q P (s/2 + 2/3 I(Q, H))``. Timing risk is the std of the shortfall of the
  uniform trajectory, ``sigma P sqrt(tau sum_k x_k^2)``.
* **limit** at the near touch, resting for ``horizon_minutes``, the rest crossed at the end:

  - *fill probability* ``p = 2 Phi(-(s/2) / (sigma sqrt(H)))``: the chance a driftless mid
    moves half a spread to the order within the horizon; a resting order then captures at most
    ``q_f = min(Q, max_passive_participation * V H)`` shares (its share of the volume traded in
    the horizon), so the expected filled fraction is ``p q_f / Q``.
  - *adverse selection* ``A`` (fraction of price): the expected further move of the mid against
    a passive fill (its markout). The fill event is informative: ``E[dm | fill] = -(s/2 + A)``
    against a buyer, while the unconditional move is zero (a martingale), so
    ``E[dm | no fill] = p (s/2 + A) / (1 - p)``: the price runs away when the order is not
    filled. The expected shortfall then works out to

    ``E = P [ p q_f A + p (Q - q_f) c(Q - q_f) + (1 - p) Q c(Q) ]``

    with ``c(x) = s/2 + I(x, h_m)`` the per-share cost of crossing ``x`` shares. The spread the
    order earns when filled is exactly given back by the adverse drift; what a limit order saves
    is the market order's impact, and what it pays is ``A`` on its fills.
  - *own impact*: passive fills are buying pressure too (the square-root law holds for
    metaorders executed with limit orders), so the filled part also pays the TWAP's
    ``2/3 I(q_f, H)``, and ``p q_f A`` above becomes ``p q_f (A + 2/3 I(q_f, H))``. The rest is
    crossed as an independent market order (the impact the fills left is not carried: a
    lower bound for that part). The default
    ``A = s/2`` is the zero-profit (Glosten-Milgrom) market maker: the spread compensates
    adverse selection, so a small order that is surely filled costs about ``s/2`` and the
    limit / market ratio moves with size, volatility and horizon (never a constant). ``A = 0``
    and no own impact give the martingale lower bound ``(1 - p) x market``. On the AMZN
    LOBSTER day the measured markout of passive fills is 0.2-0.7 bps against a 2.3 bps half
    spread (docs/costs.md): the default is conservative for a liquid name.

Given a measured impact curve ``g`` (``market_curve``, e.g. the fit of ``keel impact fit`` on the
symbol's book; ``g`` already includes the half spread), the market order costs ``g(Q)``, each
TWAP child ``g(Q/n)`` plus the accumulated ``2/3 I(Q, H)``, and ``c(x) = g(x) / (x P)``. Sizes
outside ``curve_range`` (the sizes the curve was fitted on) are extrapolation: the estimate says
so in ``warnings``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from keel.costs._session import SESSION_MINUTES
from keel.costs._validate import check_scalar
from keel.costs.almgren_chriss import ac_variance
from keel.costs.curves import IntervalCosts
from keel.errors import ValidationError


@dataclass(frozen=True)
class OrderInputs:
    """One parent order and its market.

    Attributes:
        shares: order size, shares (> 0; the side does not change expected costs).
        price: mid price, currency per share.
        spread: full quoted spread as a fraction of mid.
        daily_vol: daily volatility of returns (fraction, > 0).
        adv_shares: average daily volume, shares.
        horizon_minutes: time allowed for the limit order and the TWAP.
        n_slices: TWAP slices.
        market_minutes: time a market order takes (its own horizon for the impact law).
        commission_bps: broker fee, bps of notional, added to every order type.
        impact_y: constant ``Y`` of the square-root law (order 1 in empirical studies).
        impact_beta: participation exponent ``beta`` in (0, 1] (1/2: square root).
        adverse_selection_bps: ``A``, markout of a passive fill in bps of price (None: half the
            spread, the zero-profit market maker).
        max_passive_participation: largest fraction of the horizon's traded volume a resting
            limit order can capture.
    """

    shares: float
    price: float
    spread: float
    daily_vol: float
    adv_shares: float
    horizon_minutes: float = 30.0
    n_slices: int = 10
    market_minutes: float = 1.0
    commission_bps: float = 0.0
    impact_y: float = 1.0
    impact_beta: float = 0.5
    adverse_selection_bps: float | None = None
    max_passive_participation: float = 0.1

    def __post_init__(self) -> None:
        for name in ("shares", "price", "adv_shares", "horizon_minutes", "market_minutes",
                     "daily_vol"):
            check_scalar(getattr(self, name), name, positive=True)
        for name in ("spread", "commission_bps", "impact_y"):
            check_scalar(getattr(self, name), name)
        check_scalar(self.impact_beta, "impact_beta", positive=True, upper=1.0)
        check_scalar(self.max_passive_participation, "max_passive_participation",
                     positive=True, upper=1.0)
        if self.adverse_selection_bps is not None:
            check_scalar(self.adverse_selection_bps, "adverse_selection_bps")
        if int(self.n_slices) < 1:
            raise ValidationError("n_slices must be >= 1", field="n_slices",
                                  value=self.n_slices)

    @property
    def adverse_selection(self) -> float:
        """``A`` as a fraction of price."""
        if self.adverse_selection_bps is None:
            return 0.5 * self.spread
        return self.adverse_selection_bps * 1e-4


@dataclass(frozen=True)
class OrderTypeEstimate:
    """What :func:`estimate_order_types` returns.

    Attributes:
        table: indexed by ``market``, ``limit``, ``twap``; columns ``expected_cost``
            (currency), ``cost_bps`` (of the notional), ``impact_bps`` (the impact part),
            ``risk_std`` (currency, std of the shortfall from price moves during execution;
            for the limit order the exposure of the unfilled part over the horizon, an upper
            bound) and ``fill_probability`` (expected filled fraction passively).
        warnings: human-readable cautions (a fitted curve used beyond its sizes, ...).
        impact_source: ``square-root`` (the law with ``Y``, ``beta``) or ``fitted curve``.
    """

    table: pd.DataFrame
    warnings: tuple[str, ...] = ()
    impact_source: str = "square-root"

    @property
    def loc(self) -> Any:
        """Shortcut to ``table.loc``."""
        return self.table.loc


def sqrt_impact(shares: float | np.ndarray, horizon_days: float, daily_vol: float,
                adv_shares: float, y: float = 1.0, beta: float = 0.5) -> np.ndarray:
    """Peak impact ``Y sigma sqrt(h) (Q / (V h))^beta`` (fraction of price) of ``shares``
    executed over ``horizon_days``; the square-root law of :class:`SquareRootImpact`."""
    q = np.abs(np.asarray(shares, dtype=np.float64))
    h = float(horizon_days)
    return y * daily_vol * math.sqrt(h) * (q / (adv_shares * h)) ** beta


def limit_fill_probability(distance: float, daily_vol: float, horizon_minutes: float) -> float:
    """Chance a driftless Brownian mid moves by ``distance`` (fraction) within the horizon."""
    sd = daily_vol * np.sqrt(horizon_minutes / SESSION_MINUTES)
    if sd <= 0:
        return 0.0 if distance > 0 else 1.0
    return float(min(1.0, math.erfc(distance / sd / math.sqrt(2.0))))  # 2 Phi(-z)


def curve_range_warnings(sizes: dict[str, float], curve_range: tuple[float, float] | None
                         ) -> list[str]:
    """Warnings for each named size outside the ``(min, max)`` shares a curve was fitted on."""
    if curve_range is None:
        return ["the impact curve carries no fitted size range: every size is unchecked "
                "extrapolation (refit with `keel impact fit`)"]
    lo, hi = curve_range
    out = []
    for what, x in sizes.items():
        if x > hi * (1 + 1e-9) or x < lo * (1 - 1e-9):
            out.append(f"{what} of {x:,.0f} shares is outside the fitted sizes "
                       f"{lo:,.0f}..{hi:,.0f}: the curve is extrapolated "
                       f"({x / hi:.1f}x the largest fitted order)" if x > hi else
                       f"{what} of {x:,.0f} shares is below the fitted sizes "
                       f"{lo:,.0f}..{hi:,.0f}: the curve is extrapolated")
    return out


def estimate_order_types(o: OrderInputs, market_curve: IntervalCosts | None = None, *,
                         curve_range: tuple[float, float] | None = None) -> OrderTypeEstimate:
    """Expected cost of ``o`` as market, limit and TWAP orders (model in the module doc).

    Args:
        o: the order and its market.
        market_curve: a single measured curve ``g(x)`` (shares -> currency, half spread
            included) for crossing the book; None uses the square-root law.
        curve_range: (smallest, largest) order size in shares the curve was fitted on.

    Raises:
        ValidationError: ``market_curve`` holds more than one curve (field ``market_curve``).
    """
    if market_curve is not None and market_curve.n != 1:
        raise ValidationError("market_curve must be a single curve", field="market_curve",
                              value=market_curve.n)
    q, px = float(o.shares), float(o.price)
    notional = q * px
    fee = o.commission_bps * 1e-4 * notional
    h_m = o.market_minutes / SESSION_MINUTES
    h = o.horizon_minutes / SESSION_MINUTES
    n = int(o.n_slices)
    half = 0.5 * o.spread

    def impact(x: float, days: float) -> float:
        return float(sqrt_impact(x, days, o.daily_vol, o.adv_shares, o.impact_y,
                                 o.impact_beta))

    def cross(x: float) -> float:
        """Currency cost of crossing ``x`` shares at once (half spread + impact)."""
        if x <= 0:
            return 0.0
        if market_curve is not None:
            return market_curve.total(np.array([x]))
        return x * px * (half + impact(x, h_m))

    warnings: list[str] = []
    market = cross(q)
    market_impact = market - q * px * half
    peak_h = impact(q, h)
    twap_impact = 2.0 / 3.0 * peak_h * notional
    if market_curve is None:
        twap = notional * half + twap_impact
    else:
        twap = n * market_curve.total(np.array([q / n])) + twap_impact
        warnings += curve_range_warnings({"the market order": q, "a TWAP child": q / n},
                                         curve_range)
    p = limit_fill_probability(half, o.daily_vol, o.horizon_minutes)
    q_f = min(q, o.max_passive_participation * o.adv_shares * h)
    rest = q - q_f
    passive_impact = 2.0 / 3.0 * impact(q_f, h) if q_f > 0 else 0.0
    limit = (p * q_f * px * (o.adverse_selection + passive_impact) + p * cross(rest)
             + (1.0 - p) * market)
    fill = p * q_f / q
    if market_curve is not None and rest > 0:
        warnings += curve_range_warnings({"the limit order's unfilled rest": rest},
                                         curve_range)
    limit_impact = (p * q_f * px * passive_impact + p * max(cross(rest) - rest * px * half, 0.0)
                    + (1.0 - p) * market_impact)
    sigma = o.daily_vol * px  # currency / share / sqrt(day)
    limit_risk = (1.0 - fill) * sigma * math.sqrt(h) * q
    slices = np.full(n, q / n)
    twap_risk = math.sqrt(ac_variance(slices, h / n, sigma))
    if q / o.adv_shares > 0.1:
        warnings.append(f"the order is {q / o.adv_shares:.0%} of ADV: the square-root law is "
                        "measured on orders up to about 10% of ADV")
    costs = np.array([market, limit, twap]) + fee
    out = pd.DataFrame(
        {"expected_cost": costs, "cost_bps": 1e4 * costs / notional,
         "impact_bps": 1e4 * np.array([market_impact, limit_impact, twap_impact]) / notional,
         "risk_std": [0.0, limit_risk, twap_risk], "fill_probability": [1.0, fill, 1.0]},
        index=pd.Index(["market", "limit", "twap"], name="order_type"))
    return OrderTypeEstimate(out, tuple(dict.fromkeys(warnings)),
                             "square-root" if market_curve is None else "fitted curve")
