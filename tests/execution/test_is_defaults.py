"""IS defaults: urgency is the knob, volatility from the recent sessions only (issue 14.4)."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.clock import SimulatedClock
from keel.costs.almgren_chriss import ac_kappa
from keel.errors import DataError
from keel.execution.bars import load_minute_bars
from keel.execution.schedule import (
    DEFAULT_URGENCY,
    ExecutionContext,
    ImplementationShortfall,
    ScheduleConfig,
    make_scheduler,
    session_volatility,
    urgency_risk_aversion,
)
from keel.types import Order, Side, utc


def _parent(qty: int, symbol: str = "SPY") -> Order:
    return Order("p1", symbol, Side.BUY, Decimal(qty), utc(2023, 8, 4, 13, 30))


def test_session_volatility_is_the_realised_variance_of_the_last_sessions() -> None:
    idx = pd.DatetimeIndex(["2013-10-11 13:30", "2013-10-11 13:31", "2013-10-11 13:35",
                            "2023-08-03 13:30", "2023-08-03 13:31", "2023-08-03 19:59",
                            "2023-08-03 20:30"], tz="UTC")  # last bar after the close
    close = np.array([168.0, 169.0, 168.5, 450.0, 451.0, 449.0, 500.0])
    bars = pd.DataFrame({"close": close}, index=idx)
    last = np.sqrt(np.log(451 / 450) ** 2 + np.log(449 / 451) ** 2)
    assert session_volatility(bars) == pytest.approx(last)
    first = np.log(169 / 168) ** 2 + np.log(168.5 / 169) ** 2
    assert session_volatility(bars, 2) == pytest.approx(np.sqrt((first + last**2) / 2))
    with pytest.raises(DataError) as e:
        session_volatility(bars.iloc[[0, 3]])
    assert e.value.field == "bars"


def test_default_is_schedule_on_spy_bars_is_smooth_and_monotone(shared_data: Path) -> None:
    bars = load_minute_bars(shared_data / "intraday/lean_minute/spy")
    vol = session_volatility(bars)
    assert 0.001 < vol < 0.03  # a daily vol, not 0.667 from closes ten years apart
    ctx = ExecutionContext(price=float(bars["close"].iloc[-1]), adv_shares=1e8,
                           daily_volatility=vol, spread_bps=0.3)
    kids = make_scheduler("is", ScheduleConfig(n_slices=13)).schedule(
        _parent(100_000), ctx, SimulatedClock(utc(2023, 8, 4, 13, 30)))
    q = np.array([float(k.qty) for k in kids])
    assert len(q) == 13 and q.sum() == 100_000
    assert all(a >= b for a, b in itertools.pairwise(q))  # monotone
    assert q[0] / q[-1] < 2.0 and q.max() < 0.15 * 100_000  # smooth: no 99,999 / 1
    # u = 1: holdings sinh(u (1 - t)) / sinh(u), exactly (to the share)
    t = np.arange(1, 14) / 13
    x = 100_000 * np.sinh(DEFAULT_URGENCY * (1 - t)) / np.sinh(DEFAULT_URGENCY)
    np.testing.assert_allclose(100_000 - np.cumsum(q), x, atol=1.0)


def test_urgency_maps_to_an_exact_risk_aversion() -> None:
    total, n, sigma, eta, gamma = 1.0, 13, 2.5, 4e-8, 4e-9
    for u in (0.5, 1.0, 2.0, 5.0):
        lam = urgency_risk_aversion(u, total, n, sigma, eta, gamma)
        assert ac_kappa(sigma, eta, gamma, total / n, lam) * total == pytest.approx(u)
    # half-time share of the order: 1 - 1 / (2 cosh(u/2)), the documented reading of the knob
    clk = SimulatedClock(utc(2023, 8, 4, 13, 30))
    ctx = ExecutionContext(price=450.0, adv_shares=1e8, daily_volatility=0.01)
    for u, done in ((0.0, 0.5), (2.0, 1 - 1 / (2 * np.cosh(1.0)))):
        kids = ImplementationShortfall(urgency=u, config=ScheduleConfig(n_slices=390)).schedule(
            _parent(1_000_000), ctx, clk)
        half = sum(float(k.qty) for k in kids[:195]) / 1e6
        assert half == pytest.approx(done, abs=2e-3)


def test_a_raw_risk_aversion_needs_a_known_volatility() -> None:
    ctx = ExecutionContext(price=450.0, adv_shares=1e8, daily_volatility=float("nan"))
    clk = SimulatedClock(utc(2023, 8, 4, 13, 30))
    with pytest.raises(DataError) as e:
        ImplementationShortfall(1e-6).schedule(_parent(1000), ctx, clk)
    assert e.value.field == "daily_volatility" and e.value.symbol == "SPY"
    # the urgency knob does not need it
    kids = ImplementationShortfall(urgency=1.0).schedule(_parent(1000), ctx, clk)
    assert sum(k.qty for k in kids) == 1000


def test_schedule_cli_is_default_uses_the_last_session(shared_data: Path) -> None:
    from typer.testing import CliRunner

    from keel.cli import app

    args = ["schedule", "--algo", "is", "--symbol", "SPY", "--qty", "100000", "--bars",
            str(shared_data / "intraday/lean_minute")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "total 100000 (parent 100000)" in text
    assert "99999" not in text.replace(",", "")
    import json

    doc = json.loads(CliRunner().invoke(app, [*args, "--format", "json"]).stdout)
    fields = next(v for v in doc.values() if isinstance(v, dict) and "vol_sessions" in v)
    assert fields["vol_sessions"] == 1  # the volatility is the last session's alone
