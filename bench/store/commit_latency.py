"""Commit cost of the store: single-row and 40-row transactions, SQLite (synchronous FULL, keel's
default, vs NORMAL) and PostgreSQL when reachable.

    python bench/store/commit_latency.py [--n 200] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]

Prints a Markdown table: median and p95 milliseconds per committed transaction.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from keel.clock import SimulatedClock
from keel.store import Store
from keel.store.audit import AuditLog
from keel.types import utc


def _normal(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA synchronous=NORMAL")


def _time(store: Store, n: int, rows: int) -> list[float]:
    log, clock, out = AuditLog(store), SimulatedClock(utc(2024, 1, 2)), []
    for b in range(n):
        t0 = time.perf_counter()
        with store.session() as s:
            for i in range(rows):
                log.append("bench", "write", "bench", f"{b}", {"i": i}, clock.now(), session=s)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _row(name: str, rows: int, ms: list[float]) -> str:
    p95 = sorted(ms)[int(0.95 * (len(ms) - 1))]
    return f"| {name} | {rows} | {statistics.median(ms):.2f} | {p95:.2f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="transactions per case")
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    print("| backend | rows/txn | median ms/txn | p95 ms/txn |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, normal in (("SQLite WAL, synchronous=FULL (default)", False),
                             ("SQLite WAL, synchronous=NORMAL", True)):
            store = Store.from_url(f"sqlite:///{Path(tmp) / f'{normal}.db'}")
            if normal:
                event.listen(store.engine, "connect", _normal)
            store.upgrade()
            for rows in (1, 40):
                print(_row(name, rows, _time(store, args.n, rows)))
            store.dispose()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.pg, connect_args={"connect_timeout": 3})
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError:
        print("| PostgreSQL | - | not reachable | - |")
        return
    try:
        url = sa.engine.make_url(args.pg).update_query_dict(
            {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
        store = Store.from_url(url)
        store.upgrade()
        for rows in (1, 40):
            print(_row("PostgreSQL 15 (local)", rows, _time(store, args.n, rows)))
        store.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
