"""Risk attribution: marginal and component risk, factor/specific split, sectors, Fama-French.

Risk is volatility (standard deviation of the portfolio return) in the units of the model
(daily unless annualised by ``sqrt(periods_per_year)``). Contributions use the Euler
allocation: asset ``i`` contributes ``w_i (Sigma w)_i / sigma``, factor ``k`` contributes
``x_k (F x)_k / sigma`` with ``x = B'w``, the specific part ``sum_i d_i w_i^2 / sigma``; each
set sums to ``sigma``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from keel.errors import DataError, ValidationError
from keel.risk._input import as_weights
from keel.risk.base import FactorCovariance

GROUP_ORDER = ("market", "sector", "style", "statistical")


def _sigma_w(model: FactorCovariance | np.ndarray, w: np.ndarray) -> np.ndarray:
    if isinstance(model, FactorCovariance):
        return model.matvec(w)
    cov = np.asarray(model, dtype=np.float64)
    if cov.shape != (len(w), len(w)):
        raise ValidationError("covariance and weights disagree in size", field="weights",
                              value=len(w))
    return cov @ w


def marginal_risk(model: FactorCovariance | np.ndarray, weights: Any) -> np.ndarray:
    """(N,) marginal contribution to risk ``d sigma / d w = Sigma w / sigma``."""
    w = np.asarray(weights, dtype=np.float64)
    sw = _sigma_w(model, w)
    sigma = float(np.sqrt(max(w @ sw, 0.0)))
    if sigma == 0.0:
        raise ValidationError("portfolio has zero risk: marginal risk undefined",
                              field="weights")
    return sw / sigma


def component_risk(model: FactorCovariance | np.ndarray, weights: Any) -> np.ndarray:
    """(N,) component risk ``w_i (Sigma w)_i / sigma``; sums to the portfolio volatility."""
    w = np.asarray(weights, dtype=np.float64)
    return w * marginal_risk(model, w)


@dataclass(frozen=True)
class RiskDecomposition:
    """A portfolio's volatility split by factor group, factor, asset and sector.

    All risk numbers are volatility contributions in the units given by ``annualized``;
    ``total == factor + specific`` and each breakdown sums to its parent.
    """

    total: float
    factor: float
    specific: float
    by_group: pd.Series
    by_factor: pd.Series
    by_asset: pd.Series
    by_sector: pd.DataFrame
    annualized: bool

    @property
    def factor_share(self) -> float:
        """Fraction of the portfolio *variance* that is factor risk (= factor / total)."""
        return self.factor / self.total

    def summary(self) -> str:
        """E.g. ``Total 15.0% = Factor 10.5% (Market 6.3, Sector 2.1, Style 2.1) + Specific
        4.5%``."""
        groups = ", ".join(f"{g.capitalize()} {100 * v:.1f}" for g, v in self.by_group.items())
        return (f"Total {100 * self.total:.1f}% = Factor {100 * self.factor:.1f}% ({groups})"
                f" + Specific {100 * self.specific:.1f}%")

    def to_dict(self) -> dict[str, Any]:
        return {
            "annualized": self.annualized, "total": self.total, "factor": self.factor,
            "specific": self.specific, "factor_share_of_variance": self.factor_share,
            "by_group": self.by_group.to_dict(), "by_factor": self.by_factor.to_dict(),
            "by_sector": self.by_sector.to_dict(orient="index"),
            "by_asset": self.by_asset.to_dict(),
        }


def decompose(model: FactorCovariance, weights: Any, *, groups: pd.Series | None = None,
              sectors: pd.Series | None = None, annualize: bool = True) -> RiskDecomposition:
    """Factor / specific decomposition of ``weights`` under ``model``.

    Args:
        model: the factored covariance.
        weights: Series by symbol (missing symbols = 0) or (N,) array in model order.
        groups: factor -> group label (``market``, ``sector``, ``style``...); default: one
            group ``factor``.
        sectors: symbol -> sector for the sector table (default: all ``Unknown``).
        annualize: volatility per year (``sqrt(periods_per_year)``) instead of per period.
    """
    w = as_weights(weights, model.symbols)
    scale = np.sqrt(model.periods_per_year) if annualize else 1.0
    x = model.exposures.T @ w
    fx = model.factor_covariance @ x
    spec_var = float(np.sum(model.specific_variance * w * w))
    var = float(x @ fx) + spec_var
    if not var > 0:
        raise ValidationError("portfolio has zero risk", field="weights")
    sigma = np.sqrt(var)
    by_factor = pd.Series(x * fx / sigma * scale, index=model.factors, name="risk")
    g = (pd.Series("factor", index=model.factors) if groups is None
         else pd.Series(groups).reindex(model.factors).fillna("other"))
    by_group = by_factor.groupby(g.to_numpy()).sum()
    order = [k for k in GROUP_ORDER if k in by_group.index]
    by_group = by_group.reindex(order + [k for k in by_group.index if k not in order])
    comp = w * _sigma_w(model, w) / sigma * scale
    by_asset = pd.Series(comp, index=model.symbols, name="risk")
    sec = (pd.Series("Unknown", index=model.symbols) if sectors is None
           else pd.Series(sectors).reindex(model.symbols).fillna("Unknown"))
    by_sector = sector_attribution(by_asset, w, sec)
    factor = float(by_factor.sum())
    specific = spec_var / sigma * scale
    return RiskDecomposition(total=factor + specific, factor=factor, specific=specific,
                             by_group=by_group, by_factor=by_factor, by_asset=by_asset,
                             by_sector=by_sector, annualized=annualize)


def sector_attribution(component: pd.Series, weights: np.ndarray,
                       sectors: pd.Series) -> pd.DataFrame:
    """Weight, risk contribution and share of risk per sector (sorted by risk).

    Args:
        component: component risk by symbol (sums to total risk).
        weights: (N,) weights in ``component``'s order.
        sectors: symbol -> sector label, aligned with ``component``.
    """
    df = pd.DataFrame({"weight": weights, "risk": component.to_numpy(),
                       "sector": sectors.to_numpy()}, index=component.index)
    out = df.groupby("sector")[["weight", "risk"]].sum()
    out["share"] = out["risk"] / component.sum()
    return out.sort_values("risk", ascending=False)


@dataclass(frozen=True)
class RegressionResult:
    """OLS time-series regression of excess returns on factor returns."""

    alpha: float  #: intercept per period
    betas: pd.Series
    t_stats: pd.Series  #: including ``alpha``
    std_errors: pd.Series  #: including ``alpha``
    r2: float
    adj_r2: float
    n_obs: int
    residual_vol: float  #: per period

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "betas": self.betas.to_dict(),
                "t_stats": self.t_stats.to_dict(), "std_errors": self.std_errors.to_dict(),
                "r2": self.r2, "adj_r2": self.adj_r2, "n_obs": self.n_obs,
                "residual_vol": self.residual_vol}


def factor_regression(returns: pd.Series, factors: pd.DataFrame, *,
                      risk_free: str | None = "RF") -> RegressionResult:
    """Regress portfolio returns (minus ``risk_free``) on factor returns, with an intercept.

    Both inputs are simple returns per period as fractions (Fama-French files are in percent:
    divide by 100 first). Dates are inner-joined; OLS with classical standard errors.

    Raises:
        DataError: fewer than (factors + 3) common dates, or NaN in the overlap.
    """
    cols = [c for c in factors.columns if c != risk_free]
    joined = pd.concat([returns.rename("_r"), factors], axis=1, join="inner")
    if joined.isna().any().any():
        bad = joined.columns[joined.isna().any()][0]
        raise DataError("missing values in the regression data", field=str(bad))
    n, k = len(joined), len(cols) + 1
    if n < k + 2:
        raise DataError("too few common dates between returns and factors",
                        field="factors", value=n)
    y = joined["_r"].to_numpy()
    if risk_free is not None and risk_free in joined:
        y = y - joined[risk_free].to_numpy()
    x = np.column_stack([np.ones(n), joined[cols].to_numpy()])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    e = y - x @ coef
    sse = float(e @ e)
    s2 = sse / (n - k)
    cov = s2 * np.linalg.inv(x.T @ x)
    se = np.sqrt(np.diag(cov))
    sst = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - sse / sst
    names = ["alpha", *map(str, cols)]
    return RegressionResult(
        alpha=float(coef[0]), betas=pd.Series(coef[1:], index=cols, name="beta"),
        t_stats=pd.Series(coef / se, index=names, name="t"),
        std_errors=pd.Series(se, index=names, name="se"), r2=r2,
        adj_r2=1.0 - (1.0 - r2) * (n - 1) / (n - k), n_obs=n, residual_vol=float(np.sqrt(s2)))
