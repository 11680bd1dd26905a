"""The point-in-time universe through the desk (issue 14): a name whose data stops is never
traded after and its holding is liquidated at its last close (an event, not a silent fill);
a name outside the session's universe is pinned at its weight by every engine; the risk model
never sees a NaN return; a late listing enters once it has enough history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.app.engines import build_engine
from keel.app.pipeline import Pipeline
from keel.backtest.engine import Backtester
from keel.config import DataConfig, EngineKind, parse_config
from keel.data.market import MarketData
from keel.data.source import load_market as synthetic

N, DAYS = 16, 300
STOP, STOP_AT = 2, 200          # data stops for good at session 200
GAP, GAP_AT = 4, (180, 183)     # no data on sessions 180-182
LATE, LIST_AT = 6, 60           # listed at session 60
LOOKBACK = 60


@pytest.fixture(scope="module")
def market() -> MarketData:
    m = synthetic(DataConfig(n_assets=N, n_days=DAYS), seed=11)
    px, vol = m.prices.copy(), m.volumes.copy()
    px.iloc[STOP_AT:, STOP] = np.nan
    px.iloc[GAP_AT[0]:GAP_AT[1], GAP] = np.nan
    px.iloc[:LIST_AT, LATE] = np.nan
    vol = vol.where(px.notna())
    return MarketData(prices=px, volumes=vol, sectors=m.sectors, on_missing="mask")


def _cfg(**over: object):
    base = {"risk": {"model": "pca", "n_pca_factors": 3, "lookback_days": LOOKBACK,
                     "refit_every": 5},
            "costs": {"spread_source": "fixed"},
            "signals": {"weights": {"short_term_reversal": 0.5, "low_volatility": 0.5}},
            "optimize": {"max_weight": 0.15},
            "policy": {"frequency": "daily"},
            "backtest": {"warmup": 100, "ledger": "fills",
                         "books": [{"name": e, "optimize": {"engine": e}}
                                   for e in ("mean_variance", "greedy", "risk_parity",
                                             "equal_weight")]}}
    base.update(over)
    return parse_config(base)


@pytest.fixture(scope="module")
def result(market):
    return Backtester(_cfg()).run(market)


def _weights(book, market) -> pd.DataFrame:
    rows = {pd.Timestamp(d["date"]): d["target"] for d in book.decisions}
    return pd.DataFrame.from_dict(rows, orient="index", columns=market.symbols)


@pytest.mark.slow  # a 4-book, 300-session daily backtest (~14 s)
def test_every_book_trades_through_holes(result, market) -> None:
    assert not result.failures
    for b in result.books.values():
        assert np.all(np.isfinite(b.nav)) and b.rebalances > 50
        assert b.ledger["rel_diff"] < 1e-6  # the Decimal ledger books the liquidations too


@pytest.mark.slow  # a 4-book, 300-session daily backtest (~14 s)
def test_a_name_whose_data_stops_is_liquidated_at_its_last_close_and_never_traded(
        result, market) -> None:
    stop = market.symbols[STOP]
    last = market.prices[stop].iloc[STOP_AT - 1]
    for name, b in result.books.items():
        w = _weights(b, market)
        after = w.loc[w.index >= market.dates[STOP_AT], stop]
        assert (after == 0).all(), name
        held = w.loc[w.index < market.dates[STOP_AT], stop].iloc[-1] > 0
        ev = [e for e in b.events if e["symbol"] == stop]
        if held:  # liquidated once, on the first session without a close, at the last close
            # a trade decided the session before, for a session the name never had: unfilled
            assert all(e["event"] == "UNFILLED_NO_SESSION"
                       and pd.Timestamp(e["date"]) == market.dates[STOP_AT] for e in ev[:-1])
            ev = ev[-1:]
            assert [e["event"] for e in ev] == ["DATA_STOPPED_LIQUIDATED"], name
            assert pd.Timestamp(ev[0]["date"]) == market.dates[STOP_AT]
            assert pd.Timestamp(ev[0]["last_close_date"]) == market.dates[STOP_AT - 1]
            assert ev[0]["price"] == pytest.approx(last) and ev[0]["notional"] < 0
            assert ev[0]["cost"] > 0
        assert b.final_weights is not None and b.final_weights[stop] == 0.0
    assert any(e["symbol"] == stop for e in result.books["equal_weight"].events)


@pytest.mark.slow  # a 4-book, 300-session daily backtest (~14 s)
def test_a_gap_leaves_the_universe_and_the_name_returns_after_its_history(
        result, market) -> None:
    gap = market.symbols[GAP]
    w = _weights(result.books["equal_weight"], market)[gap]
    d = market.dates
    assert (w.loc[(w.index >= d[GAP_AT[0]])
                  & (w.index < d[GAP_AT[1] - 1 + LOOKBACK])] == 0).all()
    assert (w.loc[w.index >= d[GAP_AT[1] + 63 + 5]] > 0).all()  # back after mask + refit


@pytest.mark.slow  # a 4-book, 300-session daily backtest (~14 s)
def test_a_late_listing_enters_after_enough_history(result, market) -> None:
    late = market.symbols[LATE]
    w = _weights(result.books["equal_weight"], market)[late]
    first = w[w > 0].index.min()
    # min_history (63) tradable sessions and a full risk window (60 returns) first
    assert first >= market.dates[LIST_AT + 63 - 1]
    assert (w.loc[w.index < market.dates[LIST_AT + 63 - 1]] == 0).all()
    assert result.universe.loc[:first].iloc[0] < result.universe.loc[first]


@pytest.mark.slow  # a 4-book, 300-session daily backtest (~14 s)
def test_the_universe_is_reported(result, market) -> None:
    u, t = result.universe, result.tradable
    assert len(u) == len(t) == DAYS - 1 - 100
    assert (u <= t).all() and u.min() < u.max() <= N


def test_the_risk_model_never_sees_a_nan_return(market, monkeypatch) -> None:
    from keel.risk.factor_model import StatisticalFactorModel

    seen: list[int] = []
    fit = StatisticalFactorModel.fit

    def spy(self, returns, *a, **k):
        arr = np.asarray(returns, dtype=float)
        assert np.all(np.isfinite(arr)), "the risk fit was fed a missing return"
        seen.append(arr.shape[1])
        return fit(self, returns, *a, **k)

    monkeypatch.setattr(StatisticalFactorModel, "fit", spy)
    cfg = _cfg(backtest={"warmup": 100, "ledger": "none",
                         "books": [{"name": "ew", "optimize": {"engine": "equal_weight"}}]})
    Backtester(cfg).run(market)
    assert seen and min(seen) < N  # names with holes in the window were left out


@pytest.mark.parametrize("engine", ["mean_variance", "greedy", "risk_parity", "equal_weight"])
def test_every_engine_pins_a_name_outside_the_universe(market, engine) -> None:
    cfg = _cfg(optimize={"max_weight": 0.15, "engine": engine, "sector_cap": 0.6})
    pipe = Pipeline(cfg, live=False)
    view = market.head(STOP_AT + 1)          # the stopped name has no close today
    fit = pipe.fit_risk(view)
    stop, gap = market.symbols[STOP], market.symbols[GAP]
    assert stop in fit.excluded and gap in fit.excluded
    uni = pipe.universe(view, fit.model)
    assert not uni[STOP] and not uni[GAP]
    current = np.full(N, 0.05)
    ctx = pipe.trade_context(view, 1e7, symbols=view.symbols[uni])
    scores, alpha = pipe.signals(view)
    step = pipe.step(view, view.now, scores, alpha, current, fit.model, ctx)
    assert not step.mask[STOP] and "PINNED:2" in step.codes
    eng = build_engine(engine, cfg.optimize.model_copy(update={"engine": EngineKind(engine)}),
                       costs=pipe.optimizer_costs())
    w = eng.target(step)
    assert w.shape == (N,) and np.all(np.isfinite(w))
    assert w[STOP] == 0.05 and w[GAP] == 0.05       # pinned, exactly
    if engine == "greedy":  # k slots of 1/k: the pinned weight comes off the budget
        assert w.sum() <= 1.0 + 1e-9
    else:
        assert w.sum() == pytest.approx(1.0, abs=1e-6)  # the pinned weight is carried
    assert "PINNED:2" in eng.codes


def test_beta_band_excludes_names_without_a_beta_instead_of_calling_them_one(market) -> None:
    cfg = _cfg(optimize={"max_weight": 0.15, "beta_min": 0.8, "beta_max": 1.2})
    pipe = Pipeline(cfg, live=False)
    view = market.head(150)
    betas = view.betas.copy()
    betas.iloc[-1, 0] = np.nan               # one tradable name without a beta today
    view.__dict__["betas"] = betas           # (the view's cached panel)
    fit = pipe.fit_risk(view)
    uni = pipe.universe(view, fit.model)
    assert uni[0]
    ctx = pipe.trade_context(view, 1e7, symbols=view.symbols[uni])
    scores, alpha = pipe.signals(view)
    step = pipe.step(view, view.now, scores, alpha, np.zeros(N), fit.model, ctx)
    assert step.betas is not None and not step.mask[0]  # excluded, not given beta 1.0
    assert step.excluded["EXCLUDED_NO_BETA"] == (str(view.symbols[0]),)
    assert "EXCLUDED_NO_BETA:1" in step.codes
    np.testing.assert_array_equal(step.betas[step.mask], betas.iloc[-1].to_numpy()[step.mask])
    eng = build_engine("mean_variance", cfg.optimize, costs=pipe.optimizer_costs())
    w = eng.target(step)
    assert w[0] == 0.0 and w.sum() == pytest.approx(1.0, abs=1e-6)
