"""The order manager survives every venue failure (typed or not), its kill switch always
finishes and reports what it could not cancel, a venue's late cancel refusal settles the order,
and finished orders leave memory (the store keeps them)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from keel.clock import SimulatedClock
from keel.errors import OrderRejected, TransientVenueError, VenueError
from keel.execution.oms import OrderManager
from keel.execution.retry import RetryPolicy
from keel.types import ChildOrder, EventKind, Fill, Order, OrderEvent, OrderStatus, Side, utc
from keel.venues.base import OpenOrder

S = OrderStatus
T0 = utc(2013, 10, 8, 14, 0)


def _oms(broker, repo) -> OrderManager:
    oms = OrderManager(broker, repo, SimulatedClock(T0), sleep=lambda s: None,
                       retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0))
    oms.on_price("SPY", 100)
    return oms


def _kids(pid: str, n: int, qty: int = 10) -> list[ChildOrder]:
    return [ChildOrder(f"{pid}-{i}", pid, "SPY", Side.BUY, Decimal(qty), T0, slice_index=i)
            for i in range(n)]


class _Hostile:
    """Wraps the scripted broker: cancels of chosen orders raise what the test says."""

    def __init__(self, inner, raises: dict[str, BaseException]) -> None:
        self.inner, self.raises = inner, raises
        self.name = "hostile"
        self.cancel_calls: list[str] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def cancel(self, coid: str) -> None:
        self.cancel_calls.append(coid)
        if coid in self.raises:
            raise self.raises[coid]
        self.inner.cancel(coid)


def test_kill_switch_finishes_past_every_kind_of_cancel_failure(scripted, repo):
    broker = _Hostile(scripted, {
        "A-0": OrderRejected("order is not open: FILLED", reason_code="CANCEL_REJECTED"),
        "B-0": TransientVenueError("down"), "C-0": VenueError("broken"),
        "D-0": UnicodeEncodeError("ascii", "x", 0, 1, "boom")})
    oms = _oms(broker, repo)
    for pid in "ABCDE":
        oms.submit(Order(pid, "SPY", Side.BUY, Decimal(10), T0), _kids(pid, 1))
    oms.step()
    assert oms.kill_switch("test") == 5
    rep = oms.last_kill
    # every parent's working child was attempted, in order, despite the failures
    assert [c for c in broker.cancel_calls if c != "B-0"] == ["A-0", "C-0", "D-0", "E-0"]
    assert broker.cancel_calls.count("B-0") == 2  # transient: retried, then given up
    assert sorted(rep.failed) == ["A-0", "B-0", "C-0", "D-0"]
    assert "UnicodeEncodeError" in rep.failed["D-0"] and not rep.complete
    assert rep.cancels_sent == ["E-0"] and rep.parents == list("ABCDE")
    assert {a.kind for a in oms.anomalies} >= {"CANCEL_FAILED"}


def test_a_failing_poll_or_submit_never_stops_the_loop(scripted, repo):
    class _Broken:
        name = "broken"

        def __getattr__(self, name):
            return getattr(scripted, name)

        def poll_events(self):
            raise ValueError("garbage from the venue")

        def submit(self, order):
            raise UnicodeEncodeError("ascii", order.symbol, 0, 1, "not ascii")

    oms = _oms(_Broken(), repo)
    oms.submit(Order("P", "SPY", Side.BUY, Decimal(10), T0))
    oms.step()  # no exception
    assert oms.get("P-000").status is S.REJECTED
    assert "VENUE_ERROR" in repo.events("P-000")[-1][3]
    assert {"POLL_FAILED", "SUBMIT_FAILED"} <= {a.kind for a in oms.anomalies}


def test_late_cancel_of_a_filled_child_is_an_event_and_the_fill_still_books(scripted, repo):
    oms = _oms(scripted, repo)
    oms.submit(Order("P", "SPY", Side.BUY, Decimal(10), T0), _kids("P", 1))
    oms.step()
    oms.cancel("P")
    fill = Fill("X1", "P-0", "SPY", Side.BUY, Decimal(10), Decimal(100), T0)
    scripted.events = [
        OrderEvent(EventKind.CANCEL_REJECTED, "P-0", T0, reason="order is not open: FILLED",
                   extra={"status": "FILLED"}),
        OrderEvent(EventKind.FILL, "P-0", T0, fill=fill, cum_qty=Decimal(10))]
    oms.step()
    assert oms.get("P").status is S.FILLED and oms.get("P").filled_qty == 10
    assert len(repo.fills()) == 1


def test_cancel_reject_for_an_order_the_venue_lost_expires_it(scripted, repo):
    oms = _oms(scripted, repo)
    oms.submit(Order("P", "SPY", Side.BUY, Decimal(10), T0), _kids("P", 1))
    oms.step()
    scripted.events = [OrderEvent(EventKind.ACK, "P-0", T0)]
    oms.step()
    oms.cancel("P")
    scripted.events = [OrderEvent(EventKind.CANCEL_REJECTED, "P-0", T0,
                                  reason="unknown order")]
    oms.step()
    assert oms.get("P-0").status is S.EXPIRED
    assert oms.get("P").status is S.CANCELLED
    assert oms.open_parents() == []


class _Statusful:
    """Scripted broker with ``order_status`` and a reconnect counter."""

    name = "statusful"

    def __init__(self, inner) -> None:
        self.inner = inner
        self.connection_epoch = 0
        self.views: dict[str, OpenOrder | None] = {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def order_status(self, coid: str) -> OpenOrder | None:
        return self.views.get(coid)


def test_reconnect_reconciles_every_open_child_with_the_venue(scripted, repo):
    broker = _Statusful(scripted)
    oms = _oms(broker, repo)
    for pid in "ABCD":
        oms.submit(Order(pid, "SPY", Side.BUY, Decimal(10), T0), _kids(pid, 1))
    oms.step()
    scripted.events = [OrderEvent(EventKind.ACK, f"{p}-0", T0) for p in "ABCD"]
    oms.step()
    scripted.working.clear()  # the venue restarted: nothing is working there any more
    broker.views = {
        "A-0": None,  # lost in the restart
        "B-0": OpenOrder("B-0", "SPY", S.CANCELLED, Decimal(10)),
        "C-0": OpenOrder("C-0", "SPY", S.FILLED, Decimal(10), Decimal(10)),  # fills due
        "D-0": OpenOrder("D-0", "SPY", S.ACKNOWLEDGED, Decimal(10))}
    broker.connection_epoch = 1
    oms.step()
    assert [oms.get(f"{p}-0").status for p in "ABCD"] == [
        S.EXPIRED, S.CANCELLED, S.ACKNOWLEDGED, S.ACKNOWLEDGED]
    assert any(a.kind == "FILLS_PENDING" for a in oms.anomalies)
    # the venue's fill arrives afterwards and is booked: nothing was dropped
    fill = Fill("Xnew-1", "C-0", "SPY", Side.BUY, Decimal(10), Decimal(100), T0)
    scripted.events = [OrderEvent(EventKind.FILL, "C-0", T0, fill=fill)]
    oms.step()
    assert oms.get("C").status is S.FILLED


def test_finished_orders_leave_memory_and_stay_readable(scripted, repo):
    oms = _oms(scripted, repo)
    n = 40
    for i in range(n):
        oms.submit(Order(f"P{i}", "SPY", Side.BUY, Decimal(10), T0), _kids(f"P{i}", 2, 5))
    oms.step()
    assert oms.in_memory() == 3 * n and len(oms.open_parents()) == n
    scripted.events = [OrderEvent(EventKind.FILL, f"P{i}-{j}", T0, fill=Fill(
        f"X{i}-{j}", f"P{i}-{j}", "SPY", Side.BUY, Decimal(5), Decimal(100), T0))
        for i in range(n) for j in range(2)]
    oms.step()
    assert oms.in_memory() == 0 and oms.open_parents() == [] and not oms._seen
    assert oms.get("P7").status is S.FILLED and oms.get("P7-1").filled_qty == 5
    assert [c.client_order_id for c in oms.children("P7")] == ["P7-0", "P7-1"]
    # a replayed fill of a retired child is recognised (store), not booked, not an anomaly
    before = len(oms.anomalies)
    scripted.events = [OrderEvent(EventKind.FILL, "P7-1", T0, fill=Fill(
        "X7-1", "P7-1", "SPY", Side.BUY, Decimal(5), Decimal(100), T0))]
    oms.step()
    assert len(repo.fills()) == 2 * n and len(oms.anomalies) == before


def test_anomalies_are_a_ring(scripted, repo):
    oms = OrderManager(scripted, repo, SimulatedClock(T0), max_anomalies=5)
    scripted.events = [OrderEvent(EventKind.ACK, f"nope{i}", T0 + timedelta(seconds=i))
                       for i in range(20)]
    oms.step()
    assert [a.client_order_id for a in oms.anomalies] == [f"nope{i}" for i in range(15, 20)]
