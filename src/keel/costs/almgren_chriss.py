"""Almgren-Chriss (2000) optimal execution: discrete trajectory, expected cost, variance, frontier.

Units (the paper's): shares; prices in currency per share; time in any unit used consistently
(the paper uses days). ``sigma`` is in currency / share / sqrt(time unit); temporary impact
``h(v) = epsilon * sign(v) + eta * v`` with ``v = n_k / tau`` in shares per time unit, so
``eta`` is currency / share / (share / time); permanent impact ``g(v) = gamma * v`` with
``gamma`` in currency / share / share. ``risk_aversion`` (lambda) is in 1 / currency.

Discrete form (paper section 3): ``eta_tilde = eta - gamma * tau / 2``,
``kappa_tilde^2 = lambda * sigma^2 / eta_tilde`` and ``kappa = arccosh(1 + kappa_tilde^2 tau^2 / 2)
/ tau``; holdings ``x_j = X sinh(kappa (T - t_j)) / sinh(kappa T)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from keel.costs._validate import check_array, check_scalar
from keel.costs.base import CostModel, SeparableForm, TradeContext
from keel.errors import ValidationError

if TYPE_CHECKING:
    import cvxpy as cp


def _eta_tilde(eta: np.ndarray | float, gamma: np.ndarray | float, interval: float
               ) -> np.ndarray:
    et = np.asarray(eta, dtype=np.float64) - np.asarray(gamma, dtype=np.float64) * interval / 2
    if np.any(et <= 0):
        raise ValidationError("eta - gamma * interval / 2 must be > 0 (discrete AC needs a "
                              "positive effective temporary impact)", field="eta",
                              value=float(np.min(et)))
    return et


def ac_kappa(sigma: float, eta: float, gamma: float, interval: float,
             risk_aversion: float) -> float:
    """Discrete urgency ``kappa`` (1 / time unit) from ``arccosh(1 + kappa_tilde^2 tau^2 / 2)``."""
    sigma = check_scalar(sigma, "sigma")
    interval = check_scalar(interval, "interval", positive=True)
    lam = check_scalar(risk_aversion, "risk_aversion")
    et = float(_eta_tilde(check_scalar(eta, "eta", positive=True),
                          check_scalar(gamma, "gamma"), interval))
    kt2 = lam * sigma**2 / et
    return float(np.arccosh(1.0 + 0.5 * kt2 * interval**2) / interval)


def _unit_holdings(kappa: np.ndarray, n_intervals: int, interval: float) -> np.ndarray:
    """Holdings per unit of the parent, (M, N+1) for M kappas: x_0 = 1 ... x_N = 0."""
    k = np.asarray(kappa, dtype=np.float64).reshape(-1, 1)
    total = n_intervals * interval
    t = np.arange(n_intervals + 1, dtype=np.float64) * interval
    lin = 1.0 - t / total
    small = (k * total) < 1e-8
    ks = np.where(small, 1.0, k)
    # sinh(k(T-t))/sinh(kT) written with decaying exponentials so a large kT cannot overflow
    num = np.exp(-ks * t) * -np.expm1(-2.0 * ks * (total - t))
    den = -np.expm1(-2.0 * ks * total)
    return np.where(small, lin, num / den)


def ac_trajectory(total_shares: float, n_intervals: int, interval: float, sigma: float,
                  eta: float, gamma: float, epsilon: float, risk_aversion: float) -> np.ndarray:
    """Trade sizes (shares, (n_intervals,)) of the discrete Almgren-Chriss optimal trajectory.

    The sizes sum exactly to ``total_shares`` (any sign; a sale is a negative total) and
    ``risk_aversion=0`` gives the uniform (TWAP) split. ``epsilon`` does not move the optimum
    but is validated so a bad parameter set fails here rather than in the cost.

    Raises:
        ValidationError: non-finite total, ``n_intervals < 1``, ``interval <= 0``, negative
            ``sigma``/``gamma``/``epsilon``/``risk_aversion``, ``eta <= 0`` or
            ``eta - gamma * interval / 2 <= 0``.
    """
    x = float(total_shares)
    if not np.isfinite(x):
        raise ValidationError("total_shares must be finite", field="total_shares", value=x)
    if int(n_intervals) != n_intervals or n_intervals < 1:
        raise ValidationError("n_intervals must be an integer >= 1", field="n_intervals",
                              value=n_intervals)
    check_scalar(epsilon, "epsilon")
    kappa = ac_kappa(sigma, eta, gamma, interval, risk_aversion)
    hold = _unit_holdings(np.array([kappa]), int(n_intervals), float(interval))[0] * x
    trades = -np.diff(hold)
    trades[-1] = x - trades[:-1].sum()
    return trades


def holdings_from_trades(trades: np.ndarray) -> np.ndarray:
    """Holdings after each trade, (N,): ``x_k = X - sum_{j<=k} n_j`` (last is 0)."""
    n = np.asarray(trades, dtype=np.float64)
    return n.sum() - np.cumsum(n)


def ac_expected_cost(trades: np.ndarray, interval: float, eta: float, gamma: float,
                     epsilon: float) -> float:
    """Expected implementation shortfall (currency) of any trajectory of trade sizes (N,).

    ``E = gamma/2 X^2 + epsilon sum|n_k| + (eta_tilde / tau) sum n_k^2`` (paper eq. for E[x]);
    this equals ``sum_k tau x_k g(n_k/tau) + sum_k n_k h(n_k/tau)`` for a one-signed trajectory.
    """
    n = check_trades(trades)
    tau = check_scalar(interval, "interval", positive=True)
    et = float(_eta_tilde(check_scalar(eta, "eta", positive=True), check_scalar(gamma, "gamma"),
                          tau))
    eps = check_scalar(epsilon, "epsilon")
    x = n.sum()
    return float(0.5 * gamma * x**2 + eps * np.abs(n).sum() + et / tau * np.dot(n, n))


def ac_variance(trades: np.ndarray, interval: float, sigma: float) -> float:
    """Variance (currency^2) of the shortfall of a trajectory: ``sigma^2 tau sum_k x_k^2``."""
    n = check_trades(trades)
    tau = check_scalar(interval, "interval", positive=True)
    s = check_scalar(sigma, "sigma")
    hold = holdings_from_trades(n)
    return float(s**2 * tau * np.dot(hold, hold))


def check_trades(trades: np.ndarray) -> np.ndarray:
    n = np.asarray(trades, dtype=np.float64)
    if n.ndim != 1 or n.size == 0:
        raise ValidationError("trades must be a non-empty 1-D array", field="trades",
                              value=n.shape)
    if not np.all(np.isfinite(n)):
        raise ValidationError("trades must be finite", field="trades",
                              value=float(n[~np.isfinite(n)][0]))
    return n


def efficient_frontier(total_shares: float, n_intervals: int, interval: float, sigma: float,
                       eta: float, gamma: float, epsilon: float,
                       risk_aversions: np.ndarray) -> pd.DataFrame:
    """Expected cost and variance of the optimal trajectory for each risk aversion.

    Returns a DataFrame indexed by ``risk_aversion`` with columns ``expected_cost``
    (currency), ``variance`` (currency^2), ``std`` (currency) and ``kappa`` (1/time).
    """
    lams = check_array(risk_aversions, "risk_aversions")
    rows = []
    for lam in lams:
        tr = ac_trajectory(total_shares, n_intervals, interval, sigma, eta, gamma, epsilon, lam)
        var = ac_variance(tr, interval, sigma)
        rows.append((ac_expected_cost(tr, interval, eta, gamma, epsilon), var, np.sqrt(var),
                     ac_kappa(sigma, eta, gamma, interval, lam)))
    return pd.DataFrame(rows, index=pd.Index(lams, name="risk_aversion"),
                        columns=["expected_cost", "variance", "std", "kappa"])


@dataclass(frozen=True)
class ACParams:
    """Almgren-Chriss coefficients per name, in share units (each a scalar or an (N,) array).

    Attributes:
        eta: temporary impact, currency / share / (share per time unit).
        gamma: permanent impact, currency / share / share.
        epsilon: fixed cost per share (half spread plus fees), currency / share.
        sigma: price volatility, currency / share / sqrt(time unit); None = ``vol * price``
            from the context, converted from daily to the time unit with ``interval``.
    """

    eta: float | np.ndarray
    gamma: float | np.ndarray = 0.0
    epsilon: float | np.ndarray = 0.0
    sigma: float | np.ndarray | None = None


class AlmgrenChriss(CostModel):
    """Expected cost of executing each trade along its AC-optimal trajectory.

    A trade of ``q`` shares executed over ``n_intervals`` intervals of ``interval`` time units
    costs ``E(q) = epsilon |q| + c q^2`` with ``c = gamma/2 + (eta_tilde/tau) sum u_k^2``, where
    ``u`` is the unit optimal trajectory for ``risk_aversion`` (it scales linearly in ``q``, so
    the expectation is exactly quadratic, hence convex). ``interval`` is in trading days
    unless ``sigma`` is given in another unit.
    """

    name = "impact"

    def __init__(self, params: ACParams, *, n_intervals: int = 10, interval: float = 0.1,
                 risk_aversion: float = 0.0) -> None:
        self.params = params
        self.n_intervals = int(n_intervals)
        self.interval = check_scalar(interval, "interval", positive=True)
        self.risk_aversion = check_scalar(risk_aversion, "risk_aversion")
        if self.n_intervals < 1:
            raise ValidationError("n_intervals must be >= 1", field="n_intervals",
                                  value=n_intervals)

    def _coefficients(self, ctx: TradeContext) -> tuple[np.ndarray, np.ndarray]:
        """Per-name (linear $/share, quadratic $/share^2) coefficients, each (N,)."""
        n = len(ctx.symbols)
        p = self.params
        eta = check_array(p.eta, "eta", n, positive=True, symbols=ctx.symbols)
        gamma = check_array(p.gamma, "gamma", n, symbols=ctx.symbols)
        eps = check_array(p.epsilon, "epsilon", n, symbols=ctx.symbols)
        if p.sigma is None:
            ctx.require_inputs("Almgren-Chriss (sigma from the context)")
        sigma = (ctx.volatility * ctx.prices if p.sigma is None
                 else check_array(p.sigma, "sigma", n, symbols=ctx.symbols))
        et = _eta_tilde(eta, gamma, self.interval)
        kt2 = self.risk_aversion * sigma**2 / et
        kappa = np.arccosh(1.0 + 0.5 * kt2 * self.interval**2) / self.interval
        unit = -np.diff(_unit_holdings(kappa, self.n_intervals, self.interval), axis=1)
        quad = 0.5 * gamma + et / self.interval * np.sum(unit**2, axis=1)
        return eps, quad

    def _shares(self, ctx: TradeContext) -> np.ndarray:
        if np.any(ctx.prices <= 0):
            i = int(np.argmax(ctx.prices <= 0))
            raise ValidationError("prices must be > 0", field="prices",
                                  symbol=str(ctx.symbols[i]), value=float(ctx.prices[i]))
        return ctx.prices

    def cost_array(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        q = np.abs(trades_notional) / self._shares(ctx)
        lin, quad = self._coefficients(ctx)
        return lin * q + quad * q**2

    def expr(self, trade_weights: cp.Expression, ctx: TradeContext) -> cp.Expression:
        import cvxpy as cp

        price = self._shares(ctx)
        lin, quad = self._coefficients(ctx)
        # q = w * nav / price; cost / nav = lin/price |w| + quad nav / price^2 w^2
        return (cp.sum(cp.multiply(lin / price, cp.abs(trade_weights)))
                + cp.sum(cp.multiply(quad * ctx.nav / price**2, cp.square(trade_weights))))

    def separable_form(self, ctx: TradeContext) -> SeparableForm | None:
        price = self._shares(ctx)
        lin, quad = self._coefficients(ctx)
        return SeparableForm(lin / price, quad * ctx.nav / price**2, 2.0)

    def variance(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        """Per-name variance of the shortfall (currency^2) of each trade's trajectory, (N,)."""
        q = np.abs(np.asarray(trades_notional, dtype=np.float64)) / self._shares(ctx)
        n = len(ctx.symbols)
        p = self.params
        sigma = (ctx.volatility * ctx.prices if p.sigma is None
                 else check_array(p.sigma, "sigma", n, symbols=ctx.symbols))
        eta = check_array(p.eta, "eta", n, positive=True, symbols=ctx.symbols)
        gamma = check_array(p.gamma, "gamma", n, symbols=ctx.symbols)
        et = _eta_tilde(eta, gamma, self.interval)
        kappa = np.arccosh(1.0 + 0.5 * self.risk_aversion * sigma**2 / et
                           * self.interval**2) / self.interval
        hold = _unit_holdings(kappa, self.n_intervals, self.interval)[:, 1:]
        return sigma**2 * self.interval * np.sum(hold**2, axis=1) * q**2

    def __repr__(self) -> str:
        return (f"AlmgrenChriss(n_intervals={self.n_intervals}, interval={self.interval}, "
                f"risk_aversion={self.risk_aversion})")
