"""keel.risk: covariance estimators, factor models, risk measures, attribution, limits.

Public API (imported lazily, so ``import keel.risk.base`` stays cheap; see docs/risk.md):

- estimators: ``SampleCovariance``, ``EWMACovariance``, ``LedoitWolf``, ``OAS``
  (``fit(returns) -> self``, ``covariance_``);
- factor models: ``FundamentalFactorModel``, ``StatisticalFactorModel`` (``exposures_``,
  ``factor_covariance_``, ``specific_variance_``, ``factor_returns_``,
  ``factored() -> FactorCovariance``);
- measures (plain functions): :mod:`keel.risk.measures`;
- attribution: ``decompose``, ``marginal_risk``, ``component_risk``, ``factor_regression``;
- limits: ``RiskLimits``, ``RiskMonitor``, ``Breach``; evaluation: ``bias_statistic``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "keel.risk.base": ("FactorCovariance", "FactorRiskModel", "CovarianceEstimator"),
    "keel.risk.covariance": ("SampleCovariance", "EWMACovariance", "LedoitWolf", "OAS",
                             "ShrinkageTarget", "make_psd"),
    "keel.risk.factor_model": ("StatisticalFactorModel",),
    "keel.risk.fundamental": ("FundamentalFactorModel", "RegressionWeight"),
    "keel.risk.styles": ("Style",),
    "keel.risk.attribution": ("RiskDecomposition", "decompose", "marginal_risk",
                              "component_risk", "factor_regression", "sector_attribution"),
    "keel.risk.limits": ("RiskLimits", "RiskMonitor", "Breach", "ReasonCode", "Severity"),
    "keel.risk.evaluation": ("bias_statistic", "BiasResult"),
    "keel.risk.report": ("risk_report", "RiskModelKind"),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'keel.risk' has no attribute {name!r}")
    value = getattr(import_module(mod), name)
    globals()[name] = value
    return value
