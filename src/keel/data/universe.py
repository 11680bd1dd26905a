"""The point-in-time universe: which names can trade on each date, from data known by then.

:func:`tradable_mask` replaces the whole-sample missing-data policies (``drop`` removed any name
with a gap anywhere later in the sample; ``ffill`` removed every name listed after the first
date: both chose the universe with future data). A name is tradable at row ``t`` when its close
and its volume are known on each of the last ``min_history`` rows up to and including ``t``:

* it **enters** once it has ``min_history`` consecutive known bars (a late listing joins then);
* it **leaves** on the first row its data stops (a delisting, a halt, a gap), and re-enters
  after ``min_history`` known bars again;
* a missing open/high/low never matters (only close and volume are read).

The rule reads rows ``<= t`` only (causal), so the mask of a prefix is the prefix of the mask;
and a tradable name has complete prices over its last ``min_history`` rows (complete returns
over its last ``min_history - 1``), so an estimator with a return lookback ``< min_history``
sees no hole for it.
"""

from __future__ import annotations

import numpy as np

from keel.errors import DataError


def tradable_mask(prices: np.ndarray, volumes: np.ndarray, min_history: int) -> np.ndarray:
    """Bool array (dates x symbols): close and volume known on the last ``min_history`` rows.

    Args:
        prices, volumes: float arrays of one shape (dates x symbols); NaN = not known.
        min_history: bars of unbroken history a name needs before it can trade (>= 1).

    Raises:
        DataError: ``min_history < 1`` or mismatched shapes.
    """
    k = int(min_history)
    if k < 1:
        raise DataError("min_history must be >= 1 bar", field="min_history", value=min_history)
    p, v = np.asarray(prices, dtype=np.float64), np.asarray(volumes, dtype=np.float64)
    if p.shape != v.shape or p.ndim != 2:
        raise DataError("prices and volumes must be 2-D arrays of one shape", field="volumes",
                        value=(p.shape, v.shape))
    known = np.isfinite(p) & np.isfinite(v)
    # Known bars in the trailing window [t-k+1, t] from a running count (integer, exact).
    count = np.cumsum(known, axis=0, dtype=np.int64)
    window = count.copy()
    window[k:] -= count[:-k]
    out = window >= k
    out[: k - 1] = False
    return out
