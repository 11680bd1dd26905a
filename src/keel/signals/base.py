"""The signals protocol: scores and expected returns per symbol as of a time.

A signal model reads a point-in-time :class:`~keel.data.market.MarketData` view (a view from
``market.as_of(t)`` or ``market.head(n)``, whose last row stamp is ``market.now``) and returns
a :class:`SignalSnapshot` for ``market.now``: a cross-sectional score and an expected return
per symbol, both indexed by ``market.symbols``. A model never sees rows stamped after
``market.now``; external models (:mod:`keel.signals.external`) apply the same rule to their
own rows, so ``model.evaluate(market.as_of(t))`` is what was knowable at ``t``.

Score -> expected return follows Grinold's rule ``alpha = IC x volatility x z``: a
cross-sectional z-score ``z`` with information coefficient ``IC`` implies an expected residual
return proportional to the name's (daily) volatility.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from keel.errors import ValidationError

if TYPE_CHECKING:
    from keel.data.market import MarketData


@dataclass(frozen=True)
class SignalSnapshot:
    """What a signal model says at one instant.

    Attributes:
        as_of: UTC time of the view the snapshot was computed from (``market.now``).
        score: (N,) cross-sectional score (z-score units) indexed by ``market.symbols``;
            NaN where the model has no view of a name.
        alpha: (N,) expected simple return per ``periods`` sessions, same index; 0.0 where
            the model has no view (never a guess).
        name: the model that produced it.
    """

    as_of: pd.Timestamp
    score: pd.Series
    alpha: pd.Series
    name: str

    @property
    def coverage(self) -> float:
        """Fraction of symbols with a finite score."""
        return float(np.isfinite(self.score.to_numpy(dtype=np.float64)).mean())


@runtime_checkable
class SignalModel(Protocol):
    """Anything that turns a point-in-time market view into a :class:`SignalSnapshot`.

    ``evaluate`` must read only what ``market`` holds (rows stamped ``<= market.now``) and, for
    its own data, only values known at ``market.now``.
    """

    name: str

    def evaluate(self, market: MarketData) -> SignalSnapshot:
        """Scores and expected returns for ``market.symbols`` as of ``market.now``."""
        ...


def _zscore_array(x: np.ndarray, clip: float, name: str) -> np.ndarray:
    finite = np.isfinite(x)
    nf = int(finite.sum())
    if nf < 3:
        raise ValidationError("z-score needs at least 3 finite values", field=name, value=nf)
    xf = x[finite]
    sd = xf.std(ddof=1)
    if not sd > 0:
        raise ValidationError("z-score of a constant cross-section", field=name)
    z = np.clip((x - xf.mean()) / sd, -clip, clip)
    # re-standardise after winsorising so the score keeps unit dispersion
    zf = z[finite]
    return (z - zf.mean()) / zf.std(ddof=1)


def zscore(raw: pd.Series, *, clip: float = 3.0) -> pd.Series:
    """Cross-sectional z-score, winsorised at ``±clip``; NaN inputs stay NaN.

    Raises:
        ValidationError: fewer than 3 finite values, or no dispersion.
    """
    z = _zscore_array(raw.to_numpy(dtype=np.float64), clip, str(raw.name))
    return pd.Series(z, index=raw.index, name=raw.name)


def expected_returns(score: pd.Series, volatility: pd.Series, *, ic: float = 0.05,
                     periods: int = 1) -> pd.Series:
    """Grinold: ``alpha = IC x vol x z`` over ``periods`` sessions (vol is daily).

    Returns: (N,) expected simple returns per ``periods`` sessions, indexed like ``score``;
    names without a score or a volatility get 0 (no view), never a silent guess at their risk.
    """
    vol = volatility.reindex(score.index).to_numpy(dtype=np.float64)
    # in arrays (same operations, same order: the same floats as the Series arithmetic)
    alpha = ic * vol * np.sqrt(periods) * score.to_numpy(dtype=np.float64)
    return pd.Series(np.where(np.isfinite(alpha), alpha, 0.0), index=score.index,
                     name="alpha")
