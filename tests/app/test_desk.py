"""The desk pipeline's guarantees: greedy within the budget, turnover caps that never make a
problem infeasible, failed live cycles that hold and escalate, and backtest/live parity."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from keel.app.cycle import DecisionCycle
from keel.app.engines import GreedyEngine, Step, TurnoverGovernor
from keel.app.live import Desk, session_start
from keel.app.pipeline import Pipeline, drawdown
from keel.app.venue import LocalVenue
from keel.backtest.engine import Backtester
from keel.clock import SimulatedClock
from keel.config import KeelConfig, OptimizeConfig, parse_config
from keel.data.synthetic import synthetic_market
from keel.errors import InfeasibleError, ValidationError
from keel.store.audit import AuditLog
from keel.store.db import Store


@pytest.fixture(scope="module")
def market():
    return synthetic_market(40, 320, seed=5)


def _step(market, current, score=None):
    pipe = Pipeline(KeelConfig())
    view = market
    n = market.n_assets
    z = np.linspace(3, -1, n) if score is None else score
    return Step(pd.Timestamp(view.now), view.symbols, np.zeros(n), z, current,
                risk=None, trade_context=pipe.trade_context(view, 1e7))  # type: ignore[arg-type]


@pytest.mark.parametrize("k,kb,ks", [(20, 18, 24), (20, None, None)])
def test_greedy_never_exceeds_the_budget_holding_the_top_k_sell(market, k, kb, ks):
    """Holding the top 24 with K=20 (what an engine switch leaves): the band would keep all 24
    (sum 1.2); the worst-ranked are sold with TRIM_BUDGET and the weights sum to 1."""
    o = OptimizeConfig(engine="greedy", greedy_k=k, greedy_k_buy=kb, greedy_k_sell=ks)
    eng = GreedyEngine("g", o, costs=Pipeline(KeelConfig()).cost_model)
    cur = np.zeros(market.n_assets)
    cur[:24] = 1 / 24
    w = eng.target(_step(market, cur))
    assert w.sum() == pytest.approx(1.0) and (w > 0).sum() == 20
    assert np.all(w[:20] == pytest.approx(1 / 20)) and np.all(w[20:] == 0)  # kept by rank
    assert any(c.startswith("TRIM_BUDGET:4") for c in eng.codes)


def test_turnover_cap_from_cash_funds_over_several_rebalances():
    gov = TurnoverGovernor(0.25, None, exempt_funding=False)
    target = np.full(10, 0.1)
    w = np.zeros(10)
    days = pd.date_range("2024-01-31", periods=6, freq="ME", tz="UTC")
    for i, d in enumerate(days):
        new, codes = gov.apply(d, w, target)
        assert np.abs(new - w).sum() <= 0.25 + 1e-12
        assert np.all(np.isfinite(new)) and new.sum() <= 1 + 1e-12
        w = new
        if i < 3:
            assert "TURNOVER_CAP" in codes
    assert w.sum() == pytest.approx(1.0)  # four rebalances of 25%
    # exempt: investing idle cash is free, rotation is capped
    ex = TurnoverGovernor(0.25, None, exempt_funding=True)
    new, codes = ex.apply(days[0], np.zeros(10), target)
    assert new.sum() == pytest.approx(1.0) and "FUNDING_EXEMPT" in codes


def test_annual_turnover_budget_spans_rebalances():
    gov = TurnoverGovernor(None, 1.0, exempt_funding=False)
    a = np.array([0.5, 0.5, 0.0, 0.0])
    b = np.array([0.0, 0.0, 0.5, 0.5])
    w, spent = a.copy(), 0.0
    days = pd.date_range("2024-01-31", periods=12, freq="ME", tz="UTC")
    for i, d in enumerate(days):
        new, _ = gov.apply(d, w, b if i % 2 == 0 else a)
        gov.commit(d, w, new)  # each rebalance trades what the governor allowed
        spent += np.abs(new - w).sum()
        w = new
    assert spent == pytest.approx(1.0)  # the year's budget, then nothing
    nxt, _ = gov.apply(days[-1] + pd.Timedelta(days=400), w, a)
    assert np.abs(nxt - w).sum() > 0  # a new year, a new budget


def test_backtest_mean_variance_with_turnover_cap_from_cash_never_crashes(market):
    cfg = parse_config({"risk": {"model": "pca", "n_pca_factors": 3, "lookback_days": 120},
                        "optimize": {"max_turnover": 0.25},
                        "backtest": {"warmup": 260, "ledger": "none", "books": [
                            {"name": "spread"},
                            {"name": "exempt", "optimize": {"turnover_funding": "exempt"}}]}})
    res = Backtester(cfg).run(market)
    assert not res.failures
    for b in res.books.values():
        assert np.isfinite(b.nav).all()
        assert b.governance["turnover_capped"] >= 1
    # funding over several rebalances: the book from cash is not invested at once
    sp = res.books["spread"]
    assert 2 * sp.turnover.iloc[0] <= 0.25 + 1e-9


def test_drawdown_from_the_equity_history():
    assert drawdown([100, 120, 90]) == pytest.approx(0.25)
    assert drawdown([100, 101]) == 0.0


# --------------------------------------------------------------------------- the live loop


def _desk(market, tmp_path, cfg):
    store = Store.from_url(f"sqlite:///{tmp_path / 'keel.db'}")
    store.upgrade()
    clock = SimulatedClock(session_start(market))
    venue = LocalVenue.start(market, clock, protocol="rest", seed=1)
    desk = Desk(store, clock, venue.broker(), DecisionCycle(cfg))
    desk.recover()
    desk.fund(Decimal(10_000_000))
    return desk, venue


def test_keel_run_honours_max_turnover(market, tmp_path):
    cfg = KeelConfig(optimize={"max_turnover": 0.01}, execution={"max_participation": 1.0})
    desk, venue = _desk(market, tmp_path, cfg)
    try:
        res = desk.decide(market, venue.mids())
        sent = sum(float(o.qty) * float(venue.mids()[o.symbol]) for o in res.orders)
        assert res.traded and sent <= 0.01 * 10_000_000 * 1.001
        assert "TURNOVER_CAP" in res.codes("optimize")
    finally:
        venue.stop()


def test_engine_switch_with_more_than_k_names_held(market, tmp_path):
    cfg = KeelConfig(optimize={"greedy_k": 5, "max_weight": 0.05},
                     execution={"max_participation": 1.0})
    desk, venue = _desk(market, tmp_path, cfg)
    try:
        first = desk.decide(market, venue.mids())
        desk.settle(timeout_s=2.0)
        assert len(first.targets) > 5
        desk.switch_engine("greedy")
        res = desk.decide(market, venue.mids(), force=True)
        assert res.targets.sum() <= 1.0 + 1e-9 and len(res.targets) <= 5
        assert desk.stats.failures == 0
    finally:
        venue.stop()


def test_a_failing_cycle_holds_is_audited_and_escalates(market, tmp_path, monkeypatch):
    cfg = KeelConfig(governance={"alert_after_failures": 1, "kill_after_failures": 2})
    desk, venue = _desk(market, tmp_path, cfg)

    def boom(*a, **k):
        raise InfeasibleError("no portfolio satisfies the constraints", field="Turnover")
    try:
        monkeypatch.setattr(desk.cycle, "optimize", boom)
        r1 = desk.decide(market, venue.mids())
        assert not r1.traded and r1.codes("triggers") == ("HOLD", "CYCLE_FAILED_INFEASIBLEERROR")
        assert not desk.cycle.kill_switch.engaged
        desk.decide(market, venue.mids())
        assert desk.cycle.kill_switch.engaged
        audit = AuditLog(desk.store)
        assert len(audit.query(action="live.cycle_failed")) == 2
        assert len(audit.query(action="live.alert")) == 2
        assert len(audit.query(action="live.kill_switch")) == 1
        monkeypatch.undo()
        r3 = desk.decide(market, venue.mids())  # the loop goes on; the switch holds it
        assert r3.codes("triggers") == ("KILL_SWITCH",)
    finally:
        venue.stop()


def test_backtest_and_keel_run_make_the_same_decision(market, tmp_path):
    """The same day through the backtest and through keel run on the simulated exchange:
    same targets, same reason codes, same parent orders (to the share)."""
    d = 300
    day = market.head(d + 1)
    data = {"risk": {"model": "pca", "n_pca_factors": 3, "lookback_days": 120},
            "governance": {"market_hours": False}, "execution": {"max_participation": 1.0,
                                                                  "min_order_value": 0.0}}
    bt = Backtester(parse_config({**data, "backtest": {
        "warmup": 260, "start": str(market.dates[d].date()), "ledger": "none",
        "nav": 10_000_000}})).run(market)
    book = next(iter(bt.books.values()))
    dec = book.decisions[0]
    assert dec["date"] == market.dates[d].isoformat()
    desk, venue = _desk(day, tmp_path, parse_config(data))
    try:
        res = desk.decide(day, venue.mids())
    finally:
        venue.stop()
    assert list(res.codes("optimize")) == dec["engine"] + dec["turnover"]
    assert [c for c in res.codes("triggers")] == dec["triggers"]
    target = pd.Series(book_targets(bt), index=market.symbols)
    live = res.targets.reindex(market.symbols).fillna(0.0)
    np.testing.assert_allclose(live.to_numpy(), target.to_numpy(), atol=1e-6)
    px = day.latest("prices")
    bt_shares = {s: int(np.floor(w * 10_000_000 / px[s] + 1e-9))
                 for s, w in target.items() if w > 1e-6}
    live_orders = {o.symbol: int(o.qty) for o in res.orders}
    assert live_orders.keys() == {s for s, q in bt_shares.items() if q > 0}
    for s, q in live_orders.items():
        assert abs(q - bt_shares[s]) <= 1, s


def book_targets(result):
    return next(iter(result.books.values())).decisions[0]["target"]


def test_the_annual_budget_is_charged_only_by_what_trades() -> None:
    import numpy as np
    import pandas as pd

    from keel.app.engines import TurnoverGovernor

    g = TurnoverGovernor(None, annual=1.0, exempt_funding=False)
    now = pd.Timestamp("2024-03-06", tz="UTC")
    cur, tgt = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    for _ in range(10):                      # ten bars that plan but never trade
        w, codes = g.apply(now, cur, tgt)
    assert g.spent == [] and "TURNOVER_CAP" not in codes
    g.commit(now, cur, tgt)                  # one rebalance traded 0.8
    w, codes = g.apply(now, cur, tgt)
    assert "TURNOVER_CAP" in codes and np.abs(w - cur).sum() == pytest.approx(0.2)
    g.commit(now + pd.Timedelta(days=400), cur, cur)   # a year later the old spend is gone
    assert len(g.spent) == 1 and g.allowed(now + pd.Timedelta(days=400)) == 1.0


def test_a_restart_keeps_the_drawdown_turnover_and_standing_target(market, tmp_path):
    """The drawdown rule's watermark, the annual turnover spent and the standing target live in
    the store (``desk_state``): a restarted ``keel run`` cannot reset a drawdown halt."""
    cfg = KeelConfig(optimize={"annual_turnover": 5.0}, execution={"max_participation": 1.0})
    desk, venue = _desk(market, tmp_path, cfg)
    try:
        res = desk.decide(market, venue.mids())
        assert res.traded and desk.cycle.governor.spent
        # a watermark far above today's equity: a 40% drawdown the next cycle must see
        desk.cycle.peak_equity = float(desk.ledger.state.equity) / 0.6
        desk.decide(market, venue.mids())
        before = desk.cycle.state()
        assert desk.cycle.drawdown == pytest.approx(0.4, abs=0.01)
        restarted = Desk(desk.store, desk.clock, venue.broker(), DecisionCycle(cfg))
        assert restarted.cycle.state() == before
        assert restarted.cycle.drawdown == pytest.approx(desk.cycle.drawdown)
        assert restarted.cycle.governor.spent == desk.cycle.governor.spent
        pd.testing.assert_series_equal(restarted.cycle.standing_target,
                                       desk.cycle.standing_target, check_names=False)
        rows = AuditLog(desk.store).query(action="live.state_restored")
        assert rows and rows[-1].payload["drawdown"] == pytest.approx(0.4, abs=0.01)
    finally:
        venue.stop()


def test_a_malformed_saved_state_is_refused_whole():
    cycle = DecisionCycle(KeelConfig())
    for bad in ({"peak_equity": "x"}, {"peak_equity": float("inf")},
                {"turnover_spent": [["2024-01-02", 0.1]]},  # a naive stamp
                {"standing_target": {"A": float("nan")}}):
        with pytest.raises(ValidationError):
            cycle.restore(bad)
        assert cycle.peak_equity is None and cycle.governor.spent == []


def test_the_live_chain_refuses_a_stale_price():
    """The cycle stamps each price (``price_times``); the live desk's governance refuses one
    older than 15 minutes, the backtest's chain (priced at its own closes) has no such rule."""
    from datetime import timedelta

    from keel.policy.verdicts import GovernanceContext
    from keel.types import Order, Side, utc

    cfg = KeelConfig(governance={"market_hours": False})
    live = Pipeline(cfg).governance
    assert live is not None and "PriceFreshness" in [r.name for r in live.rules]
    assert "PriceFreshness" not in [r.name for r in Pipeline(cfg, live=False).governance.rules]
    now = utc(2024, 3, 5, 15)
    order = Order("o-1", "AAA", Side.BUY, Decimal(10), now)
    base = dict(now=now, nav=Decimal(10_000_000), prices={"AAA": Decimal(100)}, positions={})
    fresh = live.evaluate([order], GovernanceContext(
        **base, price_times={"AAA": now - timedelta(minutes=5)}))
    stale = live.evaluate([order], GovernanceContext(
        **base, price_times={"AAA": now - timedelta(hours=6)}))
    assert fresh[0].approved_order is not None
    assert stale[0].approved_order is None and stale[0].reason_code == "STALE_PRICE"
