import numpy as np
import pandas as pd
import pytest

from keel.data.market import MarketData
from keel.data.synthetic import synthetic_market
from keel.errors import DataError, ValidationError
from keel.signals import (
    composite_score,
    expected_returns,
    low_volatility,
    momentum_12_1,
    short_term_reversal,
    zscore,
)


@pytest.fixture(scope="module")
def market():
    return synthetic_market(40, 320, seed=5)


def test_signals_match_closed_forms(market):
    px = market.prices
    mom = momentum_12_1(market)
    np.testing.assert_allclose(mom, np.log(px.iloc[-22] / px.iloc[-253]), rtol=1e-12)
    rev = short_term_reversal(market)
    np.testing.assert_allclose(rev, -np.log(px.iloc[-1] / px.iloc[-6]), rtol=1e-12)
    lv = low_volatility(market)
    np.testing.assert_allclose(lv, -px.pct_change().iloc[-63:].std(), rtol=1e-12)


def test_signals_are_point_in_time(market):
    t = market.dates[280]
    past = market.as_of(t)
    truncated = MarketData(market.prices.loc[:t], market.volumes.loc[:t])
    pd.testing.assert_series_equal(composite_score(past), composite_score(truncated))


def test_zscore_properties_and_errors():
    rng = np.random.default_rng(0)
    raw = pd.Series(rng.standard_t(3, 500), name="x")
    raw.iloc[3] = np.nan
    z = zscore(raw, clip=3)
    assert np.isnan(z.iloc[3])
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12
    with pytest.raises(ValidationError):
        zscore(pd.Series([1.0, 1.0, 1.0], name="flat"))
    with pytest.raises(ValidationError):
        zscore(pd.Series([1.0, np.nan], name="few"))


def test_grinold_alpha_and_history_errors(market):
    score = composite_score(market)
    vol = market.latest("volatility")
    alpha = expected_returns(score, vol, ic=0.1, periods=4)
    np.testing.assert_allclose(alpha, 0.1 * vol * 2 * score)
    with pytest.raises(DataError):
        momentum_12_1(market.head(100))
    with pytest.raises(ValidationError):
        composite_score(market, {"astrology": 1.0})


def _z(x):
    x = np.asarray(x, dtype=float)
    f = np.isfinite(x)
    z = np.clip((x - x[f].mean()) / x[f].std(ddof=1), -3, 3)
    return (z - z[f].mean()) / z[f].std(ddof=1)


def test_blend_signal_matches_closed_form(market):
    from keel.signals import BlendSignal, SignalModel

    model = BlendSignal(weights={"momentum_12_1": 0.6, "short_term_reversal": 0.3,
                                 "low_volatility": 0.1}, ic=0.08, periods=9)
    assert isinstance(model, SignalModel)
    view = market.as_of(market.dates[300])
    snap = model.evaluate(view)
    px = view.prices
    mom = np.log(px.iloc[-22] / px.iloc[-253])
    rev = -np.log(px.iloc[-1] / px.iloc[-6])
    lv = -px.pct_change().iloc[-63:].std()
    expect = _z(0.6 * _z(mom) + 0.3 * _z(rev) + 0.1 * _z(lv))
    np.testing.assert_allclose(snap.score.to_numpy(), expect, rtol=1e-10, atol=1e-12)
    vol = px.pct_change().iloc[-63:].std()
    np.testing.assert_allclose(snap.alpha.to_numpy(), 0.08 * vol * 3.0 * expect, rtol=1e-9)
    assert snap.as_of == market.dates[300]
    assert list(snap.score.index) == list(market.symbols)
    assert snap.coverage == 1.0


def test_blend_signal_refuses_bad_settings():
    from keel.signals import BlendSignal

    with pytest.raises(ValidationError, match="unknown signal"):
        BlendSignal(weights={"astrology": 1.0})
    with pytest.raises(ValidationError):
        BlendSignal(periods=0)
