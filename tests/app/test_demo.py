"""`keel demo` end to end through the CLI in a fresh folder, checking what it stored, traded and
reported."""

import json
import os
import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.app.venue import fix_unavailable
from keel.cli import app

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "fix" / "spec"


@pytest.mark.slow  # two demo runs, about a minute
def test_demo_day_end_to_end(tmp_path, monkeypatch):
    monkeypatch.delenv("KEEL_STORE__URL", raising=False)
    if SPEC.is_dir() and "KEEL_FIX_SPEC_DIR" not in os.environ:
        monkeypatch.setenv("KEEL_FIX_SPEC_DIR", str(SPEC))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["demo", "--out-dir", str(out), "--assets", "30",
                                      "--days", "300", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "keel demo" in result.output and "n assets" in result.output
    con = sqlite3.connect(out / "keel.db")
    kind, status, metrics = con.execute("SELECT kind, status, metrics FROM runs").fetchone()
    assert (kind, status) == ("demo", "succeeded")
    assert '"n_assets": 30' in metrics
    actions = [a for (a,) in con.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions[0] == "demo.market"
    for step in ("risk", "venue", "decide", "trade", "book", "tca", "report"):
        assert f"demo.{step}" in actions
    assert "live.cycle" in actions and "tca.order" in actions
    # the venue: the FIX front end when the exchange has one, the REST one until then
    protocol = "rest" if fix_unavailable() else "fix"
    assert f'"venue_protocol": "{protocol}"' in metrics
    if protocol == "fix":  # a real FIX session was logged on while the day traded
        assert re.search(r'"fix_session": "FIX\.4\.[24]:KEELX->KEEL"', metrics), metrics
    # orders: parents with VWAP/IS schedules, every child sent, every parent done
    parents = con.execute("SELECT client_order_id, qty, filled_qty, status, algo "
                          "FROM orders").fetchall()
    assert parents
    assert {a for *_, a in parents} <= {"vwap", "is"}
    assert all(st.lower() == "filled" and float(q) == float(f) for _, q, f, st, _ in parents)
    n_children = con.execute("SELECT COUNT(*) FROM child_orders").fetchone()[0]
    assert n_children > len(parents)
    # fills: unique, and they add up to the parents
    n_fills, n_exec = con.execute("SELECT COUNT(*), COUNT(DISTINCT exec_id) FROM fills"
                                  ).fetchone()
    assert n_fills == n_exec > 0
    total = con.execute("SELECT SUM(CAST(qty AS REAL)) FROM fills").fetchone()[0]
    assert total == sum(float(q) for _, q, *_ in parents)
    # the ledger and the exchange agree
    assert '"ledger_matches_exchange": true' in metrics
    assert '"exchange_cash_matches": true' in metrics
    # the report: one self-contained file with the four sections and plotly inlined
    report = (out / "report.html").read_text()
    for heading in ("Positions", "Orders", "Fills", "Cost / TCA", "Risk decomposition",
                    "Decision cycle"):
        assert heading in report
    assert "Plotly.newPlot" in report
    assert not re.search(r"<script[^>]+src=", report)  # nothing fetched from the network
    assert len(report) > 1_000_000  # plotly.js itself is in the file
    first_parent = parents[0][0]
    assert first_parent in report
    # written as a desk reads it: key figures first, thousands separators, fixed decimals,
    # units in the headers, never 1e+07
    text = re.sub(r"<script.*?</script>", "", report, flags=re.S)
    assert text.index("Key figures") < text.index("Positions") < text.index("Run details")
    equity = re.search(r"equity \(USD\)</div><div class='value'>([^<]+)<", text).group(1)
    assert re.fullmatch(r"\d{1,3}(,\d{3})*\.\d\d", equity), equity
    assert float(equity.replace(",", "")) == pytest.approx(
        float(re.search(r'"equity": ([0-9.]+)', metrics).group(1)), abs=0.005)
    # no number cell or tile in scientific notation (reason-code text may quote one)
    sci = re.search(r">\s*[-+]?[\d.,]+[eE][-+]?\d+\s*<", text)
    assert sci is None, text[max(0, sci.start() - 300):sci.end() + 50]
    assert "market value (USD)" in text and "weight (%)" in text
    # a second demo on the same store: the stored book and the new exchange disagree; the
    # command says so and exits 1 instead of printing False and exiting 0
    again = CliRunner().invoke(app, ["demo", "--out-dir", str(out), "--assets", "30",
                                     "--days", "300", "--seed", "3", "--format", "json"])
    assert again.exit_code == 1, again.output
    err = " ".join(again.stderr.split())
    assert "ledger and exchange disagree" in err and "fresh --out-dir" in err
    assert json.loads(again.stdout)["run"]["ledger_matches_exchange"] is False


def test_demo_bad_config_is_one_clean_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\nn_asets = 5\n")
    result = CliRunner().invoke(app, ["demo", "--config", str(bad)])
    assert result.exit_code == 2
    assert "ConfigError" in result.output and "data.n_asets" in result.output
