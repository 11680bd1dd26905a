import numpy as np
import pandas as pd
import pytest

from keel.backtest.engine import Backtester
from keel.backtest.execution import ExecutionSimulator, slice_shape
from keel.config import load_config, parse_config, with_overrides
from keel.costs.base import TradeContext
from keel.costs.models import Commission, SpreadCost, SquareRootImpact
from keel.data.market import MarketData
from keel.data.synthetic import synthetic_market
from keel.errors import ConfigError

BOOKS = [{"name": "mv"}, {"name": "ew", "optimize": {"engine": "equal_weight"}},
         {"name": "rp", "optimize": {"engine": "risk_parity"}},
         {"name": "gr", "optimize": {"engine": "greedy", "greedy_k": 8}}]
BASE = {
    "risk": {"model": "pca", "n_pca_factors": 4, "lookback_days": 120, "refit_every": 10},
    "backtest": {"warmup": 260, "ledger": "fills", "books": BOOKS},
}


def spec(**sections):
    data = {k: dict(v) for k, v in BASE.items()}
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    return parse_config(data)


@pytest.fixture(scope="module")
def market():
    return synthetic_market(30, 340, seed=3)


@pytest.fixture(scope="module")
def result(market):
    return Backtester(spec()).run(market)


def test_all_books_run_and_metrics_are_consistent(result):
    m = result.metrics()
    assert set(m.index) == {"mv", "ew", "rp", "gr"}
    assert not m["failed"].any()
    for name, b in result.books.items():
        r = b.returns.to_numpy()
        assert m.loc[name, "ann_vol"] == pytest.approx(r.std(ddof=1) * np.sqrt(252))
        nav, peak, worst = b.nav.dropna().to_numpy(), -np.inf, 0.0
        for x in nav:  # brute-force peak-to-trough
            peak = max(peak, x)
            worst = max(worst, 1 - x / peak)
        assert m.loc[name, "max_drawdown"] == pytest.approx(worst, abs=1e-12)
        assert m.loc[name, "hit_rate"] == pytest.approx(np.mean(r > 0))
        assert b.rebalances >= 3  # monthly over ~80 sessions
        # cost split sums to the total
        comps = [c for c in m.columns if c.startswith("cost_") and c != "cost_total_bps"]
        assert m.loc[name, "cost_total_bps"] == pytest.approx(m.loc[name, comps].sum())
    # equal weight is fully invested at 1/N after each rebalance
    w = result.books["ew"].final_weights
    assert w is not None and w.sum() == pytest.approx(1.0, abs=0.05)
    assert result.config["backtest"]["books"][0]["name"] == "mv"
    assert result.execution_lag == "next_session"
    assert (result.universe == 30).all() and len(result.universe) == 339 - 260


def test_nav_accounting_closed_form(market):
    """One equal-weight book, close execution, no costs: NAV follows the holdings' returns."""
    cfg = parse_config({"optimize": {"engine": "equal_weight"},
                        "policy": {"frequency": "daily"},
                        "governance": {"enabled": False},
                        "execution": {"max_participation": 1.0},
                        "costs": {"spread_fraction": 0, "commission_per_share": 0,
                                  "commission_bps": 0, "impact_coefficient": 0,
                                  "cash_rate": 0, "margin_rate": 0},
                        "backtest": {"warmup": 260, "ledger": "none",
                                     "execution_lag": "same_close"}})
    res = Backtester(cfg).run(market)
    nav = res.books["equal_weight"].nav
    rets = market.returns.loc[nav.index[1:]]
    expected = nav.iloc[0] * np.cumprod(1.0 + rets.mean(axis=1).to_numpy())
    np.testing.assert_allclose(nav.iloc[1:].to_numpy(), expected, rtol=1e-10)


def test_deterministic_for_a_seed():
    cfg = spec(general={"seed": 11})
    a = Backtester(cfg).run(synthetic_market(20, 300, seed=11))
    b = Backtester(cfg).run(synthetic_market(20, 300, seed=11))
    for k in a.books:
        pd.testing.assert_series_equal(a.books[k].nav, b.books[k].nav)
    pd.testing.assert_frame_equal(a.metrics(), b.metrics())


def test_no_look_ahead(market):
    """Changing prices after day d leaves every decision up to d unchanged."""
    cfg = spec(policy={"frequency": "weekly"})
    base = Backtester(cfg).run(market)
    d = 300
    px = market.prices.copy()
    px.iloc[d + 1:] *= np.exp(np.random.default_rng(0).normal(0, 0.05, px.iloc[d + 1:].shape))
    shocked = MarketData(px, market.volumes, spreads=market.spreads, sectors=market.sectors)
    alt = Backtester(cfg).run(shocked)
    cut = market.dates[d]
    for k in base.books:
        a, b = base.books[k], alt.books[k]
        pd.testing.assert_series_equal(a.nav.loc[:cut], b.nav.loc[:cut])
        pd.testing.assert_series_equal(a.turnover.loc[:cut], b.turnover.loc[:cut])


class _Failing:
    """An engine that raises from ``day`` (tests the failure path of a run)."""

    def __init__(self, name, day):
        self.name, self.day, self.codes = name, day, ()

    def target(self, step):
        if step.now >= self.day:
            raise ConfigError("injected failure", field="fail_on", value=str(self.day))
        return np.full(len(step.symbols), 1.0 / len(step.symbols))


def test_failing_strategy_is_reported_and_others_continue(market):
    fail_day = market.dates[300]
    cfg = spec(backtest={"books": [{"name": "bad", "optimize": {"engine": "equal_weight"}},
                                   {"name": "ew", "optimize": {"engine": "equal_weight"}}]})
    res = Backtester(cfg, engines={"bad": _Failing("bad", fail_day)}).run(market)
    f = res.failures["bad"]
    assert f["date"][:10] >= str(fail_day.date()) and "injected failure" in f["reason"]
    assert "ew" not in res.failures and np.isfinite(res.books["ew"].nav.iloc[-1])
    m = res.metrics()
    assert bool(m.loc["bad", "failed"]) and "failure_reason" in m.columns


def test_decimal_ledger_reconciles_with_float_book(result):
    for b in result.books.values():
        assert b.ledger["rel_diff"] < 1e-9, (b.name, b.ledger)


def test_execution_algos_differ_through_schedule_cost(market):
    cfg = spec(backtest={"books": [{"name": f"ew/{a}", "optimize": {"engine": "equal_weight"},
                                    "execution": {"algo": a}}
                                   for a in ("twap", "vwap", "is", "market")]})
    m = Backtester(cfg).run(market).metrics()
    imp = m["exec_impact_bps_traded"]
    # one market order at the open pays far more impact than any sliced schedule
    assert imp["ew/market"] > 5 * max(imp["ew/twap"], imp["ew/vwap"], imp["ew/is"])
    assert set(m["algo"]) == {"twap", "vwap", "is", "market"}


def test_execution_simulator_matches_cost_models():
    ctx = TradeContext(pd.Index(["A", "B"]), prices=np.array([10.0, 50.0]),
                       adv_notional=np.array([1e6, 5e6]), volatility=np.array([0.02, 0.01]),
                       spreads=np.array([1e-3, 5e-4]))
    trades = np.array([1e4, -2e4])
    spread, impact, comm = SpreadCost(), SquareRootImpact(y=0.7), Commission(per_share=0.01)
    twap = slice_shape("twap", n_slices=4, volume_curve=np.ones(390),
                       spread_curve=np.ones(390))
    ex = ExecutionSimulator(twap, spread, impact, comm).costs(trades, ctx, np.array([0.01, 0]))
    np.testing.assert_allclose(ex.spread, spread.cost_array(trades, ctx))
    # 4 equal slices at 1/4 of the volume each: the same participation as one day-long trade
    np.testing.assert_allclose(ex.impact, impact.cost_array(trades, ctx))
    np.testing.assert_allclose(ex.commission, comm.cost_array(trades, ctx))
    np.testing.assert_allclose(ex.timing, [1e4 * 0.01 * 0.5, 0.0])


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError) as e:
        parse_config({"risk": {"n_factor": 3}})
    assert e.value.field == "risk.n_factor"
    with pytest.raises(ConfigError) as e:
        parse_config({"backtest": {"books": [{"name": "x", "optimize": {"engine": "magic"}}]}})
    assert e.value.field == "backtest.books.0.optimize.engine"
    with pytest.raises(ConfigError) as e:
        parse_config({"backtest": {"books": [{"name": "x", "optimize": {"greedy": 3}}]}})
    assert e.value.field == "backtest.books.0.optimize.greedy"
    p = tmp_path / "c.toml"
    p.write_text("[policy]\nfrequency = 'hourly'\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.field == "policy.frequency"
    cfg = with_overrides(spec(), {"risk.n_pca_factors": 3,
                                  "backtest.books.3.optimize.greedy_k": 5})
    assert cfg.risk.n_pca_factors == 3 and cfg.backtest.books[3].optimize["greedy_k"] == 5


def test_next_session_vs_same_close(market):
    """Same-close fills pay no timing; next-session fills move with the next return."""
    nxt = spec(backtest={"books": [{"name": "ew", "optimize": {"engine": "equal_weight"}}]})
    same = with_overrides(nxt, {"backtest.execution_lag": "same_close"})
    a, b = Backtester(nxt).run(market), Backtester(same).run(market)
    assert b.execution_lag == "same_close"
    assert (b.books["ew"].costs["timing"] == 0).all()
    assert (a.books["ew"].costs["timing"] != 0).any()
