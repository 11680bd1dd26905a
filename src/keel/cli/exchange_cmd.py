"""`keel exchange`: run the simulated exchange (REST front end; FIX when available)."""

from __future__ import annotations

import time

import typer

from keel.cli.common import console, friendly_errors


def register(app: typer.Typer) -> None:
    """Add ``keel exchange`` to ``app``."""

    @app.command("exchange")
    def exchange(
        rest_port: int = typer.Option(9880, help="Port of the Alpaca-style REST order API."),
        host: str = typer.Option("127.0.0.1", help="Bind address."),
        symbols: str = typer.Option("AAPL,MSFT,SPY", help="Comma-separated tradable symbols."),
        price: float = typer.Option(100.0, help="Starting mid of every symbol, currency."),
        daily_vol: float = typer.Option(0.02, help="Daily volatility of the mids (fraction)."),
        api_key: str = typer.Option("keel", help="APCA-API-KEY-ID accepted by the REST API."),
        step_seconds: float = typer.Option(1.0, help="Wall seconds between price steps."),
        seed: int = typer.Option(7, help="Random seed of the price process."),
        duration: float = typer.Option(0.0, help="Stop after this many seconds (0: run until "
                                       "interrupted)."),
    ) -> None:
        """Serve a simulated exchange: price-time matching, synthetic liquidity, REST orders."""
        from keel.clock import WallClock
        from keel.venues.exchange.core import SimulatedExchange
        from keel.venues.exchange.rest_api import create_rest_app
        from keel.venues.exchange.server import BackgroundServer
        from keel.venues.exchange.simulator import MarketSimulator

        with friendly_errors():
            names = [s.strip() for s in symbols.split(",") if s.strip()]
            clock = WallClock()
            ex = SimulatedExchange(names)
            sim = MarketSimulator(ex, {s: price for s in names}, daily_vol, seed=seed)
            sim.quote_all(clock.now())
            server = BackgroundServer(create_rest_app(ex, clock, {api_key: "default"}), host,
                                      rest_port).start()
            console.print(f"[green]keel exchange[/]: REST on {server.url} "
                          f"(key {api_key!r}), symbols {', '.join(names)}")
            started = time.monotonic()
            try:
                while not duration or time.monotonic() - started < duration:
                    time.sleep(step_seconds)
                    sim.step(clock.now(), step_seconds)
            except KeyboardInterrupt:
                pass
            finally:
                server.stop()
