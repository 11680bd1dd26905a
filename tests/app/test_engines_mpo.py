"""MPO as a desk engine and Black-Litterman views from the signals layer.

Checks: ``mpo`` at H = 1 is the mean-variance engine's answer; the decay and a user's per-period
forecast give the same plan when they agree; every ``[optimize]`` bound and a step's tradable
mask hold; the views engine's posterior equals the Black-Litterman closed form computed here in
dense NumPy; the confidence follows the score's track record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from keel.app.engines import MeanVarianceEngine, Step, build_engine
from keel.app.engines_mpo import MultiPeriodEngine, ViewsEngine, ViewTrack, alpha_profile
from keel.app.pipeline import Pipeline
from keel.config import OptimizeConfig, parse_config
from keel.data.synthetic import synthetic_market
from keel.errors import ConfigError, ValidationError
from keel.optimize.black_litterman import signal_views
from keel.risk.base import FactorCovariance

CFG = {"risk": {"lookback_days": 120, "n_pca_factors": 3, "model": "pca"},
       "optimize": {"max_weight": 0.1}}


@pytest.fixture(scope="module")
def desk():
    m = synthetic_market(30, 300, seed=11)
    pipe = Pipeline(parse_config(CFG))
    score, alpha = pipe.signals(m)
    fit = pipe.fit_risk(m)
    ctx = pipe.trade_context(m, 1e7)
    cur = np.zeros(m.n_assets)
    cur[:10] = 0.1
    step = pipe.step(m, pd.Timestamp(m.now), score, alpha, cur, fit.model, ctx)
    return pipe, step


def _engine(pipe, **over):
    o = OptimizeConfig(**{**pipe.config.optimize.model_dump(), **over})
    return build_engine("e", o, costs=pipe.optimizer_costs(), period_days=pipe.period_days,
                        holding=pipe.holding)


def test_mpo_at_horizon_one_is_the_mean_variance_answer(desk):
    pipe, step = desk
    mv = _engine(pipe, engine="mean_variance")
    mpo = _engine(pipe, engine="mpo", mpo_horizon=1)
    assert isinstance(mv, MeanVarianceEngine) and isinstance(mpo, MultiPeriodEngine)
    a, b = mv.target(step), mpo.target(step)
    assert np.max(np.abs(a - b)) < 1e-5
    assert mpo.codes[:2] == ("MPO_OPTIMAL", "MPO_H1")


def test_mpo_plans_h_periods_within_every_bound_and_re_solves(desk):
    pipe, step = desk
    eng = _engine(pipe, engine="mpo", mpo_horizon=4, mpo_alpha_decay=0.6)
    w = eng.target(step)
    plan = eng.last_plan.plan
    assert plan.shape == (4, len(step.symbols))
    assert np.allclose(plan.iloc[0].to_numpy(), w)
    assert np.all(plan.to_numpy() >= -1e-7) and np.all(plan.to_numpy() <= 0.1 + 1e-7)
    assert np.allclose(plan.sum(axis=1), 1.0, atol=1e-6)
    problem = eng.problem
    w2 = eng.target(Step(step.now, step.symbols, step.alpha * 2, step.score, w, step.risk,
                         step.trade_context, sectors=step.sectors))
    assert eng.problem is problem and np.all(np.isfinite(w2))  # re-solved, not rebuilt
    assert eng.last_plan.first.compile_time_s == 0.0


def test_the_decay_is_a_forecast_per_period(desk):
    pipe, step = desk
    o = OptimizeConfig(**{**pipe.config.optimize.model_dump(), "engine": "mpo",
                          "mpo_horizon": 3, "mpo_alpha_decay": 0.5})
    assert alpha_profile(o).tolist() == [1.0, 0.5, 0.25]
    by_decay = _engine(pipe, engine="mpo", mpo_horizon=3, mpo_alpha_decay=0.5).target(step)
    prof = _engine(pipe, engine="mpo", mpo_horizon=3, mpo_alpha_profile=[1.0, 0.5, 0.25])
    given = MultiPeriodEngine("f", o, costs=pipe.optimizer_costs(),
                              period_days=pipe.period_days,
                              forecast=lambda s: np.outer([1.0, 0.5, 0.25], s.alpha))
    assert np.allclose(prof.target(step), by_decay, atol=1e-8)
    assert np.allclose(given.target(step), by_decay, atol=1e-8)
    bad = MultiPeriodEngine("f", o, costs=pipe.optimizer_costs(),
                            forecast=lambda s: np.ones((2, len(s.symbols))))
    with pytest.raises(ValidationError):
        bad.target(step)


def test_a_profile_of_the_wrong_length_is_refused():
    with pytest.raises(ConfigError, match="mpo_alpha_profile"):
        parse_config({"optimize": {"engine": "mpo", "mpo_horizon": 3,
                                   "mpo_alpha_profile": [1.0, 0.5]}})


@dataclass(frozen=True, eq=False)
class _MaskedStep(Step):
    tradable: np.ndarray | None = None


def test_a_name_that_may_not_trade_keeps_its_weight_in_the_traded_period(desk):
    pipe, step = desk
    free = _engine(pipe, engine="mpo", mpo_horizon=3).target(step)
    moved = np.argsort(-np.abs(free - step.current))[:3]
    mask = np.ones(len(step.symbols), bool)
    mask[moved] = False
    s = _MaskedStep(step.now, step.symbols, step.alpha, step.score, step.current, step.risk,
                    step.trade_context, sectors=step.sectors, tradable=mask)
    eng = _engine(pipe, engine="mpo", mpo_horizon=3)
    w = eng.target(s)
    assert np.allclose(w[moved], step.current[moved], atol=1e-7)
    assert not np.allclose(w, step.current, atol=1e-4)  # the others still trade
    assert abs(w.sum() - 1.0) < 1e-6


# --------------------------------------------------------------------------- views


def _small_risk(n=6, k=2, seed=3):
    rng = np.random.default_rng(seed)
    syms = [f"S{i}" for i in range(n)]
    b = rng.normal(0, 1, (n, k))
    f = np.diag(rng.uniform(1e-4, 4e-4, k))
    d = rng.uniform(1e-4, 3e-4, n)
    fc = FactorCovariance(pd.Index(syms), pd.Index([f"F{j}" for j in range(k)]), b, f, d)
    return fc, b @ f @ b.T + np.diag(d), pd.Index(syms)


def test_signal_views_closed_form():
    syms = pd.Index(list("ABCDEFGHIJ"))
    score = pd.Series(np.arange(10.0)[::-1], index=syms)       # A best, J worst
    alpha = score * 1e-4
    (rel,) = signal_views(score, alpha, kind="relative", quantile=0.2, confidence=0.4)
    assert rel.assets == {"A": 0.5, "B": 0.5, "I": -0.5, "J": -0.5}
    assert rel.expected == pytest.approx((9 + 8) / 2e4 - (1 + 0) / 2e4)
    assert rel.confidence == 0.4
    ab = signal_views(score, alpha, kind="absolute", quantile=0.2)
    assert [v.assets for v in ab] == [{"A": 1.0}, {"B": 1.0}, {"I": 1.0}, {"J": 1.0}]
    assert [v.expected for v in ab] == pytest.approx([9e-4, 8e-4, 1e-4, 0.0], abs=1e-18)
    score.iloc[0] = np.nan                                       # no score: no view
    assert "A" not in signal_views(score, alpha, kind="relative")[0].assets
    with pytest.raises(ValidationError):
        signal_views(score, alpha, kind="sideways")


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_views_posterior_is_the_black_litterman_closed_form(kind):
    fc, sigma, syms = _small_risk()
    n = len(syms)
    score = np.array([2.0, 1.0, 0.5, -0.2, -1.0, -2.5])
    alpha = 1e-3 * score
    o = OptimizeConfig(engine="mean_variance", bl_views=kind, bl_quantile=0.34, bl_tau=0.05,
                       bl_confidence=0.7, risk_aversion=3.0)

    class Spy:
        name, codes = "spy", ("SPY",)

        def target(self, step):
            self.alpha = step.alpha
            return np.zeros(len(step.symbols))

    spy = Spy()
    eng = ViewsEngine(spy, o)
    from keel.costs.base import TradeContext

    ctx = TradeContext(symbols=syms, prices=np.full(n, 10.0), adv_notional=np.full(n, 1e9),
                       volatility=np.full(n, 0.02), spreads=np.full(n, 5e-4), nav=1e6)
    eng.target(Step(pd.Timestamp("2024-01-02", tz="UTC"), syms, alpha, score, np.zeros(n),
                    fc, ctx))
    # closed form, dense: pi = delta Sigma w_b, mu = pi + tau S P'(P tau S P' + Omega)^-1 (Q - P pi)
    delta, tau, c = 6.0, 0.05, 0.7
    pi = delta * sigma @ np.full(n, 1.0 / n)
    if kind == "relative":
        p = np.array([[0.5, 0.5, 0, 0, -0.5, -0.5]])
        q = np.array([alpha[:2].mean() - alpha[4:].mean()])
    else:
        p = np.eye(n)[[0, 1, 4, 5]]
        q = alpha[[0, 1, 4, 5]]
    omega = np.diag(tau * np.diag(p @ sigma @ p.T) * (1 - c) / c)
    mu = pi + tau * sigma @ p.T @ np.linalg.solve(tau * p @ sigma @ p.T + omega, q - p @ pi)
    np.testing.assert_allclose(spy.alpha, mu, rtol=1e-10, atol=1e-14)
    assert eng.codes == ("SPY", f"BL_{kind.upper()}", "BL_CONFIDENCE_0.70")


def test_views_cover_the_universe_only_names_outside_the_risk_model_keep_their_alpha():
    # the S&P 500 desk: a name outside the session's universe (no complete history) is not
    # in the risk model; views and posterior are over the universe, the name stays pinned
    fc, _, syms = _small_risk()
    score = np.array([2.0, 1.0, 0.5, -0.2, -1.0, -2.5])
    o = OptimizeConfig(engine="mean_variance", bl_views="relative", bl_quantile=0.34,
                       bl_confidence=0.7, risk_aversion=3.0)
    from keel.costs.base import TradeContext

    def run(symbols, score, tradable):
        n = len(symbols)

        class Spy:
            name, codes = "spy", ()

            def target(self, step):
                self.alpha = step.alpha
                return np.asarray(step.current, dtype=float)

        spy = Spy()
        # the desk's trade context prices the session's universe only
        priced = symbols if tradable is None else symbols[tradable]
        m = len(priced)
        ctx = TradeContext(symbols=priced, prices=np.full(m, 10.0),
                           adv_notional=np.full(m, 1e9), volatility=np.full(m, 0.02),
                           spreads=np.full(m, 5e-4), nav=1e6)
        cur = np.zeros(n)
        cur[-1] = 0.01 if tradable is not None else 0.0
        eng = ViewsEngine(spy, o)
        for day in ("2024-01-02", "2024-02-01"):  # the second compares with the first
            eng.target(_MaskedStep(pd.Timestamp(day, tz="UTC"), symbols, 1e-3 * score, score,
                                   cur, fc, ctx, tradable=tradable))
        return spy.alpha

    inside = run(syms, score, None)
    wide = pd.Index([*syms, "OUT"])
    mask = np.r_[np.ones(len(syms), bool), False]
    out = run(wide, np.r_[score, 9.0], mask)  # the best score, but outside the universe
    np.testing.assert_allclose(out[:-1], inside, rtol=1e-12, atol=1e-15)
    assert out[-1] == pytest.approx(9e-3)


def test_confidence_follows_the_track_record():
    syms = pd.Index([f"S{i}" for i in range(20)])
    rng = np.random.default_rng(0)
    good, noise = ViewTrack(0.5, 4), ViewTrack(0.5, 4)
    px_g, px_n = np.full(20, 100.0), np.full(20, 100.0)
    for t in range(12):
        score = rng.normal(size=20)
        good.observe(syms, score, px_g)
        noise.observe(syms, score, px_n)
        assert (good.confidence() == 0.5) == (t < 4)             # default until 4 realised
        px_g = px_g * (1 + 0.01 * score + 0.001 * rng.normal(size=20))  # the score predicts
        px_n = px_n * (1 + 0.01 * rng.normal(size=20))                   # it does not
    assert good.confidence() == 0.99
    assert noise.confidence() < 0.9
    assert len(good.ics) == 11 and min(good.ics) > 0.8


def test_views_wrap_any_engine_from_the_config(desk):
    pipe, step = desk
    for engine in ("mean_variance", "mpo"):
        eng = _engine(pipe, engine=engine, bl_views="relative", mpo_horizon=2)
        assert isinstance(eng, ViewsEngine)
        w = eng.target(step)
        assert abs(w.sum() - 1.0) < 1e-6 and np.all(w <= 0.1 + 1e-7)
        assert eng.codes[-2:] == ("BL_RELATIVE", "BL_CONFIDENCE_0.50")
        assert eng.solver  # the inner engine's attributes show through


class _NullBroker:
    """Accepts everything, fills nothing (the cycle only admits orders)."""

    name = "null"

    def submit(self, order):
        pass

    def cancel(self, client_order_id):
        pass

    def replace(self, client_order_id, new_order):
        pass

    def open_orders(self):
        return []

    def positions(self):
        return {}

    def account(self):
        from decimal import Decimal

        from keel.venues.base import Account

        return Account(cash=Decimal(0), equity=Decimal(0), buying_power=Decimal(0))

    def poll_events(self):
        return []


def test_the_live_cycle_runs_mpo_with_views_from_the_config(tmp_path):
    """``keel run``'s decision cycle builds the engine from the one config: mpo (with views)
    targets within the bounds and submits orders, as the other engines do."""
    from decimal import Decimal

    from keel.app.cycle import DecisionCycle
    from keel.clock import SimulatedClock
    from keel.config import DataConfig, with_overrides
    from keel.data.source import load_market
    from keel.execution.oms import OrderManager
    from keel.portfolio.ledger import Ledger
    from keel.store.db import Store
    from keel.store.orders_repo import OrdersRepo
    from keel.types import utc

    market = load_market(DataConfig(n_assets=30, n_days=300), seed=3)
    cfg = with_overrides(parse_config({"optimize": {"cash_buffer": 0.02},
                                       "governance": {"sector_cap": None}}),
                         {"optimize.engine": "mpo", "optimize.mpo_horizon": 2,
                          "optimize.bl_views": "relative"})
    now = utc(2022, 3, 14, 13, 36)          # 09:35 New York, the session after the last close
    clock = SimulatedClock(now)
    ledger = Ledger(clock=clock)
    ledger.deposit(Decimal(1_000_000))
    prices = {s: Decimal(str(round(p, 2))) for s, p in market.latest("prices").items()}
    store = Store.from_url(f"sqlite:///{tmp_path / 'oms.db'}")
    store.create_all()
    oms = OrderManager(_NullBroker(), OrdersRepo(store), clock, sleep=lambda s: None)
    res = DecisionCycle(cfg).run(market, now=now, state=ledger.state, prices=prices,
                                 clock=clock, oms=oms)
    codes = res.codes("optimize")
    assert codes[:2] == ("MPO_OPTIMAL", "MPO_H2") and "BL_RELATIVE" in codes
    assert res.codes("rebalance")[0] == "ORDERS" and res.orders
