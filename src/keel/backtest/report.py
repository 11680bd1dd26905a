"""Self-contained HTML report of a backtest (Plotly; plotly.js inlined once).

Sections: metrics table, equity curves, drawdown, turnover, cost breakdown, risk decomposition
over time, execution quality (cost per traded notional by algorithm), return attribution
(Brinson-Fachler by sector and factor attribution over time, per book), failures, the config.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keel.backtest.metrics import drawdown
from keel.errors import KeelError

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


def attribution(result: BacktestResult, market: Any) -> dict[str, Any]:
    """Return attribution of every book that traded (:func:`keel.risk.performance.
    book_attribution`): the weights each rebalance targeted, held from the next session and
    drifting with returns (as the backtest books them), against the equal-weight benchmark of
    the names with a return; factor attribution of the active weights on a fundamental model
    fitted over the whole span (each day's exposures at the previous close). The gap between
    the book's NAV return and the held weights' return is reported as ``other`` (costs, cash
    interest, and trades governance or participation cut)."""
    from keel.risk.fundamental import FundamentalFactorModel
    from keel.risk.performance import book_attribution, held_weights

    rets = market.returns
    model: Any = None
    note = ""
    try:
        model = FundamentalFactorModel().fit(market)
    except (KeelError, ArithmeticError, ValueError) as exc:
        note = f"no factor attribution ({type(exc).__name__}: {exc})"
    sectors = (pd.Series(market.sectors) if market.sectors is not None
               else pd.Series("Unknown", index=market.symbols))
    lag = 0 if result.execution_lag == "same_close" else 1
    out: dict[str, Any] = {}
    for name, book in result.books.items():
        if book.failure is not None or not book.decisions:
            continue
        targets = pd.DataFrame([d["target"] for d in book.decisions],
                               index=pd.DatetimeIndex([pd.Timestamp(d["date"])
                                                       for d in book.decisions]),
                               columns=market.symbols)
        span = rets.loc[(rets.index > book.nav.index[0]) & (rets.index <= book.nav.index[-1])]
        prior = rets.index[rets.index <= book.nav.index[0]]
        base = rets.loc[prior[-1:]] if len(prior) else span.iloc[:0]
        full = pd.concat([base, span])
        held = held_weights(targets.loc[targets.index.isin(full.index)], full, lag=lag)
        held = held.loc[span.index]
        nav = book.nav.dropna()
        out[name] = book_attribution(
            held, span, sectors, model=model if model is not None else None,
            market=market if model is not None else None,
            book_return=float(nav.iloc[-1] / nav.iloc[0] - 1.0))
    out["_note"] = note
    return out


def _attribution_html(result: BacktestResult, market: Any) -> str:
    import plotly.graph_objects as go

    try:
        att = attribution(result, market)
    except (KeelError, ArithmeticError, ValueError, KeyError) as exc:
        return (f"<h2>Return attribution</h2><p>unavailable: {html.escape(type(exc).__name__)}"
                f": {html.escape(str(exc))}</p>")
    note = att.pop("_note")
    parts = ["<h2>Return attribution</h2><p>Brinson-Fachler by sector of the weights each "
             "rebalance targeted (held from the next session, drifting with returns) against "
             "the equal-weight benchmark, linked over time (Cari&ntilde;o): the effects add up "
             "to the active return exactly. <i>other</i> = the book's NAV return minus the "
             "held weights' return (costs, cash interest, trades cut by governance or "
             "participation).</p>"]
    if note:
        parts.append(f"<p>{html.escape(note)}</p>")
    fmt = {"float_format": lambda v: f"{v:.4%}"}
    for name, a in att.items():
        bf = a.brinson
        lines = pd.Series({"held weights return": bf.portfolio_return,
                           "benchmark return": bf.benchmark_return,
                           "active return": bf.active_return,
                           "sum of the effects": float(bf.by_sector["total"].sum()),
                           "book NAV return": a.book_return, "other": a.other})
        parts.append(f"<h3>{html.escape(name)}</h3>"
                     + a.summary().to_html(classes="metrics", border=0, **fmt)
                     + lines.to_frame("value").to_html(classes="metrics", border=0, **fmt))
        if a.groups is not None and len(a.groups):
            fig = go.Figure()
            for col in a.groups.columns:
                fig.add_trace(go.Scatter(x=a.groups.index, y=np.cumsum(a.groups[col].to_numpy()),
                                         name=str(col)))
            fig.update_layout(title=f"{name}: active return by factor group (cumulative sum "
                              "of daily contributions)")
            parts.append(_fig_html(fig))
    return "\n".join(parts)


def _market_of(result: BacktestResult) -> Any:
    """The run's market, reloaded from its own config (None when that fails)."""
    from keel.app.pipeline import load_market
    from keel.config import parse_config

    try:
        return load_market(parse_config(dict(result.config)))
    except (KeelError, OSError, ValueError):
        return None


def render_html(result: BacktestResult, title: str = "keel backtest",
                market: Any = None) -> str:
    """The whole report as one HTML string (no external resources). ``market``: the run's
    market for the attribution section (None: reloaded from the run's config)."""
    from plotly.offline import get_plotlyjs

    m = result.metrics()
    lag = result.execution_lag
    label = ("decisions at close t, executed through session t+1 (next_session)"
             if lag == "next_session" else
             "SAME-CLOSE FILLS (opt-in): decisions and fills at the same close t")
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p class='lag'><b>Execution:</b> {html.escape(label)}</p>",
             *(f"<p class='caveat'><b>Data caveat:</b> {html.escape(c)}</p>"
               for c in result.caveats),
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
    if any(b.decisions for b in result.books.values()):
        mkt = market if market is not None else _market_of(result)
        parts.append(_attribution_html(result, mkt) if mkt is not None else
                     "<h2>Return attribution</h2><p>unavailable: the run's market could not "
                     "be reloaded from its config</p>")
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


def write_report(result: BacktestResult, path: str | Path, title: str = "keel backtest",
                 market: Any = None) -> Path:
    """Write :func:`render_html` to ``path``; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_html(result, title, market), encoding="utf-8")
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
