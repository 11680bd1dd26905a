"""Self-contained HTML report of a backtest (Plotly; plotly.js inlined once).

Sections: metrics table, equity curves, drawdown, turnover, cost breakdown, risk decomposition
over time, execution quality (cost per traded notional by algorithm), failures, the config.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from keel.backtest.metrics import drawdown

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from keel.backtest.engine import BacktestResult

_COST_COLS = ["spread", "impact", "commission", "timing", "borrow", "interest"]


def _fig_html(fig: go.Figure) -> str:
    fig.update_layout(template="plotly_white", height=420, margin={"l": 50, "r": 20,
                                                                     "t": 50, "b": 40})
    return str(fig.to_html(full_html=False, include_plotlyjs=False))


def figures(result: BacktestResult) -> dict[str, go.Figure]:
    """The report's figures by section name."""
    import plotly.graph_objects as go

    books = result.books
    figs: dict[str, go.Figure] = {}
    eq = go.Figure()
    for name, b in books.items():
        eq.add_trace(go.Scatter(x=b.nav.index, y=b.nav / b.nav.iloc[0], name=name))
    bench = (1.0 + result.benchmark).cumprod()
    eq.add_trace(go.Scatter(x=bench.index, y=bench, name="benchmark",
                            line={"dash": "dot", "color": "grey"}))
    eq.update_layout(title="Equity (NAV / initial NAV)")
    figs["equity"] = eq
    dd = go.Figure()
    for name, b in books.items():
        dd.add_trace(go.Scatter(x=b.nav.index, y=-drawdown(b.nav.dropna()), name=name,
                                fill="tozeroy"))
    dd.update_layout(title="Drawdown (fraction below the running peak)")
    figs["drawdown"] = dd
    to = go.Figure()
    for name, b in books.items():
        to.add_trace(go.Scatter(x=b.turnover.index, y=b.turnover.rolling(63, min_periods=1)
                                .sum() * 252 / 63, name=name))
    to.update_layout(title="Turnover (one-sided, annualised over a rolling 63 sessions)")
    figs["turnover"] = to
    m = result.metrics()
    cb = go.Figure()
    for comp in _COST_COLS:
        col = f"cost_{comp}_bps"
        if col in m:
            cb.add_trace(go.Bar(x=list(m.index), y=m[col], name=comp))
    cb.update_layout(barmode="relative",
                     title="Costs by component (bps of average NAV per year; interest < 0 is"
                           " income)")
    figs["costs"] = cb
    rk = go.Figure()
    for name, b in books.items():
        if len(b.risk):
            rk.add_trace(go.Scatter(x=b.risk.index, y=b.risk["factor"], name=f"{name} factor",
                                    stackgroup=name))
            rk.add_trace(go.Scatter(x=b.risk.index, y=b.risk["specific"],
                                    name=f"{name} specific", stackgroup=name))
    rk.update_layout(title="Predicted risk decomposition at each refit (annualised volatility"
                           " contribution: factor + specific)")
    figs["risk"] = rk
    ex = go.Figure()
    for comp in ("spread", "impact", "commission", "timing"):
        ex.add_trace(go.Bar(x=list(m.index), y=m[f"exec_{comp}_bps_traded"], name=comp))
    ex.update_layout(barmode="relative",
                     title="Execution quality: cost in bps of traded notional, by schedule")
    figs["execution"] = ex
    return figs


def _metrics_html(m: pd.DataFrame) -> str:
    cols = ["strategy", "algo", "cagr", "ann_vol", "sharpe", "max_drawdown", "turnover_ann",
            "tracking_error", "hit_rate", "cost_total_bps", "rebalances", "failed"]
    cols = [c for c in cols if c in m.columns]
    fmt = m[cols].copy()
    for c in ("cagr", "ann_vol", "max_drawdown", "tracking_error", "hit_rate"):
        if c in fmt:
            fmt[c] = fmt[c].map(lambda v: f"{100 * v:.2f}%")
    for c in ("sharpe", "turnover_ann", "cost_total_bps"):
        if c in fmt:
            fmt[c] = fmt[c].map(lambda v: f"{v:.2f}")
    return str(fmt.to_html(classes="metrics", border=0))


def render_html(result: BacktestResult, title: str = "keel backtest") -> str:
    """The whole report as one HTML string (no external resources)."""
    from plotly.offline import get_plotlyjs

    m = result.metrics()
    lag = result.execution_lag
    label = ("decisions at close t, executed through session t+1 (next_session)"
             if lag == "next_session" else
             "SAME-CLOSE FILLS (opt-in): decisions and fills at the same close t")
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p class='lag'><b>Execution:</b> {html.escape(label)}</p>",
             "<h2>Metrics</h2>", _metrics_html(m)]
    if len(result.universe):
        u = result.universe
        parts.append("<h2>Universe</h2><p>names in the tradable universe (point-in-time "
                     f"mask) per decision session: min {int(u.min())}, max {int(u.max())}, "
                     f"last {int(u.iloc[-1])}</p>")
        import plotly.graph_objects as go

        fig = go.Figure(go.Scatter(x=u.index, y=u.to_numpy(), name="universe"))
        fig.update_layout(title="Universe size over time")
        parts.append(_fig_html(fig))
    if result.risk_models:
        used = sorted({m for _, m in result.risk_models})
        parts.append(f"<p><b>Risk models used:</b> {html.escape(', '.join(used))}</p>")
    if result.failures:
        items = "".join(f"<li><b>{html.escape(k)}</b> failed on {html.escape(v['date'])}: "
                        f"{html.escape(v['reason'])}</li>" for k, v in result.failures.items())
        parts.append(f"<h2>Failures</h2><ul>{items}</ul>")
    titles = {"equity": "Equity curves", "drawdown": "Drawdown", "turnover": "Turnover",
              "costs": "Cost breakdown", "risk": "Risk decomposition over time",
              "execution": "Execution quality"}
    for key, fig in figures(result).items():
        parts.append(f"<h2>{titles[key]}</h2>{_fig_html(fig)}")
    t = {k: round(v, 3) for k, v in result.timings.items()}
    parts.append(f"<h2>Timings (s)</h2><pre>{html.escape(json.dumps(t, indent=1))}</pre>")
    parts.append("<h2>Config</h2><pre>"
                 f"{html.escape(json.dumps(result.config, indent=1, default=str))}</pre>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
             "table.metrics{border-collapse:collapse;font-size:13px}"
             "table.metrics td,table.metrics th{padding:3px 8px;border-bottom:1px solid #ddd}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{style}</style>"
            f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
            + "\n".join(parts) + "</body></html>")


def write_report(result: BacktestResult, path: str | Path, title: str = "keel backtest"
                 ) -> Path:
    """Write :func:`render_html` to ``path``; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_html(result, title), encoding="utf-8")
    return p


def write_sweep_report(table: pd.DataFrame, nav: pd.DataFrame, path: str | Path,
                       title: str = "keel sweep") -> Path:
    """One HTML page for a sweep: the table of every point x book and their equity curves."""
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    fig = go.Figure()
    for col in nav.columns:
        s = nav[col].dropna()
        if len(s):
            fig.add_trace(go.Scatter(x=s.index, y=s / s.iloc[0], name=str(col)))
    fig.update_layout(title="Equity (NAV / initial NAV) of every run")
    body = (f"<h1>{html.escape(title)}</h1><h2>Results</h2>"
            f"{table.to_html(classes='metrics', border=0, float_format=lambda v: f'{v:.4g}')}"
            f"<h2>Equity curves</h2>{_fig_html(fig)}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'>"
                 f"<title>{html.escape(title)}</title>"
                 f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
                 f"{body}</body></html>", encoding="utf-8")
    return p
