"""Logs as JSON lines off a terminal, text on one; extras and tracebacks kept."""

from __future__ import annotations

import io
import json
import logging

from keel.logs import JsonLineFormatter, wants_json


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_line_carries_message_extras_and_traceback() -> None:
    log = logging.getLogger("keel.test.logs")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    log.addHandler(handler)
    try:
        try:
            raise ValueError("bad value")
        except ValueError:
            log.error("failed %s", "x", exc_info=True, extra={"error_id": "abc123"})
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1                      # one record, one line, traceback included
    rec = json.loads(lines[0])
    assert rec["message"] == "failed x" and rec["level"] == "ERROR"
    assert rec["logger"] == "keel.test.logs" and rec["error_id"] == "abc123"
    assert "ValueError: bad value" in rec["exc"] and rec["time"].endswith("+00:00")


def test_json_only_off_a_terminal() -> None:
    assert wants_json(io.StringIO()) is True
    assert wants_json(_Tty()) is False


def test_extras_never_break_the_json_or_the_fixed_keys() -> None:
    log = logging.getLogger("keel.test.logs2")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    log.addHandler(handler)
    try:
        log.warning("odd extras", extra={"ratio": float("nan"), "level": "OVERRIDE"})
    finally:
        log.removeHandler(handler)
    rec = json.loads(stream.getvalue())
    assert "NaN" not in stream.getvalue()        # collectors reject bare NaN tokens
    assert rec["level"] == "WARNING" and rec["ratio"] is None
