"""The backtest's per-session fast paths equal the slow paths they replace (issue 15 pt 6)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from keel.optimize.dual_as import BackOff
from keel.optimize.fastqp import Answer


class _Inner:
    name = "FAKE-direct"

    def __init__(self, outcomes: list[bool]) -> None:
        self.outcomes = outcomes
        self.calls = 0
        self.seeds = 0

    def solve_structured(self, spec: object, inputs: object) -> Answer:
        ok = self.outcomes[self.calls]
        self.calls += 1
        return Answer("solved" if ok else "max_iter", np.zeros(2) if ok else None,
                      np.zeros(2), {})

    def seed(self, spec: object, inputs: object, w: np.ndarray) -> None:
        self.seeds += 1


def test_back_off_sits_out_after_failures_and_pays_back_on_success() -> None:
    inner = _Inner([False, False, True, False] + [True] * 10)
    b = BackOff(inner, max_skip=32)  # type: ignore[arg-type]
    seen = [b.solve_structured(None, None) for _ in range(16)]  # type: ignore[arg-type]
    tried = [a is not None for a in seen]
    # fail (f=1) -> sit out 2; fail (f=2) -> sit out 4; success (f=1); fail (f=2) -> sit
    # out 4; successes
    assert tried == [True, False, False, True, False, False, False, False, True, True,
                     False, False, False, False, True, True]
    assert b.counts == [inner.calls, inner.calls - 3, 16 - inner.calls]  # 3 failed
    assert b.failures == 0
    b.seed(None, None, np.zeros(2))  # type: ignore[arg-type]
    assert inner.seeds == 1  # answers of the next solver still warm it


def test_back_off_caps_the_sit_out() -> None:
    inner = _Inner([False] * 20)
    b = BackOff(inner, max_skip=4)  # type: ignore[arg-type]
    tried = [b.solve_structured(None, None) is not None for _ in range(20)]  # type: ignore[arg-type]
    assert tried[:8] == [True, False, False, True, False, False, False, False]
    assert tried[8:] == [True, False, False, False, False] * 2 + [True, False]


def test_risk_cover_equals_isin_and_follows_the_model() -> None:
    from keel.app.pipeline import Pipeline
    from keel.config import parse_config
    from keel.risk.base import FactorCovariance

    pipe = Pipeline(parse_config({}), live=False)
    syms = pd.Index([f"S{i}" for i in range(6)], dtype="string[pyarrow]")

    def model(names: list[str]) -> FactorCovariance:
        k = len(names)
        return FactorCovariance(pd.Index(names), ["f"], np.ones((k, 1)), np.eye(1),
                                np.full(k, 0.01))

    r1, r2 = model(["S1", "S3"]), model(["S0", "S3", "S5"])
    for r in (r1, r2, r1):
        got = pipe.risk_cover(syms, r)
        assert np.array_equal(got, syms.isin(r.symbols))
        assert not got.flags.writeable
    # same model, an equal index under another object: the cached answer; another order: new
    assert pipe.risk_cover(syms.copy(), r1) is pipe.risk_cover(syms, r1)
    rev = syms[::-1]
    assert np.array_equal(pipe.risk_cover(rev, r1), rev.isin(r1.symbols))


def test_rolling_cov_on_equals_pandas_bit_for_bit() -> None:
    """The betas' rolling covariance (pandas' kernel per column) equals pandas' own
    ``rolling(...).cov(series)``: NaN holes, leading NaNs, an inf, short windows."""
    from keel.data.market import rolling_cov_on

    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.02, (300, 12))
    x[rng.random(x.shape) < 0.05] = np.nan
    x[:40, 3] = np.nan
    x[100, 5] = np.inf
    idx = pd.date_range("2020-01-01", periods=300, tz="UTC")
    frame = pd.DataFrame(x, index=idx, columns=[f"S{i}" for i in range(12)])
    series = pd.Series(rng.normal(0, 0.01, 300), index=idx)
    series.iloc[[7, 50]] = np.nan
    for win, minp in ((60, 20), (20, 20), (5, 2)):
        want = frame.rolling(win, min_periods=minp).cov(series)
        got = rolling_cov_on(frame, series, win, minp)
        assert got.index.equals(want.index) and got.columns.equals(want.columns)
        assert np.array_equal(got.to_numpy(), want.to_numpy(), equal_nan=True)
