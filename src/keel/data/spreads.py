"""Bid-ask spread *estimates* from daily high/low/close (no quotes needed).

Abdi & Ranaldo (2017), "A Simple Estimation of Bid-Ask Spreads from Daily Close, High, and
Low Prices", RFS 30(12). With ``c`` the log close and ``eta`` the log mid-range
``(log H + log L) / 2``, the two-day estimate is ``s^2 = 4 (c_t - eta_t)(c_t - eta_{t+1})``.

keel uses it *causally*: the estimate stamped at day ``t`` uses days ``t-1`` and ``t`` only
(``s^2_t = 4 (c_{t-1} - eta_{t-1})(c_{t-1} - eta_t)``), negative two-day values are set to
zero, the squares are averaged over a trailing ``window`` and square-rooted. The result is
floored at ``min_spread`` (default 1 bp) because ``MarketData`` requires spreads > 0; that
floor is a documented modelling choice, not data. These are estimates of the effective
spread, far noisier than quoted spreads: use them for cost-model defaults, not for TCA.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


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
