"""Order manager: state machine, idempotency with duplicated / out-of-order events, the gate,
retries, circuit breakers, kill switch and persistence."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.clock import SimulatedClock
from keel.errors import IllegalTransitionError, OrderRejected, ValidationError
from keel.execution.checks import (
    MaxNotional,
    MaxQty,
    MoveBreaker,
    PositionLimit,
    PriceCollar,
    RejectRateBreaker,
    RestrictedList,
)
from keel.execution.oms import OrderManager
from keel.execution.retry import RetryPolicy
from keel.execution.states import LEGAL, check_transition, is_legal
from keel.types import (
    ChildOrder,
    EventKind,
    Fill,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    Side,
    utc,
)

S = OrderStatus
T0 = utc(2013, 10, 8, 14, 0)


def _order(coid: str = "P1", qty: int = 100, side: Side = Side.BUY, **kw) -> Order:
    return Order(coid, "SPY", side, Decimal(qty), T0, **kw)


def _fill(coid: str, exec_id: str, qty: int, price: str = "100", side: Side = Side.BUY) -> Fill:
    return Fill(exec_id, coid, "SPY", side, Decimal(qty), Decimal(price), T0)


def _ev(kind: EventKind, coid: str, fill: Fill | None = None, reason: str = "") -> OrderEvent:
    return OrderEvent(kind, coid, T0, fill=fill, reason=reason)


def _oms(scripted, repo, **kw) -> tuple[OrderManager, SimulatedClock]:
    clock = SimulatedClock(T0)
    sleeps: list[float] = []
    oms = OrderManager(scripted, repo, clock, sleep=sleeps.append, **kw)
    oms.sleeps = sleeps  # type: ignore[attr-defined]
    oms.on_price("SPY", 100)
    return oms, clock


def test_state_machine_table():
    assert is_legal(S.NEW, S.PENDING) and is_legal(S.PENDING, S.PARTIALLY_FILLED)
    for terminal in (S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED):
        assert not LEGAL[terminal]
        with pytest.raises(IllegalTransitionError) as e:
            check_transition(terminal, S.ACKNOWLEDGED, "X")
        assert e.value.field == "status" and e.value.context["client_order_id"] == "X"
    assert not is_legal(S.NEW, S.FILLED)
    assert not is_legal(S.ACKNOWLEDGED, S.PENDING)


def test_submit_is_idempotent_and_sends_once(scripted, repo):
    oms, _ = _oms(scripted, repo)
    a = oms.submit(_order())
    b = oms.submit(_order(qty=999))  # same id: the stored order comes back unchanged
    assert b.order.qty == a.order.qty == 100
    oms.step()
    oms.step()
    assert [o.client_order_id for o in scripted.submitted] == ["P1-000"]
    assert oms.get("P1").status is S.PENDING
    # a second manager on the same store also returns the stored order
    oms2, _ = _oms(scripted, repo)
    assert oms2.submit(_order()).status is S.PENDING


def test_duplicated_and_out_of_order_events(scripted, repo_any):
    repo = repo_any
    oms, _ = _oms(scripted, repo)
    oms.submit(_order())
    oms.step()
    f1 = _fill("P1-000", "E1", 40)
    # fill before the ack, the same fill twice, then the late ack
    scripted.events = [_ev(EventKind.FILL, "P1-000", f1), _ev(EventKind.FILL, "P1-000", f1),
                       _ev(EventKind.ACK, "P1-000")]
    oms.step()
    kid = oms.get("P1-000")
    assert kid.status is S.PARTIALLY_FILLED and kid.filled_qty == 40
    assert len(repo.fills()) == 1
    scripted.events = [_ev(EventKind.FILL, "P1-000", _fill("P1-000", "E2", 60, "101"))]
    oms.step()
    p = oms.get("P1")
    assert p.status is S.FILLED and p.filled_qty == 100
    assert p.avg_price == Decimal("100.6")
    # after the fill: a late cancel ack is refused by the state machine and not applied
    scripted.events = [_ev(EventKind.CANCELLED, "P1-000"), _ev(EventKind.FILL, "P1-000", f1)]
    oms.step()
    assert oms.get("P1-000").status is S.FILLED
    assert [a.kind for a in oms.anomalies] == ["IllegalTransitionError"]
    assert oms.positions["SPY"] == 100
    # persisted: the stored parent, child and the audit trail agree
    stored = repo.get("P1")
    assert stored.status is S.FILLED and stored.filled_qty == 100
    trail = [(f, t) for _, f, t, _, _ in repo.events("P1-000")]
    assert trail == [(None, "NEW"), ("NEW", "PENDING"), ("PENDING", "PARTIALLY_FILLED"),
                     ("PARTIALLY_FILLED", "FILLED")]


def test_overfill_and_foreign_fills_are_refused(scripted, repo):
    oms, _ = _oms(scripted, repo)
    oms.submit(_order(qty=10))
    oms.step()
    scripted.events = [_ev(EventKind.FILL, "P1-000", _fill("P1-000", "E1", 11)),
                       _ev(EventKind.FILL, "NOPE", _fill("NOPE", "E2", 1))]
    oms.step()
    assert oms.get("P1").filled_qty == 0
    assert [a.kind for a in oms.anomalies] == ["OrderRejected", "UNKNOWN_ORDER"]
    assert "OVERFILL" in oms.anomalies[0].detail


def test_schedule_must_not_overfill_parent(scripted, repo):
    oms, _ = _oms(scripted, repo)
    kids = [ChildOrder(f"P1-{i}", "P1", "SPY", Side.BUY, Decimal(60), T0, slice_index=i)
            for i in range(2)]
    with pytest.raises(ValidationError) as e:
        oms.submit(_order(), kids)
    assert e.value.field == "children"
    with pytest.raises(ValidationError) as e:
        oms.submit(_order(), [])
    assert e.value.field == "children"
    assert oms.get("P1") is None


@pytest.mark.parametrize(("check", "order", "code", "field"), [
    (MaxQty(Decimal(50)), _order(), "MAX_QTY", "qty"),
    (MaxNotional(Decimal(5000)), _order(), "MAX_NOTIONAL", "notional"),
    (PriceCollar(50.0), _order(order_type=OrderType.LIMIT, limit_price=Decimal(101)),
     "PRICE_COLLAR", "limit_price"),
    (PositionLimit({"SPY": Decimal(150)}), _order(qty=100), "POSITION_LIMIT", "position"),
    (RestrictedList(frozenset({"SPY"})), _order(), "RESTRICTED", "symbol"),
])
def test_pre_trade_checks(scripted, repo, check, order, code, field):
    oms, _ = _oms(scripted, repo, checks=[check], positions={"SPY": Decimal(60)})
    with pytest.raises(OrderRejected) as e:
        oms.submit(order)
    assert e.value.reason_code == code and e.value.field == field
    assert e.value.symbol == "SPY"
    assert repo.get("P1").status is S.REJECTED  # the refusal is on record
    assert oms.submit(order).status is S.REJECTED  # and resubmitting returns it
    assert scripted.submitted == []


def test_governance_chain_accepts_any_evaluate(scripted, repo):
    class No:
        def evaluate(self, order, ctx):
            return type("D", (), {"approved": False, "reason": "regime"})()

    class Yes:
        def evaluate(self, order, ctx):
            return None

    oms, _ = _oms(scripted, repo, governance=[Yes(), No()])
    with pytest.raises(OrderRejected) as e:
        oms.submit(_order())
    assert e.value.reason_code == "GOVERNANCE" and "regime" in e.value.message


def test_retries_with_backoff_then_give_up(scripted, repo):
    policy = RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=0.25, jitter=0.5, seed=1)
    oms, _ = _oms(scripted, repo, retry=policy)
    scripted.fail_next = 2
    oms.submit(_order())
    oms.step()
    assert [o.client_order_id for o in scripted.submitted] == ["P1-000"]
    assert len(oms.sleeps) == 2
    assert 0.05 <= oms.sleeps[0] <= 0.1 and 0.1 <= oms.sleeps[1] <= 0.2
    scripted.fail_next = 10
    oms.submit(_order("P2"))
    oms.step()
    assert len(oms.sleeps) == 5 and max(oms.sleeps) <= 0.25
    assert oms.get("P2-000").status is S.REJECTED
    assert oms.get("P2").status is S.REJECTED
    assert "RETRIES_EXHAUSTED" in repo.events("P2-000")[-1][3]


def test_move_breaker_halts_symbol(scripted, repo):
    oms, clock = _oms(scripted, repo, move_breaker=MoveBreaker(500, timedelta(minutes=5)))
    oms.submit(_order())
    clock.advance(60)
    oms.on_price("SPY", 106)  # +6% in a minute
    assert oms.halted == {"SPY": "MOVE_BREAKER"}
    oms.step()
    assert scripted.submitted == [] and oms.get("P1-000").status is S.REJECTED
    with pytest.raises(OrderRejected) as e:
        oms.submit(_order("P2"))
    assert e.value.reason_code == "HALTED"
    oms.resume("SPY")
    oms.submit(_order("P3"))
    oms.step()
    assert [o.client_order_id for o in scripted.submitted] == ["P3-000"]


def test_reject_rate_breaker(scripted, repo):
    oms, _ = _oms(scripted, repo, reject_breaker=RejectRateBreaker(0.5, window=4, min_count=3))
    for i in range(3):
        scripted.reject_codes[f"P{i}-000"] = "VENUE_SAYS_NO"
        oms.submit(_order(f"P{i}"))
        oms.step()
    assert oms.halted.get("SPY") == "REJECT_RATE"


def test_kill_switch_cancels_everything(scripted, repo):
    oms, _clock = _oms(scripted, repo)
    kids = [ChildOrder(f"K1-{i}", "K1", "SPY", Side.BUY, Decimal(10), T0, slice_index=i,
                       not_before=T0 + timedelta(minutes=10 * i)) for i in range(3)]
    oms.submit(_order("K1", 30), kids)
    oms.step()  # only the first child is due
    assert oms.kill_switch("test") == 1
    assert scripted.cancelled == ["K1-0"]
    assert [oms.get(f"K1-{i}").status for i in (1, 2)] == [S.CANCELLED, S.CANCELLED]
    scripted.events = [_ev(EventKind.CANCELLED, "K1-0")]
    oms.step()
    assert oms.get("K1").status is S.CANCELLED
    with pytest.raises(OrderRejected) as e:
        oms.submit(_order("K2"))
    assert e.value.reason_code == "KILL_SWITCH"
    with pytest.raises(IllegalTransitionError):
        oms.cancel("K1")


def test_expiry_cancels_remainder(scripted, repo):
    oms, clock = _oms(scripted, repo)
    kid = ChildOrder("E1-0", "E1", "SPY", Side.BUY, Decimal(10), T0, not_before=T0,
                     expire_at=T0 + timedelta(minutes=5))
    oms.submit(_order("E1", 10), [kid])
    oms.step()
    scripted.events = [_ev(EventKind.ACK, "E1-0"),
                       _ev(EventKind.FILL, "E1-0", _fill("E1-0", "X1", 4))]
    clock.advance(timedelta(minutes=5))
    oms.step()
    assert scripted.cancelled == ["E1-0"]
    scripted.events = [_ev(EventKind.CANCELLED, "E1-0"), _ev(EventKind.CANCELLED, "E1-0")]
    oms.step()
    assert oms.get("E1").status is S.EXPIRED and oms.get("E1").filled_qty == 4


def test_recover_reconciles_with_venue(scripted, repo_any):
    repo = repo_any
    oms, _clock = _oms(scripted, repo)
    kids = [ChildOrder(f"R1-{i}", "R1", "SPY", Side.BUY, Decimal(10), T0, slice_index=i,
                       not_before=T0) for i in range(3)]
    oms.submit(_order("R1", 30), kids)
    oms.step()
    # the venue: R1-0 working, R1-1 never arrived, R1-2 gone; plus an order we never sent
    del scripted.working["R1-1"]
    del scripted.working["R1-2"]
    scripted.submitted.clear()
    scripted.working["GHOST"] = scripted.working["R1-0"].__class__("GHOST", "SPY",
                                                                    S.ACKNOWLEDGED, Decimal(1))
    # R1-2 had been acknowledged before the crash
    oms.apply_event(_ev(EventKind.ACK, "R1-2"))
    fresh, _ = _oms(scripted, repo)
    report = fresh.recover()
    assert report.loaded == 1
    assert report.adopted == ["R1-0"]
    assert report.resubmitted == ["R1-1"] and [o.client_order_id for o in
                                               scripted.submitted] == ["R1-1"]
    assert report.expired == ["R1-2"] and report.orphans_cancelled == ["GHOST"]
    assert fresh.get("R1-0").status is S.ACKNOWLEDGED


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6),
       dup=st.lists(st.integers(0, 5), max_size=6), data=st.data())
def test_any_order_of_duplicated_events_books_each_fill_once(sizes, dup, data):
    from keel.store.db import Store
    from keel.store.orders_repo import OrdersRepo

    store = Store.from_url("sqlite://")
    store.create_all()
    repo = OrdersRepo(store)

    class Venue:
        name = "v"

        def __init__(self):
            self.events = []

        def submit(self, order):
            pass

        def cancel(self, coid):
            pass

        def replace(self, coid, new):
            pass

        def open_orders(self):
            return []

        def positions(self):
            return {}

        def account(self):
            return None

        def poll_events(self):
            out, self.events = self.events, []
            return out

    venue = Venue()
    qty = 100
    oms = OrderManager(venue, repo, SimulatedClock(T0), sleep=lambda s: None)
    oms.submit(_order("H", qty))
    oms.step()
    fills = [_ev(EventKind.FILL, "H-000", _fill("H-000", f"X{i}", q)) for i, q in
             enumerate(sizes)]
    evs = fills + [fills[i % len(fills)] for i in dup] + [_ev(EventKind.ACK, "H-000")] * 2
    order = data.draw(st.permutations(evs))
    venue.events = list(order)
    oms.step()
    # replay the rule by hand: first sight of an exec id books, unless it would overfill
    expected, seen, running = [], set(), 0
    for ev in order:
        if ev.kind is EventKind.FILL and ev.fill.exec_id not in seen:
            seen.add(ev.fill.exec_id)
            if running + ev.fill.qty <= qty:
                running += ev.fill.qty
                expected.append(ev.fill.exec_id)
            else:
                seen.discard(ev.fill.exec_id)  # refused, not booked: a retry is judged again
    booked = repo.fills()
    assert [f.exec_id for f, _ in booked] == expected
    total = sum(f.qty for f, _ in booked)
    assert oms.get("H").filled_qty == total == oms.get("H-000").filled_qty <= qty
    assert oms.get("H-000").status is (S.FILLED if total == qty else
                                       S.PARTIALLY_FILLED if total else S.ACKNOWLEDGED)


def test_policy_gate_refuses_resizes_and_rejects(scripted, repo):
    from types import SimpleNamespace

    from keel.execution.checks import PolicyGate

    seen = []

    class Chain:
        def evaluate_one(self, order, ctx):
            seen.append((ctx["open"], ctx["pos"]))
            allowed = min(order.qty, Decimal(50))
            return SimpleNamespace(approved=True, qty=allowed, reason_code="LIQUIDITY",
                                   reason="5% of ADV")

    gate = PolicyGate(Chain(), lambda order, g: {"open": g.open_qty, "pos": g.position})
    oms, _ = _oms(scripted, repo, governance=[gate])
    assert oms.submit(_order("G1", 50)).status is S.NEW
    with pytest.raises(OrderRejected) as e:
        oms.submit(_order("G2", 60))
    assert e.value.reason_code == "GOVERNANCE" and "allowed qty 50" in e.value.message
    assert seen == [(0, 0), (50, 0)]  # the second order sees the first one still open


def test_positions_from_a_live_source(scripted, repo):
    held = {"SPY": Decimal(0)}
    oms, _ = _oms(scripted, repo, checks=[PositionLimit({"SPY": Decimal(150)})],
                  positions=lambda: held)
    oms.submit(_order("Q1", 100))
    held["SPY"] = Decimal(100)  # e.g. the ledger booked a fill elsewhere
    with pytest.raises(OrderRejected) as e:
        oms.submit(_order("Q2", 1))  # 100 held + 100 open + 1 > 150
    assert e.value.reason_code == "POSITION_LIMIT" and e.value.value == 201


def test_policy_gate_with_the_real_governance_chain(scripted, repo):
    from keel.execution.checks import PolicyGate
    from keel.policy.governance import GovernanceChain
    from keel.policy.rules import LiquidityParticipation
    from keel.policy.verdicts import GovernanceContext

    def context(order, g):
        held = g.position + g.open_qty  # the chain sees open orders as held
        return GovernanceContext(now=g.now, nav=Decimal(10_000_000),
                                 prices={"SPY": g.reference_price},
                                 positions={"SPY": held}, adv_shares={"SPY": 2_000.0})

    gate = PolicyGate(GovernanceChain([LiquidityParticipation(0.05)]), context)
    oms, _ = _oms(scripted, repo, governance=[gate])
    assert oms.submit(_order("L1", 100)).status is S.NEW  # 5% of 2,000
    with pytest.raises(OrderRejected) as e:
        oms.submit(_order("L2", 101))
    assert e.value.reason_code == "GOVERNANCE" and "allowed qty 100" in e.value.message


@pytest.mark.parametrize("carry", [False, True])
def test_expired_remainder_carries_to_the_next_slice(scripted, repo, carry):
    oms, clock = _oms(scripted, repo, carry_remainder=carry)
    kids = [ChildOrder(f"C1-{i}", "C1", "SPY", Side.BUY, Decimal(10), T0, slice_index=i,
                       not_before=T0 + timedelta(minutes=5 * i),
                       expire_at=T0 + timedelta(minutes=5 * (i + 1))) for i in range(2)]
    oms.submit(_order("C1", 20), kids)
    oms.step()
    scripted.events = [_ev(EventKind.FILL, "C1-0", _fill("C1-0", "X1", 4))]
    clock.advance(timedelta(minutes=5))
    oms.step()  # C1-0 expires: cancel sent; C1-1 goes out
    scripted.events = [_ev(EventKind.CANCELLED, "C1-0")]
    oms.step()
    sent = {o.client_order_id: o.qty for o in scripted.submitted}
    assert sent == {"C1-0": 10, "C1-1": 10}  # C1-1 was sent before the cancel was confirmed
    # the carry applies to slices not yet sent; here nothing unsent remains
    assert oms.get("C1-1").order.qty == 10
    oms2, clock2 = _oms(scripted, repo, carry_remainder=carry)
    kids = [ChildOrder(f"C2-{i}", "C2", "SPY", Side.BUY, Decimal(10), T0, slice_index=i,
                       not_before=T0 + timedelta(minutes=10 * i),
                       expire_at=T0 + timedelta(minutes=5 + 10 * i)) for i in range(2)]
    oms2.submit(_order("C2", 20), kids)
    oms2.step()
    scripted.events = [_ev(EventKind.FILL, "C2-0", _fill("C2-0", "Y1", 4))]
    clock2.advance(timedelta(minutes=5))
    oms2.step()
    scripted.events = [_ev(EventKind.CANCELLED, "C2-0")]
    oms2.step()
    expected = 16 if carry else 10
    assert oms2.get("C2-1").order.qty == expected
    assert repo.get("C2-1").order.qty == expected
    # what can still trade plus what traded never exceeds the parent
    live = sum(k.filled_qty if k.status.is_terminal else k.order.qty
               for k in repo.children("C2"))
    assert live == (20 if carry else 14)
    clock2.advance(timedelta(minutes=5))
    oms2.step()
    assert scripted.submitted[-1].client_order_id == "C2-1"
    assert scripted.submitted[-1].qty == expected
