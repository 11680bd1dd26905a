"""QuickFIX's FIX 4.2 server acceptance suite against ``keel fix acceptance-server``.

Each test starts the CLI server on a free port and runs ``run_acceptance.py HOST PORT DEFS``.
The timer-driven definitions (4a: heartbeat interval, 6: test request then disconnect after
2.4 x HeartBtInt) take about 12 s and 34 s; the full suite runs them on their own servers, in
parallel with the rest, so it takes as long as the slowest file (about 35 s).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import REPO

from keel.venues.exchange.server import free_port

TIMER_DEFS = ("4a_NoDataSentDuringHeartBtInt.def", "6_SendTestRequest.def")


def _start_server(spec_dir: Path | None, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    spec = [] if spec_dir is None else ["--spec-dir", str(spec_dir)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "keel", "fix", "acceptance-server", "--port", str(port),
         *spec, *extra], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else "died"
                raise AssertionError(err) from None
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("acceptance server did not start")


def _run_suite(fix_dir: Path, port: int, defs: list[Path]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(fix_dir / "run_acceptance.py"), "--timeout", "60", "127.0.0.1",
         str(port), *map(str, defs)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)


def _check(output: str, n: int) -> None:
    m = re.search(r"(\d+) passed, (\d+) failed", output)
    assert m is not None, output
    assert (int(m.group(1)), int(m.group(2))) == (n, 0), output


def _defs(fix_dir: Path) -> list[Path]:
    defs = sorted((fix_dir / "acceptance" / "fix42").glob("*.def"))
    assert len(defs) == 58
    return defs


def test_acceptance_suite_fast_definitions(fix_dir: Path, spec_dir: Path) -> None:
    """All definitions except the two that wait on heartbeat timers (about 3 s)."""
    defs = [d for d in _defs(fix_dir) if d.name not in TIMER_DEFS]
    proc, port = _start_server(spec_dir)
    try:
        out, _ = _run_suite(fix_dir, port, defs).communicate(timeout=240)
    finally:
        proc.terminate()
        proc.wait(10)
    _check(out, len(defs))


def test_acceptance_suite_with_quickfixs_own_settings_file(fix_dir: Path,
                                                           tmp_path: Path) -> None:
    """The server built from the settings file QuickFIX's own acceptance run uses
    (``quickfix_reference_at.cfg``: its DataDictionary, ResetOnLogon, 24-hour schedule) passes
    the same definitions as the built-in one."""
    cfg = fix_dir / "quickfix_reference_at.cfg"
    if not cfg.is_file():
        pytest.skip(f"{cfg} not found")
    shutil.copy(cfg, tmp_path / "at.cfg")  # its FileStorePath=store lands in tmp_path
    shutil.copytree(fix_dir / "spec", tmp_path / "spec")
    defs = [d for d in _defs(fix_dir) if d.name not in TIMER_DEFS]
    proc, port = _start_server(None, "--fix-settings", str(tmp_path / "at.cfg"))
    try:
        out, _ = _run_suite(fix_dir, port, defs).communicate(timeout=240)
    finally:
        proc.terminate()
        proc.wait(10)
    _check(out, len(defs))
    assert (tmp_path / "store").is_dir()


@pytest.mark.slow
def test_acceptance_suite_complete(fix_dir: Path, spec_dir: Path) -> None:
    """The whole FIX 4.2 suite, 58 files: ``58 passed, 0 failed`` (about 35 s)."""
    defs = _defs(fix_dir)
    groups = [[d for d in defs if d.name not in TIMER_DEFS],
              *[[d for d in defs if d.name == name] for name in TIMER_DEFS]]
    servers = [_start_server(spec_dir) for _ in groups]
    try:
        runs = [_run_suite(fix_dir, port, g) for (_, port), g in zip(servers, groups,
                                                                     strict=True)]
        outputs = [r.communicate(timeout=240)[0] for r in runs]
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(10)
    passed = 0
    for out, g in zip(outputs, groups, strict=True):
        _check(out, len(g))
        passed += len(g)
    assert passed == 58
