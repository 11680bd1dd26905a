"""The demo's self-contained HTML report: positions, orders and fills, cost / TCA, risk.

One file, no network: plotly.js is inlined once (the first figure), the other figures reuse it.
Tables are plain HTML from pandas. Units are stated in every heading.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from keel.app.demo import DemoContext

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1100px;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f4}
.kv td:first-child{text-align:left}.muted{color:#777;font-size:13px}
.scroll{max-height:420px;overflow-y:auto}
"""


class _Figures:
    """Render plotly figures, inlining plotly.js with the first one only."""

    def __init__(self) -> None:
        self.first = True

    def __call__(self, fig: Any) -> str:
        out = fig.to_html(full_html=False, include_plotlyjs=self.first,
                          config={"displaylogo": False})
        self.first = False
        return str(out)


def _table(df: pd.DataFrame, *, floatfmt: str = "{:,.2f}", max_rows: int | None = None) -> str:
    if df.empty:
        return "<p class='muted'>(none)</p>"
    if max_rows is not None and len(df) > max_rows:
        df = df.head(max_rows)
    return str(df.to_html(float_format=lambda v: floatfmt.format(v), border=0,
                          na_rep="", escape=True))


def _kv(results: dict[str, Any]) -> str:
    rows = []
    for k, v in results.items():
        text = f"{v:,.4g}" if isinstance(v, float) else str(v)
        rows.append(f"<tr><td>{html.escape(k.replace('_', ' '))}</td>"
                    f"<td>{html.escape(text)}</td></tr>")
    return f"<table class='kv'>{''.join(rows)}</table>"


def positions_frame(ctx: DemoContext) -> pd.DataFrame:
    """Ledger positions with weight (fraction of equity) and sector."""
    desk = ctx.artifacts["desk"]
    st = desk.ledger.state
    sectors = ctx.market.sectors if ctx.market is not None else None
    rows = []
    for s, h in st.holdings.items():
        rows.append({"symbol": s, "qty": float(h.qty), "avg_price": float(h.avg_price),
                     "market_value": float(h.market_value),
                     "weight_pct": 100 * float(h.market_value / st.equity),
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
                        "</p>", "<h2>Summary</h2>", _kv(ctx.results)]
    # decision
    res = ctx.artifacts.get("cycle_result")
    if res is not None:
        stages = pd.DataFrame([{"stage": s.stage, "reason codes": ", ".join(s.codes)}
                               for s in res.stages]).set_index("stage")
        parts += ["<h2>Decision cycle (reason codes per stage)</h2>", _table(stages)]
    # positions
    pos = positions_frame(ctx)
    parts.append("<h2>Positions (end of day; weight in % of equity)</h2>")
    if not pos.empty:
        fig = go.Figure(go.Bar(x=pos.index, y=pos["weight_pct"], marker_color="#2a6fb0"))
        fig.update_layout(height=320, margin=dict(l=40, r=10, t=30, b=60),
                          yaxis_title="weight, % of equity", title="Holdings")
        parts.append(fig_html(fig))
    parts.append(f"<div class='scroll'>{_table(pos)}</div>")
    # orders and fills
    orders = orders_frame(ctx)
    fills = fills_frame(ctx)
    parts += ["<h2>Orders (parents; quantities in shares, prices per share)</h2>",
              f"<div class='scroll'>{_table(orders)}</div>",
              f"<h2>Fills ({len(fills)}; first 200)</h2>",
              f"<div class='scroll'>{_table(fills, max_rows=200)}</div>"]
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
        parts += [fig_html(fig), _table(by)]
        cols = [c for c in ("parent_id", "symbol", "algo", "filled_qty", "avg_price",
                            "arrival_price", "slippage_bps", "is_bps", "predicted_bps")
                if c in df]
        parts.append(f"<div class='scroll'>{_table(df[cols].set_index('parent_id'))}</div>")
    else:
        parts.append("<p class='muted'>(no filled orders)</p>")
    # risk
    parts.append("<h2>Risk decomposition (annualised volatility contributions)</h2>")
    parts.append(_risk_html(ctx, fig_html, go))
    body = "\n".join(parts)
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>keel demo "
           f"{html.escape(ctx.run_id)}</title><style>{_CSS}</style></head><body>{body}"
           "</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path


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
    return "".join([fig_html(fig), "<h3>Top factor contributions (fraction per year)</h3>",
                    _table(top.to_frame(), floatfmt="{:.4f}"),
                    "<h3>By sector</h3>", _table(d.by_sector, floatfmt="{:.4f}")])
