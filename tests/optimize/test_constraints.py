"""Each constraint, binding and slack, around an unconstrained closed-form optimum.

Base problem: ``max alpha'w - gamma w'Sigma w`` with no constraint, whose optimum is
``w* = Sigma^-1 alpha / (2 gamma)``. For every constraint we measure its statistic at ``w*``
and impose it loosely (the answer must be ``w*`` and the constraint must not bind) and tightly
(the answer must satisfy it, it must be reported binding with a positive dual, and utility
must drop).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from keel.errors import NonConvexError, ValidationError
from keel.optimize.constraints import (
    BetaNeutral,
    Budget,
    Constraint,
    FactorExposureBounds,
    GrossExposure,
    Liquidity,
    LongOnly,
    MinCash,
    NetExposure,
    SectorCaps,
    TrackingError,
    Turnover,
    WeightBounds,
)
from keel.optimize.inputs import PortfolioInputs
from keel.optimize.mean_variance import MeanVariance

GAMMA = 20.0


def closed_form(inputs: PortfolioInputs) -> np.ndarray:
    cov = inputs.risk.covariance()  # type: ignore[union-attr]
    return np.linalg.solve(cov, inputs.alpha) / (2 * GAMMA)


@pytest.fixture
def base(h) -> tuple[PortfolioInputs, np.ndarray]:
    inp = h.make_inputs(30, 3, seed=1)
    adv = np.abs(np.random.default_rng(3).normal(0.5, 0.2, inp.n)) + 0.05
    inp = inp.with_(current=np.full(inp.n, 1 / inp.n), adv_weight=adv,
                    benchmark=np.full(inp.n, 1 / inp.n))
    return inp, closed_form(inp)


def _sector_stat(kind: str) -> Callable[[np.ndarray, PortfolioInputs], float]:
    def stat(w: np.ndarray, x: PortfolioInputs) -> float:
        s = pd.Series(w, index=x.sectors)
        v = {"long": s.clip(lower=0), "short": (-s).clip(lower=0), "net": s}[kind]
        g = v.groupby(level=0).sum()
        return float(g.abs().max())
    return stat


def _factor_stat(w: np.ndarray, x: PortfolioInputs) -> float:
    return float(np.abs(x.risk.exposures.T @ w).max())  # type: ignore[union-attr]


# (id, factory(limit) -> constraint, stat(w, inputs) such that the constraint is stat <= limit)
CASES: list[tuple[str, Callable[[float], Constraint], Callable[..., float]]] = [
    ("upper", lambda v: WeightBounds(upper=v), lambda w, x: w.max()),
    ("lower", lambda v: WeightBounds(lower=-v), lambda w, x: -w.min()),
    ("gross", lambda v: GrossExposure(v), lambda w, x: np.abs(w).sum()),
    ("net_up", lambda v: NetExposure(upper=v), lambda w, x: w.sum()),
    ("turnover", lambda v: Turnover(max_total=v), lambda w, x: np.abs(w - x.current).sum()),
    ("turnover_name", lambda v: Turnover(max_per_name=v),
     lambda w, x: np.abs(w - x.current).max()),
    ("beta", lambda v: BetaNeutral(tolerance=v), lambda w, x: abs(x.betas @ w)),
    ("sector_long", lambda v: SectorCaps(long=v), _sector_stat("long")),
    ("sector_short", lambda v: SectorCaps(short=v), _sector_stat("short")),
    ("sector_net", lambda v: SectorCaps(net=v), _sector_stat("net")),
    ("liq_trade", lambda v: Liquidity(max_trade_adv=v),
     lambda w, x: (np.abs(w - x.current) / x.adv_weight).max()),
    ("liq_position", lambda v: Liquidity(max_position_adv=v),
     lambda w, x: (np.abs(w) / x.adv_weight).max()),
    ("factor", lambda v: FactorExposureBounds(lower=-v, upper=v), _factor_stat),
    ("te", lambda v: TrackingError(v), lambda w, x: np.sqrt(x.variance(w - x.benchmark))),
    ("min_cash", lambda v: MinCash(1 - v), lambda w, x: w.sum()),
]


@pytest.fixture(params=["direct", "cvxpy"], autouse=True)
def path(request) -> str:
    """Every test runs on the direct QP path and on the CVXPY path."""
    PATH[0] = request.param
    return request.param


PATH = ["direct"]


def _solve(inp: PortfolioInputs, cons: list[Constraint]):
    direct = None if PATH[0] == "direct" else []
    res = MeanVariance(constraints=cons, risk_aversion=GAMMA, direct=direct).solve(inp)
    if PATH[0] == "cvxpy":
        assert res.solver == "CLARABEL"
    return res


def test_unconstrained_matches_closed_form(base) -> None:
    inp, w_star = base
    res = _solve(inp, [])
    np.testing.assert_allclose(res.weights.to_numpy(), w_star, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_constraint_slack_and_binding(base, case) -> None:
    _, factory, stat = case
    inp, w_star = base
    s0 = stat(w_star, inp)
    assert s0 > 1e-4, "the free optimum must give the constraint something to bind"
    u_free = _solve(inp, []).objective

    loose = _solve(inp, [factory(2.0 * s0)])
    np.testing.assert_allclose(loose.weights.to_numpy(), w_star, atol=1e-5)
    assert not loose.binding

    tight = _solve(inp, [factory(0.5 * s0)])
    w = tight.weights.to_numpy()
    assert stat(w, inp) <= 0.5 * s0 + 1e-6
    assert tight.max_violation <= 1e-6
    assert len(tight.binding) == 1
    b = tight.binding[0]
    assert b.dual > 1e-8
    assert tight.objective < u_free - 1e-9


def test_long_only_binding_and_slack(base, h) -> None:
    inp, w_star = base
    assert w_star.min() < 0
    res = _solve(inp, [LongOnly()])
    assert res.weights.min() >= -1e-8
    assert res.binding[0].name == "LongOnly" and res.binding[0].n_binding > 0
    assert set(res.binding[0].symbols) <= set(inp.symbols[res.weights.to_numpy() < 1e-6])
    # slack: an alpha whose free optimum is long-only
    cov = inp.risk.covariance()  # type: ignore[union-attr]
    w_pos = np.full(inp.n, 0.02)
    inp2 = inp.with_(alpha=2 * GAMMA * cov @ w_pos)
    res2 = _solve(inp2, [LongOnly()])
    np.testing.assert_allclose(res2.weights.to_numpy(), w_pos, atol=1e-6)
    assert not res2.binding


def test_budget_fully_invested_and_dollar_neutral(base) -> None:
    inp, _ = base
    full = _solve(inp, [Budget()])
    assert full.weights.sum() == pytest.approx(1.0, abs=1e-8)
    assert full.binding[0].name == "Budget"
    neutral = _solve(inp, [Budget("dollar_neutral")])
    assert neutral.weights.sum() == pytest.approx(0.0, abs=1e-8)
    # closed form with one equality: w = w* - lambda Sigma^-1 1
    cov = inp.risk.covariance()  # type: ignore[union-attr]
    ones = np.linalg.solve(cov, np.ones(inp.n))
    w_star = closed_form(inp)
    w_eq = w_star - ones * (w_star.sum() - 1.0) / ones.sum()
    np.testing.assert_allclose(full.weights.to_numpy(), w_eq, atol=1e-6)


def test_per_symbol_bounds_and_sector_mapping(base) -> None:
    inp, _ = base
    ub = pd.Series(0.05, index=inp.symbols)
    ub.iloc[0] = 0.0
    res = _solve(inp, [Budget(), WeightBounds(lower=0.0, upper=ub),
                       SectorCaps(long={"Tech": 0.2})])
    w = res.weights
    assert w.iloc[0] <= 1e-8
    assert w[inp.sectors == "Tech"].clip(lower=0).sum() <= 0.2 + 1e-7
    assert res.max_violation <= 1e-6


@pytest.mark.parametrize("bad", [
    lambda: WeightBounds(),
    lambda: GrossExposure(-1.0),
    lambda: Turnover(),
    lambda: Liquidity(),
    lambda: SectorCaps(),
    lambda: NetExposure(1.0, 0.0),
    lambda: Budget("half"),
])
def test_bad_constraint_arguments(bad) -> None:
    with pytest.raises(ValidationError) as exc:
        bad()
    assert exc.value.field is not None


def test_nonconvex_refused_at_once() -> None:
    with pytest.raises(NonConvexError) as exc:
        GrossExposure(2.0, min_gross=1.0)
    assert exc.value.field == "min_gross"


def test_missing_input_names_field(h) -> None:
    inp = h.make_inputs(10, 2).with_(betas=None)
    with pytest.raises(ValidationError) as exc:
        MeanVariance(constraints=[BetaNeutral()]).solve(inp)
    assert exc.value.field == "betas"


def test_unknown_symbol_in_per_name_bound(h) -> None:
    inp = h.make_inputs(10, 2)
    with pytest.raises(ValidationError) as exc:
        _solve(inp, [WeightBounds(upper=pd.Series({"NOPE": 0.1}))])
    assert exc.value.field == "upper" and exc.value.symbol == "NOPE"
