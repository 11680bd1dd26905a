"""One-call risk report of a portfolio: model fit, decomposition, VaR/CVaR (no I/O)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from keel.data.market import MarketData
from keel.errors import ValidationError
from keel.risk import measures as m
from keel.risk._input import as_weights
from keel.risk.attribution import (
    RiskDecomposition,
    decompose,
    factor_regression,
    sector_attribution,
)
from keel.risk.covariance import LedoitWolf
from keel.risk.factor_model import StatisticalFactorModel
from keel.risk.fundamental import FundamentalFactorModel


class RiskModelKind(StrEnum):
    """Which risk model the report uses."""

    FUNDAMENTAL = "fundamental"
    PCA = "pca"
    LW = "lw"


def decompose_dense(cov: np.ndarray, weights: np.ndarray, symbols: pd.Index,
                    sectors: pd.Series, periods_per_year: float = 252.0,
                    annualize: bool = True) -> RiskDecomposition:
    """Asset and sector decomposition under a dense covariance (no factor split: NaN)."""
    w = np.asarray(weights, dtype=np.float64)
    sw = cov @ w
    var = float(w @ sw)
    if not var > 0:
        raise ValidationError("portfolio has zero risk", field="weights")
    scale = np.sqrt(periods_per_year) if annualize else 1.0
    comp = pd.Series(w * sw / np.sqrt(var) * scale, index=symbols, name="risk")
    sec = pd.Series(sectors).reindex(symbols).fillna("Unknown")
    empty = pd.Series(dtype=float, name="risk")
    return RiskDecomposition(total=float(np.sqrt(var) * scale), factor=float("nan"),
                             specific=float("nan"), by_group=empty, by_factor=empty,
                             by_asset=comp, by_sector=sector_attribution(comp, w, sec),
                             annualized=annualize)


def risk_report(market: MarketData, weights: pd.Series, *,
                model: RiskModelKind | str = RiskModelKind.FUNDAMENTAL,
                confidence: float = 0.95, horizon: int = m.DEFAULT_HORIZON,
                seed: int = 0, fama_french: pd.DataFrame | None = None) -> dict[str, Any]:
    """Fit ``model`` on ``market`` and describe the risk of ``weights`` (fractions of NAV).

    Returns a JSON-ready dict: ``model``, ``decomposition`` (annualised volatility
    contributions), ``var`` (VaR and CVaR at ``confidence`` over ``horizon`` days:
    historical with overlapping windows, normal, Cornish-Fisher and, for factor models, Monte
    Carlo with ``seed``), ``max_drawdown`` of the fixed-weight portfolio, and
    ``fama_french`` (betas, t-stats, R^2) when factor returns are given.
    """
    try:
        kind = RiskModelKind(model)
    except ValueError:
        raise ValidationError("unknown risk model", field="model", value=model) from None
    w = as_weights(weights, market.symbols)
    port = pd.Series(market.returns.to_numpy() @ w, index=market.returns.index)
    fc = None
    if kind is RiskModelKind.FUNDAMENTAL:
        fm = FundamentalFactorModel().fit(market)
        fc = fm.factored()
        dec = decompose(fc, w, groups=fm.factor_groups_, sectors=market.sectors)
        extra: dict[str, Any] = {"mean_cross_sectional_r2": fm.mean_r2_}
    elif kind is RiskModelKind.PCA:
        pm = StatisticalFactorModel().fit(market.returns)
        fc = pm.factored()
        dec = decompose(fc, w, groups=pm.factor_groups_, sectors=market.sectors)
        extra = {"n_factors": pm.n_factors_,
                 "explained_variance": float(pm.explained_variance_ratio_.sum())}
    else:
        lw = LedoitWolf().fit(market.returns)
        dec = decompose_dense(lw.covariance_, w, market.symbols, market.sectors)
        extra = {"shrinkage": lw.shrinkage_}
    x = port.to_numpy()
    var = {
        "historical": [m.historical_var(x, confidence, horizon),
                       m.historical_cvar(x, confidence, horizon)],
        "normal": [m.normal_var(x, confidence, horizon), m.normal_cvar(x, confidence, horizon)],
        "cornish_fisher": [m.cornish_fisher_var(x, confidence, horizon),
                           m.cornish_fisher_cvar(x, confidence, horizon)],
    }
    if fc is not None:
        var["monte_carlo"] = list(m.monte_carlo_var_cvar(fc, w, confidence, horizon,
                                                         seed=seed))
    out: dict[str, Any] = {
        "model": kind.value, "n_assets": market.n_assets, "n_days": len(market.returns),
        "as_of": str(market.now), "confidence": confidence, "horizon_days": horizon,
        "model_info": extra, "decomposition": dec.to_dict(), "summary": _summary(dec),
        "var_cvar": {k: {"var": float(v[0]), "cvar": float(v[1])} for k, v in var.items()},
        "max_drawdown": float(m.max_drawdown(x)),
        "realised_volatility_annualized": float(m.volatility(x, periods_per_year=252)),
    }
    if fama_french is not None:
        out["fama_french"] = factor_regression(port, fama_french).to_dict()
    return out


def _summary(dec: RiskDecomposition) -> str:
    if np.isnan(dec.factor):
        return f"Total {100 * dec.total:.1f}% (dense covariance: no factor split)"
    return dec.summary()
