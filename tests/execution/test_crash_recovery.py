"""A trading process killed with SIGKILL mid-execution restarts, recovers its open orders from
the store, reconciles with the venue, and finishes without losing or duplicating an order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo
from keel.types import OrderStatus

WORKER = Path(__file__).parent / "workers" / "crash_worker.py"
SRC = Path(__file__).resolve().parents[2] / "src"


def _run_until(folder: Path, kill_after: str | None) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, str(WORKER), str(folder)], stdout=subprocess.PIPE,
                            text=True, env=env)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.strip())
        if kill_after is not None and line.strip() == kill_after:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    if kill_after is not None:
        assert proc.returncode == -signal.SIGKILL
    return lines


def _kill_and_finish(tmp_path: Path, kill_points: list[str]) -> None:
    for i, point in enumerate(kill_points):
        lines = _run_until(tmp_path, point)
        assert not any(x.startswith("DONE") for x in lines)
        if i:
            assert lines[0].startswith("RECOVERED 1")
    last = _run_until(tmp_path, None)
    assert last[0].startswith("RECOVERED 1")
    assert last[-1] == "DONE FILLED 2000"
    _check_store(tmp_path)


def test_sigkill_mid_execution_recovers_exactly(tmp_path):
    _kill_and_finish(tmp_path, ["STEP 23"])  # a few children filled, one working


@pytest.mark.slow
def test_repeated_sigkills(tmp_path):
    _kill_and_finish(tmp_path, ["STEP 1", "STEP 7", "STEP 19", "STEP 40"])


def _check_store(tmp_path: Path) -> None:

    repo = OrdersRepo(Store.from_url(f"sqlite:///{tmp_path / 'keel.db'}"))
    parent = repo.get("CR1")
    assert parent.status is OrderStatus.FILLED and parent.filled_qty == 2000
    kids = repo.children("CR1")
    assert len(kids) == 10 and sum(k.order.qty for k in kids) == 2000
    assert all(k.status is OrderStatus.FILLED for k in kids)
    fills = repo.fills(parent_id="CR1")
    assert sum(f.qty for f, _ in fills) == Decimal(2000)
    assert len({f.exec_id for f, _ in fills}) == len(fills)
    # the venue saw every child exactly once
    submits = Counter(json.loads(x)["order"]["id"]
                      for x in (tmp_path / "venue.jsonl").read_text().splitlines()
                      if '"submit"' in x)
    assert sorted(submits) == sorted(k.client_order_id for k in kids)
    assert set(submits.values()) == {1}
