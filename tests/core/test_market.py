import numpy as np
import pandas as pd
import pytest

from keel.data.market import MarketData, apply_missing_policy
from keel.errors import DataError


def _panel(n_days=60, n=4, seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-02 21:00", periods=n_days, freq="B", tz="UTC")
    cols = [f"S{i}" for i in range(n)]
    px = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_days, n)), axis=0)),
                      index=idx, columns=cols)
    vol = pd.DataFrame(rng.integers(1_000, 10_000, (n_days, n)).astype(float), index=idx,
                       columns=cols)
    return px, vol


def test_as_of_hides_the_future_and_matches_recomputation():
    px, vol = _panel()
    m = MarketData(px, vol, sectors=pd.Series({"S0": "Tech"}), vol_window=10, beta_window=20)
    full_adv, full_vol, full_beta = m.adv_notional, m.volatility, m.betas  # warm the cache
    t = px.index[30] + pd.Timedelta(hours=1)
    view = m.as_of(t)
    assert view.now == px.index[30]
    assert view.prices.index.max() <= t
    fresh = MarketData(px.iloc[:31], vol.iloc[:31], vol_window=10, beta_window=20)
    pd.testing.assert_frame_equal(view.adv_notional, fresh.adv_notional)
    pd.testing.assert_frame_equal(view.volatility, fresh.volatility)
    pd.testing.assert_frame_equal(view.betas, fresh.betas)
    assert len(full_adv) == 60 and len(full_vol) == 59 and len(full_beta) == 59
    assert view.sectors["S1"] == "Unknown" and view.sectors["S0"] == "Tech"
    with pytest.raises(DataError, match="tz-aware"):
        m.as_of(pd.Timestamp("2024-02-01"))


@pytest.mark.parametrize("breaker,match", [
    (lambda px: px.iloc[::-1], "not sorted"),
    (lambda px: pd.concat([px, px.iloc[[-1]]]), "duplicated timestamps"),
    (lambda px: px.tz_localize(None), "tz-naive"),
    (lambda px: px.mask(px.index.to_series(index=px.index) == px.index[3], -1.0), "non-positive"),
])
def test_bad_prices_raise_naming_where(breaker, match):
    px, vol = _panel()
    bad = breaker(px)
    with pytest.raises(DataError, match=match):
        MarketData(bad, vol.reindex(bad.index) if bad.index.tz is not None else vol)


def test_missing_policies_report_what_they_did():
    px, vol = _panel()
    px.iloc[5, 1] = np.nan
    px.iloc[:3, 2] = np.nan
    with pytest.raises(DataError) as exc:
        MarketData(px, vol)
    assert exc.value.symbol == "S1" or exc.value.symbol == "S2"
    dropped = MarketData(px, vol, on_missing="drop")
    assert list(dropped.symbols) == ["S0", "S3"]
    assert dropped.missing_report.dropped_symbols == ("S1", "S2")
    filled = MarketData(px, vol, on_missing="ffill")
    assert list(filled.symbols) == ["S0", "S1", "S3"]
    assert filled.missing_report.filled_cells == {"S1": 1}
    assert filled.volumes.notna().all().all()
    _, report = apply_missing_policy(px[["S0"]], "raise")
    assert not report.changed


def test_volumes_must_align_and_be_non_negative():
    px, vol = _panel()
    with pytest.raises(DataError, match="lacks symbols"):
        MarketData(px, vol.drop(columns=["S3"]))
    vol.iloc[2, 0] = -1
    with pytest.raises(DataError, match="negative"):
        MarketData(px, vol)
