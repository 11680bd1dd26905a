import logging

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from keel.errors import ValidationError
from keel.risk.base import FactorCovariance
from keel.risk.limits import ReasonCode, RiskLimits, RiskMonitor, Severity


def _model():
    syms = pd.Index(["A", "B", "C", "D"])
    b = np.array([[1.0], [1.0], [0.1], [0.0]])
    f = np.array([[1e-4]])
    d = np.array([1e-6, 1e-6, 1e-4, 1e-4])
    return FactorCovariance(syms, pd.Index(["m"]), b, f, d)


def test_every_breach_is_reported_with_code_limit_value_severity(caplog):
    fc = _model()
    sectors = pd.Series({"A": "Tech", "B": "Tech", "C": "Energy", "D": "Energy"})
    limits = RiskLimits(max_position=0.3, max_sector_weight=0.5, max_pairwise_correlation=0.9,
                        var_budget=0.02, vol_target=0.10)
    seen = []
    mon = RiskMonitor(limits, fc, sectors)
    mon.register(seen.append)
    mon.register(lambda b: 1 / 0)  # a broken callback must not stop the others
    w = pd.Series({"A": 0.5, "B": 0.29, "C": 0.11, "D": 0.10})
    with caplog.at_level(logging.WARNING, logger="keel.risk.monitor"):
        out = mon.evaluate(w)
    codes = {(b.code, b.subject): b for b in out}
    a = codes[(ReasonCode.MAX_POSITION, "A")]
    assert a.severity is Severity.CRITICAL and a.limit == 0.3 and a.value == 0.5
    assert codes[(ReasonCode.MAX_POSITION, "B")].severity is Severity.WARNING
    assert codes[(ReasonCode.SECTOR_WEIGHT, "Tech")].value == pytest.approx(0.79)
    corr = codes[(ReasonCode.PAIRWISE_CORRELATION, "A|B")]
    assert corr.value == pytest.approx(1e-4 / (1e-4 + 1e-6))
    sigma = np.sqrt(fc.portfolio_variance(w.to_numpy()))
    var = codes[(ReasonCode.VAR_BUDGET, "portfolio")]
    assert var.value == pytest.approx(sigma * np.sqrt(21) * stats.norm.ppf(0.95))
    vol = codes[(ReasonCode.VOLATILITY_TARGET, "portfolio")]
    assert vol.value == pytest.approx(sigma * np.sqrt(252))
    assert seen == out
    assert out[0].severity is Severity.CRITICAL
    assert "MAX_POSITION" in caplog.text and "callback" in caplog.text
    assert out[0].to_dict()["code"] in {c.value for c in ReasonCode}


def test_no_breach_when_within_limits():
    mon = RiskMonitor(RiskLimits(max_position=0.5, vol_target=1.0), _model())
    assert mon.evaluate(np.array([0.25, 0.25, 0.25, 0.25])) == []


@pytest.mark.parametrize("kwargs,field", [
    ({"max_position": -0.1}, "max_position"),
    ({"max_pairwise_correlation": 1.5}, "max_pairwise_correlation"),
    ({"var_confidence": 1.0}, "var_confidence"),
    ({"warn_fraction": 0.0}, "warn_fraction"),
])
def test_bad_limits(kwargs, field):
    with pytest.raises(ValidationError) as e:
        RiskLimits(**kwargs)
    assert e.value.field == field


def test_sector_limit_needs_sectors_and_weights_are_checked():
    mon = RiskMonitor(RiskLimits(max_sector_weight=0.3), _model())
    with pytest.raises(ValidationError) as e:
        mon.evaluate(np.full(4, 0.25))
    assert e.value.field == "sectors"
    with pytest.raises(ValidationError) as e:
        mon.evaluate(pd.Series({"ZZ": 1.0}))
    assert e.value.symbol == "ZZ"
