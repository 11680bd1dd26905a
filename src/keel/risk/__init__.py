"""keel.risk: covariance estimators, factor models, risk measures, attribution, limits.

Public API (see docs/risk.md):

- estimators: :class:`SampleCovariance`, :class:`EWMACovariance`, :class:`LedoitWolf`,
  :class:`OAS` (``fit(returns) -> self``, ``covariance_``);
- factor models: :class:`FundamentalFactorModel`, :class:`StatisticalFactorModel`
  (``exposures_``, ``factor_covariance_``, ``specific_variance_``, ``factor_returns_``,
  ``factored() -> FactorCovariance``);
- measures (plain functions): :mod:`keel.risk.measures`;
- attribution: :func:`decompose`, :func:`marginal_risk`, :func:`component_risk`,
  :func:`factor_regression`;
- limits: :class:`RiskLimits`, :class:`RiskMonitor`, :class:`Breach`.
"""

from keel.risk.attribution import (
    RiskDecomposition,
    component_risk,
    decompose,
    factor_regression,
    marginal_risk,
)
from keel.risk.base import FactorCovariance, FactorRiskModel
from keel.risk.covariance import (
    OAS,
    EWMACovariance,
    LedoitWolf,
    SampleCovariance,
    ShrinkageTarget,
)
from keel.risk.evaluation import bias_statistic
from keel.risk.factor_model import StatisticalFactorModel
from keel.risk.fundamental import FundamentalFactorModel, RegressionWeight
from keel.risk.limits import Breach, ReasonCode, RiskLimits, RiskMonitor, Severity
from keel.risk.styles import Style

__all__ = [
    "OAS", "Breach", "EWMACovariance", "FactorCovariance", "FactorRiskModel",
    "FundamentalFactorModel", "LedoitWolf", "ReasonCode", "RegressionWeight",
    "RiskDecomposition", "RiskLimits", "RiskMonitor", "SampleCovariance", "Severity",
    "ShrinkageTarget", "StatisticalFactorModel", "Style", "bias_statistic",
    "component_risk", "decompose", "factor_regression", "marginal_risk",
]
