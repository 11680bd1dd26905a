"""Hostile input to `keel risk` and `keel exchange`: one line, exit 2, no traceback, nothing
written; a 100 KB value reported in constant time (Rich's highlighter took 195 s)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _synthetic import synthetic_market
from typer.testing import CliRunner

from keel.cli import app
from keel.cli.common import one_line


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("risk_hostile")
    market, _ = synthetic_market(n_days=120, n_assets=8, n_sectors=2, seed=1)
    market.prices.set_axis(market.prices.index.strftime("%Y-%m-%d")).rename_axis(
        "date").to_csv(d / "wide.csv")
    syms = [str(s) for s in market.symbols[:4]]

    def weights(name: str, symbols, values) -> None:
        pd.DataFrame({"symbol": symbols, "weight": values}).to_csv(d / name, index=False)

    weights("ok.csv", syms, np.full(4, 0.25))
    weights("nan.csv", syms, [0.25, float("nan"), 0.25, 0.25])
    weights("inf.csv", syms, [0.25, float("inf"), 0.25, 0.25])
    weights("huge.csv", syms, [0.25, 1e40, 0.25, 0.25])
    weights("dup.csv", [syms[0], f" {syms[0].lower()} ", syms[1]], [0.3, 0.3, 0.4])
    weights("soh.csv", [syms[0], "AAPL\x0144=1"], [0.5, 0.5])
    weights("long.csv", [syms[0], "A" * 100_000], [0.5, 0.5])
    (d / "binary.csv").write_bytes(b"\x00\x01\x02\xff\xfe" * 100)
    (d / "utf16.csv").write_bytes("symbol,weight\nA,1\n".encode("utf-16"))
    (d / "empty.csv").write_text("")
    return d


def _risk(files, weights: str, *extra: str):
    return CliRunner().invoke(app, ["risk", "--prices", str(files / "wide.csv"), "--weights",
                                    str(files / weights), *extra])


@pytest.mark.parametrize(("weights", "extra", "word"), [
    ("nan.csv", (), "finite"), ("inf.csv", (), "finite"), ("huge.csv", (), "finite"),
    ("dup.csv", (), "duplicated"), ("soh.csv", (), "printable"), ("long.csv", (), "longer"),
    ("binary.csv", (), "binary"), ("utf16.csv", (), "UTF"), ("empty.csv", (), "cannot read"),
    ("missing.csv", (), "not found"),
    ("ok.csv", ("--confidence", "1.5"), "confidence"),
    ("ok.csv", ("--confidence", "nan"), "confidence"),
    ("ok.csv", ("--horizon", "0"), "horizon"), ("ok.csv", ("--model", "magic"), "model"),
    ("ok.csv", ("--json", "/no/such/dir/out.json"), "json")])
def test_risk_refuses_with_one_line(files, weights, extra, word):
    res = _risk(files, weights, *extra)
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "Traceback" not in res.output
    assert word.lower() in res.output.lower(), res.output
    assert len(res.output) < 1200  # one (soft-wrapped) line, truncated (the 100 KB symbol
    # took 195 s when the whole value went through Rich's highlighter)


def test_one_line_is_bounded_and_escapes_control_characters():
    assert one_line("a\nb\x01c") == "a\\nb\\x01c"
    long = one_line("x" * 1_000_000)
    assert len(long) < 520 and long.endswith("(1000000 characters in all)")


@pytest.mark.parametrize("args", [
    ["--price", "nan"], ["--price", "-1"], ["--daily-vol", "inf"], ["--step-seconds", "0"],
    ["--port", "70000"], ["--symbols", "AAPL, aapl"], ["--symbols", " , "],
    ["--client", "KEEL"], ["--client", "A=x", "--client", "A=y"], ["--duration", "-5"]])
def test_exchange_refuses_before_binding(args):
    res = CliRunner().invoke(app, ["exchange", "--rest-port", "-1", *args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "keel exchange: FIX on" not in res.output
