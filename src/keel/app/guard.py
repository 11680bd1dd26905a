"""Hardening of ``keel serve``: what every request meets before the application sees it.

In order, before a byte of the body is read or parsed:

1. **Host check** (400): the ``Host`` header must name an allowed host (DNS rebinding, a
   forged virtual host). Default: the loopback names plus the bound address.
2. **Size limit** (413): a ``Content-Length`` above ``max_body_bytes`` is refused at once; a
   body without one (chunked) is counted as it streams and cut off at the limit.
3. **Authentication** (401/403): writes always need ``Authorization: Bearer <token>``; reads
   need it too when ``read_token_required`` (default: on when the service is bound beyond the
   loopback), except ``/health``. The comparison is constant-time.

Below the application, :func:`guarded_protocol` closes a connection whose request headers are
not complete within ``header_timeout_s`` (slowloris), and :func:`serve` runs uvicorn with it,
capped header size and keep-alive. Secrets never travel on the command line
(:func:`load_token` reads a file or the environment) and never reach a log or a printout
(:func:`mask_secrets`, :class:`SecretRedactor`).

Wiring (``keel serve`` in ``cli/live_cmd.py``)::

    settings = GuardSettings.for_bind(host, load_token(token_file), ...)
    serve(app_from_config(cfg, token=settings.token), host, port, settings)
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import re
import stat
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: environment variables the token is read from (the second is the config's own key)
TOKEN_ENV = ("KEEL_SERVICE_TOKEN", "KEEL_SERVICE__API_TOKEN")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: paths anyone may read, whatever the read-token setting
PUBLIC_PATHS = frozenset({"/health", "/ready"})  # probes (orchestrators carry no token)
#: POST endpoints that only compute an answer (read access suffices)
READ_POSTS = frozenset({"/api/cost-estimate"})
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SECRET_KEY = re.compile(r"(token|password|passwd|secret|api_key|apikey|credential)", re.I)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?=@)",
                           re.I)
MASK = "***"


def is_loopback(host: str) -> bool:
    """True when ``host`` (a bind address or name) only listens on this machine."""
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class GuardSettings:
    """What :class:`Guard` enforces.

    Attributes:
        token: the bearer token (None: writes are refused with 403, reads need none).
        read_token_required: reads (except ``/health``) need the token too.
        allowed_hosts: accepted ``Host`` names (no port); empty accepts any.
        max_body_bytes: largest request body, bytes.
        header_timeout_s: seconds a connection may take to send its request headers.
        max_header_bytes: largest request head (request line + headers), bytes.
    """

    token: str | None = None
    read_token_required: bool = False
    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = 1 << 20
    header_timeout_s: float = 10.0
    max_header_bytes: int = 16 * 1024

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < 16:
            raise ConfigError("the API token must be at least 16 characters",
                              field="service.api_token", value=MASK)
        if self.read_token_required and self.token is None:
            raise ConfigError("reads need a token but none is configured (set one in a file "
                              "or KEEL_SERVICE_TOKEN, or bind to localhost)",
                              field="service.api_token")
        if self.max_body_bytes < 1 or self.header_timeout_s <= 0 or self.max_header_bytes < 1024:
            raise ConfigError("max_body_bytes, header_timeout_s and max_header_bytes must be "
                              "positive (headers >= 1024)", field="max_body_bytes",
                              value=(self.max_body_bytes, self.header_timeout_s,
                                     self.max_header_bytes))

    @classmethod
    def for_bind(cls, host: str, token: str | None, *, read_token: bool | None = None,
                 allowed_hosts: Iterable[str] | None = None, **more: Any) -> GuardSettings:
        """Secure defaults for a service bound on ``host``: beyond the loopback, reads need the
        token; allowed hosts are the loopback names plus ``host`` (unless given)."""
        local = is_loopback(host)
        hosts = (tuple(allowed_hosts) if allowed_hosts is not None
                 else tuple(dict.fromkeys([*LOOPBACK_NAMES,
                                           *([host] if host not in ("0.0.0.0", "::") else [])])))
        return cls(token=token, read_token_required=(not local) if read_token is None
                   else read_token, allowed_hosts=hosts, **more)


class Guard:
    """ASGI middleware enforcing :class:`GuardSettings` before the wrapped application runs."""

    def __init__(self, app: ASGIApp, settings: GuardSettings) -> None:
        self.app, self.settings = app, settings
        self._allowed = frozenset(h.lower().strip("[]") for h in settings.allowed_hosts)
        self._token = None if settings.token is None else settings.token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for k, v in scope.get("headers", ()):
            headers.setdefault(k.lower(), v)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _respond(send, *refusal)
            return
        await self._limited(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Mapping[bytes, bytes]
                 ) -> tuple[int, str, dict[str, str]] | None:
        s = self.settings
        if self._allowed and _host_name(headers.get(b"host", b"")) not in self._allowed:
            return 400, "host not allowed", {}
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or len(length) > 18:
                return 400, "invalid Content-Length", {}
            if int(length) > s.max_body_bytes:
                return 413, f"request body above {s.max_body_bytes} bytes", {}
        method = str(scope.get("method", "GET")).upper()
        path = str(scope.get("path", "/"))
        is_read = method in _READ_METHODS or (method == "POST" and path in READ_POSTS)
        if is_read and (not s.read_token_required or path in PUBLIC_PATHS):
            return None
        if self._token is None:
            if is_read:
                return None
            return 403, "write endpoints are disabled: no API token configured", {}
        auth = headers.get(b"authorization", b"")
        challenge = {"WWW-Authenticate": "Bearer"}
        if not auth.startswith(b"Bearer "):
            return 401, "missing bearer token", challenge
        if not hmac.compare_digest(auth[7:], self._token):
            return 401, "invalid bearer token", challenge
        return None

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.settings.max_body_bytes
        seen = 0
        too_large = False
        started = False

        async def counted() -> Message:
            nonlocal seen, too_large
            if too_large:
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    too_large = True
                    return {"type": "http.disconnect"}
            return msg

        async def guarded_send(msg: Message) -> None:
            nonlocal started
            if too_large:
                return  # the 413 below is the answer
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await _respond(send, 413, f"request body above {limit} bytes", {})


def _host_name(raw: bytes) -> str:
    host = raw.decode("latin-1").strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _respond(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    body = ('{"detail": "' + detail.replace('"', "'") + '"}').encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"connection", b"close")] + [(k.lower().encode(), v.encode())
                                         for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------- secrets


def load_token(token_file: str | os.PathLike[str] | None = None,
               env: Mapping[str, str] | None = None) -> str | None:
    """The API token from ``token_file`` (its first line; the file must not be readable by
    group or others) or else the first of :data:`TOKEN_ENV` that is set; None if neither.
    Never from the command line, where ``ps`` shows it."""
    environ = os.environ if env is None else env
    if token_file is not None:
        path = Path(token_file)
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the token file: {type(exc).__name__}",
                              field="token_file", value=str(path)[:200]) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError("the token file is readable by others (chmod 600 it)",
                              field="token_file", value=str(path)[:200])
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not token:
            raise ConfigError("the token file is empty", field="token_file",
                              value=str(path)[:200])
        return token
    for name in TOKEN_ENV:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def mask_secrets(obj: Any) -> Any:
    """A copy of ``obj`` (dicts, lists, strings) with secret values replaced by ``***``:
    values under a key naming a token, password, secret or key, and passwords in URLs."""
    if isinstance(obj, Mapping):
        return {k: (MASK if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "")
                    else mask_secrets(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(mask_secrets(v) for v in obj)
    if isinstance(obj, str):
        return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, obj)
    return obj


class SecretRedactor(logging.Filter):
    """A logging filter replacing ``secrets`` (and URL passwords) in every record's text."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = mask_secrets(text)
        for s in self.secrets:
            clean = clean.replace(s, MASK)
        if clean != text:
            record.msg, record.args = clean, None
        return True


# ---------------------------------------------------------------------- server


def guarded_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request head is not complete within
    ``header_timeout_s`` seconds of its first byte (or of the connection)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(header_timeout_s, self._expire)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expire(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE:
                self._arm()
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def uvicorn_config(app: ASGIApp, host: str, port: int, settings: GuardSettings,
                   log_level: str = "info") -> Any:
    """A ``uvicorn.Config`` serving ``Guard(app)`` with the header timeout and limits."""
    import uvicorn

    return uvicorn.Config(Guard(app, settings), host=host, port=port, log_level=log_level,
                          http=guarded_protocol(settings.header_timeout_s),
                          h11_max_incomplete_event_size=settings.max_header_bytes,
                          timeout_keep_alive=5, server_header=False, lifespan="off")


def serve(app: ASGIApp, host: str, port: int, settings: GuardSettings,
          log_level: str = "info") -> None:
    """Run the guarded service until interrupted; the token is redacted from every log."""
    import uvicorn

    redactor = SecretRedactor([settings.token])
    for name in ("", "keel", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(redactor)
    uvicorn.Server(uvicorn_config(app, host, port, settings, log_level)).run()
