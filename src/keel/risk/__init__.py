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

from keel._lazy import lazy_exports

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
__getattr__, __all__ = lazy_exports("keel.risk", globals(), _EXPORTS)
