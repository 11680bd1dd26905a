"""`keel` commands of the live layer."""

from __future__ import annotations

from pathlib import Path

import typer

from keel.cli.common import friendly_errors


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""

    @app.command("serve")
    def serve(
        config: Path | None = typer.Option(None, "--config", "-c",
                                           help="TOML configuration (default: built-in)."),
        host: str | None = typer.Option(None, help="Bind address (default: config service.host)."),
        port: int | None = typer.Option(None, help="Bind port (default: config service.port)."),
        token: str | None = typer.Option(
            None, help="Bearer token for write endpoints (default: config "
                       "service.api_token or KEEL_SERVICE__API_TOKEN; none disables writes)."),
        control: Path | None = typer.Option(
            None, help="Control file of `keel run` that control requests are merged into "
                       "(default: <out_dir>/control.json)."),
        log_level: str = typer.Option("info", help="uvicorn log level."),
    ) -> None:
        """Serve the dashboard, REST API and /metrics over the configured store."""
        import uvicorn

        from keel.app.service import app_from_config
        from keel.config import load_config

        with friendly_errors():
            cfg = load_config(config)
            app = app_from_config(cfg, token=token, control_file=control)
            uvicorn.run(app, host=host or cfg.service.host, port=port or cfg.service.port,
                        log_level=log_level)
