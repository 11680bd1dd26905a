"""The ``keel`` command line. Each layer registers its commands from its own module."""

from __future__ import annotations

import typer

from keel import __version__
from keel.cli import (
    accounts_cmd,
    attribution_cmd,
    backtest_cmd,
    config_cmd,
    costs_cmd,
    data_cmd,
    db_cmd,
    demo_cmd,
    exchange_cmd,
    execution_cmd,
    live_cmd,
    optimize_cmd,
    portfolio_cmd,
    risk_cmd,
    venues_cmd,
)

app = typer.Typer(
    name="keel",
    help="keel: signals to a risk-controlled portfolio, and that portfolio to orders executed "
    "at the lowest cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"keel {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """keel command line."""


for _module in (demo_cmd, config_cmd, data_cmd, db_cmd, risk_cmd, costs_cmd, optimize_cmd,
                portfolio_cmd, execution_cmd, venues_cmd, exchange_cmd, backtest_cmd, live_cmd,
                accounts_cmd):
    _module.register(app)
attribution_cmd.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
