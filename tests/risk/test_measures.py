import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from keel.errors import ValidationError
from keel.risk import measures as m
from keel.risk.base import FactorCovariance


@pytest.fixture
def rets():
    return np.random.default_rng(1).standard_t(5, size=(1500, 3)) * 0.01 + 0.0003


def test_volatility_and_scaling(rets):
    np.testing.assert_allclose(m.volatility(rets), rets.std(axis=0, ddof=1))
    np.testing.assert_allclose(m.volatility(rets, periods_per_year=252),
                               rets.std(axis=0, ddof=1) * np.sqrt(252))
    assert m.scale_to_horizon(0.01) == pytest.approx(0.01 * np.sqrt(21))


def test_horizon_returns_brute_force(rets):
    h = 21
    got = m.horizon_returns(rets[:, 0], h)
    ref = np.array([np.prod(1 + rets[i:i + h, 0]) - 1 for i in range(len(rets) - h + 1)])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-14)
    assert m.horizon_returns(rets, h).shape == (len(rets) - h + 1, 3)


@pytest.mark.parametrize("h", [1, 5, 21])
def test_historical_var_cvar(rets, h):
    x = rets[:, 1]
    windows = np.array([np.prod(1 + x[i:i + h]) - 1 for i in range(len(x) - h + 1)])
    var = m.historical_var(x, 0.99, h)
    assert var == pytest.approx(-np.quantile(windows, 0.01), abs=1e-13)
    tail = windows[-windows >= var]
    assert m.historical_cvar(x, 0.99, h) == pytest.approx(-tail.mean(), abs=1e-13)
    both = m.historical_var(rets, 0.99, h)
    assert both.shape == (3,) and both[1] == pytest.approx(var)


def test_historical_var_converges_to_normal_closed_form():
    x = np.random.default_rng(0).normal(0.0, 0.01, 400_000)
    assert m.historical_var(x, 0.95, 1) == pytest.approx(0.01 * stats.norm.ppf(0.95), rel=0.01)
    assert m.historical_cvar(x, 0.95, 1) == pytest.approx(
        0.01 * stats.norm.pdf(stats.norm.ppf(0.95)) / 0.05, rel=0.01)


@pytest.mark.parametrize("c,h", [(0.95, 21), (0.99, 1), (0.975, 10)])
def test_normal_var_cvar_against_scipy(rets, c, h):
    x = rets[:, 2]
    mu, sd = x.mean() * h, x.std(ddof=1) * np.sqrt(h)
    assert m.normal_var(x, c, h) == pytest.approx(-stats.norm.ppf(1 - c, mu, sd), rel=1e-12)
    q = stats.norm.ppf(1 - c, mu, sd)
    es = -stats.norm.expect(lambda v: v, loc=mu, scale=sd, ub=q, conditional=True)
    assert m.normal_cvar(x, c, h) == pytest.approx(es, rel=1e-8)
    assert m.normal_var(x, c, h, include_mean=False) == pytest.approx(sd * stats.norm.ppf(c))


def test_cornish_fisher_against_formula_and_quadrature(rets):
    x = rets[:, 0]
    h, c = 21, 0.99
    mu, sd = x.mean() * h, x.std(ddof=1) * np.sqrt(h)
    s = stats.skew(x, bias=False) / np.sqrt(h)
    k = stats.kurtosis(x, bias=False) / h
    z = stats.norm.ppf(1 - c)
    zcf = z + (z * z - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s * s / 36
    assert m.cornish_fisher_var(x, c, h) == pytest.approx(-(mu + sd * zcf), rel=1e-12)
    integral, _ = integrate.quad(lambda p: m.cornish_fisher_quantile(p, s, k), 0, 1 - c,
                                 limit=200)
    ref = -(mu + sd * integral / (1 - c))
    assert m.cornish_fisher_cvar(x, c, h) == pytest.approx(ref, rel=1e-6)
    # zero skew and kurtosis: the normal closed form
    q0 = integrate.quad(lambda p: m.cornish_fisher_quantile(p, 0.0, 0.0), 0, 0.05)[0] / 0.05
    assert -q0 == pytest.approx(stats.norm.pdf(stats.norm.ppf(0.95)) / 0.05, rel=1e-6)
    # fat tails: CF VaR at 99% exceeds the normal VaR
    assert m.cornish_fisher_var(x, 0.99, 1) > m.normal_var(x, 0.99, 1)
    assert m.cornish_fisher_cvar(rets, c, h).shape == (3,)


def _model():
    rng = np.random.default_rng(4)
    n, k = 50, 3
    b = rng.normal(size=(n, k))
    f = np.diag([1e-4, 4e-5, 2e-5])
    d = rng.uniform(1e-5, 4e-4, n)
    return FactorCovariance(pd.Index([f"S{i}" for i in range(n)]),
                            pd.Index(["a", "b", "c"]), b, f, d)


def test_monte_carlo_matches_normal_closed_form_and_is_seeded():
    fc = _model()
    w = np.full(fc.n_assets, 1 / fc.n_assets)
    sd = np.sqrt(fc.portfolio_variance(w))
    var, cvar = m.monte_carlo_var_cvar(fc, w, 0.99, 1, n_paths=400_000, seed=7)
    assert var == pytest.approx(sd * stats.norm.ppf(0.99), rel=0.02)
    assert cvar == pytest.approx(sd * stats.norm.pdf(stats.norm.ppf(0.99)) / 0.01, rel=0.02)
    a = m.monte_carlo_var_cvar(fc, w, 0.95, 21, n_paths=2000, seed=3)
    b = m.monte_carlo_var_cvar(fc, w, 0.95, 21, n_paths=2000,
                               seed=np.random.default_rng(3))
    assert a == b
    t = m.monte_carlo_var_cvar(fc, w, 0.99, 1, n_paths=200_000, seed=1, dof=4)
    assert t[1] > cvar * 0.98  # fatter tails: at least the normal expected shortfall
    with pytest.raises(ValidationError) as e:
        m.monte_carlo_var_cvar(fc, w[:-1], seed=1)
    assert e.value.field == "weights"


def test_max_drawdown():
    assert m.max_drawdown(np.array([0.1, -0.5, 0.2])) == pytest.approx(0.5)
    assert m.max_drawdown(np.array([-0.1, -0.1])) == pytest.approx(0.19)
    assert m.max_drawdown(np.array([0.01, 0.02])) == 0.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-0.5, 0.5), min_size=1, max_size=60))
def test_drawdown_bounds(xs):
    dd = m.max_drawdown(np.array(xs))
    assert 0.0 <= dd <= 1.0


def test_bad_inputs():
    with pytest.raises(ValidationError) as e:
        m.historical_var(np.zeros(10), 1.2)
    assert e.value.field == "confidence"
    with pytest.raises(ValidationError) as e:
        m.historical_var(np.full(10, 0.01), 0.95, 21)
    assert e.value.field == "returns"
    with pytest.raises(ValidationError) as e:
        m.normal_var(np.array([0.01, np.nan, 0.0, 0.02, 0.01]))
    assert e.value.field == "returns"
    with pytest.raises(ValidationError) as e:
        m.historical_var(np.full(30, 0.01), 0.95, 0)
    assert e.value.field == "horizon"
