"""`keel exchange`: run the simulated exchange behind a FIX acceptor and a REST API."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import typer

from keel.cli.common import console, friendly_errors
from keel.clock import Clock


def _clients(specs: list[str]) -> dict[str, str]:
    from keel.errors import ConfigError
    from keel.types import check_text

    out = {}
    for spec in specs:
        comp_id, sep, account = (p.strip() for p in spec.partition("="))
        if not sep or not comp_id or not account:
            raise ConfigError("expected COMPID=ACCOUNT", field="client", value=spec[:64])
        check_text(comp_id, "client")
        check_text(account, "client")
        if comp_id in out:
            raise ConfigError("duplicated client CompID", field="client", value=comp_id)
        out[comp_id] = account
    return out


def register(app: typer.Typer) -> None:
    """Add ``keel exchange`` to ``app``."""

    @app.command("exchange")
    def exchange(
        port: int | None = typer.Option(None, help="Port of the FIX acceptor (0: any free "
                                        "port; default: SocketAcceptPort of --fix-settings, "
                                        "else 9878)."),
        rest_port: int = typer.Option(9880, help="Port of the Alpaca-style REST order API "
                                      "(-1: no REST API)."),
        host: str = typer.Option("127.0.0.1", help="Bind address."),
        symbols: str = typer.Option("AAPL,MSFT,SPY", help="Comma-separated tradable symbols "
                                    "(synthetic liquidity)."),
        price: float = typer.Option(100.0, help="Starting mid of every symbol, currency."),
        daily_vol: float = typer.Option(0.02, help="Daily volatility of the mids (fraction)."),
        lobster: Path | None = typer.Option(None, help="Folder with one LOBSTER day "
                                            "(message + orderbook files): replay its book "
                                            "instead of synthetic liquidity."),
        speed: float = typer.Option(1.0, help="LOBSTER replay: historical seconds per wall "
                                    "second."),
        sender_comp_id: str = typer.Option("KEELX", help="The exchange's FIX CompID."),
        client: list[str] = typer.Option(["KEEL=default"], help="FIX client COMPID=ACCOUNT "
                                         "(repeatable)."),
        begin_string: list[str] = typer.Option(["FIX.4.2", "FIX.4.4"],
                                               help="FIX versions served (repeatable)."),
        store_dir: Path | None = typer.Option(None, help="Folder of the FIX file stores "
                                              "(sequence numbers survive a restart); "
                                              "default: memory."),
        spec_dir: Path | None = typer.Option(None, help="Folder of FIX42.xml / FIX44.xml "
                                             "(default: $KEEL_FIX_SPEC_DIR, else the copies "
                                             "keel ships)."),
        fix_settings: Path | None = typer.Option(None, "--fix-settings", help="QuickFIX-style "
                                                 "settings file: its acceptor [SESSION]s "
                                                 "replace --sender-comp-id / --client / "
                                                 "--begin-string sessions (docs/fix.md)."),
        api_key: str = typer.Option("keel", help="APCA-API-KEY-ID of the REST API (account "
                                    "'default')."),
        api_secret: str | None = typer.Option(None, envvar="KEEL_EXCHANGE_API_SECRET",
                                              help="APCA-API-SECRET-KEY the REST API checks "
                                              "(default: keys only)."),
        step_seconds: float = typer.Option(1.0, help="Wall seconds between price steps."),
        seed: int = typer.Option(7, help="Random seed of the synthetic price process."),
        duration: float = typer.Option(0.0, help="Stop after this many seconds (0: run until "
                                       "interrupted)."),
    ) -> None:
        """Serve a simulated exchange: price-time matching, synthetic or LOBSTER liquidity,
        orders over FIX (4.2/4.4) and REST, until Ctrl-C."""
        from keel.clock import WallClock
        from keel.venues.exchange.core import SimulatedExchange
        from keel.venues.exchange.fix_front import FixExchangeServer
        from keel.venues.exchange.rest_api import create_rest_app
        from keel.venues.exchange.server import BackgroundServer
        from keel.venues.fix.settings import accept_port, load_settings, only

        with friendly_errors():
            from keel.cli.validate import number
            from keel.cli.validate import port as check_port
            from keel.types import check_text

            # validate first: nothing binds or starts before every option is checked
            settings = None if fix_settings is None else only(load_settings(fix_settings),
                                                              initiator=False)
            if port is None:
                port = 9878 if settings is None else accept_port(settings,
                                                                 source=str(fix_settings))
            if settings is not None and store_dir is not None:
                from keel.errors import ConfigError

                raise ConfigError("--store-dir and --fix-settings both say where the FIX "
                                  "stores go; use FileStorePath in the settings file",
                                  field="store_dir", value=str(store_dir))
            check_port(port, "port")
            if rest_port != -1:
                check_port(rest_port, "rest_port")
            number(price, "price", lo=0, hi=1e9, lo_open=True)
            number(daily_vol, "daily_vol", lo=0, hi=1)
            number(speed, "speed", lo=0, hi=1e6, lo_open=True)
            number(step_seconds, "step_seconds", lo=0, hi=3600, lo_open=True)
            number(duration, "duration", lo=0)
            check_text(sender_comp_id, "sender_comp_id")
            check_text(api_key, "api_key")
            if api_secret is not None:
                check_text(api_secret, "api_secret")
            clients = _clients(client)
            clock = WallClock()
            step = _liquidity(lobster, symbols, price, daily_vol, seed, speed, clock)
            ex: SimulatedExchange = step.exchange
            fix = FixExchangeServer(ex, host=host, port=port, sender_comp_id=sender_comp_id,
                                    clients=clients, begin_string=begin_string,
                                    store_dir=store_dir, spec_dir=spec_dir,
                                    clock=clock, settings=settings).start()
            rest = None
            if rest_port >= 0:
                secrets = None if api_secret is None else {api_key: api_secret}
                rest = BackgroundServer(create_rest_app(ex, clock, {api_key: "default"},
                                                        secrets),
                                        host, rest_port or None).start()
            served = (f"as {sender_comp_id} ({', '.join(begin_string)}; clients "
                      f"{', '.join(client)})" if settings is None else
                      "sessions " + ", ".join(s.session_id for s in fix.sessions))
            console.print(f"keel exchange: FIX on {host}:{fix.port} {served}",
                          soft_wrap=True, highlight=False)
            if rest is not None:
                console.print(f"keel exchange: REST on {rest.url} (key {api_key[:2]}***)",
                              soft_wrap=True, highlight=False)
                console.print(f"keel exchange: Alpaca API on {rest.url}/alpaca (stream "
                              f"ws{rest.url[4:]}/alpaca/stream)", soft_wrap=True,
                              highlight=False)
            console.print(f"keel exchange: ready, liquidity {step.describe()}",
                          soft_wrap=True, highlight=False)
            started = time.monotonic()
            stop = threading.Event()
            why = ["duration elapsed"]

            def on_term(signum: int, frame: object) -> None:
                why[0] = signal.Signals(signum).name
                stop.set()

            previous = _install(signal.SIGTERM, on_term)
            try:
                while not duration or time.monotonic() - started < duration:
                    if stop.wait(step_seconds):
                        break
                    step(step_seconds)
            except KeyboardInterrupt:
                why[0] = "SIGINT"
            finally:
                # a clean stop on Ctrl-C and on SIGTERM (docker stop, systemd, kubectl): FIX
                # sessions logged out, stores closed, REST stopped
                fix.stop()
                if rest is not None:
                    rest.stop()
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)
            console.print(f"keel exchange: stopped ({why[0]})", highlight=False)


def _install(signum: signal.Signals, handler: Any) -> Any:
    """Install ``handler`` for ``signum``; the previous handler, or None off the main thread
    (where Python cannot install one)."""
    try:
        return signal.signal(signum, handler)
    except ValueError:
        return None


class _Synthetic:
    def __init__(self, names: list[str], price: float, daily_vol: float, seed: int,
                 clock: Clock) -> None:
        from keel.venues.exchange.core import SimulatedExchange
        from keel.venues.exchange.simulator import MarketSimulator

        self.clock = clock
        self.exchange = SimulatedExchange(names)
        self.sim = MarketSimulator(self.exchange, {s: price for s in names}, daily_vol,
                                   seed=seed)
        self.sim.quote_all(clock.now())

    def describe(self) -> str:
        return f"synthetic ({', '.join(self.sim.symbols)})"

    def __call__(self, dt: float) -> None:
        self.sim.step(self.clock.now(), dt)


class _Replay:
    def __init__(self, folder: Path, speed: float) -> None:
        from keel.data.lobster import find_lobster_pair, load_lobster
        from keel.errors import ValidationError
        from keel.venues.exchange.core import SimulatedExchange
        from keel.venues.exchange.replay import LobsterReplay

        if speed <= 0:
            raise ValidationError("speed must be positive", field="speed", value=speed)
        day = load_lobster(*find_lobster_pair(folder))
        self.exchange = SimulatedExchange([day.symbol])
        self.replay = LobsterReplay(self.exchange, day)
        self.replay.seed(0)
        self.speed = speed
        self.elapsed = 0.0

    def describe(self) -> str:
        r = self.replay
        return (f"LOBSTER replay of {r.symbol} {r.day.date.date()} ({len(r)} snapshots, "
                f"{r.levels} levels, x{self.speed})")

    def __call__(self, dt: float) -> None:
        import pandas as pd

        self.elapsed += dt * self.speed
        self.replay.step_to(self.replay.timestamps[0] + pd.Timedelta(seconds=self.elapsed))


def _liquidity(lobster: Path | None, symbols: str, price: float, daily_vol: float, seed: int,
               speed: float, clock: Clock) -> _Synthetic | _Replay:
    if lobster is not None:
        return _Replay(lobster, speed)
    from keel.cli.validate import normalise_symbols

    names = normalise_symbols([s for s in symbols.split(",") if s.strip()], field="symbols")
    if not names:
        from keel.errors import ValidationError

        raise ValidationError("at least one symbol is needed", field="symbols")
    return _Synthetic(names, price, daily_vol, seed, clock)
