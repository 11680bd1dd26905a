"""Volume profile fitted from real Lean minute bars; missing minutes and half days."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.errors import DataError
from keel.execution.bars import load_minute_bars, sessions
from keel.execution.profile import VolumeProfile


def test_fit_on_real_spy_bars(shared_data):
    bars = load_minute_bars(shared_data / "intraday/lean_minute/spy")
    assert set(bars.columns) >= {"open", "high", "low", "close", "volume", "bid", "ask"}
    assert len(sessions(bars)) == 7
    local = bars.index.tz_convert("America/New_York")
    assert local.min().time() >= pd.Timestamp("09:30").time()
    assert local.max().time() < pd.Timestamp("16:00").time()
    prof = VolumeProfile.fit(bars)
    assert prof.n_sessions == 7
    w = prof.minute_weights(13)
    assert w.sum() == pytest.approx(1.0)
    # the U shape: the first and last half hours trade more than the midday ones
    assert w[0] > w[6] and w[-1] > w[6]


def test_missing_minutes_change_little(shared_data):
    bars = load_minute_bars(shared_data / "intraday/lean_minute/spy")
    full = VolumeProfile.fit(bars)
    rng = np.random.default_rng(0)
    holed = bars.iloc[np.sort(rng.choice(len(bars), int(0.9 * len(bars)), replace=False))]
    part = VolumeProfile.fit(holed)
    assert np.max(np.abs(full.cum - part.cum)) < 0.05


def test_half_day_maps_to_the_same_shape():
    # 2013-11-29 closes at 13:00 ET: 210 minutes; uniform volume gives the flat profile
    idx = pd.date_range("2013-11-29 14:30", periods=210, freq="min", tz="UTC")
    prof = VolumeProfile.fit(pd.DataFrame({"volume": np.full(210, 100.0)}, index=idx))
    np.testing.assert_allclose(prof.cum, VolumeProfile.flat().cum, atol=1e-9)


def test_bad_bars_raise():
    idx = pd.date_range("2013-10-05 14:30", periods=5, freq="min", tz="UTC")  # a Saturday
    with pytest.raises(DataError) as e:
        VolumeProfile.fit(pd.DataFrame({"volume": np.ones(5)}, index=idx))
    assert e.value.field == "index"
    with pytest.raises(DataError) as e:
        VolumeProfile.fit(pd.DataFrame({"x": np.ones(5)}, index=idx))
    assert e.value.field == "volume"
    with pytest.raises(DataError) as e:
        load_minute_bars("/nonexistent")
    assert e.value.field == "bars"
