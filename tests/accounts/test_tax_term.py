"""TaxCost: NumPy value, the direct QP path against CVXPY, convexity guard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.errors import NonConvexError
from keel.optimize import Budget, LongOnly, MeanVariance, PortfolioInputs, Risk
from keel.optimize.tax_term import TaxCost


def _inputs(n=8, seed=0):
    rng = np.random.default_rng(seed)
    syms = pd.Index([f"S{i}" for i in range(n)])
    a = rng.normal(size=(n, n)) * 0.01
    cov = a @ a.T + np.eye(n) * 1e-4
    cur = rng.dirichlet(np.ones(n))
    bench = np.full(n, 1.0 / n)
    return PortfolioInputs.build(pd.Series(0.0, index=syms), pd.Series(cur, index=syms),
                                 risk=cov, benchmark=pd.Series(bench, index=syms)), syms


def test_value_is_rate_times_sold_weight():
    inp, syms = _inputs()
    rates = pd.Series(np.linspace(0.0, 0.1, len(syms)), index=syms)
    t = TaxCost(rates)
    w = inp.current.copy()
    w[0] += 0.05
    w[3] -= 0.02
    w[7] -= 0.03
    assert t.value(w, inp) == pytest.approx(rates.iloc[3] * 0.02 + rates.iloc[7] * 0.03)


def test_direct_path_agrees_with_cvxpy():
    inp, syms = _inputs()
    rates = pd.Series(np.linspace(0.001, 0.02, len(syms)), index=syms)
    terms = [Risk(50.0, benchmark_relative=True), TaxCost(rates)]
    cons = [Budget(), LongOnly()]
    direct = MeanVariance(terms=terms, constraints=cons).solve(inp)
    cvx = MeanVariance(terms=terms, constraints=cons, direct=[]).solve(inp)
    assert direct.solver and "direct" in direct.solver.lower()
    assert cvx.solver == "CLARABEL"
    np.testing.assert_allclose(direct.weights, cvx.weights, atol=1e-6)
    assert direct.objective == pytest.approx(cvx.objective, abs=1e-9)


def test_tax_holds_back_sales_of_high_gain_names():
    inp, syms = _inputs()
    base = MeanVariance(terms=[Risk(50.0, benchmark_relative=True)],
                        constraints=[Budget(), LongOnly()]).solve(inp)
    over = inp.current > inp.benchmark
    rates = pd.Series(np.where(over, 0.05, 0.0), index=syms)
    taxed = MeanVariance(terms=[Risk(50.0, benchmark_relative=True), TaxCost(rates)],
                         constraints=[Budget(), LongOnly()]).solve(inp)
    sold_base = np.maximum(inp.current - base.weights.to_numpy(), 0)[over].sum()
    sold_taxed = np.maximum(inp.current - taxed.weights.to_numpy(), 0)[over].sum()
    assert sold_taxed < sold_base - 1e-4


def test_negative_rates_are_non_convex():
    with pytest.raises(NonConvexError):
        TaxCost(pd.Series([0.1, -0.01], index=["A", "B"]))
    t = TaxCost(0.0)
    with pytest.raises(NonConvexError):
        t.set_rates(np.array([-1.0]))
