"""Return (performance) attribution: Brinson-Fachler by sector and factor return attribution.

Conventions. ``weights`` rows are the weights *held over* the period whose return is on the same
row: row ``t`` of ``weights`` multiplies row ``t`` of ``returns`` (shift decision-time weights by
one period before calling). Weights are fractions of NAV; what they leave un-invested is cash
with zero return, its own bucket (``"cash"``). Returns are simple per-period returns.

* **Brinson-Fachler** (per period, sector ``s``; ``w`` portfolio / ``b`` benchmark sector
  weights, ``r`` / ``rb`` their sector returns, ``Rb`` the benchmark return):
  allocation ``(w - b)(rb - Rb)``, selection ``b (r - rb)``, interaction ``(w - b)(r - rb)``.
  They add up to the active return ``Rp - Rb`` of each period exactly.
* **Factor attribution** (per period): the portfolio's factor exposure ``x = B' w`` times the
  factor return ``f`` per factor, and the specific part ``Rp - x' f``, so factor parts plus
  specific equal the portfolio return exactly.
* **Linking over time** (Cariño 1999): each period's pieces are scaled by
  ``k_t / K`` with ``k_t = ln((1+Rp_t)/(1+Rb_t)) / (Rp_t - Rb_t)`` and ``K`` the same for the whole
  span, so the linked pieces add up to the compounded active (or total) return exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from keel.errors import ValidationError

CASH = "cash"
EFFECTS = ("allocation", "selection", "interaction")


def _frame(x: pd.DataFrame | pd.Series, name: str) -> pd.DataFrame:
    df = x.to_frame().T if isinstance(x, pd.Series) else x
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise ValidationError("expected a non-empty DataFrame (dates x symbols)", field=name)
    values = df.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)):
        r, c = np.argwhere(~np.isfinite(values))[0]
        raise ValidationError("non-finite value", field=name, symbol=str(df.columns[c]),
                              value=values[r, c], date=str(df.index[r]))
    return df.astype(np.float64)


def _aligned(weights: pd.DataFrame, returns: pd.DataFrame, name: str) -> pd.DataFrame:
    missing = weights.columns.difference(returns.columns)
    if len(missing):
        raise ValidationError("weights name symbols without returns", field=name,
                              symbol=str(missing[0]))
    gone = weights.index.difference(returns.index)
    if len(gone):
        raise ValidationError("weights on dates without returns", field=name,
                              value=str(gone[0]))
    return weights


def carino_factors(portfolio: np.ndarray, benchmark: np.ndarray) -> np.ndarray:
    """Per-period linking factors ``k_t / K`` (Cariño): sum_t piece_t * factor_t adds up to
    ``prod(1 + Rp) - prod(1 + Rb)`` when each period's pieces add up to ``Rp_t - Rb_t``."""

    def k(rp: np.ndarray | float, rb: np.ndarray | float) -> np.ndarray:
        rp, rb = np.asarray(rp, dtype=np.float64), np.asarray(rb, dtype=np.float64)
        diff = rp - rb
        same = np.abs(diff) < 1e-14
        safe = np.where(same, 1.0, diff)
        return np.where(same, 1.0 / (1.0 + rp), (np.log1p(rp) - np.log1p(rb)) / safe)

    total_p = float(np.prod(1.0 + portfolio) - 1.0)
    total_b = float(np.prod(1.0 + benchmark) - 1.0)
    return k(portfolio, benchmark) / k(total_p, total_b)


@dataclass(frozen=True)
class BrinsonResult:
    """Brinson-Fachler attribution.

    Attributes:
        by_period: (T, 5) allocation, selection, interaction, active, and the check column
            ``residual`` (active minus the three effects: 0 up to rounding).
        by_sector: (S, 4) allocation, selection, interaction, total, linked over the span
            (Cariño) so the column ``total`` adds up to ``active_return``.
        portfolio_return, benchmark_return: compounded over the span.
        active_return: ``portfolio_return - benchmark_return``.
    """

    by_period: pd.DataFrame
    by_sector: pd.DataFrame
    portfolio_return: float
    benchmark_return: float

    @property
    def active_return(self) -> float:
        return self.portfolio_return - self.benchmark_return


def _sector_view(weights: pd.DataFrame, returns: pd.DataFrame, sectors: pd.Series
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(T, S) sector weights and sector contributions (sum of w_i r_i), cash as a sector."""
    r = returns.reindex(index=weights.index, columns=weights.columns)
    groups = sectors.reindex(weights.columns)
    if groups.isna().any():
        raise ValidationError("symbol without a sector", field="sectors",
                              symbol=str(groups[groups.isna()].index[0]))
    w_s = weights.T.groupby(groups.to_numpy()).sum().T
    c_s = (weights * r).T.groupby(groups.to_numpy()).sum().T
    w_s[CASH] = 1.0 - weights.sum(axis=1)
    c_s[CASH] = 0.0
    return w_s, c_s


def brinson_fachler(weights: pd.DataFrame | pd.Series, benchmark: pd.DataFrame | pd.Series,
                    returns: pd.DataFrame | pd.Series, sectors: pd.Series) -> BrinsonResult:
    """Brinson-Fachler attribution of ``weights`` against ``benchmark`` by ``sectors``.

    Args:
        weights, benchmark: (T, N) weights held over each period (a Series: one period).
        returns: (T, N) simple returns of the period on the same rows.
        sectors: symbol -> sector.
    """
    w = _frame(weights, "weights")
    b = _frame(benchmark, "benchmark")
    r = _frame(returns, "returns")
    if isinstance(weights, pd.Series):
        w.index = r.index[:1] if isinstance(returns, pd.Series) else w.index
        b.index = w.index
        r.index = w.index
    _aligned(w, r, "weights")
    _aligned(b, r, "benchmark")
    b = b.reindex(index=w.index)
    if b.isna().any().any():
        raise ValidationError("benchmark has no weights on some portfolio dates",
                              field="benchmark")
    wp, cp = _sector_view(w, r, sectors)
    wb, cb = _sector_view(b, r, sectors)
    cols = wp.columns.union(wb.columns)
    wp, cp, wb, cb = (x.reindex(columns=cols, fill_value=0.0) for x in (wp, cp, wb, cb))
    rb_s = (cb / wb.where(wb != 0)).fillna(0.0)                 # benchmark sector returns
    rp_s = (cp / wp.where(wp != 0))
    rp_s = rp_s.where(wp != 0, rb_s)                            # empty sector: no selection
    rp_tot = cp.sum(axis=1)
    rb_tot = cb.sum(axis=1)
    alloc = (wp - wb).mul(rb_s.sub(rb_tot, axis=0))
    select = wb * (rp_s - rb_s)
    inter = (wp - wb) * (rp_s - rb_s)
    by_period = pd.DataFrame({
        "allocation": alloc.sum(axis=1), "selection": select.sum(axis=1),
        "interaction": inter.sum(axis=1), "active": rp_tot - rb_tot})
    by_period["residual"] = by_period["active"] - by_period[list(EFFECTS)].sum(axis=1)
    link = carino_factors(rp_tot.to_numpy(), rb_tot.to_numpy())
    by_sector = pd.DataFrame({
        "allocation": alloc.mul(link, axis=0).sum(),
        "selection": select.mul(link, axis=0).sum(),
        "interaction": inter.mul(link, axis=0).sum()})
    by_sector["total"] = by_sector.sum(axis=1)
    return BrinsonResult(by_period=by_period, by_sector=by_sector,
                         portfolio_return=float(np.prod(1.0 + rp_tot.to_numpy()) - 1.0),
                         benchmark_return=float(np.prod(1.0 + rb_tot.to_numpy()) - 1.0))


@dataclass(frozen=True)
class FactorAttribution:
    """Factor return attribution.

    Attributes:
        by_period: (T, K + 2) each factor's contribution ``x_k f_k``, ``specific`` and ``total``
            (the portfolio's return; factors + specific == total exactly).
        exposures: (T, K) the portfolio's factor exposures ``B' w`` per period.
        linked: (K + 1,) contributions linked over the span (Cariño against a zero return), so
            they add up to the compounded return ``total_return``.
        total_return: compounded portfolio return over the span.
    """

    by_period: pd.DataFrame
    exposures: pd.DataFrame
    linked: pd.Series
    total_return: float


def factor_attribution(weights: pd.DataFrame | pd.Series, returns: pd.DataFrame | pd.Series,
                       exposures: pd.DataFrame | Mapping[pd.Timestamp, pd.DataFrame],
                       factor_returns: pd.DataFrame) -> FactorAttribution:
    """Split a portfolio's (or active: pass ``w - w_bench``) return into factors and specific.

    Args:
        weights: (T, N) weights held over each period.
        returns: (T, N) simple returns on the same rows.
        exposures: (N, K) loadings used for every period, or date -> (N, K) per period
            (e.g. each day's cross-sectional regression inputs).
        factor_returns: (T, K) factor returns on the same rows (e.g. a fitted model's
            ``factor_returns_``).
    """
    w = _frame(weights, "weights")
    r = _frame(returns, "returns")
    if isinstance(weights, pd.Series):
        w.index = factor_returns.index[-1:]
        r.index = w.index if isinstance(returns, pd.Series) else r.index
    _aligned(w, r, "weights")
    f = factor_returns.reindex(w.index)
    if f.isna().any().any():
        raise ValidationError("factor returns missing on some weight dates",
                              field="factor_returns", value=str(f.index[f.isna().any(axis=1)][0]))
    total = (w * r.reindex(index=w.index, columns=w.columns)).sum(axis=1)
    rows = []
    for t in w.index:
        b = exposures if isinstance(exposures, pd.DataFrame) else exposures.get(t)
        if b is None:
            raise ValidationError("no exposures for a weight date", field="exposures",
                                  value=str(t))
        missing = w.columns.difference(b.index)
        if len(missing):
            raise ValidationError("exposures missing for symbols", field="exposures",
                                  symbol=str(missing[0]), value=str(t))
        rows.append(b.loc[w.columns, f.columns].T.to_numpy() @ w.loc[t].to_numpy())
    x = pd.DataFrame(np.vstack(rows), index=w.index, columns=f.columns)
    contrib = x * f
    by_period = contrib.copy()
    by_period["specific"] = total - contrib.sum(axis=1)
    by_period["total"] = total
    link = carino_factors(total.to_numpy(), np.zeros(len(total)))
    linked = by_period.drop(columns="total").mul(link, axis=0).sum()
    return FactorAttribution(by_period=by_period, exposures=x, linked=linked,
                             total_return=float(np.prod(1.0 + total.to_numpy()) - 1.0))


# --------------------------------------------------------------------------- products


def held_weights(targets: pd.DataFrame, returns: pd.DataFrame, *, lag: int = 1
                 ) -> pd.DataFrame:
    """Weights held over each period of ``returns`` from a book's rebalance targets.

    A target decided on row ``d`` of ``returns``' index is held from ``lag`` rows later (1: the
    desk's next-session execution, 0: filled at the decision close) and then drifts with the
    returns (cash keeps its value: ``w' = w (1 + r) / (1 + w'r)``). Rows before the first
    target hold nothing (all cash). Row ``t`` is held over ``returns`` row ``t``.

    Raises:
        ValidationError: a target date outside ``returns``, symbols without returns, lag < 0.
    """
    if lag < 0:
        raise ValidationError("lag must be >= 0", field="lag", value=lag)
    t = _frame(targets, "targets")
    _aligned(t, returns, "targets")
    r = returns.reindex(columns=t.columns).to_numpy(dtype=np.float64)
    pos = returns.index.get_indexer(t.index)
    starts = {int(p) + lag: i for i, p in enumerate(pos)}
    out = np.zeros_like(r)
    w = np.zeros(r.shape[1])
    for row in range(len(r)):
        if row in starts:
            w = t.iloc[starts[row]].to_numpy(dtype=np.float64).copy()
        out[row] = w
        held_nan = np.isnan(r[row]) & (w != 0)
        if held_nan.any():
            raise ValidationError("weight held on a name without a return", field="returns",
                                  symbol=str(t.columns[int(np.argmax(held_nan))]),
                                  value=str(returns.index[row]))
        rr = np.nan_to_num(r[row])  # names with no weight: their missing return moves nothing
        w = w * (1.0 + rr) / (1.0 + float(w @ rr))
    return pd.DataFrame(out, index=returns.index, columns=t.columns)


class _DailyExposures(Mapping[pd.Timestamp, pd.DataFrame]):
    """(N, K) exposures of each regression date, built on demand from the (T, N, K) panel."""

    def __init__(self, panel: np.ndarray, dates: pd.Index, symbols: pd.Index,
                 factors: pd.Index) -> None:
        self.panel, self.symbols, self.factors = panel, symbols, factors
        self.pos = {d: i for i, d in enumerate(dates)}

    def __getitem__(self, key: pd.Timestamp) -> pd.DataFrame:
        return pd.DataFrame(self.panel[self.pos[key]], index=self.symbols, columns=self.factors)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.pos)

    def __len__(self) -> int:
        return len(self.pos)


def fundamental_exposures(model: Any, market: Any) -> Mapping[pd.Timestamp, pd.DataFrame]:
    """The exposures a fitted :class:`~keel.risk.fundamental.FundamentalFactorModel` regressed
    each day's returns on (market 1, sector dummy, the styles standardised at the previous
    close), by regression date: with them, ``w'(r - B f)`` is ``w`` times the model's own
    ``specific_returns_`` (tested)."""
    from keel.risk.fundamental import _clean_weights
    from keel.risk.styles import raw_style, standardize

    styles, _ = model._params()
    r = market.returns
    symbols = r.columns
    adv = _clean_weights(market.adv_notional.iloc[1:].to_numpy())
    caps = (None if market.market_caps is None
            else _clean_weights(market.market_caps.iloc[1:].to_numpy()))
    capw = adv if caps is None else caps
    z = (np.stack([standardize(raw_style(market, s).to_numpy(), capw, float(model.clip))
                   for s in styles], axis=2) if styles else np.zeros((*r.shape, 0)))
    sectors = pd.Series(market.sectors).reindex(symbols).astype(str)
    names = pd.Index(sorted(sectors.unique()))
    onehot = np.zeros((len(symbols), len(names)))
    onehot[np.arange(len(symbols)), names.get_indexer(sectors)] = 1.0
    dates = pd.Index(model.regression_dates_)
    rows = r.index.get_indexer(dates) - 1          # exposures at the previous close
    fixed = np.hstack([np.ones((len(symbols), 1)), onehot])
    panel = np.concatenate([np.broadcast_to(fixed, (len(rows), *fixed.shape)),
                            np.nan_to_num(z[rows])], axis=2)
    return _DailyExposures(panel, dates, symbols, pd.Index(model.factor_returns_.columns))


@dataclass(frozen=True)
class BookAttribution:
    """A book's return attribution over a span (all pieces add up exactly, tested).

    Attributes:
        brinson: Brinson-Fachler by sector of the held weights against the benchmark weights.
        factors: factor attribution of the *active* weights (held minus benchmark) on the
            fundamental model: factor contributions + specific = the active return per period.
        groups: (T, G) the factor contributions summed by group (market, sector, style) plus
            ``specific``: each row adds up to the active return of the held weights.
        book_return: the book's own compounded return (NAV, after costs) when given, else NaN;
            ``book_return - brinson.portfolio_return`` is what costs, cash interest and
            execution took or added (``other``).
    """

    brinson: BrinsonResult
    factors: FactorAttribution | None
    groups: pd.DataFrame | None
    book_return: float = float("nan")

    @property
    def other(self) -> float:
        return self.book_return - self.brinson.portfolio_return

    def summary(self) -> pd.DataFrame:
        """One table: Brinson effects linked by sector, with the totals and the check."""
        t = self.brinson.by_sector.copy()
        t.loc["total"] = t.sum()
        return t


def book_attribution(held: pd.DataFrame, returns: pd.DataFrame, sectors: pd.Series, *,
                     benchmark: pd.DataFrame | None = None, model: Any = None,
                     market: Any = None, groups: pd.Series | None = None,
                     book_return: float = float("nan")) -> BookAttribution:
    """Brinson-Fachler by sector and factor attribution of a book's held weights.

    Args:
        held: (T, N) weights held over each row of ``returns`` (see :func:`held_weights`).
        returns: (T, N) simple returns.
        sectors: symbol -> sector (``Unknown`` for names without one).
        benchmark: (T, N) benchmark weights (default: equal weight of the names with a return).
        model, market: a fitted FundamentalFactorModel and the market it was fitted on (both,
            or neither: no factor attribution); only rows on its regression dates are used.
        groups: factor -> group (default ``model.factor_groups_``).
        book_return: the book's NAV return over the same span (reported beside, as ``other``).
    """
    r = returns.reindex(index=held.index, columns=held.columns)
    ok = r.notna()
    if benchmark is None:
        benchmark = ok.div(ok.sum(axis=1).where(ok.sum(axis=1) > 0), axis=0).fillna(0.0)
    if (held.where(~ok, 0.0).abs() > 1e-12).any().any():
        raise ValidationError("weight held on a name without a return", field="held")
    r0 = r.fillna(0.0)
    bf = brinson_fachler(held, benchmark, r0, sectors.reindex(held.columns).fillna("Unknown"))
    fa, grouped = None, None
    if model is not None and market is not None:
        dates = held.index.intersection(pd.Index(model.regression_dates_))
        expo = fundamental_exposures(model, market)
        active = (held - benchmark).loc[dates]
        fa = factor_attribution(active, r0.loc[dates], expo,
                                model.factor_returns_.loc[dates])
        g = groups if groups is not None else model.factor_groups_
        contrib = fa.by_period.drop(columns=["specific", "total"])
        grouped = contrib.T.groupby(g.reindex(contrib.columns).to_numpy()).sum().T
        grouped["specific"] = fa.by_period["specific"]
    return BookAttribution(bf, fa, grouped, book_return)
