"""The closed cost loop: finished parents and their fills -> TCA -> AdaptiveCost -> store,
across cycles and a restart, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from keel.costs.base import TradeContext
from keel.costs.models import SpreadCost, SquareRootImpact
from keel.execution.feedback import TCA, CostFeedback
from keel.store.cost_state_repo import CostStateRepo
from keel.store.db import Store
from keel.store.orders_repo import OrderRecord, OrdersRepo, StateChange
from keel.types import Fill, Order, OrderStatus, Side, utc

T0 = utc(2024, 3, 4, 14, 30)
K_TRUE = np.array([1.0, 2.5])  # the venue charges the spread as modelled, 2.5x the impact


def _ctx() -> TradeContext:
    return TradeContext(symbols=pd.Index(["AAA", "BBB", "CCC"]),
                        prices=np.array([100.0, 50.0, 20.0]),
                        adv_notional=np.array([5e7, 2e7, 1e7]),
                        volatility=np.array([0.015, 0.02, 0.03]),
                        spreads=np.array([4e-4, 8e-4, 1.5e-3]))


def _book(orders: OrdersRepo, pid: str, sym: str, side: Side, qty: int, fill_px: float,
          at, *, finish: bool = True) -> None:
    arrival = {"AAA": "100", "BBB": "50", "CCC": "20"}[sym]
    rec = OrderRecord(Order(pid, sym, side, Decimal(qty), at), OrderStatus.PENDING,
                      algo="twap", arrival_price=Decimal(arrival),
                      decision_price=Decimal(arrival))
    orders.add_parent(rec, at)
    f = Fill(f"{pid}-x", f"{pid}-000", sym, side, Decimal(qty),
             Decimal(f"{fill_px:.6f}"), at + timedelta(minutes=5))
    status = OrderStatus.FILLED if finish else OrderStatus.PARTIALLY_FILLED
    done = rec.with_changes(status=status, filled_qty=Decimal(qty))
    assert orders.apply([StateChange(done, rec.status)], at + timedelta(minutes=5), fill=f,
                        parent_id=pid)


def _cycle(orders: OrdersRepo, fb_base, rng, c: int, n: int = 12, noise_bps: float = 1.0,
           working: int = 0) -> None:
    """Book ``n`` finished parents whose realised cost is K_TRUE @ (unit costs) + noise."""
    ctx = _ctx()
    at = T0 + timedelta(days=c)
    for j in range(n + working):
        i = int(rng.integers(0, 3))
        sym = str(ctx.symbols[i])
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        px = float(ctx.prices[i])
        notional = float(np.exp(rng.uniform(np.log(2e4), np.log(3e6))))
        qty = max(1, int(notional / px))
        one = ctx.subset(np.array([i]))
        feats = np.array([m.cost_array(np.array([qty * px]), one)[0] for m in fb_base.models])
        cost_frac = feats @ K_TRUE / (qty * px) + rng.normal(0, noise_bps * 1e-4)
        fill_px = px * (1 + side.sign * cost_frac)
        _book(orders, f"C{c}-{j}", sym, side, qty, fill_px, at + timedelta(minutes=j),
              finish=j < n)


def test_closed_loop_learns_persists_and_survives_a_restart(repo_any: OrdersRepo) -> None:
    orders = repo_any
    base = SpreadCost() + SquareRootImpact()
    fb = CostFeedback.open(base, orders.store, forgetting=1.0)
    assert fb.version is None and fb.multipliers == {"spread": 1.0, "impact": 1.0}
    rng = np.random.default_rng(11)
    results = []
    for c in range(8):
        _cycle(orders, base, rng, c, working=1 if c == 7 else 0)
        results.append(fb.observe_store(orders, _ctx(), T0 + timedelta(days=c, hours=7)))
    assert [len(r.observed) for r in results] == [12] * 8
    last_skips = results[-1].skipped
    assert {k: v for k, v in last_skips.items() if v != "ALREADY_OBSERVED"} == {
        "C7-12": "WORKING"}
    assert sum(v == "ALREADY_OBSERVED" for v in last_skips.values()) == 84
    assert set(results[3].skipped.values()) == {"ALREADY_OBSERVED"}
    assert [r.version for r in results] == list(range(1, 9))
    k = fb.multipliers
    assert k["impact"] == pytest.approx(2.5, rel=0.1) and k["spread"] == pytest.approx(1, abs=0.3)
    # the learned model predicts the realised cost better than the fixed one did (cycle 1)
    first, last = results[0].report.orders, results[-1].report.orders
    err_first = (first["predicted_bps"] - first["slippage_bps"]).abs().mean()
    err_last = (last["predicted_bps"] - last["slippage_bps"]).abs().mean()
    assert err_last < 0.5 * err_first
    # restart: a new process opens the same database
    url = orders.store.url
    store2 = Store.from_url(url)
    try:
        fb2 = CostFeedback.open(base, store2)
        np.testing.assert_array_equal(fb2.model.multipliers_, fb.model.multipliers_)
        np.testing.assert_array_equal(fb2.model.info_, fb.model.info_)
        assert fb2.version == 8 and fb2.model.n_obs_ == 96
        again = fb2.observe_store(OrdersRepo(store2), _ctx(), T0 + timedelta(days=9))
        assert again.observed == () and again.version is None  # nothing fed twice
        assert again.skipped["C0-0"] == "ALREADY_OBSERVED"
        hist = CostStateRepo(store2).history()
        assert [h.observed for h in hist] == [12] * 8
    finally:
        store2.dispose()


def test_one_order_feeds_exactly_what_tca_measures(repo: OrdersRepo) -> None:
    base = SpreadCost()
    fb = CostFeedback.open(base, repo.store, prior_strength=0.0)
    # AAA: half spread 2 bps; paid 6 bps: the model must learn k = 3 from this one order
    _book(repo, "P1", "AAA", Side.BUY, 1000, 100.06, T0)
    _book(repo, "P2", "BBB", Side.SELL, 10, 49.99, T0, finish=False)
    res = fb.observe_store(repo, _ctx(), T0 + timedelta(hours=1))
    assert res.observed == ("P1",) and res.skipped == {"P2": "WORKING"}
    row = res.report.orders.iloc[0]
    assert row["predicted_bps"] == pytest.approx(2.0) and row["slippage_bps"] == pytest.approx(6)
    assert res.multipliers_before == {"spread": 1.0}
    assert res.multipliers["spread"] == pytest.approx(3.0, rel=1e-9)
    assert CostStateRepo(repo.store).get().multipliers["spread"] == res.multipliers["spread"]


def test_symbol_outside_the_context_is_skipped_not_guessed(repo: OrdersRepo) -> None:
    fb = CostFeedback.open(SpreadCost(), None)
    _book(repo, "P1", "AAA", Side.BUY, 1000, 100.06, T0)
    ctx = _ctx().subset(np.array([1, 2]))
    res = fb.observe_store(repo, ctx, T0 + timedelta(hours=1))
    assert res.skipped == {"P1": "NOT_IN_CONTEXT"} and fb.model.n_obs_ == 0


def test_tca_feed_reads_parents_once(repo: OrdersRepo, monkeypatch) -> None:
    from keel.costs.adaptive import AdaptiveCost

    _book(repo, "P1", "AAA", Side.BUY, 1000, 100.06, T0)
    _book(repo, "P2", "BBB", Side.SELL, 1000, 49.95, T0)
    ctx = _ctx()
    tca = TCA(repo, context=lambda p: ctx.subset(ctx.symbols.get_indexer([p.order.symbol])))
    rep = tca.report()
    monkeypatch.setattr(repo, "get", lambda *_: pytest.fail("feed re-read a parent"))
    model = AdaptiveCost(SpreadCost())
    assert tca.feed(model, rep) == 2 and model.n_obs_ == 2


def test_trades_without_orders_feed_and_persist(repo: OrdersRepo) -> None:
    """The backtest's path: per-name simulated costs, no order records."""
    fb = CostFeedback.open(SpreadCost(), repo.store, prior_strength=0.0)
    ctx = _ctx()
    trades = np.array([1e5, 0.0, -2e4])
    realised = 2.0 * 0.5 * ctx.spreads * np.abs(trades)  # paid twice the half spread
    res = fb.observe_trades(trades, ctx, realised, T0)
    assert res.version == 1 and fb.model.n_obs_ == 2
    assert res.multipliers["spread"] == pytest.approx(2.0, rel=1e-9)
    back = CostFeedback.open(SpreadCost(), repo.store)
    assert back.multipliers == res.multipliers and back.version == 1
    ctx0 = TradeContext(symbols=ctx.symbols, prices=ctx.prices, adv_notional=ctx.adv_notional,
                        volatility=np.array([0.0, 0.02, 0.03]), spreads=ctx.spreads)
    _book(repo, "P1", "AAA", Side.BUY, 1000, 100.06, T0)
    assert back.observe_store(repo, ctx0, T0).skipped == {"P1": "NO_VOL_OR_ADV"}
