"""Recovery: a real process books, crashes mid-transaction; a new process rebuilds the ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")

WRITER = r"""
import json, os, sys
from decimal import Decimal
from keel.clock import SimulatedClock
from keel.portfolio.ledger import Ledger
from keel.store.db import Store
from keel.types import Fill, Side, utc

store = Store.from_url(sys.argv[1]); store.create_all()
clock = SimulatedClock(utc(2024, 3, 1, 15))
lg = Ledger.open(store, clock=clock)
lg.deposit("250000.00")
for i in range(40):
    side = Side.BUY if i % 3 else Side.SELL
    lg.apply_fill(Fill(f"e{i}", f"o{i}", "SYM%d" % (i % 4), side, Decimal(i % 7 + 1),
                       Decimal("100.25") + i, clock.now(), commission=Decimal("0.35")))
    if i == 20:
        lg.snapshot("mid")
lg.mark({"SYM1": "133.33"})
print(json.dumps(lg.state.to_json()), flush=True)
with lg.transaction():
    lg.deposit("999")
    lg.apply_fill(Fill("crash", "oc", "SYM0", Side.BUY, 5, 10, clock.now()))
    os._exit(3)   # killed before commit: nothing of this block may survive
"""

READER = r"""
import json, sys
from keel.clock import SimulatedClock
from keel.portfolio.ledger import Ledger
from keel.store.db import Store
from keel.types import utc
lg = Ledger.open(Store.from_url(sys.argv[1]), clock=SimulatedClock(utc(2024, 3, 2)))
print(json.dumps(lg.state.to_json()))
"""


def _run(code: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                             marks=pytest.mark.postgres)])
def test_restart_rebuilds_identical_state(backend: str, request: pytest.FixtureRequest,
                                          tmp_path: Path) -> None:
    url = (f"sqlite:///{tmp_path / 'ledger.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    w = _run(WRITER, url)
    assert w.returncode == 3, w.stderr
    live = json.loads(w.stdout.strip().splitlines()[-1])
    r = _run(READER, url)
    assert r.returncode == 0, r.stderr
    rebuilt = json.loads(r.stdout.strip())
    assert rebuilt == live
    assert "crash" not in rebuilt["exec_ids"]
