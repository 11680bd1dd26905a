"""The service as a user meets it: a real uvicorn server on a socket, ``/metrics`` scraped
over HTTP and parsed with ``prometheus_client.parser``, and ``keel serve`` started as a
process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from keel.app.sample import sample_book, trade
from keel.app.scrape import BREACH_ACTION
from keel.app.service import BackgroundServer, create_app
from keel.clock import SimulatedClock
from keel.data.synthetic import synthetic_market
from keel.portfolio.ledger import Ledger
from keel.risk.limits import RiskLimits
from keel.store.audit import AuditLog
from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo
from keel.types import Side
from keel.venues.exchange.server import free_port

pytestmark = pytest.mark.service

SRC = Path(__file__).resolve().parents[2] / "src"


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    r = httpx.get(url + "/metrics", timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))


def test_metrics_scraped_from_a_real_server_follow_the_store(db_url):
    market = synthetic_market(30, 300, seed=5)
    store = Store.from_url(db_url)
    store.create_all()
    clock = SimulatedClock(market.now.to_pydatetime())
    syms = [str(s) for s in market.symbols[:4]]
    sample_book(store, clock, market, syms)
    trade(store, clock, market, "rej-1", str(market.symbols[9]), Side.BUY, 10,
          reject_reason="MAX_PARTICIPATION: 12% of volume")
    AuditLog(store).append("risk", BREACH_ACTION, "limit", "MAX_POSITION",
                           {"code": "MAX_POSITION", "severity": "breach"}, clock.now())
    app = create_app(store, market=lambda: market, clock=clock,
                     limits=RiskLimits(max_position=0.01))
    try:
        with BackgroundServer(app) as srv:
            s = scrape(srv.url)
            assert s[("keel_store_up", ())] == 1
            fills = OrdersRepo(store).fills()
            assert total(s, "keel_fills_total") == len(fills) == 8
            # one series per (venue, side), never per symbol
            assert s[("keel_fills_total", (("side", "BUY"), ("venue", "fix")))] == 8
            assert not any("symbol" in dict(ls) for _, ls in s)
            assert s[("keel_filled_notional_total", (("venue", "fix"),))] == pytest.approx(
                float(sum(f.qty * f.price for f, _ in fills)))
            # parents and children are separate series: 5 parents, 8 filled slices sent to
            # the venue + 2 slices it refused (their venue is not recorded: unknown)
            assert total(s, "keel_parent_orders_total", side="BUY") == 5
            assert total(s, "keel_child_orders_sent_total", side="BUY") == 10
            assert s[("keel_child_orders_sent_total", (("side", "BUY"), ("venue", "fix")))] == 8
            assert s[("keel_rejects_total",
                      (("level", "child"), ("reason", "MAX_PARTICIPATION")))] == 2
            assert total(s, "keel_rejects_total", level="parent") == 0
            # every slice was answered 4 ms after it was sent
            h = "keel_venue_roundtrip_seconds"
            assert total(s, h + "_count") == 10
            assert total(s, h + "_bucket", le="0.0025") == 0
            assert total(s, h + "_bucket", le="0.005") == 10
            assert total(s, h + "_sum") == pytest.approx(10 * 0.004)
            assert s[("keel_limit_breaches_total",
                      (("limit", "MAX_POSITION"), ("severity", "breach")))] == 1
            st = Ledger.open(store, clock=clock).state
            assert s[("keel_equity", ())] == pytest.approx(float(st.equity))
            assert s[("keel_gross_exposure", ())] == pytest.approx(
                float(st.gross_exposure / st.equity))
            assert s[("keel_open_orders", (("level", "parent"),))] == 0
            assert s[("keel_open_orders", (("level", "child"),))] == 0
            risk = httpx.get(srv.url + "/api/risk", timeout=30).json()
            assert s[("keel_portfolio_volatility", ())] == pytest.approx(risk["volatility"])
            assert s[("keel_portfolio_var", (("confidence", "0.95"), ("horizon_days", "21")))
                     ] == pytest.approx(risk["var_cvar"]["normal"]["var"])
            assert total(s, "keel_limit_breaches_active") == len(risk["breaches"]) >= 3

            # the trading process books more: the next scrape counts it, counters only grow
            trade(store, clock, market, "more-1", syms[0], Side.SELL, 500)
            s2 = scrape(srv.url)
            assert s2[("keel_fills_total", (("side", "SELL"), ("venue", "fix")))] == 2
            assert total(s2, "keel_parent_orders_total", side="SELL") == 1
            assert total(s2, "keel_child_orders_sent_total", side="SELL") == 2
            for key, v in s.items():
                if key[0].endswith(("_total", "_count")):
                    assert s2[key] >= v, key
    finally:
        store.dispose()


@pytest.mark.slow  # ~10 s: a fresh interpreter imports keel and builds the market
def test_keel_serve_runs_the_service_over_the_configured_store(tmp_path):
    db = tmp_path / "keel.db"
    cfg = tmp_path / "keel.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{db}"\n\n[data]\nn_assets = 20\n'
                   'n_days = 300\n')
    port = free_port()
    # the token comes from a private file, never argv (ps shows argv)
    token_file = tmp_path / "token"
    token_file.write_text("cli-token-for-tests-0001\n", encoding="utf-8")
    token_file.chmod(0o600)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("KEEL_STORE__URL", None)
    env.pop("KEEL_SERVICE__API_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "keel", "serve", "--config", str(cfg), "--port", str(port),
         "--token-file", str(token_file), "--log-level", "warning"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                r = httpx.get(url + "/health", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "keel serve did not come up"
                time.sleep(0.2)
        assert r.status_code == 200 and r.json()["store"]["reachable"]
        assert r.json()["store"]["url"].endswith("keel.db")
        assert httpx.get(url + "/api/portfolio").json()["n_positions"] == 0
        r = httpx.post(url + "/api/control/kill-switch", json={"engaged": True})
        assert r.status_code == 401
        r = httpx.post(url + "/api/control/kill-switch", json={"engaged": True,
                                                               "reason": "cli test"},
                       headers={"Authorization": "Bearer cli-token-for-tests-0001"})
        assert r.status_code == 200
        est = httpx.post(url + "/api/cost-estimate",
                         json={"symbol": "S0003", "qty": 100, "side": "BUY"}, timeout=60)
        assert est.status_code == 200 and float(est.json()["cost"]) > 0
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # the control record is in the configured store, where `keel run` reads it
    from keel.app.control import read_control
    st = read_control(Store.from_url(f"sqlite:///{db}"))
    assert st.kill_switch and st.kill_switch_reason == "cli test"
    # and only there: the service writes no control file (keel run applies the record)
    assert not (tmp_path / "keel-out" / "control.json").exists()


def test_embedded_metrics_follow_the_trading_process(sqlite_url):
    """Embedded in the trading process, /metrics is that process's registry: the store's
    families (as ``keel serve`` counts them) plus its own order-manager step latency."""
    from keel.app.metrics import KeelMetrics

    market = synthetic_market(20, 300, seed=6)
    store = Store.from_url(sqlite_url)
    store.create_all()
    clock = SimulatedClock(market.now.to_pydatetime())
    m = KeelMetrics()
    try:
        with BackgroundServer(create_app(store, metrics=m)) as srv:
            m.oms_step.observe(0.0003)
            s = scrape(srv.url)
            assert s[("keel_oms_step_seconds_bucket", (("le", "0.0005"),))] == 1
            assert total(s, "keel_parent_orders_total") == 0
            trade(store, clock, market, "emb-1", str(market.symbols[0]), Side.SELL, 300)
            s = scrape(srv.url)
            assert s[("keel_parent_orders_total", (("side", "SELL"),))] == 1
            assert s[("keel_child_orders_sent_total", (("side", "SELL"), ("venue", "fix")))] == 2
            assert httpx.get(srv.url + "/health").json()["metrics"] == "embedded"
    finally:
        store.dispose()
