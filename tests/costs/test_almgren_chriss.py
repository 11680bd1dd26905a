from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.costs.almgren_chriss import (
    ACParams,
    AlmgrenChriss,
    ac_expected_cost,
    ac_kappa,
    ac_trajectory,
    ac_variance,
    efficient_frontier,
)
from keel.errors import ValidationError

from .helpers import make_ctx

# The paper's example (Almgren & Chriss 2000, section 4)
P = {"interval": 1.0, "sigma": 0.95, "eta": 2.5e-6, "gamma": 2.5e-7, "epsilon": 0.0625}
X, N = 1e6, 5


def _traj(lam: float) -> np.ndarray:
    return ac_trajectory(X, N, risk_aversion=lam, **P)


def test_paper_values_lambda_1e6() -> None:
    assert ac_kappa(0.95, 2.5e-6, 2.5e-7, 1.0, 1e-6) == pytest.approx(0.6071, abs=5e-5)
    tr = _traj(1e-6)
    np.testing.assert_array_equal(np.round(tr), [458_044, 252_101, 141_957, 85_756, 62_142])
    assert round(ac_expected_cost(tr, 1.0, 2.5e-6, 2.5e-7, 0.0625)) == 911_227
    assert round(np.sqrt(ac_variance(tr, 1.0, 0.95))) == 603_431


def test_paper_kappa_lambda_2e6_and_twap() -> None:
    assert ac_kappa(0.95, 2.5e-6, 2.5e-7, 1.0, 2e-6) == pytest.approx(0.8463, abs=5e-5)
    np.testing.assert_allclose(_traj(0.0), np.full(N, X / N))
    # uniform: E = gamma X^2/2 + eps X + eta_tilde X^2 / T
    assert ac_expected_cost(_traj(0.0), 1.0, 2.5e-6, 2.5e-7, 0.0625) == pytest.approx(
        0.5 * 2.5e-7 * X**2 + 0.0625 * X + 2.375e-6 * X**2 / 5)


@given(lam=st.floats(1e-8, 1e-4), n=st.integers(1, 60), x=st.floats(-1e7, 1e7))
@settings(max_examples=50, deadline=None)
def test_trajectory_sums_and_is_monotone(lam: float, n: int, x: float) -> None:
    tr = ac_trajectory(x, n, 0.2, 0.95, 2.5e-6, 2.5e-7, 0.0625, lam)
    assert tr.shape == (n,)
    assert tr.sum() == pytest.approx(x, rel=1e-12, abs=1e-6)
    assert np.all(np.diff(np.abs(tr)) <= 1e-9 * abs(x) + 1e-9)  # front-loaded


def test_trajectory_minimises_mean_variance_objective() -> None:
    """Independent check: CVXPY on E + lambda V over all trajectories finds the same one."""
    lam, tau = 1e-6, 1.0
    u = cp.Variable(N)  # trades as fractions of X
    hold = 1.0 - cp.cumsum(u)
    et = P["eta"] - P["gamma"] * tau / 2
    obj = et / tau * X**2 * cp.sum_squares(u) + lam * 0.95**2 * tau * X**2 * cp.sum_squares(hold)
    cp.Problem(cp.Minimize(obj / 1e5), [cp.sum(u) == 1, u >= 0]).solve(solver=cp.CLARABEL)
    np.testing.assert_allclose(u.value * X, _traj(lam), rtol=1e-5)


def test_efficient_frontier_is_monotone() -> None:
    f = efficient_frontier(X, N, 1.0, 0.95, 2.5e-6, 2.5e-7, 0.0625, np.logspace(-8, -5, 12))
    assert f["expected_cost"].is_monotonic_increasing
    assert f["variance"].is_monotonic_decreasing
    assert f.loc[1e-6 if 1e-6 in f.index else f.index[0], "std"] > 0
    assert list(f.columns) == ["expected_cost", "variance", "std", "kappa"]


def test_cost_model_matches_trajectory_cost() -> None:
    ctx = make_ctx(3, nav=1e8)
    model = AlmgrenChriss(ACParams(eta=3e-7, gamma=3e-8, epsilon=0.02), n_intervals=6,
                          interval=0.1, risk_aversion=2e-6)
    trades = np.array([5e6, -2e6, 0.0])
    got = model.cost(trades, ctx).currency.to_numpy()
    var = model.variance(trades, ctx)
    for i in range(3):
        q = abs(trades[i]) / ctx.prices[i]
        sigma = ctx.volatility[i] * ctx.prices[i]
        tr = ac_trajectory(q, 6, 0.1, sigma, 3e-7, 3e-8, 0.02, 2e-6)
        assert got[i] == pytest.approx(ac_expected_cost(tr, 0.1, 3e-7, 3e-8, 0.02), rel=1e-10)
        assert var[i] == pytest.approx(ac_variance(tr, 0.1, sigma), rel=1e-10)


def test_large_kappa_does_not_overflow() -> None:
    tr = ac_trajectory(1e6, 50, 1.0, 50.0, 2.5e-6, 2.5e-7, 0.0625, 1.0)
    assert np.all(np.isfinite(tr)) and tr[0] == pytest.approx(1e6, rel=1e-6)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"n_intervals": 0}, "n_intervals"),
    ({"interval": 0.0}, "interval"),
    ({"sigma": -1.0}, "sigma"),
    ({"eta": 0.0}, "eta"),
    ({"eta": 1e-7, "gamma": 1.0}, "eta"),
    ({"risk_aversion": -1e-6}, "risk_aversion"),
    ({"epsilon": -0.1}, "epsilon"),
    ({"total_shares": float("nan")}, "total_shares"),
])
def test_bad_inputs(kwargs: dict, field: str) -> None:
    args = {"total_shares": X, "n_intervals": N, "interval": 1.0, "sigma": 0.95, "eta": 2.5e-6,
            "gamma": 2.5e-7, "epsilon": 0.0625, "risk_aversion": 1e-6} | kwargs
    with pytest.raises(ValidationError) as e:
        ac_trajectory(**args)
    assert e.value.field == field
