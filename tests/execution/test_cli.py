"""`keel schedule` and `keel tca`."""

from __future__ import annotations

from decimal import Decimal

import pytest
from typer.testing import CliRunner

from keel.cli import app
from keel.store.db import Store
from keel.store.orders_repo import OrderRecord, OrdersRepo
from keel.types import Order, OrderStatus, Side, utc


def test_schedule_prints_children(shared_data):
    res = CliRunner().invoke(app, ["schedule", "--algo", "vwap", "--symbol", "SPY", "--qty",
                                   "100000", "--bars",
                                   str(shared_data / "intraday/lean_minute")],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "children: 13; total 100000 (parent 100000)" in res.output
    assert "SPY-vwap-012" in res.output


def test_schedule_bad_input_is_one_line(tmp_path):
    res = CliRunner().invoke(app, ["schedule", "--symbol", "SPY", "--qty", "10", "--bars",
                                   str(tmp_path / "nope")])
    assert res.exit_code == 2 and "DataError" in res.output


def test_tca_on_empty_and_filled_store(sqlite_url):
    import json
    from pathlib import Path

    res = CliRunner().invoke(app, ["tca", "--db", sqlite_url])
    assert res.exit_code == 2 and "no database" in res.output  # a reader creates nothing
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()
    store = Store.from_url(sqlite_url)
    store.create_all()
    res = CliRunner().invoke(app, ["tca", "--db", sqlite_url, "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["summary"]["parent_orders"] == 0
    repo = OrdersRepo(store)
    from keel.store.orders_repo import StateChange
    from keel.types import Fill

    t = utc(2013, 10, 8, 14)
    rec = OrderRecord(Order("P", "SPY", Side.BUY, Decimal(10), t), OrderStatus.PENDING,
                      algo="twap", arrival_price=Decimal(100))
    repo.add_parent(rec, t)
    done = rec.with_changes(status=OrderStatus.FILLED, filled_qty=Decimal(10),
                            avg_price=Decimal("100.05"))
    repo.apply([StateChange(done, OrderStatus.PENDING)], t,
               fill=Fill("E", "P", "SPY", Side.BUY, 10, Decimal("100.05"), t), parent_id="P")
    res = CliRunner().invoke(app, ["tca", "--db", sqlite_url], env={"COLUMNS": "40"})
    assert res.exit_code == 0, res.output
    assert "parent orders" in res.output and "twap" in res.output
    res = CliRunner().invoke(app, ["tca", "--db", sqlite_url, "--format", "json"])
    rep = json.loads(res.stdout)
    assert rep["summary"]["parent_orders"] == 1
    assert rep["by_algo"][0]["algo"] == "twap" and rep["by_algo"][0]["orders"] == 1
    assert rep["by_algo"][0]["notional"] == pytest.approx(1000.5)


def test_tca_shows_the_learned_multipliers(sqlite_url):
    import json

    from keel.costs.adaptive import AdaptiveCost
    from keel.costs.models import SpreadCost, SquareRootImpact
    from keel.store.cost_state_repo import CostStateRepo

    store = Store.from_url(sqlite_url)
    store.create_all()
    res = CliRunner().invoke(app, ["tca", "--db", sqlite_url], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "none learned yet" in res.output
    model = AdaptiveCost(SpreadCost() + SquareRootImpact())
    model.multipliers_[:] = [1.25, 2.5]  # as if learned
    CostStateRepo(store).put("default", model.state(), utc(2024, 1, 2, 21), observed=7)
    res = CliRunner().invoke(app, ["tca", "--db", sqlite_url], env={"COLUMNS": "40"})
    assert res.exit_code == 0, res.output
    assert "cost multipliers (default)" in res.output
    assert "1.250" in res.output and "2.500" in res.output
    res = CliRunner().invoke(app, ["tca", "--db", sqlite_url, "--format", "json"])
    rows = json.loads(res.stdout)["multipliers"]
    assert rows[0]["version"] == 1 and rows[0]["spread"] == 1.25 and rows[0]["impact"] == 2.5
    assert rows[1]["observed"] == 7
