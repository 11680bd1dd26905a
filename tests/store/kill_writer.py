"""Writer process for the kill test (run by test_kill.py with ``sys.executable``).

Usage: ``kill_writer.py URL ROUND K PAD PAUSE_AT``

Loops forever writing batches of ``K`` audit rows (``entity="kill"``,
``entity_id="ROUND:BATCH"``, ``PAD`` bytes of payload each), one transaction per batch, rows
flushed to the database one by one. It prints ``B n`` before a batch starts and ``C n`` only
after its commit returned (the acknowledgement), flushing stdout each time. When ``n`` equals
``PAUSE_AT`` it stops half-way through that batch, with the first half of its rows already
sent to the database inside the open transaction, prints ``H n WAL_AT_COMMIT WAL_NOW`` (SQLite:
sizes of the ``-wal`` file after the last commit and now, else ``-1 -1``) and waits to be killed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from sqlalchemy import event

from keel.clock import SimulatedClock
from keel.store import Store
from keel.store.audit import AuditLog
from keel.types import utc


def _tiny_cache(dbapi_conn: Any, _record: Any) -> None:
    # A small page cache makes SQLite spill uncommitted pages into the WAL mid-transaction,
    # so the kill also tests that recovery ignores frames with no commit after them.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA cache_size=-16")
    cur.close()


def main() -> None:
    url, round_id, k, pad, pause_at = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    store = Store.from_url(url)
    if store.dialect == "sqlite":
        event.listen(store.engine, "connect", _tiny_cache)
    wal = f"{store.engine.url.database}-wal" if store.dialect == "sqlite" else None

    def wal_size() -> int:
        return os.path.getsize(wal) if wal and os.path.exists(wal) else -1

    wal_at_commit = wal_size()
    log = AuditLog(store)
    clock = SimulatedClock(utc(2024, 1, 2))
    batch = 0
    while True:
        print(f"B {batch}", flush=True)
        with store.session() as s:
            for i in range(k):
                log.append("kill-writer", "write", "kill", f"{round_id}:{batch}",
                           {"batch": batch, "i": i, "pad": "x" * pad}, clock.now(), session=s)
                clock.advance(0.001)
                if batch == pause_at and i == k // 2:
                    print(f"H {batch} {wal_at_commit} {wal_size()}", flush=True)
                    sys.stdin.readline()  # blocks until the parent kills us
        wal_at_commit = wal_size()
        print(f"C {batch}", flush=True)
        batch += 1


if __name__ == "__main__":
    main()
