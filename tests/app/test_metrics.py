from prometheus_client.parser import text_string_to_metric_families

from keel.app.metrics import KeelMetrics


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_render_parse_and_are_isolated():
    a, b = KeelMetrics(), KeelMetrics()
    a.orders.labels(venue="fix", side="BUY").inc(3)
    a.roundtrip.labels(venue="fix").observe(0.0002)
    a.roundtrip.labels(venue="fix").observe(0.003)
    a.portfolio_var.labels(confidence="0.95", horizon_days="21").set(0.042)
    s = _samples(a.render().decode())
    assert s[("keel_orders_total", (("side", "BUY"), ("venue", "fix")))] == 3
    assert s[("keel_order_roundtrip_seconds_count", (("venue", "fix"),))] == 2
    assert s[("keel_order_roundtrip_seconds_bucket", (("le", "0.00025"), ("venue", "fix")))] == 1
    assert s[("keel_portfolio_var", (("confidence", "0.95"), ("horizon_days", "21")))] == 0.042
    assert ("keel_orders_total", (("side", "BUY"), ("venue", "fix"))) not in _samples(
        b.render().decode())
