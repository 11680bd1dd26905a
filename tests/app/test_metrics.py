"""Metrics with one meaning: the service embedded in the trading process and the standalone
``keel serve`` give the same numbers for the same store, and those numbers equal an independent
recount of the store's rows in Python."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from keel.app.metrics import VENUES, KeelMetrics, venue_label
from keel.app.sample import sample_book, trade
from keel.app.scrape import BREACH_ACTION, CYCLE_ACTION, CYCLE_FAILED_ACTION
from keel.app.service import create_app
from keel.clock import SimulatedClock
from keel.data.synthetic import synthetic_market
from keel.risk.limits import RiskLimits
from keel.store.audit import AuditLog
from keel.store.db import Store
from keel.store.tables import ChildOrderRow, FillRow, OrderEventRow, OrderRow
from keel.types import Side


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sum(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))


@given(st.text(max_size=20) | st.sampled_from(["fix", "FIX", "KEELX", "rest", "paper",
                                                 "paper-2", "fix-primary", "", "  "]))
def test_venue_labels_come_from_a_fixed_set(raw):
    assert venue_label(raw) in VENUES
    assert venue_label(None) == "unknown"


def test_venue_labels_of_the_brokers_names():
    assert [venue_label(v) for v in ("fix", "KEELX", "rest", "paper", "Binance")] == [
        "fix", "exchange", "rest", "paper", "unknown"]


def test_process_metrics_render_parse_and_are_isolated():
    a, b = KeelMetrics(), KeelMetrics()
    a.oms_step.observe(0.0002)
    a.oms_step.observe(0.003)
    s = _samples(a.render().decode())
    assert s[("keel_oms_step_seconds_count", ())] == 2
    assert s[("keel_oms_step_seconds_bucket", (("le", "0.00025"),))] == 1
    assert s[("keel_oms_step_seconds_sum", ())] == pytest.approx(0.0032)
    assert _samples(b.render().decode())[("keel_oms_step_seconds_count", ())] == 0


@pytest.fixture
def traded(db_url):
    """A store as a trading process leaves it: fills over two venues, a parent refused
    pre-trade, slices refused by the venue, cycles (traded, held, failed) and breaches."""
    market = synthetic_market(30, 300, seed=21)
    store = Store.from_url(db_url)
    store.create_all()
    clock = SimulatedClock(market.now.to_pydatetime())
    syms = [str(s) for s in market.symbols[:5]]
    sample_book(store, clock, market, syms)
    trade(store, clock, market, "r-1", syms[1], Side.SELL, 500, slices=3, venue="KEELX",
          ack_seconds=0.2)
    trade(store, clock, market, "v-1", syms[2], Side.BUY, 40, venue="fix",
          reject_reason="MAX_PARTICIPATION: 12% of volume")
    _pre_trade_refusal(store, clock, syms[3])
    audit = AuditLog(store)
    for i, traded_ in enumerate([True, False, False]):
        clock.advance(timedelta(minutes=1))
        audit.append("live", CYCLE_ACTION, "cycle", str(i), {"traded": traded_}, clock.now())
    audit.append("live", CYCLE_FAILED_ACTION, "cycle", "x", {"code": "CYCLE_FAILED_X"},
                 clock.now())
    for code in ("MAX_POSITION", "MAX_POSITION", "SECTOR_CAP"):
        audit.append("risk", BREACH_ACTION, "limit", code,
                     {"code": code, "severity": "breach"}, clock.now())
    yield store, clock, market
    store.dispose()


def _pre_trade_refusal(store, clock, symbol):
    from decimal import Decimal

    from keel.store.orders_repo import OrderRecord, OrdersRepo, StateChange
    from keel.types import Order, OrderStatus

    rec = OrderRecord(Order("pt-1", symbol, Side.BUY, Decimal(10**7), clock.now()),
                      OrderStatus.NEW)
    repo = OrdersRepo(store)
    repo.add_parent(rec, clock.now(), reason="accepted", children=[])
    repo.apply([StateChange(rec.with_changes(status=OrderStatus.REJECTED), OrderStatus.NEW,
                            "MAX_NOTIONAL: order notional above the cap")], clock.now())


def _recount(store: Store) -> dict[str, Counter]:
    """An independent recount of the store in Python, row by row."""
    with store.session() as s:
        parents = s.execute(select(OrderRow.client_order_id, OrderRow.side)).all()
        kids = s.execute(select(ChildOrderRow.client_order_id, ChildOrderRow.side,
                                ChildOrderRow.parent_id)).all()
        fills = s.execute(select(FillRow.client_order_id, FillRow.side, FillRow.venue,
                                 FillRow.qty, FillRow.price).order_by(FillRow.id)).all()
        events = s.execute(select(OrderEventRow.client_order_id, OrderEventRow.to_status,
                                  OrderEventRow.reason, OrderEventRow.timestamp)
                           .order_by(OrderEventRow.id)).all()
    venue = {}
    for coid, _, v, _, _ in fills:
        venue.setdefault(coid, venue_label(v))
    sent = {c for c, to, _, _ in events if to == "PENDING"}
    out: dict[str, Counter] = {k: Counter() for k in ("parents", "sent", "fills", "notional",
                                                      "rejects", "rt_count", "rt_sum")}
    for _, side in parents:
        out["parents"][side] += 1
    for c, side, _ in kids:
        if c in sent:
            out["sent"][(venue.get(c, "unknown"), side)] += 1
    for _, side, v, q, p in fills:
        out["fills"][(venue_label(v), side)] += 1
        out["notional"][venue_label(v)] += float(q * p)
    kid_ids = {c for c, _, _ in kids}
    parent_of = {c: p for c, _, p in kids}
    kid_refused = {parent_of[c] for c, to, _, _ in events if to == "REJECTED" and c in kid_ids}
    t0 = {}
    for c, to, reason, ts in events:
        if to == "REJECTED" and c not in kid_refused:
            level = "child" if c in kid_ids else "parent"
            out["rejects"][(level, reason.split(":")[0])] += 1
        if to == "PENDING":
            t0.setdefault(c, ts)
        elif to in ("ACKNOWLEDGED", "PARTIALLY_FILLED", "FILLED", "REJECTED") and t0.get(c):
            v = venue.get(c, "unknown")
            out["rt_count"][v] += 1
            out["rt_sum"][v] += (ts - t0[c]).total_seconds()
            t0[c] = None
    return out


def test_embedded_and_standalone_give_the_same_numbers(traded):
    store, clock, market = traded
    limits = RiskLimits(max_position=0.02)
    standalone = TestClient(create_app(store, market=lambda: market, clock=clock,
                                       limits=limits))
    m = KeelMetrics()
    embedded = TestClient(create_app(store, metrics=m, market=lambda: market, clock=clock,
                                     limits=limits))
    m.oms_step.observe(0.01)
    a = _samples(standalone.get("/metrics").text)
    b = _samples(embedded.get("/metrics").text)
    only_process = {k for k in b if k[0].startswith("keel_oms_step_seconds")}
    assert only_process and not any(k[0].startswith("keel_oms_step") for k in a)
    assert {k: v for k, v in b.items() if k not in only_process} == a

    # ... and those numbers are the store's, recounted row by row
    want = _recount(store)
    assert {k[1][0][1]: v for k, v in a.items()
            if k[0] == "keel_parent_orders_total"} == dict(want["parents"])
    assert {(dict(k[1])["venue"], dict(k[1])["side"]): v for k, v in a.items()
            if k[0] == "keel_child_orders_sent_total"} == dict(want["sent"])
    assert {(dict(k[1])["venue"], dict(k[1])["side"]): v for k, v in a.items()
            if k[0] == "keel_fills_total"} == dict(want["fills"])
    for v, x in want["notional"].items():
        assert a[("keel_filled_notional_total", (("venue", v),))] == pytest.approx(x)
    assert {(dict(k[1])["level"], dict(k[1])["reason"]): v for k, v in a.items()
            if k[0] == "keel_rejects_total"} == dict(want["rejects"])
    assert dict(want["rejects"]) == {("child", "MAX_PARTICIPATION"): 2,
                                     ("parent", "MAX_NOTIONAL"): 1}
    for v, n in want["rt_count"].items():
        assert a[("keel_venue_roundtrip_seconds_count", (("venue", v),))] == n
        assert a[("keel_venue_roundtrip_seconds_sum", (("venue", v),))] == pytest.approx(
            want["rt_sum"][v])
    # the slow venue's three slices (0.2 s) are above 0.1 s, the others below 0.005 s
    assert a[("keel_venue_roundtrip_seconds_bucket", (("le", "0.1"), ("venue", "exchange")))
             ] == 0
    assert a[("keel_venue_roundtrip_seconds_bucket", (("le", "0.25"), ("venue", "exchange")))
             ] == 3
    assert {dict(k[1])["outcome"]: v for k, v in a.items() if k[0] == "keel_cycles_total"
            } == {"traded": 1, "held": 2, "failed": 1}
    assert a[("keel_limit_breaches_total", (("limit", "MAX_POSITION"), ("severity", "breach")))
             ] == 2
    # no label carries a symbol or an order id
    syms = {str(s) for s in market.symbols}
    assert not any(v in syms for _, ls in a for _, v in ls)


def test_a_process_registry_serves_one_store_view(tmp_path):
    """Attaching the store's collector again (a second app in the same process) replaces the
    first: no duplicated series, no registration error."""
    store = Store.from_url(f"sqlite:///{tmp_path / 'k.db'}")
    store.create_all()
    m = KeelMetrics()
    try:
        create_app(store, metrics=m)
        TestClient(create_app(store, metrics=m)).get("/metrics")
        text = m.render().decode()
        assert text.count("# TYPE keel_parent_orders_total counter") == 1
        assert text.count("# TYPE keel_oms_step_seconds histogram") == 1
    finally:
        store.dispose()


def test_free_text_reject_reasons_share_one_label() -> None:
    from keel.app.scrape import reason_code

    assert reason_code("MAX_NOTIONAL: order notional 6e6 > 5e6") == "MAX_NOTIONAL"
    assert reason_code("Order 123 rejected by venue") == "other"
    assert reason_code("") == "unknown"
