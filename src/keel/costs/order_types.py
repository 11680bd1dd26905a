"""Pre-trade estimate of one parent order executed as a market order, a limit order or a TWAP.

All three use the same Almgren-Chriss coefficients, calibrated as in the paper (section 4)
from the spread and the daily volume unless given: ``epsilon`` = half spread per share;
trading 1 % of daily volume per day moves the price by one spread (``eta``); trading 10 % of
daily volume permanently moves it by one spread (``gamma``). Time is in trading days.

* market: the whole order in one interval of ``market_minutes``: ``eps |Q| + eta_tilde Q^2/tau
  + gamma Q^2/2``; no timing risk.
* limit at the near touch for ``horizon_minutes``: filled with probability ``p`` (the chance a
  driftless Brownian mid reaches the limit, ``p = 2 Phi(-delta / (sigma sqrt(h)))``) at minus
  the half spread; otherwise the rest is crossed at the end at the market-order cost. For a
  martingale mid the opportunity cost exactly offsets the spread earned, so the expected cost
  is ``(1 - p) * market cost`` (no adverse selection beyond the random walk: a lower bound).
* TWAP: ``n_slices`` equal slices over ``horizon_minutes``: AC expected cost and variance of the
  uniform trajectory.

Given a measured impact curve ``g`` (``market_curve``, e.g. the fit of ``keel impact fit`` on the
symbol's book), the market order costs ``g(Q)`` instead, each TWAP slice ``g(Q/n)`` plus the
permanent ``gamma Q^2 / 2``, and the limit order ``(1 - p) g(Q)``: the linear temporary impact
of the paper overstates an immediate order that the book absorbs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from keel.costs._session import SESSION_MINUTES
from keel.costs._validate import check_scalar
from keel.costs.almgren_chriss import ac_expected_cost, ac_variance
from keel.costs.curves import IntervalCosts
from keel.errors import ValidationError


@dataclass(frozen=True)
class OrderInputs:
    """One parent order and its market.

    Attributes:
        shares: order size, shares (> 0; the side does not change expected costs).
        price: mid price, currency per share.
        spread: full quoted spread as a fraction of mid.
        daily_vol: daily volatility of returns (fraction).
        adv_shares: average daily volume, shares.
        horizon_minutes: time allowed for the limit order and the TWAP.
        n_slices: TWAP slices.
        market_minutes: time a market order takes to be absorbed (sets its temporary impact).
        commission_bps: broker fee, bps of notional, added to every order type.
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

    def __post_init__(self) -> None:
        for name in ("shares", "price", "adv_shares", "horizon_minutes", "market_minutes"):
            check_scalar(getattr(self, name), name, positive=True)
        for name in ("spread", "daily_vol", "commission_bps"):
            check_scalar(getattr(self, name), name)
        if int(self.n_slices) < 1:
            raise ValidationError("n_slices must be >= 1", field="n_slices",
                                  value=self.n_slices)


def paper_calibration(price: float, spread: float, adv_shares: float) -> dict[str, float]:
    """Almgren-Chriss ``epsilon, eta, gamma`` (per share, time in days) from spread and ADV."""
    spread_ccy = spread * price
    return {"epsilon": 0.5 * spread_ccy, "eta": spread_ccy / (0.01 * adv_shares),
            "gamma": spread_ccy / (0.1 * adv_shares)}


def limit_fill_probability(distance: float, daily_vol: float, horizon_minutes: float) -> float:
    """Chance a driftless Brownian mid moves by ``distance`` (fraction) within the horizon."""
    sd = daily_vol * np.sqrt(horizon_minutes / SESSION_MINUTES)
    if sd <= 0:
        return 0.0 if distance > 0 else 1.0
    return float(min(1.0, math.erfc(distance / sd / math.sqrt(2.0))))  # 2 Phi(-z)


def estimate_order_types(o: OrderInputs, market_curve: IntervalCosts | None = None
                         ) -> pd.DataFrame:
    """Expected cost of ``o`` as market, limit and TWAP orders.

    Returns a DataFrame indexed by ``market``, ``limit``, ``twap`` with columns
    ``expected_cost`` (currency), ``cost_bps`` (of the notional), ``risk_std`` (currency, std of
    the shortfall from price moves during execution; for the limit order the exposure of the
    unfilled order over the horizon, an upper bound) and ``fill_probability``.

    Raises:
        ValidationError: ``market_curve`` holds more than one curve (field ``market_curve``).
    """
    if market_curve is not None and market_curve.n != 1:
        raise ValidationError("market_curve must be a single curve", field="market_curve",
                              value=market_curve.n)
    cal = paper_calibration(o.price, o.spread, o.adv_shares)
    notional = o.shares * o.price
    fee = o.commission_bps * 1e-4 * notional
    sigma = o.daily_vol * o.price  # currency / share / sqrt(day)
    tau_mkt = o.market_minutes / SESSION_MINUTES
    if market_curve is None:
        market = ac_expected_cost(np.array([o.shares]), tau_mkt, cal["eta"], cal["gamma"],
                                  cal["epsilon"]) + fee
    else:
        market = market_curve.total(np.array([o.shares])) + fee
    p = limit_fill_probability(0.5 * o.spread, o.daily_vol, o.horizon_minutes)
    limit = (1.0 - p) * (market - fee) + fee
    limit_risk = (1.0 - p) * sigma * np.sqrt(o.horizon_minutes / SESSION_MINUTES) * o.shares
    n = int(o.n_slices)
    tau = o.horizon_minutes / SESSION_MINUTES / n
    slices = np.full(n, o.shares / n)
    if market_curve is None:
        twap = ac_expected_cost(slices, tau, cal["eta"], cal["gamma"], cal["epsilon"]) + fee
    else:
        twap = (n * market_curve.total(slices[:1]) + 0.5 * cal["gamma"] * o.shares**2 + fee)
    twap_risk = np.sqrt(ac_variance(slices, tau, sigma))
    out = pd.DataFrame(
        {"expected_cost": [market, limit, twap], "risk_std": [0.0, limit_risk, twap_risk],
         "fill_probability": [1.0, p, 1.0]},
        index=pd.Index(["market", "limit", "twap"], name="order_type"))
    out.insert(1, "cost_bps", 1e4 * out["expected_cost"] / notional)
    return out
