"""Every table round-trips on both backends: exact decimals, UTC datetimes, JSON, bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from keel.errors import StoreError
from keel.store import Store
from keel.store.tables import (
    AccountBatchRow,
    AccountRow,
    AccountSaleRow,
    AuditRow,
    Base,
    ChildOrderRow,
    CostModelHistoryRow,
    CostModelStateRow,
    DeskStateRow,
    FillRow,
    FixMessageRow,
    FixSessionRow,
    HoldingRow,
    LeaseRow,
    LedgerEntryRow,
    ModelWeightRow,
    OrderEventRow,
    OrderRow,
    PortfolioSnapshotRow,
    RunRow,
    TaxLotRow,
)
from keel.types import utc

T0 = utc(2024, 3, 1, 14, 30, 0, 123456)
NY = timezone(timedelta(hours=-5))
BIG = Decimal("123456.000000000001")
TINY = Decimal("1E-12")
MAXED = Decimal("99999999999999999999999999.999999999999")  # 26 + 12 digits


def _order(coid: str = "o-1", **kw: Any) -> OrderRow:
    base: dict[str, Any] = dict(
        client_order_id=coid, symbol="AAPL", side="BUY", qty=BIG, order_type="LIMIT",
        tif="DAY", limit_price=TINY, stop_price=None, status="NEW", filled_qty=Decimal(0),
        avg_fill_price=MAXED, strategy="s1", algo="twap", arrival_price=Decimal("-0.5"),
        decision_price=Decimal("187.25"), created_at=T0, updated_at=T0, version=3)
    base.update(kw)
    return OrderRow(**base)


def _child(coid: str = "c-1", parent: str = "o-1") -> ChildOrderRow:
    return ChildOrderRow(
        client_order_id=coid, parent_id=parent, slice_index=3, symbol="AAPL", side="BUY",
        qty=Decimal("0.000000000003"), order_type="LIMIT", tif="IOC", limit_price=BIG,
        not_before=datetime(2024, 3, 1, 9, 30, tzinfo=NY), expire_at=None, status="NEW",
        filled_qty=Decimal(0), venue_order_id="v-9", venue="SIM", created_at=T0, updated_at=T0)


def _fill(exec_id: str = "e-1", **kw: Any) -> FillRow:
    base: dict[str, Any] = dict(
        exec_id=exec_id, client_order_id="c-1", parent_id="o-1", symbol="AAPL", side="BUY",
        qty=BIG, price=TINY, commission=Decimal("0.01"), venue="SIM", timestamp=T0)
    base.update(kw)
    return FillRow(**base)


def _all_rows() -> list[Base]:
    return [
        _order(), _child(), _fill(),
        OrderEventRow(client_order_id="o-1", from_status=None, to_status="NEW",
                      reason="created ü", timestamp=T0),
        PortfolioSnapshotRow(account="acct", version=2**40, timestamp=T0, cash=BIG,
                             equity=MAXED, positions={"AAPL": "10.5", "nested": {"x": [1, 2.5]}},
                             label="eod"),
        LedgerEntryRow(account="acct", version=1, kind="fill",
                       payload={"qty": "123456.000000000001", "ok": True, "none": None},
                       timestamp=T0),
        AuditRow(timestamp=T0, actor="oms", action="order.submit", entity="order",
                 entity_id="o-1", payload={"reason": "rebalance", "n": 3}),
        FixSessionRow(session_id="FIX.4.4:KEEL->KEELX", next_sender_seq=2**33,
                      next_target_seq=7, creation_time=T0, updated_at=T0),
        RunRow(run_id="r-1", kind="demo", started_at=T0, finished_at=None, status="running",
               config={"seed": 7, "store": {"url": "sqlite://"}}, metrics={}),
        LeaseRow(name="keel-run", holder="host:123:abcdef01", acquired_at=T0, expires_at=T0),
        # learned cost state: floats must come back bit for bit (an identical model)
        CostModelStateRow(name="default", version=2**33, updated_at=T0,
                          state={"multipliers": [1 / 3, 2.5e-17, 1.7976931348623157e308],
                                 "scale": None, "n_obs": 12}),
        CostModelHistoryRow(name="default", version=1, multipliers={"impact": 0.1 + 0.2},
                            n_obs=12, observed=3, recorded_at=T0),
        DeskStateRow(name="sp500", version=3, updated_at=T0,
                     state={"peak_equity": 1e7 / 3, "turnover_spent": [["2024-01-02T21:00:00+00:00",
                                                                        0.1 + 0.2]],
                            "standing_target": None}),
        # the account book (keel.accounts): exact decimals, JSON restrictions, a date
        ModelWeightRow(model_id="M", symbol="AAPL", weight=Decimal("0.123456789012")),
        AccountRow(id="A1", name="acct ü", cash=BIG, model_id="M", drift_band=Decimal("0.03"),
                   restrictions={"no_buy": ["XOM"], "no_hold": []}, tax_aware=True),
        HoldingRow(account_id="A1", symbol="AAPL", qty=Decimal("10.000000000001")),
        TaxLotRow(account_id="A1", lot_id="AAPL-0", symbol="AAPL", qty=Decimal("10.000000000001"),
                  cost_per_share=TINY, acquired=T0.date()),
        AccountBatchRow(batch_id="b-1", executed_at=T0, blocks=2**30, allocations=3),
        AccountSaleRow(batch_id="b-1", account_id="A1", seq=0, symbol="AAPL", lot_id="AAPL-0",
                       qty=Decimal("10.000000000001"), price=Decimal("123.45"),
                       cost_per_share=TINY, acquired=T0.date(), sold=T0.date(),
                       gain=Decimal("-0.000000000001"), long_term=False),
    ]


def _columns(row: Base) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns  # type: ignore[attr-defined]
            if c.key != "id"}


def test_every_table_round_trips(store: Store) -> None:
    rows = _all_rows()
    expected = [_columns(r) for r in rows]
    with store.session() as s:
        s.add_all(rows[:1])
        s.flush()  # the parent before the child (foreign key)
        s.add_all(rows[1:])
        s.flush()
        s.add(FixMessageRow(session_id="FIX.4.4:KEEL->KEELX", seq=1, raw=b"8=FIX.4.4\x019=5\x01"))
    covered = {type(r).__tablename__ for r in rows} | {"fix_messages"}
    assert covered == set(Base.metadata.tables)
    with store.session() as s:
        for row, want in zip(rows, expected, strict=True):
            got = s.scalars(select(type(row))).one()
            assert _columns(got) == want, type(row).__name__
        msg = s.scalars(select(FixMessageRow)).one()
        assert msg.raw == b"8=FIX.4.4\x019=5\x01"


def test_exact_decimals_come_back_exact(store: Store) -> None:
    with store.session() as s:
        s.add(_order())
    with store.session() as s:
        o = s.scalars(select(OrderRow)).one()
    assert o.qty == BIG and str(o.qty) == "123456.000000000001"
    assert o.limit_price == TINY and o.limit_price.is_finite()
    assert o.avg_fill_price == MAXED and str(o.avg_fill_price) == str(MAXED)
    assert o.arrival_price == Decimal("-0.5")
    assert o.filled_qty == 0 and str(o.filled_qty) == "0"
    assert str(o.decision_price) == "187.25"  # no padding to the column scale


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.decimals(min_value=Decimal("-1E+25"), max_value=Decimal("1E+25"), places=12,
                   allow_nan=False, allow_infinity=False))
def test_any_decimal_in_range_is_exact(store: Store, value: Decimal) -> None:
    with store.session() as s:
        s.add(_fill(exec_id="h", qty=value))
    with store.session() as s:
        got = s.scalars(select(FillRow.qty).where(FillRow.exec_id == "h")).one()
        s.query(FillRow).delete()
    assert got == value


INEXACT: list[tuple[Any, str]] = [
    (Decimal("1E-13"), "decimal places"),
    (Decimal("0.1234567890123"), "decimal places"),
    (Decimal("1E+26"), "integer digits"),
    (Decimal("NaN"), "finite"),
    (float("inf"), "finite"),
    ("abc", "not a number"),
]


def test_inexact_decimal_is_refused(store: Store) -> None:
    for value, why in INEXACT:
        with pytest.raises(StoreError, match=why) as info, store.session() as s:
            s.add(_fill(qty=value))
        assert info.value.context["kind"] == "invalid", value
        assert info.value.field == "decimal", value
    with store.session() as s:
        assert s.scalars(select(FillRow)).all() == []


def test_datetimes_are_utc_aware_from_any_zone(store: Store) -> None:
    tokyo = timezone(timedelta(hours=9))
    local = datetime(2024, 3, 2, 8, 15, 30, 999999, tzinfo=tokyo)
    with store.session() as s:
        s.add(_fill(exec_id="a", timestamp=local))
        s.add(_fill(exec_id="b", timestamp=datetime(2024, 3, 1, 23, 15, 31, tzinfo=UTC)))
    with store.session() as s:
        got = s.scalars(select(FillRow).order_by(FillRow.timestamp)).all()
        # Range queries compare instants, not wall times, whatever zone the bound is in.
        later = s.scalars(select(FillRow.exec_id).where(
            FillRow.timestamp > datetime(2024, 3, 2, 8, 15, 30, 999999, tzinfo=tokyo))).all()
    assert [f.exec_id for f in got] == ["a", "b"]
    assert got[0].timestamp == local and got[0].timestamp.tzinfo == UTC
    assert got[0].timestamp == datetime(2024, 3, 1, 23, 15, 30, 999999, tzinfo=UTC)
    assert later == ["b"]


def test_naive_datetime_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="naive") as info, store.session() as s:
        s.add(_fill(timestamp=datetime(2024, 3, 1, 14, 30)))
    assert info.value.context["kind"] == "invalid"
    assert info.value.value == datetime(2024, 3, 1, 14, 30)
    with store.session() as s:
        assert s.scalars(select(FillRow)).all() == []


def test_fill_exec_id_is_booked_once(store: Store) -> None:
    with store.session() as s:
        s.add(_fill("e-1"))
    with pytest.raises(StoreError) as info, store.session() as s:
        s.add(_fill("e-2"))
        s.add(_fill("e-1", qty=Decimal(5)))
    assert info.value.context["kind"] == "integrity"
    with store.session() as s:  # the whole second unit of work is gone, e-2 included
        assert s.scalars(select(FillRow.exec_id)).all() == ["e-1"]
        assert s.scalars(select(FillRow.qty)).one() == BIG


def _duplicates() -> dict[str, tuple[Base, Base]]:
    return {
        "orders.client_order_id": (_order("o-1"), _order("o-1")),
        "runs.run_id": (
            RunRow(run_id="r", kind="k", started_at=T0, status="running", config={}),
            RunRow(run_id="r", kind="k", started_at=T0, status="running", config={})),
        "ledger version": (
            LedgerEntryRow(account="a", version=1, kind="x", payload={}, timestamp=T0),
            LedgerEntryRow(account="a", version=1, kind="y", payload={}, timestamp=T0)),
        "snapshot version": (
            PortfolioSnapshotRow(account="a", version=1, timestamp=T0, cash=1, equity=1,
                                 positions={}),
            PortfolioSnapshotRow(account="a", version=1, timestamp=T0, cash=2, equity=2,
                                 positions={})),
    }


def test_unique_constraints(store: Store) -> None:
    for name, (first, second) in _duplicates().items():
        with store.session() as s:
            s.add(first)
        with pytest.raises(StoreError) as info, store.session() as s:
            s.add(second)
        assert info.value.context["kind"] == "integrity", name


def test_child_order_needs_its_parent(store: Store) -> None:
    with pytest.raises(StoreError) as info, store.session() as s:
        s.add(_child(parent="no-such-parent"))
    assert info.value.context["kind"] == "integrity"
    with store.session() as s:
        s.add(_order("o-1"))
        s.flush()
        s.add(_child("c-1", "o-1"))
    with store.session() as s:
        child = s.scalars(select(ChildOrderRow)).one()
        assert child.parent_id == "o-1"
        assert child.not_before == utc(2024, 3, 1, 14, 30)
        s.delete(s.scalars(select(OrderRow)).one())  # ON DELETE CASCADE
    with store.session() as s:
        assert s.scalars(select(ChildOrderRow)).all() == []


def test_failed_unit_of_work_leaves_nothing(store: Store) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.session() as s:
        s.add_all(_all_rows()[:1])
        s.flush()
        s.add_all(_all_rows()[1:])
        s.flush()  # the rows reached the database inside the transaction
        raise Boom
    with store.session() as s:
        for table in Base.metadata.sorted_tables:
            assert s.execute(select(table)).all() == [], table.name


def test_savepoint_rolls_back_alone(store: Store) -> None:
    # SQLite needs keel's own BEGIN for SAVEPOINT to nest inside the transaction.
    with store.session() as s:
        nested = s.begin_nested()
        s.add(_fill("inner"))
        nested.rollback()
        s.add(_fill("outer"))
    with store.session() as s:
        assert s.scalars(select(FillRow.exec_id)).all() == ["outer"]
    with pytest.raises(RuntimeError), store.session() as s:
        with s.begin_nested():
            s.add(_fill("released"))
        raise RuntimeError("outer fails after the savepoint was released")
    with store.session() as s:
        assert s.scalars(select(FillRow.exec_id)).all() == ["outer"]


def test_audit_rows_cannot_be_changed_or_deleted(store: Store) -> None:
    with store.session() as s:
        s.add(AuditRow(timestamp=T0, actor="a", action="b", payload={}))
    with pytest.raises(StoreError, match="append-only"), store.session() as s:
        s.scalars(select(AuditRow)).one().actor = "mallory"
    with pytest.raises(StoreError, match="append-only"), store.session() as s:
        s.delete(s.scalars(select(AuditRow)).one())
    with store.session() as s:
        assert s.scalars(select(AuditRow.actor)).all() == ["a"]
