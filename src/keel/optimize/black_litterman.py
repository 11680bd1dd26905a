"""Black-Litterman: an equilibrium prior blended with views into posterior returns and covariance.

The model (He & Litterman 1999, in the notation of Idzorek 2005). With ``Sigma`` the (N, N)
covariance of returns per period, ``w_mkt`` market-cap (or benchmark) weights and ``delta`` the
market's risk aversion:

* prior (implied equilibrium) returns ``pi = delta * Sigma @ w_mkt`` (plus the risk-free rate);
* K views ``P @ mu = Q + eps``, ``eps ~ N(0, Omega)``; a row of ``P`` is an absolute view
  (``{"AAPL": 1}``) or a relative one (``{"AAPL": 1, "MSFT": -1}``);
* posterior mean ``mu_BL = pi + tau Sigma P' (P tau Sigma P' + Omega)^-1 (Q - P pi)``;
* posterior covariance of returns ``Sigma_BL = Sigma + M``, with the covariance of the mean
  ``M = tau Sigma - tau Sigma P' (P tau Sigma P' + Omega)^-1 P tau Sigma``.

``Omega`` (diagonal) is either proportional to the view portfolios' prior variance
(``omega_k = tau p_k Sigma p_k'``, He-Litterman) or set from a confidence ``c_k`` in (0, 1] per
view by Idzorek's method in its closed form (Walters 2011): ``omega_k = tau p_k Sigma p_k' *
(1 - c_k) / c_k``. With that choice, for one view and unconstrained mean-variance weights
``(delta Sigma)^-1 mu``, the tilt away from the market portfolio is exactly ``c_k`` times the tilt
of a 100%-confident view (tested). A confidence of 1 makes the view hold exactly.

Units: returns per period of the covariance (daily for a daily risk model). A
:class:`~keel.risk.base.FactorCovariance` is used in factored form: the posterior mean costs
O(N K) per view and never forms N x N; only :meth:`BlackLitterman.posterior_covariance` is dense.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from keel.errors import ValidationError
from keel.optimize.heuristics import RiskModel, cov_matvec
from keel.risk.base import FactorCovariance


@dataclass(frozen=True)
class View:
    """One view: the portfolio ``assets`` (symbol -> weight) returns ``expected`` per period.

    Attributes:
        assets: absolute view ``{"AAPL": 1.0}``; relative ``{"AAPL": 1.0, "MSFT": -1.0}``.
        expected: the view portfolio's expected return, per period of the risk model.
        confidence: Idzorek confidence in (0, 1]; None uses the He-Litterman default.
    """

    assets: Mapping[str, float]
    expected: float
    confidence: float | None = None

    def __post_init__(self) -> None:
        if not self.assets:
            raise ValidationError("a view needs at least one asset", field="assets")
        for sym, w in self.assets.items():
            if not np.isfinite(w):
                raise ValidationError("view weights must be finite", field="assets",
                                      symbol=sym, value=w)
        if not np.isfinite(self.expected):
            raise ValidationError("a view's expected return must be finite", field="expected",
                                  value=self.expected)
        if self.confidence is not None and not 0.0 < self.confidence <= 1.0:
            raise ValidationError("confidence must be in (0, 1]", field="confidence",
                                  value=self.confidence)


def implied_returns(risk: RiskModel, market_weights: pd.Series, risk_aversion: float, *,
                    risk_free: float = 0.0) -> pd.Series:
    """Equilibrium returns ``risk_free + delta * Sigma @ w_mkt`` (per period), by symbol."""
    if not (np.isfinite(risk_aversion) and risk_aversion > 0):
        raise ValidationError("risk aversion must be > 0", field="risk_aversion",
                              value=risk_aversion)
    symbols = _symbols(risk, market_weights)
    w = market_weights.reindex(symbols).to_numpy(dtype=np.float64)
    return pd.Series(risk_free + risk_aversion * cov_matvec(risk, w), index=symbols,
                     name="implied_return")


def market_risk_aversion(market_returns: pd.Series | np.ndarray, *,
                         risk_free: float = 0.0) -> float:
    """``delta = (E[r_m] - r_f) / var(r_m)`` from a market (or benchmark) return series."""
    r = np.asarray(market_returns, dtype=np.float64)
    if not np.all(np.isfinite(r)):
        i = int(np.argmax(~np.isfinite(r)))
        raise ValidationError("market returns must be finite (drop missing rows first)",
                              field="market_returns", value=i)
    if r.size < 2 or r.var(ddof=1) <= 0:
        raise ValidationError("need at least two varying market returns",
                              field="market_returns", value=int(r.size))
    return float((r.mean() - risk_free) / r.var(ddof=1))


def _symbols(risk: RiskModel, weights: pd.Series) -> pd.Index:
    if isinstance(risk, FactorCovariance):
        symbols = pd.Index(risk.symbols)
    elif isinstance(risk, pd.DataFrame):
        symbols = pd.Index(risk.index)
    else:
        symbols = pd.Index(weights.index)
        if np.asarray(risk).shape != (len(symbols), len(symbols)):
            raise ValidationError("covariance shape does not match the weights",
                                  field="risk", value=np.asarray(risk).shape)
    missing = symbols.difference(weights.index)
    if len(missing):
        raise ValidationError("market weights missing for symbols", field="market_weights",
                              symbol=str(missing[0]), value=len(missing))
    return symbols


class BlackLitterman:
    """Posterior returns and covariance from a prior and views (scikit-learn conventions).

    Args:
        tau: uncertainty of the prior mean relative to returns (0.025-0.05 is customary).
        risk_aversion: ``delta`` for the implied prior (see :func:`market_risk_aversion`).
        risk_free: per-period risk-free rate added to the implied prior.

    Learned (after :meth:`fit`): ``prior_returns_``, ``posterior_returns_`` (pd.Series by
    symbol), ``P_`` (K, N), ``Q_`` (K,), ``omega_`` (K,) diagonal of Omega, ``symbols_``.
    """

    def __init__(self, *, tau: float = 0.05, risk_aversion: float = 2.5,
                 risk_free: float = 0.0) -> None:
        self.tau = tau
        self.risk_aversion = risk_aversion
        self.risk_free = risk_free

    def fit(self, risk: RiskModel, views: Sequence[View], *,
            market_weights: pd.Series | None = None,
            prior: pd.Series | None = None) -> BlackLitterman:
        """Blend the prior (implied from ``market_weights``, or given as ``prior``) with views.

        Raises:
            ValidationError: no prior, bad tau, a view naming an unknown symbol.
        """
        if not (np.isfinite(self.tau) and self.tau > 0):
            raise ValidationError("tau must be > 0", field="tau", value=self.tau)
        if prior is None:
            if market_weights is None:
                raise ValidationError("give market_weights (implied prior) or prior",
                                      field="prior")
            pi = implied_returns(risk, market_weights, self.risk_aversion,
                                 risk_free=self.risk_free)
        else:
            pi = prior.astype(np.float64)
            _symbols(risk, pi)                       # same universe as the risk model
            if isinstance(risk, FactorCovariance | pd.DataFrame):
                pi = pi.reindex(_symbols(risk, pi))
        symbols = pd.Index(pi.index)
        if not np.all(np.isfinite(pi.to_numpy())):
            raise ValidationError("prior returns must be finite", field="prior")
        p = np.zeros((len(views), len(symbols)))
        pos = {s: i for i, s in enumerate(symbols)}
        for k, view in enumerate(views):
            for sym, w in view.assets.items():
                if sym not in pos:
                    raise ValidationError("view names a symbol outside the risk model",
                                          field=f"views.{k}.assets", symbol=sym)
                p[k, pos[sym]] += w
        q = np.array([v.expected for v in views], dtype=np.float64)
        self.symbols_ = symbols
        self.prior_returns_ = pi.rename("prior_return")
        self.P_, self.Q_ = p, q
        if not views:
            self.omega_ = np.zeros(0)
            self.posterior_returns_ = pi.rename("posterior_return")
            self._sigma_pt = np.zeros((len(symbols), 0))
            self._gain = np.zeros((0, 0))
            self._risk = risk
            return self
        sigma_pt = cov_matvec(risk, p.T)                       # (N, K) = Sigma P'
        view_var = np.einsum("kn,nk->k", p, sigma_pt)          # p_k Sigma p_k'
        if np.any(view_var <= 0):
            k = int(np.argmin(view_var))
            raise ValidationError("a view portfolio has zero prior variance",
                                  field=f"views.{k}.assets")
        scale = np.array([1.0 if v.confidence is None else (1.0 - v.confidence) / v.confidence
                          for v in views])
        omega = self.tau * view_var * scale
        a = self.tau * (p @ sigma_pt) + np.diag(omega)         # P tau Sigma P' + Omega
        gain = np.linalg.solve(a, q - p @ pi.to_numpy())
        mu = pi.to_numpy() + self.tau * sigma_pt @ gain
        self.omega_ = omega
        self.posterior_returns_ = pd.Series(mu, index=symbols, name="posterior_return")
        self._sigma_pt, self._gain, self._risk = sigma_pt, np.linalg.inv(a), risk
        return self

    def posterior_covariance(self) -> pd.DataFrame:
        """``Sigma_BL = (1 + tau) Sigma - tau^2 Sigma P' A^-1 P Sigma`` as a dense (N, N) frame.

        For a factor risk model this is the only N x N object; ``(1 + tau) Sigma`` in factored
        form bounds it from above (PSD order) and is the cheap conservative choice for an
        optimizer.
        """
        n = len(self.symbols_)
        sigma = cov_matvec(self._risk, np.eye(n))
        u = self.tau * self._sigma_pt
        post = (1.0 + self.tau) * sigma - u @ self._gain @ u.T
        post = 0.5 * (post + post.T)
        return pd.DataFrame(post, index=self.symbols_, columns=self.symbols_)


def signal_views(score: pd.Series, alpha: pd.Series, *, kind: str = "relative",
                 quantile: float = 0.2, confidence: float | None = None) -> list[View]:
    """Views from a signal: its composite ``score`` (z) and ``alpha`` (expected return per
    period, ``IC x vol x z`` from :mod:`keel.signals`), by symbol.

    * ``relative``: one view, the equal-weighted top ``quantile`` of the score minus the
      bottom ``quantile`` returns the difference of their mean alphas;
    * ``absolute``: one view per name in the top or bottom ``quantile``, returning its alpha.

    Names without a finite score or alpha take no part (no silent fill). ``confidence`` is the
    Idzorek confidence of every view (None: He-Litterman's default).

    Raises:
        ValidationError: unknown kind, quantile outside (0, 0.5], misaligned inputs.
    """
    if kind not in ("relative", "absolute"):
        raise ValidationError("view kind must be relative or absolute", field="kind",
                              value=kind)
    if not 0.0 < quantile <= 0.5:
        raise ValidationError("quantile must be in (0, 0.5]", field="quantile", value=quantile)
    if not score.index.equals(alpha.index):
        raise ValidationError("score and alpha must share one index", field="alpha")
    ok = np.isfinite(score.to_numpy(dtype=np.float64)) & np.isfinite(
        alpha.to_numpy(dtype=np.float64))
    s, a = score[ok], alpha[ok]
    k = int(np.floor(quantile * len(s)))
    if k < 1 or s.nunique() < 2:
        return []
    order = s.sort_values(ascending=False, kind="stable")
    top, bottom = order.index[:k], order.index[-k:]
    if kind == "absolute":
        return [View({str(sym): 1.0}, float(a[sym]), confidence)
                for sym in (*top, *bottom)]
    assets = {**{str(x): 1.0 / k for x in top}, **{str(x): -1.0 / k for x in bottom}}
    return [View(assets, float(a[top].mean() - a[bottom].mean()), confidence)]
