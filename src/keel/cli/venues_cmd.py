"""`keel` commands of the venues layer."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from keel.cli.common import console, friendly_errors

fix_app = typer.Typer(help="FIX engine tools (keel.venues.fix).", no_args_is_help=True)


@fix_app.command("acceptance-server")
def acceptance_server(
    port: int | None = typer.Option(None, "--port", help="TCP port to listen on (default: "
                                    "SocketAcceptPort of --fix-settings, else 5001)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    spec_dir: Path | None = typer.Option(
        None, "--spec-dir",
        help="Folder with FIX42.xml / FIX44.xml (default: $KEEL_FIX_SPEC_DIR, else the "
             "copies keel ships)."),
    fix_settings: Path | None = typer.Option(
        None, "--fix-settings",
        help="QuickFIX-style settings file: serve its acceptor [SESSION]s instead of the "
             "reference ones (see docs/fix.md)."),
) -> None:
    """Serve QuickFIX's acceptance-test sessions (ISLD<->TW42 FIX.4.2, ISLD<->TW44 FIX.4.4).

    Run the suite against it with
    ``run_acceptance.py 127.0.0.1 PORT shared/fix/acceptance/fix42/*.def``.
    """
    import asyncio

    from keel.venues.fix.acceptance import acceptance_sessions, serve_acceptance
    from keel.venues.fix.settings import accept_port, load_settings, only

    with friendly_errors():
        settings = None if fix_settings is None else only(load_settings(fix_settings),
                                                          initiator=False)
        if port is None:
            port = 5001 if settings is None else accept_port(settings, source=str(fix_settings))
        # fail fast with a clear error if the spec or a setting is wrong
        sessions = acceptance_sessions(spec_dir, settings=settings)
        names = ", ".join(s.session_id for s in sessions)
        console.print(f"keel FIX acceptance server on {host}:{port} ({names})",
                      soft_wrap=True, highlight=False)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_acceptance(port, host, spec_dir, settings=settings))


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""
    app.add_typer(fix_app, name="fix")
