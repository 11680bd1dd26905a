"""Bid-ask spreads: from quotes when they exist, a labelled estimate or a fixed value otherwise.

**Sources** (:class:`SpreadSource`, the config key ``costs.spread_source``):

* ``quotes``: quoted spreads ``(ask - bid) / mid``; :func:`daily_quoted_spread` turns quote
  bars into one figure per session (the median of the in-session quoted spread). Names or
  dates without quotes fall back to the estimate (if high/low/close are given), else to the
  fixed default, else are refused; every name says which source it got.
* ``estimate``: the Abdi-Ranaldo estimate below, labelled as such.
* ``fixed``: ``costs.default_spread_bps`` everywhere.

:func:`select_spreads` takes these choices and returns a :class:`SpreadPanel` (values, the
source of each name, the caveat to print).

**The estimate.** Abdi & Ranaldo (2017), "A Simple Estimation of Bid-Ask Spreads from Daily
Close, High, and Low Prices", RFS 30(12). With ``c`` the log close and ``eta`` the log mid-range
``(log H + log L) / 2``, the two-day estimate is ``s^2 = 4 (c_t - eta_t)(c_t - eta_{t+1})``.
keel uses it *causally*: the estimate stamped at day ``t`` uses days ``t-1`` and ``t`` only
(``s^2_t = 4 (c_{t-1} - eta_{t-1})(c_{t-1} - eta_t)``), negative two-day values are set to
zero, the squares are averaged over a trailing ``window`` and square-rooted. The result is
floored at ``min_spread`` (default 1 bp) because ``MarketData`` requires spreads > 0; that
floor is a documented modelling choice, not data. These are estimates of the effective
spread from daily ranges, dominated by volatility for liquid large caps: on the 2013-2018
S&P 500 file the cross-sectional median on the last day is 86.6 bps and AAPL's median over
the five years 81 bps, where the quoted spread is about 1 bp. Use
quotes (or a fixed figure) for costs whenever you can; never use the estimate for TCA.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from keel.data.calendar import ExchangeCalendar, regular_hours
from keel.errors import DataError, ValidationError

#: printed wherever the price-based estimate is shown
ESTIMATE_CAVEAT = ("Abdi-Ranaldo estimate from daily high/low/close, not quotes: noisy and "
                   "biased high for liquid names (AAPL 2013-18: median ~81 bps estimated vs "
                   "~1 bp quoted); "
                   "use quoted spreads or costs.spread_source = fixed for costs")


class SpreadFallback(StrEnum):
    """What stands in for a name without a quote under ``quotes``
    (``costs.spread_fallback``)."""

    FIXED = "fixed"
    ESTIMATE = "estimate"
    NONE = "none"


class SpreadSource(StrEnum):
    """Where spreads come from (``costs.spread_source``)."""

    QUOTES = "quotes"
    ESTIMATE = "estimate"
    FIXED = "fixed"


def abdi_ranaldo_spread(high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame, *,
                        window: int = 21, min_spread: float = 1e-4) -> pd.DataFrame:
    """Causal Abdi-Ranaldo spread estimate, dates x symbols, fraction of mid.

    Args:
        high, low, close: aligned dates x symbols panels (> 0; NaN allowed).
        window: trailing averaging window in bars.
        min_spread: floor of the estimate (fraction of mid).

    Returns:
        Same shape as ``close``; the first row (no pair yet) is NaN.
    """
    c = np.log(close.to_numpy(dtype=np.float64))
    eta = 0.5 * (np.log(high.to_numpy(dtype=np.float64)) + np.log(low.to_numpy(np.float64)))
    s2 = np.full(c.shape, np.nan)
    s2[1:] = 4.0 * (c[:-1] - eta[:-1]) * (c[:-1] - eta[1:])
    s2 = np.where(np.isnan(s2), np.nan, np.maximum(s2, 0.0))
    mean = pd.DataFrame(s2, index=close.index, columns=close.columns).rolling(
        window, min_periods=1).mean()
    return np.sqrt(mean).clip(lower=min_spread)


def daily_quoted_spread(quotes: pd.DataFrame,
                        calendar: ExchangeCalendar | str = "XNYS") -> pd.Series:
    """Median in-session quoted spread per local session date (fraction of mid).

    ``quotes``: a tz-aware (UTC) time index and ``bid``/``ask`` columns (e.g. the closing
    quote of each minute bar, ``keel.execution.bars.load_minute_bars``). Rows outside the
    regular session of ``calendar`` (open to close, early on half days) and crossed or empty
    quotes (bid <= 0 or ask <= bid) are left out.

    Raises:
        DataError: missing columns, or no valid in-session quote (field ``quotes``).
    """
    if not {"bid", "ask"} <= set(quotes.columns):
        raise DataError("quotes need bid and ask columns", field="quotes",
                        value=sorted({"bid", "ask"} - set(quotes.columns)))
    regular, local = regular_hours(pd.DatetimeIndex(quotes.index), calendar)
    bid = quotes["bid"].to_numpy(dtype=np.float64)
    ask = quotes["ask"].to_numpy(dtype=np.float64)
    ok = regular & (bid > 0) & (ask > bid)
    if not ok.any():
        raise DataError("no valid in-session quote (bid > 0, ask > bid)", field="quotes")
    rel = (ask[ok] - bid[ok]) / (0.5 * (ask[ok] + bid[ok]))
    day = local[ok].normalize().tz_localize(None)
    return pd.Series(rel, index=day).groupby(level=0).median().rename("quoted_spread")


@dataclass(frozen=True)
class SpreadPanel:
    """Spreads chosen by :func:`select_spreads`.

    Attributes:
        values: dates x symbols, full spread as a fraction of mid.
        source: per symbol, where its latest value came from (``quotes``, ``estimate``,
            ``fixed``).
        caveat: what to print beside the figures ('' for quotes only).
    """

    values: pd.DataFrame
    source: pd.Series
    caveat: str = ""


def select_spreads(source: SpreadSource | str, *, index: pd.Index, symbols: pd.Index,
                   quotes: pd.DataFrame | None = None, high: pd.DataFrame | None = None,
                   low: pd.DataFrame | None = None, close: pd.DataFrame | None = None,
                   default_spread_bps: float | None = None, window: int = 21) -> SpreadPanel:
    """Spreads for ``index`` (dates) x ``symbols`` from the chosen source.

    Args:
        source: ``quotes``, ``estimate`` or ``fixed`` (``costs.spread_source``).
        quotes: dates x symbols quoted spreads (fraction of mid; NaN where none).
        high, low, close: daily panels for the Abdi-Ranaldo estimate.
        default_spread_bps: ``costs.default_spread_bps``: the fixed value, and the last
            fallback of ``quotes``.
        window: trailing window of the estimate, sessions.

    Raises:
        ValidationError: unknown source, or ``fixed`` without ``default_spread_bps`` (field
            ``spread_source`` / ``default_spread_bps``).
        DataError: ``estimate`` without high/low/close; a name with neither quotes, nor an
            estimate, nor a default (field ``spreads``, the symbol named).
    """
    try:
        src = SpreadSource(str(source).lower())
    except ValueError:
        raise ValidationError("unknown spread source (quotes, estimate or fixed)",
                              field="spread_source", value=source) from None
    fixed = None
    if default_spread_bps is not None:
        if not (np.isfinite(default_spread_bps) and default_spread_bps > 0):
            raise ValidationError("default_spread_bps must be > 0", field="default_spread_bps",
                                  value=default_spread_bps)
        fixed = pd.DataFrame(default_spread_bps * 1e-4, index=index, columns=symbols)
    have_range = high is not None and low is not None and close is not None
    estimate = None
    if have_range and src is not SpreadSource.FIXED:
        assert high is not None and low is not None and close is not None
        estimate = abdi_ranaldo_spread(high.reindex(index=index, columns=symbols),
                                       low.reindex(index=index, columns=symbols),
                                       close.reindex(index=index, columns=symbols),
                                       window=window)
    if src is SpreadSource.FIXED:
        if fixed is None:
            raise ValidationError("spread_source fixed needs default_spread_bps",
                                  field="default_spread_bps")
        return SpreadPanel(fixed, pd.Series(src.value, index=symbols, name="spread_source"),
                           f"fixed {default_spread_bps:g} bps for every name")
    if src is SpreadSource.ESTIMATE:
        if estimate is None:
            raise DataError("spread_source estimate needs daily high, low and close",
                            field="spreads")
        return SpreadPanel(estimate, pd.Series(src.value, index=symbols, name="spread_source"),
                           ESTIMATE_CAVEAT)
    values = (pd.DataFrame(np.nan, index=index, columns=symbols) if quotes is None
              else quotes.reindex(index=index, columns=symbols).astype(np.float64))
    label = pd.DataFrame(np.where(values.notna(), "quotes", ""), index=index, columns=symbols)
    for name, fill in (("estimate", estimate), ("fixed", fixed)):
        if fill is None:
            continue
        hole = values.isna() & fill.notna()
        values = values.where(~hole, fill)
        label = label.where(~hole, name)
    last = label.iloc[-1] if len(label) else pd.Series("", index=symbols)
    if (last == "").any():
        sym = str(last.index[int(np.argmax((last == "").to_numpy()))])
        raise DataError("no quoted spread for this name and no fallback (give high/low/close "
                        "or default_spread_bps)", field="spreads", symbol=sym)
    used = set(last)
    caveat = ""
    if "estimate" in used:
        caveat = (f"{int((last == 'estimate').sum())} name(s) without quotes use the "
                  f"{ESTIMATE_CAVEAT}")
    elif "fixed" in used:
        caveat = (f"{int((last == 'fixed').sum())} name(s) without quotes use the fixed "
                  f"{default_spread_bps:g} bps")
    return SpreadPanel(values, last.rename("spread_source"), caveat)
