"""The live loop in process: engine switch through the control file, stop flag and drain,
restart of the desk on the same store without a second funding or a duplicated order."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from keel.app.cycle import DecisionCycle
from keel.app.live import Control, Desk, LiveOptions, StopFlag, run_live, session_start
from keel.app.venue import LocalVenue
from keel.clock import SimulatedClock
from keel.config import DataConfig, KeelConfig
from keel.data.source import load_market
from keel.errors import ConfigError
from keel.risk.limits import RiskLimits
from keel.store.audit import AuditLog
from keel.store.db import Store


@pytest.fixture(scope="module")
def market():
    return load_market(DataConfig(n_assets=30, n_days=300), seed=3)


def _desk(market, store, clock, venue, limits=None):
    cycle = DecisionCycle(KeelConfig(execution={"slices": 3, "horizon_minutes": 15},
                                     policy={"cooldown_sessions": 5},
                                     optimize={"cash_buffer": 0.02}))
    desk = Desk(store, clock, venue.broker(), cycle, limits=limits)
    desk.recover()
    desk.fund(Decimal(10_000_000))
    return desk


def test_engine_switch_stop_and_restart(market, tmp_path):
    store = Store.from_url(f"sqlite:///{tmp_path / 'keel.db'}")
    store.upgrade()
    clock = SimulatedClock(session_start(market))
    venue = LocalVenue.start(market, clock, protocol="rest", seed=1)
    control = tmp_path / "control.json"
    stop = StopFlag()
    try:
        desk = _desk(market, store, clock, venue)
        engines = []

        def on_cycle(res):
            engines.append(res.engine.value)
            if len(engines) == 1:
                control.write_text(json.dumps({"engine": "greedy"}))
            if len(engines) == 5:
                stop(15, None)  # what SIGTERM does

        out = run_live(desk, market, LiveOptions(interval_s=0, control=control),
                       prices=venue.mids, step_market=venue.simulator.step, sim_clock=clock,
                       stop=stop, on_cycle=on_cycle, sleep=lambda s: None)
        assert engines == ["mean_variance"] + ["greedy"] * 4
        assert out["bars"] == 5 and out["signal"] == 15 and out["still_open"] == 0
        audit = AuditLog(store)
        switch = audit.query(action="live.engine")
        assert [r.payload for r in switch] == [{"from": "mean_variance", "to": "greedy"}]
        traded = [r for r in audit.query(action="live.cycle") if r.payload["traded"]]
        assert len(traded) == 1  # computed every bar, traded once (cooldown afterwards)
        n_parents = len(desk.repo.parents())
        held = dict(desk.ledger.positions)
        assert held and desk.stats.fills > 0

        # a second desk on the same store: same book, no second deposit, no new order
        again = _desk(market, store, clock, venue)
        assert again.ledger.state.net_deposits == Decimal(10_000_000)
        assert {s: p.qty for s, p in again.ledger.positions.items()} == \
            {s: p.qty for s, p in held.items()}
        assert again.last_rebalance() == datetime.fromisoformat(traded[0].payload["now"])
        clock.advance(timedelta(minutes=5))
        res = again.decide(market, venue.mids())
        assert not res.traded and "COOLDOWN" in res.codes("triggers")
        assert len(again.repo.parents()) == n_parents
        ex_pos = {s: q for s, q in venue.exchange.positions("default").items() if q}
        assert {s: p.qty for s, p in again.ledger.positions.items()} == ex_pos
    finally:
        venue.stop()


def test_control_file_is_validated(tmp_path):
    path = tmp_path / "control.json"
    ctl = Control(path)
    assert ctl.read() == {}  # absent: nothing to do
    path.write_text('{"engine": "greedy"}')
    assert ctl.read() == {"engine": "greedy"}
    assert ctl.read() == {}  # unchanged since the last read
    path.write_text('{"engin": "greedy"}')
    with pytest.raises(ConfigError) as e:
        ctl.read()
    assert e.value.field == "control.engin"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError) as e:
        ctl.read()
    assert e.value.field == "control"
    path.write_text("{not json")
    with pytest.raises(ConfigError) as e:
        ctl.read()
    assert e.value.field == "control"


def test_service_control_records_steer_the_loop(market, tmp_path):
    """What `keel serve` writes (keel.app.control): engine request, kill switch, rebalance."""
    from keel.app.control import request_engine, request_rebalance, write_kill_switch
    from keel.config import EngineKind

    store = Store.from_url(f"sqlite:///{tmp_path / 'keel.db'}")
    store.upgrade()
    clock = SimulatedClock(session_start(market))
    venue = LocalVenue.start(market, clock, protocol="rest", seed=1)
    try:
        # a 2% position limit: the 1/k greedy book breaches it once filled
        desk = _desk(market, store, clock, venue, limits=RiskLimits(max_position=0.02))
        request_engine(store, EngineKind.GREEDY, "test", clock.now())
        write_kill_switch(store, True, "halt for test", clock.now())
        seen = []

        def on_cycle(res):
            seen.append((res.engine.value, res.codes("triggers"), res.traded))
            n = len(seen)
            if n == 2:
                write_kill_switch(store, False, "resume", clock.now())
            if n == 3:
                request_rebalance(store, "test", clock.now())

        run_live(desk, market, LiveOptions(interval_s=0, max_bars=5), prices=venue.mids,
                 step_market=venue.simulator.step, sim_clock=clock, on_cycle=on_cycle,
                 sleep=lambda s: None)
        assert all(e == "greedy" for e, _, _ in seen)
        # engaged: held with KILL_SWITCH, nothing traded
        assert seen[0][1] == ("KILL_SWITCH",) and not seen[0][2]
        assert seen[1][1] == ("KILL_SWITCH",) and not seen[1][2]
        # released at bar 3; the rebalance request then forces bar 4 through the gates
        assert seen[3][1][0] == "FORCED" and seen[3][2]
        assert sum(t for _, _, t in seen) == 1 + int(seen[2][2])
        # each breach of the book is audited once (what `keel serve` counts), not every bar
        rows = AuditLog(store).query(action="risk.breach")
        keys = [(r.payload["code"], r.payload["subject"], r.payload["severity"]) for r in rows]
        assert keys and len(keys) == len(set(keys))
        assert {k[0] for k in keys} == {"MAX_POSITION"}
    finally:
        venue.stop()
