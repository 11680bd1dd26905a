"""Objective terms: small objects summed into ``maximise alpha - risk - cost``.

Each term builds a CVXPY expression of its *utility contribution* (concave, to be maximised)
and recomputes its value with NumPy alone (``value``), so the objective split reported by an
optimizer is checked independently of the solver. ``kind`` groups terms in the split:
``alpha`` (added), ``risk`` and ``cost`` (subtracted; reported as positive amounts).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable

import cvxpy as cp
import numpy as np
import pandas as pd

from keel.costs.base import CostModel, TradeContext
from keel.errors import NonConvexError, ValidationError
from keel.optimize.build import BuildContext, require
from keel.optimize.forms import TermForm
from keel.optimize.inputs import PortfolioInputs, align_series, fingerprint


class Term(ABC):
    """One piece of the objective."""

    kind: str = "alpha"

    @property
    def name(self) -> str:
        return type(self).__name__

    @abstractmethod
    def expr(self, ctx: BuildContext) -> cp.Expression:
        """Concave scalar utility contribution (``alpha'w``, ``-gamma * var``, ``-cost``)."""

    @abstractmethod
    def value(self, w: np.ndarray, inputs: PortfolioInputs) -> float:
        """The amount this term contributes, NumPy only: alpha as a gain, risk/cost as >= 0
        amounts (the utility is ``alpha - risk - cost``)."""

    def structure(self, inputs: PortfolioInputs) -> Hashable:
        """Anything compiled in as a constant (recompile when it changes)."""
        return None

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> TermForm | None:
        """The term in solver form (:class:`~keel.optimize.forms.TermForm`), or None when it
        has none (the CVXPY engine solves). ``nonneg``: the constraints force ``w >= 0``."""
        return None

    def sign(self) -> float:
        return 1.0 if self.kind == "alpha" else -1.0


class Alpha(Term):
    """Expected return ``alpha'w`` (per period), optionally scaled."""

    kind = "alpha"

    def __init__(self, scale: float = 1.0) -> None:
        if not np.isfinite(scale):
            raise ValidationError("scale must be finite", field="scale", value=scale)
        self.scale = float(scale)

    def expr(self, ctx: BuildContext) -> cp.Expression:
        a = ctx.param("alpha", (ctx.n,), lambda x: x.alpha)
        return self.scale * (a @ ctx.w)

    def value(self, w: np.ndarray, inputs: PortfolioInputs) -> float:
        return self.scale * float(inputs.alpha @ w)

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> TermForm | None:
        return TermForm(linear=-self.scale * inputs.alpha)


class Risk(Term):
    """``risk_aversion * w' Sigma w`` (variance per period; factored when the model is).

    Args:
        risk_aversion: >= 0; negative would reward risk (non-convex), refused at once.
        benchmark_relative: penalise active risk ``(w - b)' Sigma (w - b)`` instead.
    """

    kind = "risk"

    def __init__(self, risk_aversion: float = 1.0, *, benchmark_relative: bool = False) -> None:
        if not np.isfinite(risk_aversion) or risk_aversion < 0:
            raise NonConvexError("risk_aversion must be >= 0 (a negative value rewards risk)",
                                 field="risk_aversion", value=risk_aversion)
        self.risk_aversion = float(risk_aversion)
        self.benchmark_relative = benchmark_relative

    def expr(self, ctx: BuildContext) -> cp.Expression:
        return -self.risk_aversion * ctx.variance("benchmark" if self.benchmark_relative
                                                  else None)

    def value(self, w: np.ndarray, inputs: PortfolioInputs) -> float:
        x = w - inputs.benchmark if self.benchmark_relative else w
        return self.risk_aversion * inputs.variance(x)

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> TermForm | None:
        require(inputs, "risk", self.name)
        if self.benchmark_relative:
            require(inputs, "benchmark", self.name)
        return TermForm(risk_aversion=self.risk_aversion,
                        benchmark_relative=self.benchmark_relative)


class TransactionCost(Term):
    """A :class:`CostModel` of the trades ``w - w_current`` (fraction of NAV).

    The model's coefficients come from ``inputs.trade_context`` and are compiled in as
    constants: a new context with different values recompiles the problem.
    """

    kind = "cost"

    def __init__(self, model: CostModel, scale: float = 1.0) -> None:
        if not isinstance(model, CostModel):
            raise ValidationError("model must be a keel.costs.base.CostModel", field="model",
                                  value=type(model).__name__)
        if not np.isfinite(scale) or scale < 0:
            raise NonConvexError("cost scale must be >= 0", field="scale", value=scale)
        self.model = model
        self.scale = float(scale)
        self._convex_checked: tuple[CostModel, int] | None = None

    @property
    def name(self) -> str:
        return f"TransactionCost[{getattr(self.model, 'name', 'cost')}]"

    def expr(self, ctx: BuildContext) -> cp.Expression:
        tc = require(ctx.inputs, "trade_context", self.name)
        e = self.model.expr(ctx.trade, tc)
        if not e.is_convex():
            raise NonConvexError("cost model expression is not convex", field="model",
                                 value=repr(self.model))
        return -self.scale * e

    def value(self, w: np.ndarray, inputs: PortfolioInputs) -> float:
        tc = require(inputs, "trade_context", self.name)
        trades = (w - inputs.current) * tc.nav
        return self.scale * float(np.sum(self.model.cost_array(trades, tc))) / tc.nav

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> TermForm | None:
        """From the model's declared :class:`~keel.costs.base.SeparableForm` (never probed);
        a model that declares none leaves the problem to CVXPY."""
        tc = require(inputs, "trade_context", self.name)
        f = self.model.separable_form(tc)
        if f is None:
            return None
        self._check_convex(tc)
        if np.any(f.linear < 0) or (f.power is not None and (
                np.any(f.power < 0) or f.exponent < 1)):
            raise NonConvexError("cost model declares a non-convex form", field="model",
                                 value=repr(self.model))
        if f.power is None or not np.any(f.power):
            return TermForm(abs_trade=self.scale * f.linear)
        return TermForm(abs_trade=self.scale * f.linear, power=self.scale * f.power,
                        exponent=f.exponent)

    def _check_convex(self, tc: TradeContext) -> None:
        """The model's CVXPY expression must be convex even where the direct path skips it;
        checked once per model and size (remembered holding the model, never its id)."""
        n = len(tc.symbols)
        done = self._convex_checked
        if done is not None and done[0] is self.model and done[1] == n:
            return
        e = self.model.expr(cp.Variable(n), tc)
        if not (e.is_dcp() and e.is_convex()):
            raise NonConvexError("cost model expression is not convex", field="model",
                                 value=repr(self.model))
        self._convex_checked = (self.model, n)

    def structure(self, inputs: PortfolioInputs) -> Hashable:
        tc = inputs.trade_context
        if tc is None:
            return None
        return fingerprint(tc.prices, tc.adv_notional, tc.volatility, tc.spreads,
                           np.array([tc.nav, tc.horizon_days, tc.time_of_day or -1.0]),
                           *[tc.extra[k] for k in sorted(tc.extra)])


class HoldingCost(Term):
    """Cost of carrying the portfolio for one period (fractions of NAV per period).

    ``borrow_fee' neg(w) - cash_rate * pos(cash) + margin_rate * neg(cash)`` with
    ``cash = 1 - sum(w)``: shorts pay their borrow fee, idle cash earns ``cash_rate`` and
    borrowed cash (leverage) pays ``margin_rate``. Convex iff ``margin_rate >= cash_rate``.

    Args:
        borrow_fee: per-period fee per unit of short weight, scalar or per-symbol Series.
        cash_rate: per-period interest earned on positive cash.
        margin_rate: per-period interest paid on negative cash (defaults to ``cash_rate``).
    """

    kind = "cost"

    def __init__(self, borrow_fee: float | pd.Series = 0.0, cash_rate: float = 0.0,
                 margin_rate: float | None = None) -> None:
        margin = cash_rate if margin_rate is None else margin_rate
        if margin < cash_rate:
            raise NonConvexError("margin_rate below cash_rate makes leverage a profit "
                                 "(non-convex)", field="margin_rate", value=margin)
        if isinstance(borrow_fee, float | int) and borrow_fee < 0:
            raise NonConvexError("borrow_fee must be >= 0", field="borrow_fee",
                                 value=borrow_fee)
        self.borrow_fee = borrow_fee
        self.cash_rate = float(cash_rate)
        self.margin_rate = float(margin)

    def _fee(self, inputs: PortfolioInputs) -> np.ndarray:
        fee = align_series(self.borrow_fee, inputs.symbols, "borrow_fee", fill=0.0)
        assert fee is not None
        if np.any(fee < 0):
            i = int(np.argmax(fee < 0))
            raise NonConvexError("borrow_fee must be >= 0", field="borrow_fee",
                                 symbol=str(inputs.symbols[i]), value=float(fee[i]))
        return fee

    def expr(self, ctx: BuildContext) -> cp.Expression:
        fee = ctx.param("borrow_fee", (ctx.n,), self._fee, nonneg=True)
        cash = 1 - cp.sum(ctx.w)
        cost = fee @ cp.neg(ctx.w) - self.cash_rate * cash
        if self.margin_rate > self.cash_rate:
            cost = cost + (self.margin_rate - self.cash_rate) * cp.neg(cash)
        return -cost

    def value(self, w: np.ndarray, inputs: PortfolioInputs) -> float:
        cash = 1.0 - float(np.sum(w))
        return (float(self._fee(inputs) @ np.maximum(-w, 0.0)) - self.cash_rate * cash
                + (self.margin_rate - self.cash_rate) * max(-cash, 0.0))

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> TermForm | None:
        """Linear (``cash_rate * sum(w)`` plus a constant) when leverage costs what cash earns
        and no short can pay a fee; else None."""
        if self.margin_rate != self.cash_rate or (np.any(self._fee(inputs) > 0)
                                                  and not nonneg):
            return None
        return TermForm(linear=np.full(inputs.n, self.cash_rate))


def objective_split(terms: list[Term], w: np.ndarray, inputs: PortfolioInputs
                    ) -> tuple[dict[str, float], dict[str, float]]:
    """(``{alpha, risk, cost, utility}``, per-term values), recomputed with NumPy."""
    split = {"alpha": 0.0, "risk": 0.0, "cost": 0.0}
    detail: dict[str, float] = {}
    for t in terms:
        v = t.value(w, inputs)
        split[t.kind] = split.get(t.kind, 0.0) + v
        detail[t.name] = detail.get(t.name, 0.0) + v
    split["utility"] = split["alpha"] - split["risk"] - split["cost"]
    return split, detail
