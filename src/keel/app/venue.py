"""Venues for the demo and the live loop: a simulated exchange in this process, brokers to it
or to a running ``keel exchange``.

A :class:`LocalVenue` is a simulated exchange started in this process (matching engine,
liquidity provider, price process) behind its network front ends on localhost (FIX acceptor
and REST API), so orders really cross a socket.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import ConfigError
from keel.types import to_price

if TYPE_CHECKING:
    from keel.clock import Clock
    from keel.data.market import MarketData
    from keel.venues.base import Broker
    from keel.venues.fix.broker import FixBroker
    from keel.venues.fix.settings import FixSessionSettings

#: REST API key of the local venue, and the exchange account it maps to
API_KEY = "keel"
ACCOUNT = "default"


@dataclass
class LocalVenue:
    """A simulated exchange running in this process behind a localhost front end.

    Attributes:
        exchange: the :class:`~keel.venues.exchange.core.SimulatedExchange`.
        simulator: the price process + liquidity provider stepping the mids.
        protocol: ``fix`` or ``rest`` (the front end the broker talks to).
        url / port: where the broker's front end listens (FIX when started with FIX).
    """

    exchange: Any
    simulator: Any
    protocol: str
    port: int
    url: str
    _server: Any = None
    _fix: Any = None
    _brokers: list[Any] = field(default_factory=list)

    @classmethod
    def start(cls, market: MarketData, clock: Clock, *, protocol: str = "rest",
              seed: int = 7, starting_cash: Decimal | int = 10_000_000) -> LocalVenue:
        """Exchange on the market's symbols, mids at the last close, daily vol of each name.

        ``protocol="fix"`` starts the FIX acceptor *and* the REST API (the fallback route);
        ``"rest"`` only the REST API.
        """
        from keel.venues.exchange.core import SimulatedExchange
        from keel.venues.exchange.rest_api import create_rest_app
        from keel.venues.exchange.server import BackgroundServer
        from keel.venues.exchange.simulator import MarketSimulator

        if protocol not in ("fix", "rest"):
            raise ConfigError("unknown venue protocol", field="protocol", value=protocol)
        last = market.latest("prices")
        vol = market.latest("volatility").fillna(0.02)
        ex = SimulatedExchange(list(market.symbols), starting_cash=starting_cash)
        sim = MarketSimulator(ex, last.to_dict(), vol.to_dict(), seed=seed)
        sim.quote_all(clock.now())
        rest = BackgroundServer(create_rest_app(ex, clock, {API_KEY: ACCOUNT})).start()
        venue = cls(ex, sim, protocol, rest.port, rest.url, rest)
        if protocol == "fix":
            try:
                venue._fix, venue.port, venue.url = _start_fix(ex, clock)
            except BaseException:
                rest.stop()
                raise
        return venue

    def broker(self, *, fallback: bool = False) -> Broker:
        """A broker on this venue: FIX (with ``fallback``: routed, REST when FIX is down) or
        REST, as the venue was started. The venue closes it at :meth:`stop`."""
        from keel.venues.rest import RestBroker

        rest_url = self._server.url
        b: Broker
        if self.protocol == "fix":
            fix = fix_broker("127.0.0.1", self.port)
            self._brokers.append(fix)
            if fallback:
                from keel.venues.routing import RoutingBroker

                rest = RestBroker(rest_url, API_KEY)
                self._brokers.append(rest)
                b = RoutingBroker(fix, rest)
            else:
                b = fix
        else:
            b = RestBroker(rest_url, API_KEY)
            self._brokers.append(b)
        return b

    def fix_sessions(self) -> list[str]:
        """FIX sessions logged on at the exchange now (empty for the REST front end)."""
        logged = getattr(self._fix, "logged_on", None)
        return list(logged()) if callable(logged) else []

    def mids(self) -> dict[str, Decimal]:
        """Current reference mid of every symbol (currency/share)."""
        return {s: to_price(m, Decimal("0.0001"), symbol=s)
                for s, m in zip(self.simulator.symbols, self.simulator.mids, strict=True)}

    def stop(self) -> None:
        """Close the brokers made by :meth:`broker`, then stop the front ends."""
        for b in self._brokers:
            close = getattr(b, "close", None)
            if close is not None:
                close()
        self._brokers.clear()
        for server in (self._fix, self._server):
            if server is not None:
                server.stop()
        self._fix = self._server = None


def fix_spec_dir() -> Path | None:
    """The FIX data dictionaries' folder as :func:`keel.venues.fix.dictionary.find_spec_dir`
    finds it (keel ships QuickFIX's as the last resort); None only when a configured
    ``$KEEL_FIX_SPEC_DIR`` holds none."""
    from keel.errors import KeelError
    from keel.venues.fix.dictionary import find_spec_dir

    try:
        return find_spec_dir()
    except KeelError:
        return None


def fix_unavailable() -> str | None:
    """Why the in-process exchange cannot speak FIX here (None: it can)."""
    if fix_spec_dir() is None:
        return "FIX data dictionaries not found in $KEEL_FIX_SPEC_DIR"
    return None


def _start_fix(exchange: Any, clock: Clock) -> tuple[Any, int, str]:
    from keel.venues.exchange.fix_front import FixExchangeServer

    spec = fix_spec_dir()
    server = FixExchangeServer(exchange, host="127.0.0.1", port=0, clock=clock,
                               spec_dir=spec)
    server.start()
    return server, int(server.port), f"fix://127.0.0.1:{server.port}"


def fix_broker(host: str, port: int, *, sender: str = "KEEL", target: str = "KEELX",
               begin_string: str = "FIX.4.4",
               settings: FixSessionSettings | None = None) -> FixBroker:
    """A logged-on :class:`~keel.venues.fix.FixBroker` (sequence numbers reset at logon), or
    one whose session, store and dictionary come from a settings file's initiator
    ``[SESSION]`` (``settings``; ``sender`` / ``target`` / ``begin_string`` then unused)."""
    from keel.venues.fix.broker import FixBroker
    from keel.venues.fix.config import SessionConfig

    spec = fix_spec_dir()
    if settings is not None:
        extra: dict[str, Any] = ({} if settings.reconnect_interval is None else
                                 {"reconnect_interval": settings.reconnect_interval})
        broker = FixBroker(settings.config, host, port, dictionary=settings.dictionary(spec),
                           store=settings.store(), **extra)
    else:
        cfg = SessionConfig(begin_string, sender, target, initiator=True, reset_on_logon=True,
                            heartbeat_interval=30)
        broker = FixBroker(cfg, host, port, spec_dir=None if spec is None else str(spec))
    try:
        return broker.start(wait_logon=10.0)
    except BaseException:
        broker.close()
        raise


def initiator_settings(path: str | os.PathLike[str]) -> FixSessionSettings:
    """The one initiator ``[SESSION]`` of the QuickFIX-style settings file at ``path``."""
    from keel.venues.fix.settings import load_settings, only

    found = only(load_settings(path), initiator=True, source=str(path))
    if len(found) != 1:
        raise ConfigError("expected exactly one [SESSION] with ConnectionType=initiator",
                          field="ConnectionType", value=[s.section for s in found],
                          file=str(path))
    return found[0]


def remote_broker(kind: str, *, rest_url: str, fix_host: str | None, fix_port: int | None,
                  sender: str = "KEEL", target: str = "KEELX",
                  fix_settings: str | os.PathLike[str] | None = None) -> Broker:
    """A broker to a running ``keel exchange``: ``rest``, or ``fix`` with REST fallback.

    With ``fix_settings`` (a QuickFIX-style settings file) the FIX session is its initiator
    ``[SESSION]``: host and port default to its SocketConnectHost / SocketConnectPort.
    """
    from keel.venues.rest import RestBroker

    if kind == "rest":
        return RestBroker(rest_url, API_KEY)
    if kind == "fix":
        from keel.venues.routing import RoutingBroker

        settings = None if fix_settings is None else initiator_settings(fix_settings)
        host = fix_host or (settings.connect_host if settings is not None else None)
        port = fix_port or (settings.connect_port if settings is not None else None)
        if not host or not port:
            raise ConfigError("FIX venue host and port are needed", field="fix_host",
                              value=f"{host}:{port}")
        fix = fix_broker(host, port, sender=sender, target=target, settings=settings)
        return RoutingBroker(fix, RestBroker(rest_url, API_KEY))
    raise ConfigError("unknown venue", field="venue", value=kind)
