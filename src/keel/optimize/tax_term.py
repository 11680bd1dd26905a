"""`TaxCost`: the tax a sale realises, as a linear cost on the sold weight of each name.

``cost(w) = sum_i rate_i * max(w0_i - w_i, 0)`` (fraction of NAV), with ``rate_i >= 0`` the
tax per unit of value sold (gain fraction x short- or long-term rate of the lot that would be
relieved first: :func:`keel.accounts.tax.sell_tax_rates`). Buys cost nothing. Convex because
every rate is non-negative; a loss would need a negative rate (a reward for selling, concave),
so loss lots are priced at 0 by the rate function and refused here.

Solver form: ``max(-t, 0) = (|t| - t) / 2`` with ``t = w - w0``, so the term is
``abs_trade = rate / 2`` plus ``linear = -rate / 2`` (and a constant the solver ignores): the
problem stays on the direct QP path. The rates are a parameter, not a compiled constant:
:meth:`TaxCost.set_rates` before each solve re-uses one compiled problem across accounts.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd

from keel.errors import NonConvexError, ValidationError
from keel.optimize.build import BuildContext
from keel.optimize.forms import TermForm
from keel.optimize.inputs import PortfolioInputs, align_series
from keel.optimize.terms import Term


class TaxCost(Term):
    """Tax on sells at a per-name rate (fraction of the value sold).

    Args:
        rates: scalar, per-symbol Series (names absent pay 0) or (N,) array in the
            problem's symbol order; every rate >= 0.
        scale: multiplier of the whole term (>= 0).
    """

    kind = "cost"

    def __init__(self, rates: float | pd.Series | np.ndarray = 0.0, scale: float = 1.0
                 ) -> None:
        if not np.isfinite(scale) or scale < 0:
            raise NonConvexError("tax scale must be >= 0", field="scale", value=scale)
        self.scale = float(scale)
        self.rates: float | pd.Series | np.ndarray = 0.0
        self.set_rates(rates)

    def set_rates(self, rates: float | pd.Series | np.ndarray) -> None:
        """New rates (e.g. the next account's lots) for the same compiled problem."""
        if isinstance(rates, pd.Series):
            vals = rates.to_numpy(dtype=np.float64)
        else:
            vals = np.atleast_1d(np.asarray(rates, dtype=np.float64))
        if not np.all(np.isfinite(vals)):
            raise ValidationError("tax rates must be finite", field="rates")
        if np.any(vals < 0):
            bad = rates.index[vals < 0][0] if isinstance(rates, pd.Series) else None
            raise NonConvexError("tax rates must be >= 0 (a negative rate rewards selling)",
                                 field="rates", symbol=None if bad is None else str(bad),
                                 value=float(vals[vals < 0][0]))
        self.rates = rates

    def _rates(self, inputs: PortfolioInputs) -> np.ndarray:
        r = align_series(self.rates, inputs.symbols, "rates", fill=0.0)
        assert r is not None
        return self.scale * r

    def expr(self, ctx: BuildContext) -> cp.Expression:
        # DPP: rate x w0 is its own parameter, so the sold amount is parameter-affine
        r = ctx.param(f"tax_rate_{id(self)}", (ctx.n,), self._rates, nonneg=True)
        rw0 = ctx.param(f"tax_rate_w0_{id(self)}", (ctx.n,),
                        lambda x: self._rates(x) * x.current)
        return -cp.sum(cp.pos(rw0 - cp.multiply(r, ctx.w)))

    def value(self, w: np.ndarray, inputs: PortfolioInputs) -> float:
        return float(self._rates(inputs) @ np.maximum(inputs.current - w, 0.0))

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> TermForm | None:
        r = self._rates(inputs)
        return TermForm(linear=-0.5 * r, abs_trade=0.5 * r)
