from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.costs.allocation import SplitSolver, exact_quadratic_split, optimal_split
from keel.costs.curves import PowerCurves, QuadraticCurves, curves_from_dict
from keel.errors import InfeasibleError, ValidationError


def _intraday(n: int = 390, seed: int = 0) -> QuadraticCurves:
    """U-shaped liquidity (deep at the open and close): impact cheap there, dear mid-day."""
    rng = np.random.default_rng(seed)
    t = np.linspace(-1, 1, n)
    liquidity = 0.4 + t**2 + 0.1 * rng.random(n)
    return QuadraticCurves(a=1e-6 / liquidity, b=0.01 * (1.2 - 0.2 * t**2))


def test_closed_form_equal_quadratics_give_uniform() -> None:
    r = optimal_split(1000.0, QuadraticCurves(np.full(8, 2.0), np.full(8, 0.5)))
    np.testing.assert_allclose(r.shares, 125.0)
    assert r.solver is SplitSolver.EXACT and r.improvement_pct == pytest.approx(0.0, abs=1e-12)
    # a x^2 with different a: x_t proportional to 1/a_t, lambda = 2 a_t x_t
    a = np.array([1.0, 2.0, 4.0])
    r = optimal_split(700.0, QuadraticCurves(a, np.zeros(3)))
    np.testing.assert_allclose(r.shares, [400.0, 200.0, 100.0])
    assert r.multiplier == pytest.approx(800.0)


def test_linear_curves_fill_cheapest_first() -> None:
    costs = QuadraticCurves(np.zeros(4), np.array([3.0, 1.0, 2.0, 1.0]))
    r = optimal_split(500.0, costs, caps=np.array([1000.0, 200.0, 250.0, 100.0]))
    np.testing.assert_allclose(r.shares, [0.0, 200.0, 200.0, 100.0])
    assert r.cost == pytest.approx(200 + 400 + 100)
    # a tie at the marginal price is shared pro rata to the caps
    r = optimal_split(150.0, QuadraticCurves(np.zeros(3), np.ones(3)), caps=np.array(
        [100.0, 200.0, 0.0]))
    np.testing.assert_allclose(r.shares, [50.0, 100.0, 0.0])


@pytest.mark.parametrize("seed", range(4))
def test_three_solvers_agree_on_quadratics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    costs = QuadraticCurves(rng.uniform(0, 2e-5, n) * (rng.random(n) > 0.2),
                            rng.uniform(0.005, 0.05, n))
    s = 1e5
    caps = rng.uniform(0.01, 0.2, n) * s
    out = {sv: optimal_split(s, costs, caps=caps, cap=0.15, solver=sv)
           for sv in (SplitSolver.EXACT, SplitSolver.SLSQP, SplitSolver.CVXPY)}
    ref = out[SplitSolver.EXACT]
    for sv, r in out.items():
        assert r.shares.sum() == pytest.approx(s, rel=1e-12)
        assert np.all(r.shares >= -1e-9) and np.all(r.shares <= np.minimum(caps, 0.15 * s) + 1e-6)
        assert r.cost == pytest.approx(ref.cost, rel=1e-6), sv
        assert r.cost <= out[SplitSolver.SLSQP].cost * (1 + 1e-12) or sv is not SplitSolver.EXACT


def test_power_curves_slsqp_and_cvxpy_agree_and_auto_uses_cvxpy() -> None:
    n = 26
    t = np.linspace(-1, 1, n)
    costs = PowerCurves(c=1e-3 * (1 + t**2), d=np.full(n, 1.6))
    a = optimal_split(5e4, costs, solver="slsqp")
    b = optimal_split(5e4, costs)
    assert b.solver is SplitSolver.CVXPY
    assert a.cost == pytest.approx(b.cost, rel=1e-5)
    np.testing.assert_allclose(a.shares, b.shares, atol=5e-3 * 5e4 / n)
    # KKT for c x^d: c_t d x_t^(d-1) equal on all intervals
    marg = costs.grad(b.shares)
    assert marg.std() / marg.mean() < 1e-3
    assert b.improvement_pct > 0


def test_u_shaped_liquidity_beats_uniform_and_solvers_agree_at_390() -> None:
    costs = _intraday()
    ex = optimal_split(2e5, costs, cap=0.01)
    cv = optimal_split(2e5, costs, cap=0.01, solver="cvxpy")
    assert ex.cost == pytest.approx(cv.cost, rel=1e-6)
    assert ex.improvement_pct > 1
    assert ex.shares[0] > 1.5 * ex.shares[195]  # trade more when liquid


@given(s=st.one_of(st.just(0.0), st.floats(1e-3, 1e6)), seed=st.integers(0, 10_000),
       n=st.integers(1, 60))
@settings(max_examples=80, deadline=None)
def test_exact_meets_kkt(s: float, seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 1e-4, n) * (rng.random(n) > 0.3)
    b = rng.uniform(0, 1, n)
    u = rng.uniform(0, 1, n) * max(s, 1.0) * 2 / n + s / n
    x, lam = exact_quadratic_split(s, a, b, u)
    assert x.sum() == pytest.approx(s, rel=1e-12, abs=1e-9)
    assert np.all(x >= 0) and np.all(x <= u * (1 + 1e-12))
    if s > 0:
        g = 2 * a * x + b
        tol = 1e-7 * max(1.0, abs(lam))
        inner = (x > 1e-9 * s) & (x < u - 1e-9 * s)
        assert np.all(np.abs(g[inner] - lam) <= tol)
        assert np.all(g[x <= 1e-9 * s] >= lam - tol)       # at zero: marginal cost >= lambda
        assert np.all(g[x >= u - 1e-9 * s] <= lam + tol)    # at cap: marginal cost <= lambda


def test_unbounded_linear_ties_split_equally() -> None:
    x, lam = exact_quadratic_split(90.0, np.zeros(4), np.array([1.0, 2.0, 1.0, 1.0]),
                                   np.full(4, np.inf))
    np.testing.assert_allclose(x, [30, 0, 30, 30])
    assert lam == 1.0


def test_curves_roundtrip() -> None:
    for c in (QuadraticCurves([1.0, 2.0], [0.1, 0.2]), PowerCurves([1.0], [1.5])):
        assert curves_from_dict(c.to_dict()).to_dict() == c.to_dict()


def test_bad_inputs() -> None:
    q = QuadraticCurves(np.ones(3), np.ones(3))
    with pytest.raises(ValidationError) as e:
        optimal_split(-5, q)
    assert e.value.field == "total_shares"
    with pytest.raises(InfeasibleError) as e:
        optimal_split(100, q, caps=np.array([10.0, 20.0, 30.0]))
    assert e.value.field == "caps" and e.value.culprits == {"caps": pytest.approx(40.0)}
    with pytest.raises(InfeasibleError) as e:
        optimal_split(100, q, cap=0.2)
    assert e.value.field == "cap"
    with pytest.raises(ValidationError) as e:
        optimal_split(100, q, caps=np.array([1.0, -1.0, 200.0]))
    assert e.value.field == "caps"
    with pytest.raises(ValidationError) as e:
        optimal_split(100, PowerCurves([1.0], [2.0]), solver="exact")
    assert e.value.field == "solver"
    with pytest.raises(ValidationError) as e:
        PowerCurves([1.0], [0.5])
    assert e.value.field == "d"
    with pytest.raises(ValidationError) as e:
        QuadraticCurves([-1.0], [0.0])
    assert e.value.field == "a"
    with pytest.raises(ValueError):
        optimal_split(1, q, solver="magic")


def test_auto_falls_back_and_reports_the_trail(monkeypatch: pytest.MonkeyPatch) -> None:
    import keel.costs.allocation as alloc
    from keel.errors import SolverError

    def broken(*_: object) -> np.ndarray:
        raise SolverError("CVXPY failed: solver_error", field="solver", value="cvxpy")

    monkeypatch.setattr(alloc, "cvxpy_split", broken)
    costs = PowerCurves(c=np.linspace(1, 2, 6), d=np.full(6, 1.5))
    r = optimal_split(600.0, costs)
    assert r.solver is SplitSolver.SLSQP
    assert len(r.trail) == 1 and r.trail[0].startswith("cvxpy: CVXPY failed")
    monkeypatch.setattr(alloc, "slsqp_split", broken)
    with pytest.raises(SolverError) as e:
        optimal_split(600.0, costs)
    assert len(e.value.context["trail"]) == 2
