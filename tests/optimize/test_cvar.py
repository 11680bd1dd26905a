"""MeanCVaR against an independent scipy/HiGHS LP and across solvers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from keel.errors import ValidationError
from keel.optimize.constraints import Budget, LongOnly, WeightBounds
from keel.optimize.cvar import CVaRRisk, CvxpyBackend, MeanCVaR
from keel.optimize.cvar_highs import HighsDirectBackend
from keel.optimize.inputs import PortfolioInputs
from keel.optimize.scenarios import cvar, factor_scenarios, historical_scenarios


def test_cvar_function_matches_definition() -> None:
    rng = np.random.default_rng(0)
    loss = rng.normal(size=1000)
    # beta * T integral: CVaR is the mean of the worst 5%
    assert cvar(loss, 0.95) == pytest.approx(np.sort(loss)[-50:].mean(), rel=1e-12)
    zs = np.linspace(-3, 3, 2001)
    brute = min(z + np.maximum(loss - z, 0).mean() / 0.05 for z in zs)
    assert cvar(loss, 0.95) <= brute + 1e-12


def _scipy_min_cvar(r: np.ndarray, beta: float, cap: float) -> float:
    t, n = r.shape
    # x = [w (n), z, u (t)] ; min z + sum u / ((1-beta) t)
    c = np.concatenate([np.zeros(n), [1.0], np.full(t, 1 / ((1 - beta) * t))])
    a_ub = np.hstack([-r, -np.ones((t, 1)), -np.eye(t)])  # -r w - z - u <= 0
    a_eq = np.concatenate([np.ones(n), [0.0], np.zeros(t)])[None, :]
    bounds = [(0, cap)] * n + [(None, None)] + [(0, None)] * t
    res = linprog(c, A_ub=a_ub, b_ub=np.zeros(t), A_eq=a_eq, b_eq=[1.0], bounds=bounds,
                  method="highs")
    assert res.status == 0
    return float(res.fun)


@pytest.mark.parametrize("solver", ["HIGHS", "CLARABEL", "direct"])
def test_min_cvar_matches_independent_lp(h, solver: str) -> None:
    fc = h.make_factor(40, 4, seed=1)
    scen = factor_scenarios(fc, 300, rng=1)
    inp = PortfolioInputs.build(pd.Series(0.0, index=fc.symbols), scenarios=scen)
    backend = HighsDirectBackend() if solver == "direct" else CvxpyBackend([solver])
    opt = MeanCVaR([Budget(), LongOnly(), WeightBounds(upper=0.1)],
                   terms=[CVaRRisk(0.95)], backend=backend)
    res = opt.solve(inp)
    assert res.solver == ("HIGHS-direct" if solver == "direct" else solver)
    ref = _scipy_min_cvar(scen.to_numpy(), 0.95, 0.1)
    assert res.objective_split["risk"] == pytest.approx(ref, rel=1e-6)
    assert res.weights.max() <= 0.1 + 1e-7


def _with_mean(h, n: int, k: int, seed: int, t: int, sd: float):
    """Inputs whose alpha is the scenarios' mean (factor Monte Carlo)."""
    fc = h.make_factor(n, k, seed=seed)
    mu = pd.Series(np.random.default_rng(seed).normal(0, sd, n), index=fc.symbols)
    scen = factor_scenarios(fc, t, mean=mu, rng=seed)
    return PortfolioInputs.build(mu, scenarios=scen), scen, mu


def test_mean_cvar_tradeoff_and_split(h) -> None:
    inp, scen, mu = _with_mean(h, 30, 3, 2, 500, 2e-3)
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.2)]
    cautious = MeanCVaR(cons, cvar_aversion=10.0).solve(inp)
    bold = MeanCVaR(cons, cvar_aversion=0.1).solve(inp)
    assert bold.objective_split["alpha"] > cautious.objective_split["alpha"]
    assert bold.objective_split["risk"] / 0.1 > cautious.objective_split["risk"] / 10.0
    w = cautious.weights.to_numpy()
    expect = mu.to_numpy() @ w - 10.0 * cvar(-(scen.to_numpy() @ w), 0.95)
    assert cautious.objective == pytest.approx(expect, rel=1e-10)
    assert cautious.solver_objective == pytest.approx(expect, rel=1e-6)


def test_historical_scenarios_and_errors(h) -> None:
    fc = h.make_factor(5, 1)
    ret = factor_scenarios(fc, 50)
    assert len(historical_scenarios(ret, 20)) == 20
    bad = ret.copy()
    bad.iloc[3, 2] = np.nan
    with pytest.raises(ValidationError) as exc:
        historical_scenarios(bad)
    assert exc.value.symbol == str(fc.symbols[2])
    inp = PortfolioInputs.build(pd.Series(0.0, index=fc.symbols))
    with pytest.raises(ValidationError) as exc:
        MeanCVaR([Budget()]).solve(inp)
    assert exc.value.field == "scenarios"


def test_custom_backend_plugs_in(h) -> None:
    calls = []

    class Recording(CvxpyBackend):
        def solve(self, terms, constraints, inputs):
            calls.append(len(terms))
            return super().solve(terms, constraints, inputs)

    fc = h.make_factor(10, 2)
    inp = PortfolioInputs.build(pd.Series(0.0, index=fc.symbols),
                                scenarios=factor_scenarios(fc, 100))
    res = MeanCVaR([Budget(), LongOnly()], backend=Recording()).solve(inp)
    assert calls == [2] and res.ok
    with pytest.raises(ValidationError):
        MeanCVaR(backend=object())  # type: ignore[arg-type]


def test_direct_highs_matches_cvxpy_with_costs_and_turnover(h) -> None:
    from keel.optimize.constraints import SectorCaps, Turnover

    fc = h.make_factor(40, 3, seed=3)
    rng = np.random.default_rng(3)
    mu = pd.Series(rng.normal(0, 2e-3, 40), index=fc.symbols)
    base = h.make_inputs(40, 3, seed=3, current=True)
    inp = PortfolioInputs.build(mu, pd.Series(base.current, index=fc.symbols),
                                trade_context=base.trade_context,
                                sectors=pd.Series(base.sectors, index=fc.symbols),
                                scenarios=factor_scenarios(fc, 400, mean=mu, rng=3))
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.15), Turnover(max_total=0.6),
            SectorCaps(long=0.5)]
    kw = dict(cvar_aversion=2.0, costs=[h.LinearCost(20.0)])
    direct = MeanCVaR(cons, **kw).solve(inp)
    ref = MeanCVaR(cons, backend=CvxpyBackend(["CLARABEL"]), **kw).solve(inp)
    assert direct.solver == "HIGHS-direct" and ref.solver == "CLARABEL"
    assert direct.objective == pytest.approx(ref.objective, rel=1e-6)
    assert direct.max_violation <= 1e-7
    assert direct.objective_split["cost"] > 0


@pytest.mark.parametrize("factor", [1, 3, 20])
def test_row_generation_is_exact(h, factor: int) -> None:
    inp, _, _ = _with_mean(h, 60, 4, 5, 700, 1e-3)
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.08)]
    lazy = MeanCVaR(cons, beta=0.9, cvar_aversion=3.0,
                    backend=HighsDirectBackend(initial_factor=factor)).solve(inp)
    full = MeanCVaR(cons, beta=0.9, cvar_aversion=3.0,
                    backend=CvxpyBackend(["HIGHS"])).solve(inp)
    assert lazy.solver == "HIGHS-direct"
    assert lazy.objective == pytest.approx(full.objective, rel=1e-9)


def test_direct_highs_reports_duals_and_prints_nothing(h, capfd) -> None:
    """Binding constraints carry HiGHS's duals (equal to CVXPY's), not nan, and neither the
    HiGHS banner nor its log reaches stdout."""
    inp, _, _ = _with_mean(h, 50, 3, 6, 500, 1e-3)
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.08)]
    capfd.readouterr()
    direct = MeanCVaR(cons, terms=[CVaRRisk(0.95)]).solve(inp)
    out = capfd.readouterr().out
    assert "HiGHS" not in out and out == ""
    ref = MeanCVaR(cons, terms=[CVaRRisk(0.95)], backend=CvxpyBackend(["CLARABEL"])).solve(inp)
    assert direct.solver == "HIGHS-direct"
    got = {b.name: b.dual for b in direct.binding}
    want = {b.name: b.dual for b in ref.binding}
    assert set(got) == set(want) and "Budget" in got
    for name in got:  # per-name bound duals of a degenerate LP vertex need not be unique
        assert np.isfinite(got[name]) and got[name] >= 0, name
    assert got["Budget"] == pytest.approx(want["Budget"], rel=1e-5)


@pytest.mark.parametrize("columns", [5, 15])
def test_column_generation_is_exact(h, columns: int) -> None:
    """Names generated as columns (long-only, no trade terms): the same optimum as the full
    LP, alpha included, and the Budget dual as CVXPY's."""
    inp, _, _ = _with_mean(h, 90, 4, 7, 600, 1e-3)
    cons = [Budget(), LongOnly(), WeightBounds(upper=0.08)]
    kw = dict(beta=0.9, cvar_aversion=3.0)
    cols = MeanCVaR(cons, **kw, backend=HighsDirectBackend(initial_columns=columns)).solve(inp)
    full = MeanCVaR(cons, **kw, backend=CvxpyBackend(["HIGHS"])).solve(inp)
    assert cols.solver == "HIGHS-direct"
    assert cols.objective == pytest.approx(full.objective, rel=1e-9)
    assert cols.max_violation <= 1e-9
    got = {b.name: b.dual for b in cols.binding}
    want = {b.name: b.dual for b in full.binding}
    assert got["Budget"] == pytest.approx(want["Budget"], rel=1e-5)
