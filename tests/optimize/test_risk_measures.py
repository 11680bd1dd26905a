"""CDaR and EVaR: the measures against their definitions, and minimum-risk portfolios against
independent solvers (scipy's HiGHS LP for CDaR, SLSQP over (w, z) for EVaR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog, minimize
from scipy.special import logsumexp

from keel.errors import ValidationError
from keel.optimize.constraints import Budget, LongOnly, WeightBounds
from keel.optimize.engine import ConvexPortfolioProblem
from keel.optimize.inputs import PortfolioInputs
from keel.optimize.risk_measures import CDaRRisk, EVaRRisk, cdar, drawdown_path, evar
from keel.optimize.scenarios import cvar
from keel.optimize.terms import Alpha

PRICES = Path("daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz")


@pytest.fixture(scope="module")
def sp500(shared_data: Path) -> pd.DataFrame:
    raw = pd.read_csv(shared_data / PRICES, usecols=["date", "Name", "close"])
    close = raw.pivot(index="date", columns="Name", values="close")
    close = close.loc[:, close.notna().all()].iloc[:, :25]
    return close.pct_change().iloc[1:401]


def test_drawdown_path_definition() -> None:
    r = np.array([0.01, -0.02, 0.005, 0.03, -0.01])
    c = np.cumsum(r)
    brute = [max(0.0, *c[: t + 1]) - c[t] for t in range(len(r))]
    np.testing.assert_allclose(drawdown_path(r), brute, atol=1e-15)
    assert drawdown_path(np.array([-0.01]))[0] == pytest.approx(0.01)   # below the start


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-0.05, 0.05), min_size=5, max_size=200), st.floats(0.5, 0.99))
def test_evar_bounds_cvar_and_is_the_chernoff_minimum(raw: list[float], beta: float) -> None:
    loss = np.array(raw)
    e = evar(loss, beta)
    assert cvar(loss, beta) <= e + 1e-9 <= loss.max() + 2e-9
    zs = np.exp(np.linspace(np.log(1e-7), np.log(10.0), 4001))[:, None]
    brute = np.min(zs[:, 0] * (logsumexp(loss[None, :] / zs, axis=1)
                               - np.log(len(loss) * (1 - beta))))
    assert e <= brute + 1e-9


def test_evar_of_a_constant_loss_is_the_constant() -> None:
    assert evar(np.full(50, 0.02), 0.9) == pytest.approx(0.02, abs=1e-12)
    with pytest.raises(ValidationError, match="beta"):
        evar(np.ones(3), 1.0)


def _scipy_min_cdar(r: np.ndarray, beta: float, cap: float) -> float:
    t, n = r.shape
    cum = np.cumsum(r, axis=0)                       # c_t = cum[t] @ w
    # x = [w (n), u (t), level, s (t)]; min level + sum s / ((1 - beta) t)
    nv = n + t + 1 + t
    c = np.zeros(nv)
    c[n + t] = 1.0
    c[n + t + 1:] = 1.0 / ((1 - beta) * t)
    rows, rhs = [], []
    eye = np.eye(t)
    # s_t >= u_t - c_t - level  ->  -s_t + u_t - cum_t w - level <= 0
    rows.append(np.hstack([-cum, eye, -np.ones((t, 1)), -eye]))
    rhs.append(np.zeros(t))
    # u_t >= c_t  ->  cum_t w - u_t <= 0
    rows.append(np.hstack([cum, -eye, np.zeros((t, 1)), np.zeros((t, t))]))
    rhs.append(np.zeros(t))
    # u_t >= u_{t-1}
    diff = np.zeros((t - 1, t))
    diff[np.arange(t - 1), np.arange(t - 1)] = 1.0
    diff[np.arange(t - 1), np.arange(1, t)] = -1.0
    rows.append(np.hstack([np.zeros((t - 1, n)), diff, np.zeros((t - 1, 1 + t))]))
    rhs.append(np.zeros(t - 1))
    a_eq = np.concatenate([np.ones(n), np.zeros(t + 1 + t)])[None, :]
    bounds = [(0, cap)] * n + [(0, None)] * t + [(None, None)] + [(0, None)] * t
    res = linprog(c, A_ub=np.vstack(rows), b_ub=np.concatenate(rhs), A_eq=a_eq, b_eq=[1.0],
                  bounds=bounds, method="highs")
    assert res.status == 0
    return float(res.fun)


def test_min_cdar_matches_an_independent_lp(sp500: pd.DataFrame) -> None:
    r = sp500.to_numpy()
    inp = PortfolioInputs.build(pd.Series(0.0, index=sp500.columns), scenarios=sp500)
    prob = ConvexPortfolioProblem([CDaRRisk(0.9)], [Budget(), LongOnly(),
                                                    WeightBounds(upper=0.2)],
                                  solvers=["CLARABEL"])
    res = prob.solve(inp)
    w = res.weights.to_numpy()
    assert res.objective_split["risk"] == pytest.approx(cdar(r @ w, 0.9), rel=1e-12)
    ref = _scipy_min_cdar(r, 0.9, 0.2)
    assert res.objective_split["risk"] == pytest.approx(ref, rel=1e-5)
    assert cdar(r @ np.full(r.shape[1], 1 / r.shape[1]), 0.9) >= ref


def test_mean_cdar_matches_the_running_maximum_form(sp500: pd.DataFrame) -> None:
    """With alpha in the objective (the drawdown variables are not pushed down by a pure
    minimisation alone), the LP in drawdowns gives the answer of the direct ``cummax`` form."""
    import cvxpy as cp

    r = sp500.to_numpy()
    alpha = pd.Series(np.linspace(-2e-3, 2e-3, r.shape[1]), index=sp500.columns)
    inp = PortfolioInputs.build(alpha, scenarios=sp500)
    res = ConvexPortfolioProblem([Alpha(), CDaRRisk(0.9, aversion=0.5)],
                                 [Budget(), LongOnly(), WeightBounds(upper=0.3)],
                                 solvers=["CLARABEL"]).solve(inp)
    w = cp.Variable(r.shape[1])
    path = cp.cumsum(r @ w)
    level = cp.Variable()
    dd = cp.maximum(cp.cummax(path), 0.0) - path
    obj = alpha.to_numpy() @ w - 0.5 * (level + cp.sum(cp.pos(dd - level)) / (0.1 * len(r)))
    ref = cp.Problem(cp.Maximize(obj), [cp.sum(w) == 1, w >= 0, w <= 0.3])
    ref.solve(solver="CLARABEL")
    assert res.objective_split["utility"] == pytest.approx(ref.value, rel=1e-6)
    assert np.max(np.abs(res.weights.to_numpy() - w.value)) < 1e-4


def test_min_evar_matches_slsqp() -> None:
    rng = np.random.default_rng(3)
    n, t, beta = 5, 250, 0.95
    r = rng.normal(0.0004, 0.012, (t, n)) + rng.normal(0, 0.008, (t, 1))
    cols = [f"A{i}" for i in range(n)]
    inp = PortfolioInputs.build(pd.Series(0.0, index=cols),
                                scenarios=pd.DataFrame(r, columns=cols))
    res = ConvexPortfolioProblem([EVaRRisk(beta)], [Budget(), LongOnly()],
                                 solvers=["CLARABEL", "SCS"]).solve(inp)
    w = res.weights.to_numpy()
    assert res.objective_split["risk"] == pytest.approx(evar(-(r @ w), beta), rel=1e-12)

    def f(x: np.ndarray) -> float:
        wx, z = x[:n], np.exp(x[n])
        return float(z * (logsumexp(-(r @ wx) / z) - np.log(t * (1 - beta))))

    x0 = np.concatenate([np.full(n, 1 / n), [np.log(0.01)]])
    ref = minimize(f, x0, method="SLSQP", bounds=[(0, 1)] * n + [(-12, 3)],
                   constraints=[{"type": "eq", "fun": lambda x: x[:n].sum() - 1}],
                   options={"ftol": 1e-14, "maxiter": 1000})
    assert ref.success
    assert res.objective_split["risk"] == pytest.approx(ref.fun, rel=1e-4)
    assert res.objective_split["risk"] <= ref.fun + 1e-7
