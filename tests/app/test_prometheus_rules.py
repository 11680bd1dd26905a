"""The shipped Prometheus rule file (deploy/prometheus/keel-rules.yml) is valid and every
expression references a metric a real keel serves: the names come from scraping /metrics of
a real server over a store with trading in it, parsed with prometheus_client's parser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from keel.app.metrics import KeelMetrics
from keel.app.sample import sample_book
from keel.app.scrape import BREACH_ACTION, CYCLE_ACTION
from keel.app.service import BackgroundServer, create_app
from keel.clock import SimulatedClock
from keel.data.synthetic import synthetic_market
from keel.risk.limits import RiskLimits
from keel.store.audit import AuditLog
from keel.store.db import Store

pytestmark = pytest.mark.service

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "keel-rules.yml"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
            "gauge": ("",), "summary": ("", "_count", "_sum")}


def _rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"]]


def _served_names(sqlite_url: str) -> set[str]:
    market = synthetic_market(20, 300, seed=4)
    store = Store.from_url(sqlite_url)
    store.create_all()
    clock = SimulatedClock(market.now.to_pydatetime())
    sample_book(store, clock, market, [str(s) for s in market.symbols[:4]])
    AuditLog(store).append("live", CYCLE_ACTION, "cycle", "0", {"traded": True}, clock.now())
    AuditLog(store).append("risk", BREACH_ACTION, "limit", "MAX_POSITION",
                           {"code": "MAX_POSITION", "severity": "breach"}, clock.now())
    m = KeelMetrics()
    app = create_app(store, metrics=m, market=lambda: market, clock=clock,
                     limits=RiskLimits(max_position=0.01))
    try:
        with BackgroundServer(app) as srv:
            text = httpx.get(srv.url + "/metrics", timeout=30).text
    finally:
        store.dispose()
    names = set()
    for fam in text_string_to_metric_families(text):
        names.update(fam.name + s for s in SUFFIXES.get(fam.type, ("",)))
        names.update(s.name for s in fam.samples)
    return names


def test_every_rule_expression_uses_metrics_keel_serves(sqlite_url):
    rules = _rules()
    assert len(rules) >= 10
    served = _served_names(sqlite_url)
    recorded = {r["record"] for r in rules if "record" in r}
    for r in rules:
        assert ("alert" in r) != ("record" in r), r
        used = set(re.findall(r"\bkeel[_:][a-zA-Z0-9_:]+", r["expr"]))
        assert used, f"{r.get('alert') or r.get('record')} references no keel metric"
        unknown = {n for n in used if n not in served and n not in recorded}
        assert not unknown, f"{r.get('alert') or r.get('record')}: {sorted(unknown)}"
        if "alert" in r:
            assert r["annotations"]["summary"] and r["labels"]["severity"] in ("page", "warn")
    # the alerts a desk needs are there
    alerts = {r["alert"] for r in rules if "alert" in r}
    assert {"KeelStoreDown", "KeelVenueRejectsHigh", "KeelLimitBreached",
            "KeelCyclesFailing", "KeelVenueSlow"} <= alerts


def test_promtool_accepts_the_rule_file():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`)")
    r = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout
