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
