"""`keel` commands of the live layer: ``keel run`` (the live decision loop) and ``keel serve``
(the service: dashboard, REST API, /metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from keel.cli.common import (
    ClockKind,
    Drain,
    Engine,
    LocalProtocol,
    LogLevel,
    Venue,
    configure_logging,
    console,
    friendly_errors,
)


def venue_readiness(broker: Any) -> str | None:
    """None when a venue session this process trades through is logged on (or the venue has
    no session to log on, e.g. REST), else the reason (``/ready`` of ``keel run --serve``)."""
    parts = [broker, getattr(broker, "primary", None), getattr(broker, "fallback", None)]
    sessions = [p for p in parts if p is not None and hasattr(p, "is_logged_on")]
    if not sessions or any(p.is_logged_on() for p in sessions):
        return None
    return "venue session not logged on"


def _embedded_service(cfg: Any, store: Any, desk: Any, market: Any, clock: Any,
                      port: int | None, lease: Any) -> Any:
    """The service inside the trading process, on the desk's own metrics."""
    from keel.app.service import BackgroundServer, create_app

    pipe = desk.cycle.pipeline
    checks = {"venue": lambda: venue_readiness(desk.broker),
              "lease": lambda: None if lease.held else "single-writer lease lost"}
    app = create_app(store, metrics=desk.metrics, token=_service_token(cfg),
                     market=lambda: market, clock=clock, limits=pipe.risk_limits(),
                     cost_model=pipe.cost_model, default_spread=pipe.default_spread,
                     confidence=cfg.risk.var_confidence, horizon_days=cfg.risk.horizon_days,
                     readiness=checks)
    server = BackgroundServer(app, cfg.service.host,
                              port if port is not None else cfg.service.port).start()
    print(f"SERVING {server.url}", flush=True)
    return server


def _service_token(cfg: Any) -> str | None:
    """The API token: ``service.token_file``, else the environment, else ``service.api_token``."""
    from keel.app.guard import load_token

    return load_token(cfg.service.token_file) or cfg.service.api_token


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""

    @app.command("run")
    def run(
        config: Path | None = typer.Option(None, "--config", "-c",
                                           help="TOML configuration (default: built-in)."),
        out_dir: Path | None = typer.Option(None, help="Output folder; the store goes there "
                                            "too unless KEEL_STORE__URL is set."),
        assets: int | None = typer.Option(None, help="Synthetic universe size."),
        days: int | None = typer.Option(None, help="Synthetic history length, sessions."),
        seed: int | None = typer.Option(None, help="Seed of every random generator."),
        venue_opt: Venue | None = typer.Option(
            None, "--venue", case_sensitive=False, help="local (exchange started in this "
            "process), fix (a running `keel exchange`, REST fallback) or rest (default: config "
            "venues.broker)."),
        protocol_opt: LocalProtocol = typer.Option(LocalProtocol.AUTO, "--local-protocol",
                                                   case_sensitive=False,
                                                   help="Front end of the local exchange: "
                                                        "auto (FIX when available), fix or "
                                                        "rest."),
        rest_url: str | None = typer.Option(None, help="REST venue URL (default: config)."),
        fix_host: str | None = typer.Option(None, help="FIX venue host (default: config)."),
        fix_port: int | None = typer.Option(None, help="FIX venue port (default: config)."),
        fix_settings: Path | None = typer.Option(None, "--fix-settings", help="QuickFIX-style "
                                                 "settings file whose initiator [SESSION] "
                                                 "is the FIX session (--venue fix; host and "
                                                 "port default to its SocketConnect*)."),
        engine: Engine | None = typer.Option(None, case_sensitive=False,
                                             help="Optimizer engine (default: config "
                                                  "optimize.engine)."),
        interval: float = typer.Option(1.0, help="Wall seconds between bars."),
        bar_minutes: float = typer.Option(5.0, help="Simulated minutes per bar (--clock sim)."),
        clock_opt: ClockKind = typer.Option(ClockKind.SIM, "--clock", case_sensitive=False,
                                            help="sim (simulated session time, "
                                       "resumed after a restart) or wall."),
        max_bars: int = typer.Option(0, help="Stop after this many bars (0: until stopped)."),
        horizon_minutes: float | None = typer.Option(None, help="Child schedule horizon, "
                                                     "minutes (default: config "
                                                     "execution.horizon_minutes)."),
        control: Path | None = typer.Option(None, help="Control file re-read every bar "
                                            "(default: <out-dir>/control.json)."),
        drain_opt: Drain = typer.Option(Drain.CANCEL, "--drain", case_sensitive=False,
                                        help="On SIGTERM: cancel working orders, or finish "
                                             "them (bounded by --drain-timeout)."),
        drain_timeout: float = typer.Option(5.0, help="Seconds allowed for the drain."),
        nav: float = typer.Option(1_000_000.0, help="Cash deposited into a new ledger."),
        serve: bool = typer.Option(False, "--serve/--no-serve", help="Also serve the "
                                   "dashboard, REST API and this process's /metrics."),
        serve_port: int | None = typer.Option(None, help="Port of --serve (default: config "
                                              "service.port)."),
        wait_lease: float = typer.Option(0.0, help="Seconds to wait for the store's "
                                         "single-writer lease when another keel run holds it "
                                         "(0: refuse at once, exit 2)."),
    ) -> None:
        """Run the live cycle: every bar refresh data, score, optimize, decide, trade when a
        trigger fires; SIGTERM drains (exit 0); a restart resumes from the store."""
        venue: str | None = venue_opt.value if venue_opt is not None else None
        local_protocol, clock_kind, drain = protocol_opt.value, clock_opt.value, drain_opt.value
        from collections import Counter
        from datetime import timedelta
        from decimal import Decimal

        from keel.app.cycle import CycleResult, DecisionCycle
        from keel.app.live import Desk, LiveOptions, StopFlag, run_live, session_start
        from keel.app.metrics import KeelMetrics
        from keel.app.pipeline import load_market
        from keel.app.venue import (
            LocalVenue,
            fix_unavailable,
            initiator_settings,
            remote_broker,
        )
        from keel.cli.demo_cmd import load_run_config
        from keel.cli.validate import number, validate_run_options
        from keel.clock import SimulatedClock, WallClock
        from keel.errors import ConfigError
        from keel.store.db import Store
        from keel.store.lease import LIVE_LEASE, Lease
        from keel.types import to_money, to_price

        with friendly_errors():
            validate_run_options(bar_minutes=bar_minutes, interval=interval,
                                 max_bars=max_bars, horizon_minutes=horizon_minutes,
                                 drain_timeout=drain_timeout, nav=nav, clock_kind=clock_kind,
                                 drain=drain, control=control, config=config,
                                 serve_port=serve_port)
            number(wait_lease, "wait_lease", lo=0, hi=86_400)
            if fix_settings is not None:
                if venue != "fix":
                    raise ConfigError("--fix-settings needs --venue fix", field="venue",
                                      value=venue)
                initiator_settings(fix_settings)  # a bad file is refused before anything starts
            stop = StopFlag()
            stop.install()
            cfg = load_run_config(config, out_dir, assets, days, seed, engine,
                                  execution={"horizon_minutes": horizon_minutes}
                                  if horizon_minutes else None)
            out = Path(cfg.general.out_dir)
            out.mkdir(parents=True, exist_ok=True)
            store = Store.from_url(cfg.store.url)
            store.upgrade()
            # one live loop per book: refuse (or wait) while another keel run holds the store
            lease = Lease(store, LIVE_LEASE, on_lost=stop.lost)
            if wait_lease:
                lease.acquire_waiting(wait_lease)
            else:
                lease.acquire()
            lease.start_heartbeat()
            try:  # a failure before the loop must not leave the lease held
                market = load_market(cfg)
                venue = venue or cfg.venues.broker.value
                bar = timedelta(minutes=bar_minutes)
                sim = (SimulatedClock(session_start(market, calendar=cfg.data.calendar))
                       if clock_kind == "sim" else None)
                clock = sim if sim is not None else WallClock()
                cycle = DecisionCycle(cfg)
                local = None
                if venue == "local":
                    proto = local_protocol
                    if proto == "auto":
                        proto = "rest" if fix_unavailable() else "fix"
                    local = LocalVenue.start(market, clock, protocol=proto, seed=cfg.general.seed)
                    broker = local.broker(fallback=True)
                else:
                    v = cfg.venues
                    from_file = fix_settings is not None
                    broker = remote_broker(venue, rest_url=rest_url or v.rest_url,
                                           fix_host=fix_host or (None if from_file else v.fix_host),
                                           fix_port=fix_port or (None if from_file else v.fix_port),
                                           sender=v.sender_comp_id, target=v.target_comp_id,
                                           fix_settings=fix_settings)
                desk = Desk(store, clock, broker, cycle, metrics=KeelMetrics(), venue_name=venue,
                            limits=cycle.pipeline.risk_limits())
                if sim is not None:
                    last = desk.last_cycle_time()
                    if last is not None:
                        sim.set(max(last + bar, sim.now()))
                recovered = desk.recover()
                desk.fund(to_money(nav))
                where = f" ({local.protocol} {local.url})" if local else ""
                started = clock.now().strftime("%Y-%m-%d %H:%M")
                print(f"RECOVERED loaded={recovered['loaded']} "
                      f"resubmitted={recovered['resubmitted']} "
                      f"ledger_caught_up={recovered['ledger_caught_up']}", flush=True)
                console.print(f"[green]keel run[/]: venue {venue}{where}, engine "
                              f"{cycle.engine.value}, clock {clock_kind} at {started}Z, "
                              f"recovered {recovered}")
                last_close = {s: to_price(p, Decimal("0.0001"), symbol=s)
                              for s, p in market.latest("prices").items()}

                def prices() -> dict[str, Decimal]:
                    return local.mids() if local is not None else last_close

                def step_market(now: object, dt: float) -> None:
                    if local is not None:
                        local.simulator.step(now, dt)

                def on_cycle(r: CycleResult) -> None:
                    trig = ",".join(r.codes("triggers")) or "-"
                    # one plain line per bar (tests and log scrapers read it)
                    print(f"CYCLE {r.now:%Y-%m-%dT%H:%M} engine={r.engine.value} "
                          f"triggers={trig} orders={len(r.orders)} working={desk.working()} "
                          f"fills={desk.stats.fills}", flush=True)

                control_path = control or out / "control.json"
                server = _embedded_service(cfg, store, desk, market, clock,
                                           serve_port, lease) if serve else None
                opts = LiveOptions(interval_s=interval, bar=bar, max_bars=max_bars,
                                   drain_finish=drain == "finish", drain_timeout_s=drain_timeout,
                                   control=control_path, calendar=cfg.data.calendar)
            except BaseException:
                lease.release()
                raise
            try:
                summary = run_live(desk, market, opts, prices=prices, step_market=step_market,
                                   sim_clock=sim, stop=stop, on_cycle=on_cycle)
            finally:
                lease.release()
                if server is not None:
                    server.stop()
                if local is not None:
                    local.stop()  # closes its brokers too
                else:
                    for b in (broker, getattr(broker, "primary", None),
                              getattr(broker, "fallback", None)):
                        close = getattr(b, "close", None)
                        if close is not None:
                            close()
            console.print(f"[green]stopped[/]: {summary}")
            routes = getattr(broker, "route_counts", Counter())
            if routes:
                print("ROUTES " + " ".join(f"{k}={n}" for k, n in sorted(routes.items())),
                      flush=True)
            print(f"STOPPED bars={summary['bars']} cancelled={summary['cancelled']} "
                  f"still_open={summary['still_open']}", flush=True)

    @app.command("serve")
    def serve(
        config: Path | None = typer.Option(None, "--config", "-c",
                                           help="TOML configuration (default: built-in)."),
        host: str | None = typer.Option(None, help="Bind address (default: config service.host)."),
        port: int | None = typer.Option(None, help="Bind port (default: config service.port)."),
        token_file: Path | None = typer.Option(
            None, help="File holding the bearer token (first line, chmod 600); default: "
                       "config service.token_file, else KEEL_SERVICE_TOKEN / "
                       "KEEL_SERVICE__API_TOKEN, else service.api_token. Never on the "
                       "command line, where ps shows it."),
        log_level: LogLevel = typer.Option(LogLevel.INFO, case_sensitive=False,
                                           help="uvicorn log level."),
    ) -> None:
        """Serve the dashboard, REST API and /metrics over the configured store (hardened:
        Host check, body limit, header timeout, token before parsing; reads need the token
        when bound beyond localhost)."""
        from keel.app import guard
        from keel.app.service import app_from_config
        from keel.cli.validate import port as valid_port
        from keel.config import load_config

        with friendly_errors():
            cfg = load_config(config)
            if port is not None:
                valid_port(port, "port")
            configure_logging(cfg.general.log_level)
            bind = host or cfg.service.host
            hosts = cfg.service.allowed_hosts
            token = guard.load_token(token_file or cfg.service.token_file) \
                or cfg.service.api_token
            settings = guard.GuardSettings.for_bind(
                bind, token, allowed_hosts=() if hosts == ["*"] else hosts)
            guard.serve(app_from_config(cfg, token=token), bind, port or cfg.service.port,
                        settings, log_level=log_level.value)
