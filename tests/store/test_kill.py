"""Crash safety: a writer killed with SIGKILL loses no acknowledged batch and leaves no partial one.

The writer (``kill_writer.py``, a real subprocess) commits batches of K rows, one transaction
each, and acknowledges a batch on stdout only after its commit returned. The parent kills it
with ``kill -9`` at a random moment (and once, deterministically, half-way through a batch whose
first rows are already in the database, uncommitted), reopens the database and checks:
every acknowledged batch has all K rows, every batch has 0 or K rows, nothing exists beyond the
batch in flight, and SQLite's ``PRAGMA integrity_check`` says ok. Several rounds hit the same
database, so each round also starts from a crash-recovered file.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from keel.store import Store
from keel.store.tables import AuditRow

WRITER = Path(__file__).with_name("kill_writer.py")
SRC = Path(__file__).resolve().parents[2] / "src"
K = 40        # rows per batch (one transaction)
PAD = 600     # payload bytes per row: a batch outgrows SQLite's tiny page cache in the writer
SEED = 20261121


def _run_and_kill(url: str, round_id: str, rng: random.Random,
                  pause_at: int | None) -> tuple[set[int], int, int]:
    """Start a writer, kill -9 it.

    Returns the acknowledged batches, the last batch begun and, for a paused SQLite writer, the
    bytes its WAL file grew by after the last commit (uncommitted frames on disk at the kill).
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), url, round_id, str(K), str(PAD),
         str(-1 if pause_at is None else pause_at)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env)
    assert proc.stdout is not None and proc.stderr is not None
    acked: set[int] = set()
    begun = -1
    spilled = 0
    arm_after = rng.randint(1, 3)  # acknowledged batches before the kill is armed
    try:
        while True:
            line = proc.stdout.readline()
            if not line:
                proc.wait(timeout=10)
                raise AssertionError(f"writer died on its own: {proc.stderr.read()}")
            tag, n, *wal = line.split()
            if tag == "B":
                begun = int(n)
                if pause_at is None and len(acked) >= arm_after:
                    time.sleep(rng.uniform(0.0, 0.04))  # a batch takes ~25 ms: in it or just after
                    break
            elif tag == "C":
                acked.add(int(n))
            elif tag == "H":
                spilled = int(wal[1]) - int(wal[0])
                break
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        for line in proc.stdout:  # acknowledgements written before the process died
            tag, n, *_ = line.split()
            if tag == "C":
                acked.add(int(n))
            elif tag == "B":
                begun = int(n)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        if proc.stdin is not None:
            proc.stdin.close()
    return acked, begun, spilled


def _batch_sizes(store: Store, round_id: str) -> dict[int, int]:
    with store.session() as s:
        rows = s.execute(
            sa.select(AuditRow.entity_id, sa.func.count())
            .where(AuditRow.entity == "kill", AuditRow.entity_id.like(f"{round_id}:%"))
            .group_by(AuditRow.entity_id)).all()
    return {int(eid.split(":")[1]): int(n) for eid, n in rows}


def _kill_rounds(url: str) -> None:
    rng = random.Random(SEED)
    setup = Store.from_url(url)
    setup.upgrade()
    setup.dispose()
    plans: list[int | None] = [None, None, 2]  # random kills, then a sure mid-batch kill
    for r, pause_at in enumerate(plans):
        round_id = f"r{r}"
        acked, begun, spilled = _run_and_kill(url, round_id, rng, pause_at)
        store = Store.from_url(url)  # reopen: recovery happens here
        try:
            sizes = _batch_sizes(store, round_id)
            context = f"round {r} (seed {SEED}): acked={sorted(acked)} begun={begun} {sizes}"
            assert acked, context
            assert all(sizes.get(b) == K for b in acked), "acknowledged batch lost: " + context
            assert all(n == K for n in sizes.values()), "partial batch: " + context
            assert set(sizes) <= acked | {begun}, "batch never begun: " + context
            if pause_at is not None:
                assert begun == pause_at and pause_at not in sizes, context
                if store.dialect == "sqlite":  # recovery had uncommitted frames to discard
                    assert spilled > 0, context
            if store.dialect == "sqlite":
                with store.engine.connect() as conn:
                    assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            if r == len(plans) - 1:
                store.check_schema()
        finally:
            store.dispose()


def test_sqlite_writer_killed_mid_transaction(sqlite_url: str) -> None:
    _kill_rounds(sqlite_url)
    with sa.create_engine(sqlite_url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_postgres_writer_killed_mid_transaction(pg_url: str) -> None:
    _kill_rounds(pg_url)
