"""`keel` commands of the venues layer."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from keel.cli.common import console, friendly_errors

fix_app = typer.Typer(help="FIX engine tools (keel.venues.fix).", no_args_is_help=True)


@fix_app.command("acceptance-server")
def acceptance_server(
    port: int = typer.Option(5001, "--port", help="TCP port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    spec_dir: Path | None = typer.Option(
        None, "--spec-dir",
        help="Folder with FIX42.xml / FIX44.xml (default: $KEEL_FIX_SPEC_DIR, then "
             "shared/fix/spec above the working directory)."),
) -> None:
    """Serve QuickFIX's acceptance-test sessions (ISLD<->TW42 FIX.4.2, ISLD<->TW44 FIX.4.4).

    Run the suite against it with
    ``run_acceptance.py 127.0.0.1 PORT shared/fix/acceptance/fix42/*.def``.
    """
    import asyncio

    from keel.venues.fix.acceptance import acceptance_sessions, serve_acceptance

    with friendly_errors():
        acceptance_sessions(spec_dir)  # fail fast with a clear error if the spec is missing
        console.print(f"keel FIX acceptance server on {host}:{port} (ISLD; TW42, TW44)")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_acceptance(port, host, spec_dir))


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""
    app.add_typer(fix_app, name="fix")
