"""Solver forms: each constraint's rows, each term's form and each cost model's declared
coefficients agree with the NumPy views of the same objects (no probing, no type dispatch)."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from keel.costs.adaptive import AdaptiveCost
from keel.costs.almgren_chriss import ACParams, AlmgrenChriss
from keel.costs.models import Commission, SpreadCost, SquareRootImpact
from keel.optimize import fastqp
from keel.optimize.constraints import (
    BetaNeutral,
    Budget,
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


@pytest.mark.parametrize("model", [
    SpreadCost(), Commission(per_share=0.005, bps=1.0), SquareRootImpact(0.8),
    SquareRootImpact(1.0, beta=0.6), AlmgrenChriss(ACParams(eta=1e-7, gamma=1e-8,
                                                            epsilon=0.01)),
    SpreadCost() + Commission(bps=2.0), SpreadCost() + SquareRootImpact(),
    AdaptiveCost(SpreadCost() + SquareRootImpact()),
])
def test_declared_form_equals_cost_array(h, model) -> None:
    ctx = h.make_inputs(25, 2).trade_context
    if isinstance(model, AdaptiveCost):
        model.multipliers_ = np.array([1.3, 0.7])  # as if calibrated from fills
    f = model.separable_form(ctx)
    assert f is not None
    rng = np.random.default_rng(1)
    for scale in (1e-4, 1e-2, 0.3):
        t = rng.normal(0, scale, 25)
        want = model.cost_array(t * ctx.nav, ctx) / ctx.nav
        got = f.linear * np.abs(t)
        if f.power is not None:
            got = got + f.power * np.abs(t) ** f.exponent
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-18)


def test_models_with_a_fixed_charge_declare_none(h) -> None:
    ctx = h.make_inputs(5, 1).trade_context
    assert Commission(bps=1.0, min_per_ticket=1.0).separable_form(ctx) is None
    assert (SpreadCost() + Commission(bps=1.0, max_per_ticket=5.0)).separable_form(ctx) is None


CONS = [Budget(), LongOnly(), WeightBounds(lower=-0.05, upper=0.2), NetExposure(0.5, 1.0),
        MinCash(0.01), Turnover(max_total=0.7, max_per_name=0.1), BetaNeutral(0.2, 1.0),
        SectorCaps(long=0.5, net=0.6), Liquidity(max_trade_adv=0.3, max_position_adv=2.0),
        FactorExposureBounds(lower=-1.0, upper={"f0": 1.2}), GrossExposure(1.5)]


@pytest.mark.parametrize("con", CONS, ids=lambda c: type(c).__name__)
def test_rows_reproduce_margins(h, con) -> None:
    """At random points, a solver form's slack (the most violated of its bounds and rows)
    equals the constraint's own NumPy ``margins`` minimum."""
    inp = h.make_inputs(30, 3, seed=2, current=True).with_(adv_weight=np.full(30, 0.2))
    f = con.solver_form(inp, nonneg=True)
    assert f is not None
    rng = np.random.default_rng(0)
    for _ in range(20):
        w = np.abs(rng.normal(0, 0.05, 30))  # nonneg=True: only w >= 0 is asked about
        t = np.abs(w - inp.current)
        slack = [np.inf]
        if f.lower is not None:
            slack.append(float(np.min(w - f.lower)))
        if f.upper is not None:
            slack.append(float(np.min(f.upper - w)))
        for r in f.rows:
            v = r.matrix @ (t if r.on == "abs_trade" else w)
            slack.append(float(np.min(np.concatenate([r.hi - v, v - r.lo]))))
        assert min(slack) == pytest.approx(float(np.min(con.margins(w, inp))), abs=1e-12)


def test_not_linear_is_a_documented_none(h) -> None:
    inp = h.make_inputs(10, 2)
    assert TrackingError(0.01).solver_form(inp) is None
    assert GrossExposure(1.5).solver_form(inp, nonneg=False) is None
    assert SectorCaps(long=0.3).solver_form(inp, nonneg=False) is None
    assert fastqp.translate([], [TrackingError(0.01)], inp) is None


def test_fastqp_has_no_type_dispatch_nor_private_reads() -> None:
    tree = ast.parse(inspect.getsource(fastqp))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
            kind = ast.unparse(node.args[1])
            assert "cm." not in kind and "Constraint" not in kind, kind
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            owner = ast.unparse(node.value)
            assert owner in ("self",), f"{owner}.{node.attr}"
