"""`keel rebalance`: dry run books nothing, --commit books, bad input exits 2 with a typed error."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from keel.cli import app
from keel.clock import SimulatedClock
from keel.portfolio.ledger import Ledger
from keel.store.db import Store
from keel.store.ledger_repo import LedgerRepository
from keel.types import utc

NOW = "2024-05-01T11:00:00-04:00"


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "targets.csv"
    p.write_text(body)
    return p


def head(url: str) -> int:
    store = Store.from_url(url)
    try:
        return LedgerRepository(store).head_version()
    finally:
        store.dispose()


def test_dry_run_then_commit(tmp_path: Path, sqlite_url: str) -> None:
    t = write(tmp_path, "symbol,weight,price,sector\nAAA,0.2,50,Tech\nBBB,0.2,20,Energy\n"
                        "CCC,0.5,10,\n")
    runner = CliRunner()
    args = ["rebalance", "--targets", str(t), "--db", sqlite_url, "--deposit", "10000",
            "--now", NOW]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "Dry run" in r.output and "DRIFT_ABSOLUTE" in r.output
    # a dry run writes nothing: not even the database file
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()
    r = runner.invoke(app, [*args, "--commit"])
    assert r.exit_code == 0, r.output
    assert "POSITION_LIMIT" in r.output  # CCC at 50% > 25% cap is resized
    store = Store.from_url(sqlite_url)
    lg = Ledger.open(store, clock=SimulatedClock(utc(2024, 5, 2)))
    assert lg.position("AAA").qty == Decimal(40)
    assert lg.position("CCC").qty == Decimal(250)
    assert lg.cash == Decimal(10000 - 2000 - 2000 - 2500)
    assert [a.action for a in LedgerRepository(store).audit_rows("rebalance.")] == \
        ["rebalance.commit"]
    store.dispose()
    # now within the bands (CCC capped below target would still drift: band 0.3 ignores it)
    r = runner.invoke(app, ["rebalance", "--targets", str(t), "--db", sqlite_url, "--now", NOW,
                            "--band", "0.3", "--l1", "0.5"])
    assert r.exit_code == 0, r.output
    assert "NO_TRIGGER" in r.output


def test_market_closed_rejects(tmp_path: Path, sqlite_url: str) -> None:
    t = write(tmp_path, "symbol,weight,price\nAAA,0.2,50\n")
    r = CliRunner().invoke(app, ["rebalance", "--targets", str(t), "--db", sqlite_url,
                                 "--deposit", "1000", "--now", "2024-05-04T11:00:00-04:00"])
    assert r.exit_code == 0, r.output
    assert "MARKET_CLOSED" in r.output


def test_bad_input_exits_2_and_books_nothing(tmp_path: Path, sqlite_url: str) -> None:
    runner = CliRunner()
    cases = {
        "symbol,weight,price\nAAA,0.5,-3\n": "price",
        "symbol,weight,price\nAAA,0.7,1\nBBB,0.7,1\n": "targets",
        "symbol,price\nAAA,1\n": "weight",
        "symbol,weight\nAAA,0.5\n": "prices",
    }
    for body, field in cases.items():
        t = write(tmp_path, body)
        r = runner.invoke(app, ["rebalance", "--targets", str(t), "--db", sqlite_url,
                                "--deposit", "100", "--commit", "--now", NOW])
        assert r.exit_code == 2, (body, r.output)
        assert f"field={field}" in r.output.replace("\n", ""), r.output
    assert head(sqlite_url) == 0
