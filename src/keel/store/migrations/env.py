"""Alembic environment for keel.

Run programmatically by :mod:`keel.store.migrate`, which hands over an open connection in
``config.attributes["connection"]`` (inside the caller's transaction). From the ``alembic``
command line (developers only) the URL comes from ``-x url=...`` or the keel configuration.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from keel.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from keel.config import load_config
    from keel.store.db import Store
    from keel.store.migrate import migration_transaction

    url = context.get_x_argument(as_dictionary=True).get("url") or load_config().store.url
    store = Store.from_url(url)
    try:
        with migration_transaction(store, "alembic command", "cli") as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        store.dispose()


def _run_offline() -> None:
    from keel.config import load_config

    url = context.get_x_argument(as_dictionary=True).get("url") or load_config().store.url
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name)

if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
