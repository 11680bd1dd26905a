"""The decision cycle stage by stage, with the reason code each stage gives."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pandas as pd
import pytest

from keel.app.cycle import STAGES, DecisionCycle
from keel.clock import SimulatedClock
from keel.config import DataConfig, EngineKind, KeelConfig, parse_config, with_overrides
from keel.data.source import load_market
from keel.errors import ValidationError
from keel.execution.checks import MaxNotional
from keel.execution.oms import OrderManager
from keel.policy.governance import GovernanceChain, MarketHours, PositionLimit
from keel.policy.triggers import KillSwitch, RebalancePolicy
from keel.portfolio.ledger import Ledger
from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo
from keel.types import OrderStatus, utc
from keel.venues.base import Account


class NullBroker:
    """Accepts everything, fills nothing (the cycle only admits orders; `step` sends)."""

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
        return Account(cash=Decimal(0), equity=Decimal(0), buying_power=Decimal(0))

    def poll_events(self):
        return []


@pytest.fixture(scope="module")
def market():
    return load_market(DataConfig(n_assets=30, n_days=300), seed=3)


#: the live desk's usual policy: windows, a 5-session cooldown, L1 drift, vol spike,
#: spread blowout, a 2% cash buffer
LIVE = {"policy": {"cooldown_sessions": 5, "portfolio_drift": 0.05, "vol_spike_ratio": 2.0,
                   "spread_blowout_ratio": 3.0},
        "optimize": {"cash_buffer": 0.02}, "governance": {"sector_cap": None}}


def live(**dotted) -> KeelConfig:
    return with_overrides(parse_config({k: dict(v) for k, v in LIVE.items()}), dotted)


@pytest.fixture(scope="module")
def cycle():
    return DecisionCycle(live())


# 2022-03-14 is the session after the market's last close (2022-03-11); 13:35 UTC is 09:35
# New York, inside the first trading window
NOW = utc(2022, 3, 14, 13, 36)


def _setup(market, tmp_path=None, cash=1_000_000):
    clock = SimulatedClock(NOW)
    ledger = Ledger(clock=clock)
    ledger.deposit(Decimal(cash))
    prices = {s: Decimal(str(round(p, 2))) for s, p in market.latest("prices").items()}
    return clock, ledger, prices


def _oms(clock, tmp_path, checks=()):
    store = Store.from_url(f"sqlite:///{tmp_path / 'oms.db'}")
    store.create_all()
    return OrderManager(NullBroker(), OrdersRepo(store), clock, checks=checks,
                        sleep=lambda s: None)


def test_full_cycle_every_stage_explains_itself(market, cycle, tmp_path):
    clock, ledger, prices = _setup(market)
    oms = _oms(clock, tmp_path)
    res = cycle.run(market, now=NOW, state=ledger.state, prices=prices, clock=clock, oms=oms)
    assert [s.stage for s in res.stages] == list(STAGES)
    assert res.codes("market") == ("MARKET_OK",)
    assert res.codes("scores") == ("SCORED",)
    assert res.codes("risk")[0] in ("RISK_FITTED", "RISK_CACHED")
    assert res.codes("optimize")[0] == "MV_OPTIMAL"
    # a first decision: the monthly calendar fires (drift bands sit around the standing
    # target, which an empty book does not have yet)
    assert res.codes("triggers") == ("CALENDAR",)
    assert res.codes("rebalance")[0] == "ORDERS"
    assert all(":" in c for c in res.codes("governance"))
    assert res.codes("oms") == (f"SUBMITTED:{len(res.orders)}",)
    # the targets obey the mean-variance constraints (fraction of NAV)
    # the engine keeps optimize.cash_buffer (2%) back
    assert res.targets.max() <= 0.05 + 1e-6 and res.targets.sum() == pytest.approx(0.98, abs=1e-4)
    # every parent is stored with a schedule that adds up to it exactly
    assert res.traded and len(res.orders) == len(res.algos) > 0
    for o in res.orders:
        kids = oms.children(o.client_order_id)
        assert len(kids) == res.children[o.client_order_id]
        assert sum(k.order.qty for k in kids) == o.qty
        assert oms.get(o.client_order_id).status is OrderStatus.NEW
    # cost: buys never spend more than the cash less the 2% buffer
    spent = sum(o.qty * prices[o.symbol] for o in res.orders)
    assert spent <= Decimal(1_000_000) * Decimal("0.98")
    assert res.to_dict()["stages"]["triggers"] == list(res.codes("triggers"))
    assert "oms: SUBMITTED" in res.explain()


def test_dry_run_stops_after_the_schedules(market, cycle):
    clock, ledger, prices = _setup(market)
    res = cycle.run(market, now=NOW, state=ledger.state, prices=prices, clock=clock)
    assert res.stages[-1].stage == "schedule" and not res.traded
    assert sum(int(c.split(":")[1]) for c in res.codes("schedule")) == len(res.children)


def test_large_parents_get_implementation_shortfall(market):
    # every parent above the threshold
    cyc = DecisionCycle(live(**{"execution.is_above_adv": 1e-9}))
    clock, ledger, prices = _setup(market)
    res = cyc.run(market, now=NOW, state=ledger.state, prices=prices, clock=clock)
    assert set(res.algos.values()) == {"is"}
    assert res.codes("schedule") == (f"is:{len(res.algos)}",)
    cyc = DecisionCycle(live(**{"execution.is_above_adv": 1.0}))
    res = cyc.run(market, now=NOW, state=ledger.state, prices=prices, clock=clock)
    assert set(res.algos.values()) == {"vwap"}


def test_working_orders_hold_the_cycle(market, cycle):
    clock, ledger, prices = _setup(market)
    res = cycle.run(market, now=NOW, state=ledger.state, prices=prices, clock=clock, working=3)
    assert res.codes("triggers") == ("WORKING_ORDERS",) and not res.traded
    assert res.stages[-1].stage == "triggers"
    assert not res.targets.empty  # it still computed the targets


def test_outside_a_trading_window_holds(market, cycle):
    clock, ledger, prices = _setup(market)
    later = NOW + timedelta(hours=1)  # 10:36 New York: between windows
    res = cycle.run(market, now=later, state=ledger.state, prices=prices, clock=clock)
    assert res.codes("triggers") == ("OUTSIDE_WINDOW",)
    assert res.decision is not None and not res.decision.trade
    assert not res.traded


def test_force_trades_through_a_gate(market, cycle, tmp_path):
    clock, ledger, prices = _setup(market)
    later = NOW + timedelta(hours=1)
    clock.set(later)
    res = cycle.run(market, now=later, state=ledger.state, prices=prices, clock=clock,
                    oms=_oms(clock, tmp_path), force=True)
    assert res.codes("triggers") == ("FORCED", "OUTSIDE_WINDOW")
    assert res.traded


def test_kill_switch_holds_everything(market):
    ks = KillSwitch()
    ks.engage("test")
    cyc = DecisionCycle(live(), policy=RebalancePolicy.default(ks))
    clock, ledger, prices = _setup(market)
    res = cyc.run(market, now=NOW, state=ledger.state, prices=prices, clock=clock)
    assert res.codes("triggers") == ("KILL_SWITCH",) and not res.traded


def test_governance_resizes_and_rejects_with_codes(market, tmp_path):
    # a 1% position cap resizes every 5% target; the market-hours rule passes at 09:36
    cyc = DecisionCycle(live(), governance=GovernanceChain([MarketHours(), PositionLimit(0.01)]))
    clock, ledger, prices = _setup(market)
    res = cyc.run(market, now=NOW, state=ledger.state, prices=prices, clock=clock,
                  oms=_oms(clock, tmp_path))
    codes = dict(c.split(":") for c in res.codes("governance"))
    assert int(codes["POSITION_LIMIT"]) > 0
    # the order manager got the resized quantities: each name within 1% of NAV
    assert res.traded
    for o in res.orders:
        assert o.qty * prices[o.symbol] <= Decimal(10_000)
    closed = cyc.run(market, now=NOW.replace(hour=23), state=ledger.state, prices=prices,
                     clock=clock, force=True)
    assert set(closed.rejected.values()) == {"MARKET_CLOSED"}
    assert closed.codes("governance")[0].startswith("MARKET_CLOSED:")


def test_order_manager_refusals_are_reported(market, tmp_path):
    cyc = DecisionCycle(live(**{"execution.max_participation": 1.0}))
    clock, ledger, prices = _setup(market)
    oms = _oms(clock, tmp_path, checks=[MaxNotional(Decimal(10_000))])
    res = cyc.run(market, now=NOW, state=ledger.state, prices=prices, clock=clock, oms=oms)
    # every admitted parent is within the cap; the larger ones are refused
    assert all(o.qty * prices[o.symbol] <= 10_000 for o in res.orders)
    assert res.rejected and any(c.startswith("MAX_NOTIONAL:") for c in res.codes("oms"))
    assert set(res.rejected.values()) == {"MAX_NOTIONAL"}
    # the refusal is persisted as REJECTED with its reason
    some = next(iter(res.rejected))
    assert oms.get(some).status is OrderStatus.REJECTED


def test_engine_switches_between_cycles(market):
    cyc = DecisionCycle(live(**{"optimize.greedy_k": 10}))
    clock, ledger, prices = _setup(market)
    mv = cyc.run(market, now=NOW, state=ledger.state, prices=prices, clock=clock)
    assert cyc.set_engine("greedy") is EngineKind.GREEDY
    gr = cyc.run(market, now=NOW, state=ledger.state, prices=prices, clock=clock)
    assert mv.engine is EngineKind.MEAN_VARIANCE and gr.engine is EngineKind.GREEDY
    assert gr.codes("optimize")[0] == "GREEDY"
    assert gr.codes("risk") == ("RISK_CACHED",)  # same session: the model is not refitted
    # greedy: equal weights over at most k names, on the best scores
    assert len(gr.targets) <= 10
    assert gr.targets.nunique() == 1
    with pytest.raises(ValidationError) as e:
        cyc.set_engine("quantum")
    assert e.value.field == "engine"


def test_config_maps_onto_the_cycle():
    cfg = KeelConfig(optimize={"engine": "greedy", "max_weight": 0.1},
                     execution={"algo": "twap", "slices": 5})
    cyc = DecisionCycle(cfg)
    assert cyc.engine is EngineKind.GREEDY
    assert cyc.pipeline.schedule_config().n_slices == 5
    assert cyc.pipeline.algo_for(0.0).value == "twap"


def test_cycle_sees_only_the_past(market, cycle):
    # a decision a month before the end must not depend on later prices
    clock, ledger, prices = _setup(market)
    past = market.dates[-25].to_pydatetime() + timedelta(hours=1)
    a = cycle.run(market, now=past, state=ledger.state, prices=prices, clock=clock)
    cut = market.as_of(past)
    b = DecisionCycle(live()).run(cut, now=past, state=ledger.state, prices=prices, clock=clock)
    pd.testing.assert_series_equal(a.targets, b.targets)


@pytest.mark.parametrize("kind", ["pca", "lw", "fundamental"])
def test_risk_section_of_the_config_chooses_the_model(kind):
    market = load_market(DataConfig(n_assets=30, n_days=400), seed=4)
    cfg = KeelConfig(risk={"model": kind, "lookback_days": 200, "n_pca_factors": 4})
    cycle = DecisionCycle(cfg)
    assert cycle.fit_risk(market) == ("RISK_FITTED", f"RISK_{cfg.risk.model.name}")
    fc = cycle.risk_
    assert fc is not None and fc.n_assets == 30
    if kind in ("pca", "lw"):
        assert fc.n_factors == 4
        # fitted on the last 200 sessions only: the PCA/LW variances match that window
        var = market.returns.iloc[-200:].var(ddof=1).to_numpy()
        assert abs(fc.diag().mean() / var.mean() - 1) < 0.1
    assert cycle.fit_risk(market) == ("RISK_CACHED",)
