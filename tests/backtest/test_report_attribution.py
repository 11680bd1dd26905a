"""Return attribution in the backtest report: the pieces add up to the active return exactly,
the factor pieces use the exposures the model regressed on, and the held weights are the
targets drifting with returns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.backtest.engine import Backtester
from keel.backtest.report import attribution, render_html
from keel.config import parse_config
from keel.data.synthetic import synthetic_market
from keel.risk.fundamental import FundamentalFactorModel
from keel.risk.performance import fundamental_exposures, held_weights

CFG = {"risk": {"model": "pca", "n_pca_factors": 4, "lookback_days": 120, "refit_every": 10},
       "policy": {"frequency": "weekly"},
       "backtest": {"warmup": 260, "ledger": "none",
                    "books": [{"name": "mv"},
                              {"name": "mpo", "optimize": {"engine": "mpo",
                                                           "mpo_horizon": 2}}]}}


@pytest.fixture(scope="module")
def market():
    return synthetic_market(20, 330, seed=4)


@pytest.fixture(scope="module")
def result(market):
    return Backtester(parse_config(CFG)).run(market)


def test_held_weights_are_targets_drifting_with_returns():
    idx = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    r = pd.DataFrame({"A": [0.1, 0.0, -0.5, 0.2], "B": [0.0, 0.1, 0.0, 0.0]}, index=idx)
    t = pd.DataFrame({"A": [0.5], "B": [0.25]}, index=idx[:1])
    h = held_weights(t, r, lag=1)
    assert h.iloc[0].tolist() == [0.0, 0.0]                     # decided at row 0, held at 1
    assert h.iloc[1].tolist() == [0.5, 0.25]
    # after row 1: A flat, B +10%, cash 0.25 flat: NAV 1.025
    assert h.iloc[2].tolist() == pytest.approx([0.5 / 1.025, 0.275 / 1.025])
    same = held_weights(t, r, lag=0)
    assert same.iloc[0].tolist() == [0.5, 0.25]


def test_the_pieces_add_up_to_the_active_return_exactly(result, market):
    att = attribution(result, market)
    assert {"mv", "mpo"} <= set(att)
    for name in ("mv", "mpo"):
        a = att[name]
        bf = a.brinson
        assert np.abs(bf.by_period["residual"]).max() < 1e-15
        assert bf.by_sector["total"].sum() == pytest.approx(bf.active_return, abs=1e-14)
        assert a.groups is not None
        per_period_active = bf.by_period["active"].reindex(a.groups.index)
        assert np.abs(a.groups.sum(axis=1) - per_period_active).max() < 1e-15
        assert a.other == pytest.approx(a.book_return - bf.portfolio_return)
        # the held weights earn close to what the book earned (costs and cuts apart)
        assert abs(a.other) < 0.05


def test_factor_pieces_use_the_exposures_the_model_regressed_on(market):
    model = FundamentalFactorModel().fit(market)
    expo = fundamental_exposures(model, market)
    r = market.returns
    rng = np.random.default_rng(0)
    for d in list(model.regression_dates_)[::50]:
        b = expo[d]
        resid = r.loc[d].to_numpy() - b.to_numpy() @ model.factor_returns_.loc[d].to_numpy()
        spec = model.specific_returns_.loc[d].to_numpy()
        ok = np.isfinite(spec)
        w = rng.normal(size=len(b))
        assert w[ok] @ resid[ok] == pytest.approx(w[ok] @ spec[ok], abs=1e-12)


def test_the_report_shows_the_attribution(result, market):
    page = render_html(result, market=market)
    assert "Return attribution" in page and "allocation" in page and "selection" in page
    assert "book NAV return" in page and "active return by factor group" in page
