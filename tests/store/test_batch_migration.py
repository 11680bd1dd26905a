"""A future SQLite batch migration (table copy-and-move) must not cascade-delete children."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from keel.errors import StoreError
from keel.store import Store
from keel.store.migrate import migration_transaction
from keel.store.tables import ChildOrderRow, OrderRow
from keel.types import utc

T0 = utc(2024, 1, 2)


def _parent_and_child(store: Store) -> None:
    with store.session() as s:
        s.add(OrderRow(client_order_id="o-1", symbol="X", side="BUY", qty=Decimal(10),
                       order_type="MARKET", tif="DAY", status="NEW", created_at=T0,
                       updated_at=T0))
        s.flush()
        s.add(ChildOrderRow(client_order_id="c-1", parent_id="o-1", slice_index=0, symbol="X",
                            side="BUY", qty=Decimal(10), order_type="MARKET", tif="DAY",
                            status="NEW", created_at=T0, updated_at=T0))


def _count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_batch_recreate_of_a_parent_table_keeps_children(sqlite_url: str) -> None:
    store = Store.from_url(sqlite_url)
    store.upgrade()
    _parent_and_child(store)
    with migration_transaction(store, "test migration", "test") as conn:
        ops = Operations(MigrationContext.configure(conn))
        # What a future ALTER on orders does on SQLite: copy to a new table, drop, rename.
        with ops.batch_alter_table("orders", recreate="always") as batch:
            batch.add_column(sa.Column("extra", sa.Integer(), nullable=True))
    assert _count(store, "orders") == 1
    assert _count(store, "child_orders") == 1  # a DROP with foreign keys ON would cascade
    with store.engine.connect() as conn:  # enforcement is back on afterwards
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.dispose()


def test_batch_migration_leaving_dangling_children_is_rolled_back(sqlite_url: str) -> None:
    store = Store.from_url(sqlite_url)
    store.upgrade()
    _parent_and_child(store)
    with pytest.raises(StoreError, match="foreign key"), \
            migration_transaction(store, "test migration", "test") as conn:
        conn.execute(sa.text("DELETE FROM orders"))
    assert _count(store, "orders") == 1 and _count(store, "child_orders") == 1
    store.dispose()
