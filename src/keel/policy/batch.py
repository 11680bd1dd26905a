"""A float screen of a whole batch of orders: "every rule surely approves every order as is".

The exact review (:meth:`keel.policy.governance.GovernanceChain.evaluate`) works order by
order in ``Decimal`` against a projected book. Most batches pass it untouched: no rule comes
near its limit. :meth:`GovernanceChain.clears <keel.policy.governance.GovernanceChain.clears>`
checks that in floats, on arrays, with a safety margin: it answers True only when every
order passes every rule with room to spare (the Decimal review then approves each order at
its quantity, so the caller may skip it), and False whenever it cannot be sure (a rule close
to its limit or acting, a rule without a float form, odd inputs); the caller then runs the
exact review. A True answer is therefore never a different result, only a faster one
(tests/policy/test_fast_paths.py checks this against the exact review on random batches).

Units as in :mod:`keel.policy.verdicts`: quantities in units (shares), prices per unit,
values and ``nav`` in currency, multiplier 1 (no instrument registry).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

#: Relative safety margin of every "surely below the limit" comparison, as a fraction of
#: ``nav + gross + traded value`` (the Decimal review prices on a 1e-8 grid and sums exactly;
#: the float screen's error is far below 1e-9 of those magnitudes for prices >= 0.01).
MARGIN = 1e-6
#: Smallest price the screen accepts (below it the 1e-8 price grid is too coarse a fraction
#: of the price for :data:`MARGIN`).
MIN_PRICE = 0.01
#: Shares of slack when deciding that an order only reduces a position (Decimal positions
#: are on a 1e-8 grid).
QTY_SLACK = 1e-7


class BatchBook:
    """The float projection of a batch: holdings as the orders approved so far leave them.

    Args:
        nav: net asset value (currency, > 0).
        prices: price per name (currency per unit).
        held: signed units held per name before the batch.
        sectors: sector per name (None: every name ``Unknown``).
        drawdown: current drawdown of the book (fraction).
        traded_value: total |value| of the batch's orders (scales the margin).
    """

    def __init__(self, nav: float, prices: np.ndarray, held: np.ndarray,
                 sectors: Sequence[str] | None, drawdown: float, traded_value: float) -> None:
        self.nav = float(nav)
        self.prices = np.asarray(prices, dtype=np.float64)
        self.held = np.array(held, dtype=np.float64)
        self.sectors = sectors
        self.drawdown = float(drawdown)
        with np.errstate(invalid="ignore"):
            values = np.where(self.held != 0, np.abs(self.held * self.prices), 0.0)
        self.gross = float(values.sum())
        self.sector_gross: dict[str, float] = defaultdict(float)
        if sectors is not None:
            for k in np.flatnonzero(values).tolist():
                self.sector_gross[sectors[k]] += float(values[k])
        self.margin = MARGIN * (self.nav + self.gross + float(traded_value))

    def sector(self, j: int) -> str:
        return "Unknown" if self.sectors is None else self.sectors[j]

    def split(self, j: int, signed_qty: float) -> tuple[bool, float, float]:
        """(reduces, surely only reducing, increase bound) of trading ``signed_qty`` on name
        ``j``: whether it reduces a held position, whether it surely does nothing else, and
        an upper bound of its risk-increasing part (units)."""
        h = self.held[j]
        q = abs(signed_qty)
        if abs(h) > QTY_SLACK and (h > 0) != (signed_qty > 0):
            if q <= abs(h) - QTY_SLACK:
                return True, True, 0.0
            return True, False, max(q - abs(h), 0.0) + QTY_SLACK
        return False, False, q

    def apply(self, j: int, signed_qty: float) -> None:
        px = self.prices[j]
        before = abs(self.held[j] * px)
        self.held[j] += signed_qty
        delta = abs(self.held[j] * px) - before
        self.gross += delta
        if self.sectors is not None:
            self.sector_gross[self.sectors[j]] += delta


def batch_is_screenable(nav: float, prices: np.ndarray, held: np.ndarray,
                        names: np.ndarray, signed_qty: np.ndarray, drawdown: float) -> bool:
    """The inputs the float screen can vouch for: finite, NAV > 0, prices >= MIN_PRICE for
    every held or ordered name, non-zero quantities, drawdown in [0, 1]."""
    involved = np.asarray(held, dtype=np.float64) != 0
    involved[np.asarray(names, dtype=np.int64)] = True
    px = np.asarray(prices, dtype=np.float64)[involved]
    q = np.asarray(signed_qty, dtype=np.float64)
    return bool(np.isfinite(nav) and nav > 0 and np.all(np.isfinite(px))
                and np.all(px >= MIN_PRICE) and np.all(np.isfinite(q)) and np.all(q != 0)
                and np.isfinite(drawdown) and 0 <= drawdown <= 1)
