"""``keel serve`` hardening (keel.app.guard) against a real uvicorn server on a socket:
oversized bodies refused before auth and before being read, slow headers cut off, Host
checked, reads behind the token when bound beyond localhost, the token never from argv and
secrets masked."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from keel.app import control
from keel.app.guard import (
    GuardSettings,
    SecretRedactor,
    is_loopback,
    load_token,
    mask_secrets,
    uvicorn_config,
)
from keel.app.service import create_app
from keel.clock import SimulatedClock
from keel.errors import ConfigError
from keel.store.db import Store
from keel.types import utc
from keel.venues.exchange.server import free_port

pytestmark = pytest.mark.service
TOKEN = "t" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    store = Store.from_url(f"sqlite:///{tmp_path_factory.mktemp('guard') / 'k.db'}")
    store.create_all()
    settings = GuardSettings(token=TOKEN, read_token_required=True,
                             allowed_hosts=("127.0.0.1", "localhost"), max_body_bytes=4096,
                             header_timeout_s=1.0)
    app = create_app(store, token=TOKEN, clock=SimulatedClock(utc(2024, 1, 2)))
    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, settings, "warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and t.is_alive()
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", port, store
    server.should_exit = True
    t.join(10)


def _raw(port: int, data: bytes, wait: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_oversized_body_is_413_before_auth_and_unread(served):
    url, port, store = served
    # announces 200 MB, sends none of it, no token: answered at once, nothing read
    t0 = time.monotonic()
    head = (b"POST /api/control/kill-switch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 200000000\r\n\r\n")
    out = _raw(port, head)
    assert out.startswith(b"HTTP/1.1 413") and time.monotonic() - t0 < 4
    # chunked (no Content-Length), with the token: counted while streaming and cut off
    def body():
        for _ in range(100):
            yield b"x" * 1024
    r = httpx.post(url + "/api/control/kill-switch", content=body(), headers=AUTH)
    assert r.status_code == 413
    assert control.read_control(store).kill_switch is False


def test_auth_comes_before_parsing(served):
    url, _, _ = served
    r = httpx.post(url + "/api/control/kill-switch", content=b"{not json", headers={
        "Content-Type": "application/json"})
    assert r.status_code == 401  # not 422: the body was never parsed
    r = httpx.post(url + "/api/control/kill-switch", content=b"{not json", headers={
        "Content-Type": "application/json", **AUTH})
    assert r.status_code == 422


def test_reads_need_the_token_except_health(served):
    url, _, _ = served
    assert httpx.get(url + "/health").status_code in (200, 503)
    for path in ("/api/orders", "/api/portfolio", "/metrics"):
        assert httpx.get(url + path).status_code == 401
        assert httpx.get(url + path, headers={"Authorization": "Bearer " + "x" * 24}
                         ).status_code == 401
    assert httpx.get(url + "/api/orders", headers=AUTH).status_code == 200


def test_host_header_is_checked(served):
    url, _, _ = served
    r = httpx.get(url + "/api/orders", headers={"Host": "evil.example", **AUTH})
    assert r.status_code == 400 and "host" in r.json()["detail"]
    assert httpx.get(url + "/api/orders", headers={"Host": "localhost:1", **AUTH}
                     ).status_code == 200


def test_partial_headers_are_cut_off(served):
    _, port, _ = served
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        data = s.recv(1024)  # blocks until the server closes the connection
    assert data == b"" and time.monotonic() - t0 < 8  # closed after ~1 s, not held open


def test_secure_defaults_for_the_bind_address():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    local = GuardSettings.for_bind("127.0.0.1", None)
    assert not local.read_token_required and "localhost" in local.allowed_hosts
    wide = GuardSettings.for_bind("0.0.0.0", TOKEN)
    assert wide.read_token_required
    with pytest.raises(ConfigError):  # beyond localhost without a token: refused at start
        GuardSettings.for_bind("0.0.0.0", None)
    with pytest.raises(ConfigError):
        GuardSettings(token="short")


def test_token_from_a_private_file_or_the_environment(tmp_path: Path):
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    os.chmod(f, 0o600)
    assert load_token(f, env={}) == TOKEN
    os.chmod(f, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_token(f, env={})
    assert load_token(None, env={"KEEL_SERVICE_TOKEN": " abc "}) == "abc"
    assert load_token(None, env={}) is None


def test_secrets_are_masked():
    cfg = {"service": {"api_token": TOKEN, "host": "0.0.0.0"},
           "store": {"url": "postgresql://keel:hunter2@db:5432/keel"},
           "venue": {"api_key": "k", "symbols": ["A"]}}
    masked = mask_secrets(cfg)
    assert masked["service"] == {"api_token": "***", "host": "0.0.0.0"}
    assert masked["store"]["url"] == "postgresql://keel:***@db:5432/keel"
    assert masked["venue"]["api_key"] == "***" and cfg["service"]["api_token"] == TOKEN
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "token is %s at %s",
                            (TOKEN, "postgresql://u:pw@h/db"), None)
    SecretRedactor([TOKEN]).filter(rec)
    assert TOKEN not in rec.getMessage() and "pw@" not in rec.getMessage()
