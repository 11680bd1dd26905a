"""`keel exchange` as a subprocess: start, trade over FIX (and look over REST), stop."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from tests.conftest import FIX_SPEC, REPO
from typer.testing import CliRunner

from keel.cli import app
from keel.types import EventKind, Order, OrderEvent, OrderType, Side, utc
from keel.venues.exchange.server import free_port
from keel.venues.fix.broker import FixBroker
from keel.venues.fix.session import SessionConfig

SPEC = FIX_SPEC
T0 = utc(2024, 1, 2, 15)


def start(*args: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "keel", "exchange", *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    out = proc.stdout
    threading.Thread(target=lambda: [lines.put(x) for x in out], daemon=True).start()
    return proc, lines


def wait_line(lines: queue.Queue[str], pattern: str, timeout: float = 30) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        seen.append(line)
        if re.search(pattern, line):
            return line
    raise AssertionError(f"no line matching {pattern!r}; got {seen}")


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def trade(port: int, order: Order, timeout: float = 10) -> list[OrderEvent]:
    got: list[OrderEvent] = []
    with FixBroker(SessionConfig("FIX.4.4", "KEEL", "KEELX"), "127.0.0.1", port,
                   spec_dir=str(SPEC)) as broker:
        assert broker.wait_logged_on(10)
        broker.submit(order)
        deadline = time.monotonic() + timeout
        while sum((e.fill.qty for e in got if e.fill), Decimal(0)) < order.qty:
            assert time.monotonic() < deadline, got
            got += broker.poll_events()
            time.sleep(0.02)
        assert broker.positions() == {order.symbol: order.qty}
    return got


def test_exchange_cli_synthetic_fix_and_rest() -> None:
    port, rest_port = free_port(), free_port()
    proc, lines = start("--port", str(port), "--rest-port", str(rest_port), "--spec-dir",
                        str(SPEC), "--symbols", "AAPL", "--step-seconds", "0.2")
    try:
        wait_line(lines, "ready")
        got = trade(port, Order("c1", "AAPL", Side.BUY, 100, T0))  # market buy
        assert got[0].kind is EventKind.ACK
        pos = httpx.get(f"http://127.0.0.1:{rest_port}/v2/positions",
                        headers={"APCA-API-KEY-ID": "keel"}, timeout=5).json()
        assert pos == [{"symbol": "AAPL", "qty": "100"}]  # FIX and REST share the account
    finally:
        assert stop(proc) == 0
    time.sleep(0.2)
    tail = []
    while not lines.empty():
        tail.append(lines.get_nowait())
    assert "Traceback" not in "".join(tail) and "stopped" in "".join(tail)


@pytest.mark.slow
def test_exchange_cli_lobster_replay(shared_data: Path) -> None:
    folder = shared_data / "lob" / "lobster_AAPL_2012-06-21_L10_head"
    if not (SPEC / "FIX42.xml").is_file() or not folder.is_dir():
        pytest.skip("FIX spec or LOBSTER sample not found")
    port = free_port()
    proc, lines = start("--port", str(port), "--rest-port", "-1", "--spec-dir", str(SPEC),
                        "--lobster", str(folder), "--step-seconds", "0.2")
    try:
        wait_line(lines, "ready.*LOBSTER replay of AAPL")
        # 250 shares take the historical opening asks 585.94 x200 and 585.98 x50 (if the
        # replay has not moved them yet, the price is still in the historical book)
        got = trade(port, Order("l1", "AAPL", Side.BUY, 250, T0, order_type=OrderType.LIMIT,
                                limit_price="600"))
        prices = {e.fill.price for e in got if e.fill}
        assert prices and all(Decimal("585") < p < Decimal("590") for p in prices)
    finally:
        assert stop(proc) == 0


def test_exchange_cli_bad_client_exits_2() -> None:
    result = CliRunner().invoke(app, ["exchange", "--port", "0", "--rest-port", "-1",
                                      "--client", "nonsense", "--duration", "0.1"])
    assert result.exit_code == 2 and "client" in result.output


def test_exchange_cli_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    # docker stop / kubectl / systemd send SIGTERM: FIX sessions are logged out, the stores
    # closed, and the process exits 0 saying why
    port = free_port()
    proc, lines = start("--port", str(port), "--rest-port", "-1", "--spec-dir", str(SPEC),
                        "--symbols", "AAPL", "--step-seconds", "0.2",
                        "--store-dir", str(tmp_path / "fix"))
    try:
        wait_line(lines, "ready")
        trade(port, Order("t1", "AAPL", Side.BUY, 10, T0))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
    time.sleep(0.2)
    tail = []
    while not lines.empty():
        tail.append(lines.get_nowait())
    text = "".join(tail)
    assert "Traceback" not in text and "stopped (SIGTERM)" in text
