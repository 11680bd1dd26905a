"""Bounded retries with exponential backoff and full jitter for transient venue errors.

The retry loop is tenacity's (``Retrying``: stop after the attempts, retry only
:class:`~keel.errors.TransientVenueError`, re-raise the last one); keel supplies the wait (a
seeded draw per call, so a test replays it exactly) and the sleep (the order manager's clock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import tenacity

from keel.errors import TransientVenueError, ValidationError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt ``max_attempts`` times; before retry ``k`` (1-based) wait a uniform draw in
    ``[(1 - jitter) d, d]`` seconds with ``d = min(max_delay, base_delay * 2**(k-1))``."""

    max_attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 2.0
    jitter: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValidationError("max_attempts must be >= 1", field="max_attempts",
                                  value=self.max_attempts)
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValidationError("need 0 <= base_delay <= max_delay", field="base_delay",
                                  value=(self.base_delay, self.max_delay))
        if not 0 <= self.jitter <= 1:
            raise ValidationError("jitter must be in [0, 1]", field="jitter", value=self.jitter)

    def delays(self, rng: np.random.Generator) -> list[float]:
        """The ``max_attempts - 1`` waits of one call, seconds."""
        out = []
        for k in range(1, self.max_attempts):
            d = min(self.max_delay, self.base_delay * 2 ** (k - 1))
            out.append(float(rng.uniform((1 - self.jitter) * d, d)) if d > 0 else 0.0)
        return out


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy, sleep: Callable[[float], None],
                    rng: np.random.Generator) -> tuple[T, int]:
    """``fn()`` retried on :class:`TransientVenueError`; returns (result, attempts).

    The last ``TransientVenueError`` propagates once the attempts are spent; any other error
    propagates at once.
    """
    waits = policy.delays(rng)
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.max_attempts),
        # tenacity asks for the wait before it checks the stop: nothing is slept after the last
        wait=lambda state: (waits[state.attempt_number - 1]
                            if state.attempt_number <= len(waits) else 0.0),
        retry=tenacity.retry_if_exception_type(TransientVenueError),
        sleep=sleep, reraise=True)
    for attempt in retrying:
        with attempt:
            result = fn()
        if not attempt.retry_state.outcome or not attempt.retry_state.outcome.failed:
            return result, attempt.retry_state.attempt_number
    raise AssertionError("unreachable")  # tenacity re-raises the last error (reraise=True)
