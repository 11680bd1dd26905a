"""Shared set-up of the alpaca-py end-to-end tests: skip without the SDK, fail in CI."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from keel.venues.exchange.alpaca_api import AlpacaFront
from keel.venues.exchange.server import BackgroundServer


def require_alpaca() -> None:
    """Skip the calling module (with a notice) when alpaca-py is missing, unless the test
    extras say it is installed (CI: KEEL_TEST_EXTRAS has ``alpaca``), then fail."""
    try:
        import alpaca  # noqa: F401
    except ImportError:
        if "alpaca" in os.environ.get("KEEL_TEST_EXTRAS", "").split(","):
            pytest.fail("alpaca-py is not installed but KEEL_TEST_EXTRAS names the "
                        "'alpaca' extra", pytrace=False)
        pytest.skip("alpaca-py not installed (pip install 'keel[alpaca]'): AlpacaBroker "
                    "end-to-end tests skipped", allow_module_level=True)


def front_of(server: BackgroundServer) -> AlpacaFront:
    """The Alpaca front end mounted at ``/alpaca`` in keel's REST app."""
    app = server._server.config.app
    for route in app.routes:
        if getattr(route, "path", None) == "/alpaca":
            front: AlpacaFront = route.app.state.front
            return front
    raise AssertionError("no /alpaca mount")


def until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)
