"""Solver time limits and iteration caps: a capped attempt is recorded as ``limit`` and the next
solver answers, or the current weights are held and the result says why."""

from __future__ import annotations

import numpy as np
import pytest

from keel.errors import ValidationError
from keel.optimize.constraints import Budget, LongOnly, Turnover, WeightBounds
from keel.optimize.engine import ConvexPortfolioProblem
from keel.optimize.limits import SolverLimits
from keel.optimize.mean_variance import MeanVariance
from keel.optimize.result import OptimizationStatus
from keel.optimize.terms import Alpha, Risk, TransactionCost

CONS = [Budget(), LongOnly(), WeightBounds(upper=0.1), Turnover(0.5)]


def _terms(h):
    return [Alpha(), Risk(5.0), TransactionCost(h.LinearCost(5.0))]


def test_iteration_cap_moves_to_the_next_solver(h) -> None:
    inp = h.make_inputs(40, 3, seed=2, current=True)
    capped = ConvexPortfolioProblem(_terms(h), CONS, solvers=["CLARABEL", "SCS"],
                                    limits=SolverLimits(max_iter=2),
                                    solver_options={"SCS": {"max_iters": 100_000}})
    res = capped.solve(inp)
    first = res.fallback_trail[0]
    assert first.solver == "CLARABEL" and first.outcome == "limit"
    assert "iteration cap 2" in first.message
    assert res.solver == "SCS" and res.status is not OptimizationStatus.HOLD_FALLBACK
    free = ConvexPortfolioProblem(_terms(h), CONS, solvers=["CLARABEL"]).solve(inp)
    np.testing.assert_allclose(res.weights, free.weights, atol=1e-4)


def test_every_solver_capped_holds_the_current_weights(h) -> None:
    inp = h.make_inputs(40, 3, seed=3, current=True)
    res = ConvexPortfolioProblem(_terms(h), CONS, solvers=["CLARABEL", "OSQP"],
                                 limits=SolverLimits(max_iter=1)).solve(inp)
    assert res.status is OptimizationStatus.HOLD_FALLBACK
    np.testing.assert_allclose(res.weights.to_numpy(), inp.current)
    assert [a.outcome for a in res.fallback_trail] == ["limit", "limit"]
    assert any("every solver failed" in m for m in res.messages)


def test_time_limit_reaches_the_solver(h) -> None:
    inp = h.make_inputs(200, 5, seed=4, current=True)
    res = ConvexPortfolioProblem(_terms(h), CONS, solvers=["CLARABEL"],
                                 limits=SolverLimits(time_limit_s=1e-9)).solve(inp)
    assert res.fallback_trail[0].outcome == "limit"
    assert "time limit 1e-09 s" in res.fallback_trail[0].message


def test_direct_path_gets_the_caps(h) -> None:
    inp = h.make_inputs(60, 3, seed=5, current=True)
    mv = MeanVariance(_terms(h), CONS, limits=SolverLimits(max_iter=1))
    res = mv.solve(inp)
    direct = [a for a in res.fallback_trail if a.solver.endswith("-direct")]
    assert direct and all(a.outcome != "ok" for a in direct)
    assert res.status is OptimizationStatus.HOLD_FALLBACK


def test_limits_are_validated() -> None:
    with pytest.raises(ValidationError, match="time_limit_s"):
        SolverLimits(time_limit_s=0)
    with pytest.raises(ValidationError, match="max_iter"):
        SolverLimits(max_iter=True)  # type: ignore[arg-type]
    assert SolverLimits().options("CLARABEL") == {}
    assert SolverLimits(2.0, 50).options("SCS") == {"time_limit_secs": 2.0, "max_iters": 50}


def test_caps_keep_the_callers_solver_when_they_change_nothing() -> None:
    """A time limit does not reach the dual active set (it has none): the engine's own
    back-off object stays in the chain, so its warm start and back-off survive a rebuild; an
    iteration cap below its own goes on a copy of what it wraps, never the caller's."""
    from keel.optimize.dual_as import BackOff, DualActiveSet

    das = BackOff(DualActiveSet())
    mv = MeanVariance(constraints=CONS, direct=[das], limits=SolverLimits(time_limit_s=5.0))
    assert mv.direct[0] is das
    capped = MeanVariance(constraints=CONS, direct=[das],
                          limits=SolverLimits(max_iter=3)).direct[0]
    assert capped is not das and capped.inner.max_iter == 3 and das.inner.max_iter == 40
