"""The demo's self-contained HTML report: key figures first, then the run's sections
(decision, positions, orders and fills, cost / TCA, risk).

One file, no network: plotly.js is inlined once (the first figure), the other figures reuse it.
Every number is written by :mod:`keel.fmt` (thousands separators, fixed decimals) with its
unit in the column header, as the CLI and the dashboard write them.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from keel import fmt

if TYPE_CHECKING:
    from keel.app.demo import DemoContext

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1200px;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0;font-variant-numeric:tabular-nums}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}.muted{color:#777;font-size:13px}
.scroll{max-height:420px;overflow-y:auto}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.kpi{border:1px solid #ddd;border-radius:6px;padding:8px 12px}
.kpi .label{color:#666;font-size:12px}.kpi .value{font-size:20px;font-weight:600}
.sections{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}
.bad{color:#b23b3b}
"""

#: kinds of numbers: how each is written and the unit its header carries
_KINDS: dict[str, tuple[Any, str | None]] = {
    "money": (fmt.money, "USD"), "price": (fmt.price, "USD"), "qty": (fmt.qty, "sh"),
    "bps": (fmt.bps, "bps"), "pct": (fmt.pct, "%"), "frac": (lambda v: fmt.number(v, 4), None),
    "int": (lambda v: fmt.number(v, 0), None), "text": (lambda v: str(v), None),
}

#: the kind of each summary figure the demo records (the rest are text or counts)
_SUMMARY_KINDS = {
    "equity": "money", "cash": "money", "traded_notional": "money",
    "gross_exposure": "pct", "slippage_bps_weighted": "bps", "slippage_bps_median": "bps",
    "is_bps_weighted": "bps", "predicted_bps_mean": "bps", "predicted_vol": "pct",
    "factor_share": "pct", "report_kb": "frac",
}

#: the key figures, in the order a desk reads them
_KEY_FIGURES = ("equity", "cash", "gross_exposure", "positions", "parent_orders",
                "child_orders", "fills", "traded_notional", "slippage_bps_weighted",
                "is_bps_weighted", "predicted_bps_mean", "ledger_matches_exchange")


def _label(key: str) -> str:
    kind = _SUMMARY_KINDS.get(key)
    name = key.replace("_bps", "").replace("_", " ")
    return fmt.header(name, _KINDS[kind][1] if kind else None)


def _value(key: str, v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    kind = _SUMMARY_KINDS.get(key)
    if kind is not None:
        return str(_KINDS[kind][0](v))
    if isinstance(v, int):
        return fmt.number(v, 0)
    if isinstance(v, float):
        return fmt.number(v, 2)
    return str(v)


class _Figures:
    """Render plotly figures, inlining plotly.js with the first one only."""

    def __init__(self) -> None:
        self.first = True

    def __call__(self, fig: Any) -> str:
        out = fig.to_html(full_html=False, include_plotlyjs=self.first,
                          config={"displaylogo": False})
        self.first = False
        return str(out)


def _table(df: pd.DataFrame, kinds: Mapping[str, str], *, index: str | None = None,
           max_rows: int | None = None) -> str:
    """``df`` as an HTML table: columns in ``kinds`` order, each written by its kind with the
    unit in the header; text columns left-aligned. ``index`` names the index column."""
    if df.empty:
        return "<p class='muted'>(none)</p>"
    if max_rows is not None and len(df) > max_rows:
        df = df.head(max_rows)
    cols = [c for c in kinds if c in df.columns]
    left = {c for c in cols if kinds[c] == "text"}
    head = ([f"<th class='l'>{html.escape(index)}</th>"] if index else []) + [
        f"<th class='{'l' if c in left else ''}'>"
        f"{html.escape(fmt.header(c.replace('_', ' '), _KINDS[kinds[c]][1]))}</th>"
        for c in cols]
    body = []
    for key, row in df.iterrows():
        cells = ([f"<td class='l'>{html.escape(str(key))}</td>"] if index else []) + [
            f"<td class='{'l' if c in left else ''}'>"
            f"{html.escape(str(_KINDS[kinds[c]][0](row[c])))}</td>" for c in cols]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _key_figures(results: Mapping[str, Any]) -> str:
    cards = []
    for k in _KEY_FIGURES:
        if k not in results:
            continue
        v = results[k]
        bad = " bad" if v is False else ""
        cards.append(f"<div class='kpi'><div class='label'>{html.escape(_label(k))}</div>"
                     f"<div class='value{bad}'>{html.escape(_value(k, v))}</div></div>")
    return f"<div class='kpis'>{''.join(cards)}</div>"


def _sections(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """The run's recorded values, one small table per step."""
    out = []
    for step, values in sections.items():
        rows = "".join(f"<tr><td class='l'>{html.escape(_label(k))}</td>"
                       f"<td>{html.escape(_value(k, v))}</td></tr>"
                       for k, v in values.items())
        out.append(f"<div><h3>{html.escape(step)}</h3><table>{rows}</table></div>")
    return f"<div class='sections'>{''.join(out)}</div>"


def positions_frame(ctx: DemoContext) -> pd.DataFrame:
    """Ledger positions with weight (fraction of equity) and sector."""
    desk = ctx.artifacts["desk"]
    st = desk.ledger.state
    sectors = ctx.market.sectors if ctx.market is not None else None
    rows = []
    for s, h in st.holdings.items():
        rows.append({"symbol": s, "qty": float(h.qty), "avg_price": float(h.avg_price),
                     "market_value": float(h.market_value),
                     "weight": float(h.market_value / st.equity),
                     "sector": "" if sectors is None else str(sectors.get(s, ""))})
    df = pd.DataFrame(rows)
    return df.sort_values("market_value", ascending=False).set_index("symbol") if rows else df


def orders_frame(ctx: DemoContext) -> pd.DataFrame:
    """Parent orders from the store: side, qty, filled, average price, algo, status."""
    repo = ctx.artifacts["desk"].repo
    rows = [{"order": p.client_order_id, "symbol": p.order.symbol,
             "side": p.order.side.name, "qty": float(p.order.qty),
             "filled": float(p.filled_qty), "avg_price": float(p.avg_price or 0),
             "arrival": float(p.arrival_price or 0), "algo": p.algo or "",
             "children": len(repo.children(p.client_order_id)), "status": p.status.value}
            for p in repo.parents()]
    return pd.DataFrame(rows).set_index("order") if rows else pd.DataFrame()


def fills_frame(ctx: DemoContext) -> pd.DataFrame:
    repo = ctx.artifacts["desk"].repo
    rows = [{"time": f.timestamp.strftime("%H:%M:%S"), "child": f.client_order_id,
             "symbol": f.symbol, "side": f.side.name, "qty": float(f.qty),
             "price": float(f.price), "exec_id": f.exec_id} for f, _ in repo.fills()]
    return pd.DataFrame(rows)


def write_report(ctx: DemoContext, path: Path) -> Path:
    """Write the report of a finished demo day to ``path``; returns it."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig_html = _Figures()
    parts: list[str] = [f"<h1>keel demo</h1><p class='muted'>run {html.escape(ctx.run_id)}"
                        f" &middot; session {html.escape(str(ctx.results.get('session_start')))}"
                        f" &middot; venue {html.escape(str(ctx.results.get('venue_protocol')))}"
                        "</p>", "<h2>Key figures</h2>", _key_figures(ctx.results)]
    # decision
    res = ctx.artifacts.get("cycle_result")
    if res is not None:
        stages = pd.DataFrame([{"stage": s.stage, "reason codes": ", ".join(s.codes)}
                               for s in res.stages]).set_index("stage")
        parts += ["<h2>Decision cycle (reason codes per stage)</h2>",
                  _table(stages, {"reason codes": "text"}, index="stage")]
    # positions
    pos = positions_frame(ctx)
    parts.append("<h2>Positions (end of day; weight in % of equity)</h2>")
    if not pos.empty:
        fig = go.Figure(go.Bar(x=pos.index, y=100 * pos["weight"], marker_color="#2a6fb0"))
        fig.update_layout(height=320, margin=dict(l=40, r=10, t=30, b=60),
                          yaxis_title="weight, % of equity", title="Holdings")
        parts.append(fig_html(fig))
    parts.append("<div class='scroll'>" + _table(pos, {
        "sector": "text", "qty": "qty", "avg_price": "price", "market_value": "money",
        "weight": "pct"}, index="symbol") + "</div>")
    # orders and fills
    orders = orders_frame(ctx)
    fills = fills_frame(ctx)
    parts += ["<h2>Orders (parents)</h2>", "<div class='scroll'>" + _table(orders, {
        "symbol": "text", "side": "text", "qty": "qty", "filled": "qty", "avg_price": "price",
        "arrival": "price", "algo": "text", "children": "int", "status": "text"},
        index="order") + "</div>",
              f"<h2>Fills ({fmt.number(len(fills), 0)}; first 200)</h2>",
              "<div class='scroll'>" + _table(fills, {
                  "time": "text", "child": "text", "symbol": "text", "side": "text",
                  "qty": "qty", "price": "price", "exec_id": "text"}, max_rows=200)
              + "</div>"]
    if not fills.empty:
        per = fills.groupby("time")["qty"].count()
        fig = go.Figure(go.Bar(x=per.index, y=per.to_numpy(), marker_color="#4c9a2a"))
        fig.update_layout(height=260, margin=dict(l=40, r=10, t=30, b=40),
                          title="Fills per bar (simulated session time, UTC)",
                          yaxis_title="fills")
        parts.append(fig_html(fig))
    # TCA
    tca = ctx.artifacts.get("tca")
    parts.append("<h2>Cost / TCA (bps of traded notional; + = cost)</h2>")
    if tca is not None and not tca.orders.empty:
        df = tca.orders
        fig = make_subplots(rows=1, cols=2, subplot_titles=(
            "slippage vs arrival by order, bps", "mean by algorithm, bps"))
        fig.add_trace(go.Histogram(x=df["slippage_bps"], nbinsx=30, name="slippage"), 1, 1)
        by = tca.by_algo()
        fig.add_trace(go.Bar(x=by.index, y=by["slippage_bps_mean"], name="slippage"), 1, 2)
        fig.add_trace(go.Bar(x=by.index, y=by["is_bps_mean"], name="impl. shortfall"), 1, 2)
        fig.update_layout(height=320, margin=dict(l=40, r=10, t=40, b=40))
        parts += [fig_html(fig), _table(by, {c: _tca_kind(c) for c in by.columns},
                                        index="algo")]
        parts.append("<div class='scroll'>" + _table(df.set_index("parent_id"), {
            "symbol": "text", "algo": "text", "filled_qty": "qty", "avg_price": "price",
            "arrival_price": "price", "slippage_bps": "bps", "is_bps": "bps",
            "predicted_bps": "bps"}, index="order") + "</div>")
    else:
        parts.append("<p class='muted'>(no filled orders)</p>")
    # risk
    parts.append("<h2>Risk decomposition (annualised volatility contributions)</h2>")
    parts.append(_risk_html(ctx, fig_html, go))
    parts += ["<h2>Run details (every recorded value, by step)</h2>",
              _sections(ctx.sections)]
    body = "\n".join(parts)
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>keel demo "
           f"{html.escape(ctx.run_id)}</title><style>{_CSS}</style></head><body>{body}"
           "</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path


def _tca_kind(column: str) -> str:
    """How a TCA summary column is written: counts, money, bps or fractions as %."""
    if column == "orders":
        return "int"
    if "notional" in column:
        return "money"
    if "bps" in column:
        return "bps"
    return "pct"  # participation, spread capture: fractions


def _risk_html(ctx: DemoContext, fig_html: _Figures, go: Any) -> str:
    from keel.risk.attribution import decompose

    cycle = ctx.artifacts.get("cycle")
    desk = ctx.artifacts.get("desk")
    if cycle is None or desk is None or cycle.risk_ is None:
        return "<p class='muted'>(no risk model)</p>"
    weights = pd.Series(desk.ledger.state.weights(), dtype=float)
    if weights.abs().sum() == 0:
        return "<p class='muted'>(no positions)</p>"
    d = decompose(cycle.risk_, weights, groups=cycle.risk_groups_,
                  sectors=None if ctx.market is None else ctx.market.sectors)
    ctx.record("risk_decomposition", predicted_vol=d.total, factor_share=d.factor_share)
    fig = go.Figure(go.Bar(x=[*map(str, d.by_group.index), "specific"],
                           y=[*(100 * d.by_group.to_numpy()), 100 * d.specific],
                           marker_color="#b05a2a"))
    fig.update_layout(height=300, margin=dict(l=40, r=10, t=30, b=40),
                      title=d.summary(), yaxis_title="% per year")
    top = d.by_factor.reindex(d.by_factor.abs().sort_values(ascending=False).index).head(12)
    top_df = top.to_frame("contribution")
    return "".join([fig_html(fig), "<h3>Top factor contributions (annualised)</h3>",
                    _table(top_df, {"contribution": "pct"}, index="factor"),
                    "<h3>By sector</h3>",
                    _table(d.by_sector, {c: "pct" for c in d.by_sector.columns},
                           index="sector")])
