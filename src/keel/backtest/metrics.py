"""Performance metrics of a backtest book (plain functions on arrays and Series).

Units: returns, volatility, tracking error are annualised fractions (252 sessions a year);
``sharpe`` is the annualised mean excess return over the cash rate divided by the annualised
volatility; turnover is one-sided per year (``sum |trade| / (2 NAV)`` summed over a year);
costs are in bps of average NAV per year (``cost_*_bps``) and in bps of traded notional
(``exec_*_bps_traded``); ``hit_rate`` is the share of sessions with a positive return.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keel.risk.measures import drawdowns, max_drawdown

if TYPE_CHECKING:
    from keel.backtest.engine import BacktestResult, BookResult

TRADING_DAYS = 252


def drawdown(nav: pd.Series) -> pd.Series:
    """Drawdown path of a NAV series (fraction below the running peak, >= 0), indexed like
    ``nav``: :func:`keel.risk.measures.drawdowns` of its returns, 0 on the first date."""
    nav = nav.dropna()
    dd = drawdowns(nav.pct_change().iloc[1:].to_numpy())
    return pd.Series(np.concatenate([[0.0], dd]), index=nav.index, name="drawdown")


def book_metrics(book: BookResult, benchmark: pd.Series, *, cash_rate: float = 0.0
                 ) -> dict[str, Any]:
    """Return, vol, Sharpe, max drawdown, turnover, costs by component, TE, hit rate."""
    nav = book.nav.dropna()
    r = nav.pct_change().iloc[1:]
    n = len(r)
    years = n / TRADING_DAYS if n else float("nan")
    out: dict[str, Any] = {"book": book.name, "strategy": book.strategy, "algo": book.algo,
                           "sessions": n, "rebalances": book.rebalances,
                           "failed": book.failure is not None}
    if n < 2:
        return out
    rv = r.to_numpy()
    vol = float(np.std(rv, ddof=1) * np.sqrt(TRADING_DAYS))
    total = float(nav.iloc[-1] / nav.iloc[0] - 1.0)
    cagr = float((nav.iloc[-1] / nav.iloc[0]) ** (1.0 / years) - 1.0) if nav.iloc[-1] > 0 \
        else -1.0
    excess = rv - cash_rate / TRADING_DAYS
    sharpe = float(np.mean(excess) / np.std(rv, ddof=1) * np.sqrt(TRADING_DAYS)) if vol > 0 \
        else float("nan")
    b = benchmark.reindex(r.index).fillna(0.0).to_numpy()
    active = rv - b
    mean_nav = float(nav.iloc[:-1].mean())
    costs = book.costs.iloc[:n]
    traded = float(book.traded.iloc[:n].sum())
    out.update({
        "total_return": total, "cagr": cagr, "ann_return": float(np.mean(rv) * TRADING_DAYS),
        "ann_vol": vol, "sharpe": sharpe, "max_drawdown": float(max_drawdown(rv)),
        "turnover_ann": float(book.turnover.iloc[:n].sum() / years),
        "tracking_error": float(np.std(active, ddof=1) * np.sqrt(TRADING_DAYS)),
        "active_return": float(np.mean(active) * TRADING_DAYS),
        "hit_rate": float(np.mean(rv > 0)),
    })
    for comp in costs.columns:
        out[f"cost_{comp}_bps"] = float(costs[comp].sum() / mean_nav / years * 1e4)
    exec_cols = ["spread", "impact", "commission", "timing"]
    out["cost_total_bps"] = float(sum(out[f"cost_{c}_bps"] for c in costs.columns))
    for comp in exec_cols:
        out[f"exec_{comp}_bps_traded"] = (float(costs[comp].sum() / traded * 1e4)
                                         if traded > 0 else 0.0)
    if book.failure is not None:
        out["failure_date"] = book.failure["date"]
        out["failure_reason"] = book.failure["reason"]
    return out


def metrics_table(result: BacktestResult) -> pd.DataFrame:
    """One row per book of ``result``."""
    rate = float(result.config.get("costs", {}).get("cash_rate", 0.0))
    rows = [book_metrics(b, result.benchmark, cash_rate=rate) for b in result.books.values()]
    return pd.DataFrame(rows).set_index("book")
