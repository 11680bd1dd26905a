"""Every reporting command takes ``--format table|json|csv``: JSON parses and carries the same
numbers as the table; CSV parses with the csv module and holds the same rows; stdout carries the
data alone (notices on stderr); the table is read at COLUMNS=40.

"Same numbers" is checked independently of the emitter: every number of the JSON is found
among the numbers printed in the table, to the precision the table shows it (a percentage is
the fraction x 100), and every short text value is printed as it is.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from keel.cli import app

runner = CliRunner()
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

PRICES = """date,open,high,low,close,volume,Name
2013-02-08,10,11,9,10.5,100,AAA
2013-02-11,10.5,11,10,10.8,200,AAA
2013-02-12,10.8,11.2,10.6,11.0,300,AAA
2013-02-11,20.5,21,20,20.8,200,BBB
2013-02-12,20.8,21.2,20.6,21.0,300,BBB
"""

SMALL_TOML = """
[general]
name = "fmt"
seed = 3
out_dir = "{out}"
[data]
n_assets = 25
n_days = 300
[optimize]
max_weight = 0.1
[risk]
model = "pca"
n_pca_factors = 2
lookback_days = 100
[tracking]
record_runs = false
[backtest]
ledger = "none"
report = false
[[backtest.books]]
name = "mean_variance_capped"
optimize = {{ max_weight = 0.2 }}
[[backtest.books]]
name = "ew"
optimize = {{ engine = "equal_weight" }}
"""


def _db(tmp: Path) -> str:
    from keel.store.db import Store

    url = f"sqlite:///{tmp / 'keel.db'}"
    store = Store.from_url(url)
    store.upgrade()
    store.dispose()
    return url


def _synth(tmp: Path) -> Path:
    out = tmp / "syn.parquet"
    r = runner.invoke(app, ["data", "synth", "--assets", "12", "--days", "300", "--seed", "4",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def _impact_model(tmp: Path) -> Path:
    out = tmp / "m.json"
    r = runner.invoke(app, ["impact", "fit", "--synthetic", "200", "--out", str(out),
                            "--buckets", "1", "--sizes", "8"])
    assert r.exit_code == 0, r.output
    return out


def _need_data() -> None:
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA}")


def _config(tmp: Path) -> Path:
    p = tmp / "k.toml"
    p.write_text(SMALL_TOML.format(out=tmp / "out"))
    return p


# name -> (arguments built in tmp_path, slow)
Args = Callable[[Path], list[str]]
COMMANDS: dict[str, tuple[Args, bool]] = {
    "config show": (lambda t: ["config", "show"], False),
    "db current": (lambda t: ["db", "current", "--url", _db(t)], False),
    "db check": (lambda t: ["db", "check", "--url", _db(t)], False),
    "costs estimate": (lambda t: ["costs", "estimate", "--shares", "20000", "--price", "50",
                                  "--spread-bps", "5", "--vol", "0.02", "--adv", "5000000"],
                       False),
    "costs trajectory": (lambda t: ["costs", "trajectory", "--shares", "1000000",
                                    "--intervals", "5", "--sigma", "0.95", "--eta", "2.5e-6",
                                    "--gamma", "2.5e-7", "--epsilon", "0.0625",
                                    "--risk-aversion", "1e-6"], False),
    "impact fit": (lambda t: ["impact", "fit", "--synthetic", "200", "--out",
                              str(t / "fit.json"), "--buckets", "1", "--sizes", "8"], False),
    "impact allocate": (lambda t: ["impact", "allocate", "--model", str(_impact_model(t)),
                                   "--shares", "500", "--intervals", "4"], False),
    "data synth": (lambda t: ["data", "synth", "--assets", "5", "--days", "30", "--out",
                              str(t / "s.parquet")], False),
    "data inspect": (lambda t: ["data", "inspect", "--prices", str(_write(t, PRICES)),
                                "--on-missing", "ffill"], False),
    "data calendar": (lambda t: ["data", "calendar", "--start", "2024-11-25", "--end",
                                 "2024-12-06"], False),
    "data lobster": (lambda t: (_need_data(), [
        "data", "lobster", str(DATA / "lob/lobster_AMZN_2012-06-21_L1")])[1], False),
    "data bars": (lambda t: (_need_data(), [
        "data", "bars", str(DATA / "intraday/lean_minute/spy")])[1], False),
    "schedule": (lambda t: (_need_data(), [
        "schedule", "--algo", "vwap", "--symbol", "SPY", "--qty", "100000", "--bars",
        str(DATA / "intraday/lean_minute")])[1], False),
    "tca": (lambda t: ["tca", "--db", _db(t)], False),
    "risk": (lambda t: ["risk", "--prices", str(_synth(t)), "--weights",
                        str(_weights(t)), "--model", "pca"], True),
    "rebalance": (lambda t: ["rebalance", "--targets", str(_write(
        t, "symbol,weight,price,sector\nAAA,0.2,50,Tech\nBBB,0.2,20,Energy\nCCC,0.5,10,\n",
        "targets.csv")), "--db", _db(t), "--deposit", "10000", "--anytime",
        "--now", "2024-05-01T11:00:00-04:00"], False),
    "optimize": (lambda t: ["optimize", "-c", str(_config(t)), "--out", str(t / "opt")],
                 True),
    "backtest": (lambda t: ["backtest", "-c", str(_config(t)), "--out", str(t / "bt")],
                 True),
}


def _write(tmp: Path, body: str, name: str = "p.csv") -> Path:
    p = tmp / name
    p.write_text(body)
    return p


def _weights(tmp: Path) -> Path:
    import pandas as pd

    syms = sorted(pd.read_parquet(tmp / "syn.parquet")["Name"].unique())[:6]
    return _write(tmp, "symbol,weight\n" + "".join(f"{s},{1 / 6}\n" for s in syms), "w.csv")


# ------------------------------------------------------------------ the comparison

_NUM = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?%?")


def _table_numbers(text: str) -> list[tuple[float, float]]:
    """(value, half of the last shown digit) of every number printed; a % is divided by 100."""
    out = []
    for tok in _NUM.findall(text):
        pct = tok.endswith("%")
        raw = tok.rstrip("%").replace(",", "")
        v = float(raw)
        if "e" in raw.lower():
            mant = raw.lower().split("e")[0]
            exp = int(raw.lower().split("e")[1])
            places = len(mant.split(".")[1]) if "." in mant else 0
            half = 0.5 * 10.0 ** (exp - places)
        else:
            places = len(raw.split(".")[1]) if "." in raw else 0
            half = 0.5 * 10.0 ** -places
        if pct:
            v, half = v / 100, half / 100
        out.append((v, half * 1.000001 + 1e-15))
    return out


def _leaves(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        # wall times (``..._s``, the demo's ``timings``) differ between two runs
        return [x for k, v in obj.items() if not (k.endswith("_s") or k == "timings")
                for x in _leaves(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _leaves(v)]
    return [obj]


def _same_numbers(doc: dict[str, Any], table: str) -> None:
    nums = _table_numbers(table)
    flat = " ".join(table.split())
    for v in _leaves(doc):
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int | float):
            assert math.isfinite(v)
            # 4 significant digits for plain numbers: the half-unit of the shown digit
            assert any(abs(v - t) <= h or (t and abs(v - t) <= abs(t) * 5e-4)
                       for t, h in nums), f"{v!r} not in the table"
        elif isinstance(v, str) and len(v) <= 60 and "\n" not in v:
            num = _NUM.fullmatch(v)
            if num and not re.search(r"[-:T]", v[1:]):  # a decimal string: compare as number
                fv = float(v.replace(",", ""))
                assert any(abs(fv - t) <= h for t, h in nums), f"{v!r} not in the table"
            else:
                assert " ".join(v.split()) in flat, f"{v!r} not in the table"


def _csv_blocks(text: str) -> dict[str, list[dict[str, str]]]:
    blocks: dict[str, list[dict[str, str]]] = {}
    for chunk in text.strip("\n").split("\n\n"):
        rows = list(csv.reader(io.StringIO(chunk)))
        header, body = rows[0], rows[1:]
        assert header[0] == "section"
        for r in body:
            assert len(r) == len(header)
            blocks.setdefault(r[0], []).append(dict(zip(header[1:], r[1:], strict=True)))
        if not body:
            blocks.setdefault("", [])
    return blocks


def _run(args: list[str], fmt: str, columns: int = 40) -> Any:
    return runner.invoke(app, [*args, "--format", fmt], env={"COLUMNS": str(columns)})


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if slow else n
                                  for n, (_, slow) in COMMANDS.items()])
def test_json_and_csv_carry_the_table(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEEL_STORE__URL", raising=False)
    args = COMMANDS[name][0](tmp_path)
    table = _run(args, "table")
    assert table.exit_code == 0, table.output
    js = _run(args, "json")
    assert js.exit_code == 0, js.output
    doc = json.loads(js.stdout)  # stdout is the JSON alone
    assert isinstance(doc, dict) and doc
    _same_numbers(doc, table.stdout)
    cs = _run(args, "csv")
    assert cs.exit_code == 0, cs.output
    blocks = _csv_blocks(cs.stdout)
    for key, value in doc.items():
        if isinstance(value, list):
            assert len(blocks.get(key, [])) == len(value), key
            for row, rec in zip(blocks.get(key, []), value, strict=True):
                assert set(row) == set(rec)
        else:
            assert {r["key"] for r in blocks[key]} == set(value), key


def _commands() -> dict[str, dict[str, Any]]:
    """Command path -> {parameter: resolved type} of every command of the keel app."""
    import typing

    import typer

    out: dict[str, dict[str, Any]] = {}

    def walk(t: typer.Typer, path: tuple[str, ...]) -> None:
        for c in t.registered_commands:
            name = c.name or c.callback.__name__.replace("_", "-")  # type: ignore[union-attr]
            out[" ".join((*path, name))] = typing.get_type_hints(c.callback)
        for g in t.registered_groups:
            assert g.typer_instance is not None
            walk(g.typer_instance, (*path, g.name or ""))

    walk(app, ())
    return out


def test_every_reporting_command_has_the_format_option() -> None:
    from keel.cli.common import OutputFormat

    cmds = _commands()
    found = {n for n, hints in cmds.items() if hints.get("output") is OutputFormat}
    # commands that serve or write rather than report: run, serve, exchange, db upgrade and
    # downgrade, config reference (Markdown), fix acceptance-server
    assert set(COMMANDS) | {"sweep", "demo"} <= found, set(COMMANDS) - found


def test_choice_options_are_enums() -> None:
    """Every option with a fixed set of values is an Enum (Typer shows and checks the
    choices), never a plain str."""
    cmds = _commands()
    for cmd, param in [("run", "venue_opt"), ("run", "clock_opt"), ("run", "drain_opt"),
                       ("run", "protocol_opt"), ("run", "engine"), ("demo", "engine"),
                       ("serve", "log_level"), ("schedule", "algo"), ("schedule", "side"),
                       ("risk", "model"), ("data inspect", "on_missing"),
                       ("data inspect", "layout"), ("sweep", "engine"), ("rebalance", "mode"),
                       ("impact fit", "method"), ("impact allocate", "solver"),
                       ("backtest", "output")]:
        hint = cmds[cmd][param]
        enum = next((a for a in typing_args(hint) if isinstance(a, type)
                     and issubclass(a, Enum)), None)
        assert enum is not None, (cmd, param, hint)
    r = runner.invoke(app, ["schedule", "--algo", "fastest", "--symbol", "X", "--qty", "1",
                            "--bars", "."])
    assert r.exit_code == 2 and "twap" in r.output  # the choices are listed


def typing_args(hint: Any) -> tuple[Any, ...]:
    import typing

    return (hint, *typing.get_args(hint))


def _values(e: type[Enum]) -> set[str]:
    return {str(m.value) for m in e}


def test_cli_choice_enums_mirror_the_library() -> None:
    from keel.backtest.sweep import Engine as SweepEngineLib
    from keel.cli import backtest_cmd, common, data_cmd, execution_cmd, portfolio_cmd, risk_cmd
    from keel.config import EngineKind, MissingPolicy, VenueKind
    from keel.execution.schedule import Algo
    from keel.portfolio.rebalance import RebalanceMode
    from keel.risk.report import RiskModelKind

    assert _values(common.Engine) == _values(EngineKind)
    assert _values(common.Venue) == _values(VenueKind)
    assert _values(data_cmd.MissingPolicy) == _values(MissingPolicy)
    assert _values(execution_cmd.Algo) == _values(Algo)
    assert _values(risk_cmd.RiskModelKind) == _values(RiskModelKind)
    assert _values(portfolio_cmd.Mode) == _values(RebalanceMode)
    assert _values(backtest_cmd.SweepEngine) == _values(SweepEngineLib)
    from keel.cli import costs_cmd
    from keel.costs.allocation import SplitSolver
    from keel.costs.impact_fit import KINDS

    assert _values(costs_cmd.Solver) == _values(SplitSolver)
    assert _values(costs_cmd.CurveKind) == set(KINDS)


def test_json_goes_to_stdout_and_notices_to_stderr(tmp_path: Path) -> None:
    r = _run(["impact", "fit", "--synthetic", "200", "--out", str(tmp_path / "m.json"),
              "--buckets", "1", "--sizes", "8"], "json")
    assert r.exit_code == 0
    json.loads(r.stdout)
    assert "wrote" in r.stderr and "wrote" not in r.stdout
