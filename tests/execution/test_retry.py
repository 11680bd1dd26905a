"""call_with_retry (tenacity's loop, keel's seeded waits and injected sleep)."""

from __future__ import annotations

import numpy as np
import pytest

from keel.errors import TransientVenueError, VenueError
from keel.execution.retry import RetryPolicy, call_with_retry


def _flaky(fail: int, exc: type[Exception] = TransientVenueError):
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= fail:
            raise exc("venue hiccup")
        return "ok"
    return fn, calls


def test_transient_errors_are_retried_with_the_seeded_waits() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=0.1, max_delay=1.0, seed=0)
    slept: list[float] = []
    fn, calls = _flaky(3)
    result, attempts = call_with_retry(fn, policy, slept.append, np.random.default_rng(7))
    assert (result, attempts, calls["n"]) == ("ok", 4, 4)
    assert slept == policy.delays(np.random.default_rng(7))[:3]
    assert all(0.0 <= w <= min(1.0, 0.1 * 2 ** k) for k, w in enumerate(slept))


def test_the_last_transient_error_propagates_once_the_attempts_are_spent() -> None:
    slept: list[float] = []
    fn, calls = _flaky(10)
    with pytest.raises(TransientVenueError):
        call_with_retry(fn, RetryPolicy(max_attempts=3), slept.append,
                        np.random.default_rng(0))
    assert calls["n"] == 3 and len(slept) == 2


def test_any_other_error_propagates_at_once() -> None:
    slept: list[float] = []
    fn, calls = _flaky(1, VenueError)
    with pytest.raises(VenueError):
        call_with_retry(fn, RetryPolicy(), slept.append, np.random.default_rng(0))
    assert calls["n"] == 1 and slept == []
    ok, attempts = call_with_retry(lambda: 5, RetryPolicy(), slept.append,
                                   np.random.default_rng(0))
    assert (ok, attempts, slept) == (5, 1, [])
