"""Portfolio constraints: small objects combined in a list.

Every constraint has two views of the same rule:

* ``build(ctx, relax)``: CVXPY constraints on the weight variable; ``relax`` (0, or a
  non-negative scalar variable) loosens the whole family by that amount in the constraint's
  own units, which is how an infeasible problem is diagnosed (elastic slack);
* ``margins(w, inputs)``: NumPy ``rhs - lhs`` of every scalar inequality (>= 0 means
  satisfied; equalities give ``-|residual|``), used to verify a solver's answer, to report
  which constraints bind and in tests.

Units: weights and trades are fractions of NAV; ADV is in NAV units; tracking error is a
volatility per period (the risk model's period).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from enum import StrEnum
from typing import Any, TypeAlias

import cvxpy as cp
import numpy as np
import pandas as pd
import scipy.sparse as sp

from keel.errors import NonConvexError, ValidationError
from keel.optimize.build import BuildContext, factor_of, require
from keel.optimize.forms import LinearForm, LinearRows, one, sum_row
from keel.optimize.inputs import PortfolioInputs, align_series, fingerprint
from keel.risk.base import FactorCovariance

Relax: TypeAlias = Any
PerName: TypeAlias = float | pd.Series


def _le(lhs: cp.Expression, rhs: Any, relax: Relax) -> cp.Constraint:
    return lhs <= rhs + relax


def _eq(lhs: cp.Expression, rhs: Any, relax: Relax) -> cp.Constraint:
    if isinstance(relax, int | float) and relax == 0:
        return lhs == rhs
    return cp.abs(lhs - rhs) <= relax


def _nonneg(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if not np.isfinite(value) or value < 0:
        raise ValidationError(f"{name} must be finite and >= 0", field=name, value=value)
    return float(value)


class Constraint(ABC):
    """A rule on the weights. ``per_name`` constraints give margins in blocks of N."""

    per_name: bool = False

    def __init__(self, label: str | None = None) -> None:
        self.label = label

    @property
    def name(self) -> str:
        return self.label or type(self).__name__

    @abstractmethod
    def build(self, ctx: BuildContext, relax: Relax = 0.0) -> list[cp.Constraint]:
        """CVXPY constraints, loosened by ``relax`` (>= 0, the constraint's units)."""

    @abstractmethod
    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> np.ndarray:
        """``rhs - lhs`` of every scalar inequality (>= 0 satisfied), NumPy only."""

    def structure(self, inputs: PortfolioInputs) -> Hashable:
        """Anything compiled in as a constant (recompile when it changes)."""
        return None

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> LinearForm | None:
        """The rule as bounds and linear rows (:mod:`keel.optimize.forms`), or None: not
        linear (the CVXPY engine solves). ``nonneg``: the other constraints already force
        ``w >= 0`` (a gross or long cap is then linear)."""
        return None

    def violation(self, w: np.ndarray, inputs: PortfolioInputs) -> float:
        """Largest violation (0 when satisfied)."""
        m = self.margins(w, inputs)
        return float(max(0.0, -np.min(m))) if m.size else 0.0

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                         if k != "label" and v is not None)
        return f"{type(self).__name__}({args})"


class BudgetKind(StrEnum):
    FULLY_INVESTED = "fully_invested"
    DOLLAR_NEUTRAL = "dollar_neutral"


class Budget(Constraint):
    """``sum(w) == 1`` (fully invested) or ``sum(w) == 0`` (dollar neutral)."""

    def __init__(self, kind: BudgetKind | str = BudgetKind.FULLY_INVESTED,
                 label: str | None = None) -> None:
        super().__init__(label)
        try:
            self.kind = BudgetKind(kind)
        except ValueError:
            raise ValidationError("unknown budget kind", field="kind", value=kind) from None

    @property
    def target(self) -> float:
        return 1.0 if self.kind is BudgetKind.FULLY_INVESTED else 0.0

    def build(self, ctx: BuildContext, relax: Relax = 0.0) -> list[cp.Constraint]:
        return [_eq(cp.sum(ctx.w), self.target, relax)]

    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> np.ndarray:
        return np.array([-abs(float(np.sum(w)) - self.target)])

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> LinearForm | None:
        return LinearForm(rows=(LinearRows(sum_row(inputs.n), one(self.target),
                                           one(self.target)),))


class LongOnly(Constraint):
    """``w >= 0``."""

    per_name = True

    def build(self, ctx: BuildContext, relax: Relax = 0.0) -> list[cp.Constraint]:
        return [-ctx.w <= relax]

    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> np.ndarray:
        return np.asarray(w, dtype=np.float64).copy()

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> LinearForm | None:
        return LinearForm(lower=np.zeros(inputs.n))


class WeightBounds(Constraint):
    """``lower <= w <= upper`` per name; each bound a scalar or a per-symbol Series."""

    per_name = True

    def __init__(self, lower: PerName | None = None, upper: PerName | None = None,
                 label: str | None = None) -> None:
        super().__init__(label)
        if lower is None and upper is None:
            raise ValidationError("give lower and/or upper", field="upper")
        self.lower = lower
        self.upper = upper

    def _bound(self, which: str, inputs: PortfolioInputs) -> np.ndarray:
        arr = align_series(getattr(self, which), inputs.symbols, which)
        assert arr is not None
        return arr

    def build(self, ctx: BuildContext, relax: Relax = 0.0) -> list[cp.Constraint]:
        out = []
        if self.upper is not None:
            ub = ctx.param(f"ub_{id(self)}", (ctx.n,), lambda x: self._bound("upper", x))
            out.append(_le(ctx.w, ub, relax))
        if self.lower is not None:
            lb = ctx.param(f"lb_{id(self)}", (ctx.n,), lambda x: self._bound("lower", x))
            out.append(_le(-ctx.w, -lb, relax))
        return out

    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> np.ndarray:
        parts = []
        if self.upper is not None:
            parts.append(self._bound("upper", inputs) - w)
        if self.lower is not None:
            parts.append(w - self._bound("lower", inputs))
        return np.concatenate(parts)

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> LinearForm | None:
        return LinearForm(
            lower=None if self.lower is None else self._bound("lower", inputs),
            upper=None if self.upper is None else self._bound("upper", inputs))


class GrossExposure(Constraint):
    """``sum(|w|) <= max_gross`` (leverage). A minimum gross is non-convex and refused."""

    def __init__(self, max_gross: float, *, min_gross: float | None = None,
                 label: str | None = None) -> None:
        super().__init__(label)
        if min_gross is not None:
            raise NonConvexError("a minimum gross exposure is non-convex", field="min_gross",
                                 value=min_gross)
        self.max_gross = _nonneg(max_gross, "max_gross")

    def build(self, ctx: BuildContext, relax: Relax = 0.0) -> list[cp.Constraint]:
        return [_le(cp.norm1(ctx.w), self.max_gross, relax)]  # type: ignore[arg-type]

    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> np.ndarray:
        return np.array([float(self.max_gross) - float(np.abs(w).sum())])  # type: ignore[arg-type]

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> LinearForm | None:
        if not nonneg:
            return None  # sum|w| with shorts needs the split w = w+ - w-: left to CVXPY
        return LinearForm(rows=(LinearRows(sum_row(inputs.n), one(-np.inf),
                                           one(float(self.max_gross))),))  # type: ignore[arg-type]


class NetExposure(Constraint):
    """``lower <= sum(w) <= upper``."""

    def __init__(self, lower: float = -np.inf, upper: float = np.inf,
                 label: str | None = None) -> None:
        super().__init__(label)
        if lower > upper:
            raise ValidationError("lower > upper", field="lower", value=lower)
        self.lower, self.upper = float(lower), float(upper)

    def build(self, ctx: BuildContext, relax: Relax = 0.0) -> list[cp.Constraint]:
        s = cp.sum(ctx.w)
        out = []
        if np.isfinite(self.upper):
            out.append(_le(s, self.upper, relax))
        if np.isfinite(self.lower):
            out.append(_le(-s, -self.lower, relax))
        return out

    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> np.ndarray:
        s = float(np.sum(w))
        return np.array([m for m in (self.upper - s, s - self.lower) if np.isfinite(m)])

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> LinearForm | None:
        return LinearForm(rows=(LinearRows(sum_row(inputs.n), one(self.lower),
                                           one(self.upper)),))


class Turnover(Constraint):
    """``sum|w - w0| <= max_total`` and/or ``|w_i - w0_i| <= max_per_name`` (NAV units)."""

    def __init__(self, max_total: float | None = None, max_per_name: PerName | None = None,
                 label: str | None = None) -> None:
        super().__init__(label)
        if max_total is None and max_per_name is None:
            raise ValidationError("give max_total and/or max_per_name", field="max_total")
        self.max_total = _nonneg(max_total, "max_total")
        self.max_per_name = max_per_name

    def _per_name(self, inputs: PortfolioInputs) -> np.ndarray:
        arr = align_series(self.max_per_name, inputs.symbols, "max_per_name")
        assert arr is not None
        return arr

    def build(self, ctx: BuildContext, relax: Relax = 0.0) -> list[cp.Constraint]:
        out = []
        if self.max_total is not None:
            out.append(_le(cp.norm1(ctx.trade), self.max_total, relax))
        if self.max_per_name is not None:
            cap = ctx.param(f"tpn_{id(self)}", (ctx.n,), self._per_name)
            out.append(_le(cp.abs(ctx.trade), cap, relax))
        return out

    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> np.ndarray:
        t = np.abs(w - inputs.current)
        parts = []
        if self.max_total is not None:
            parts.append(np.array([self.max_total - t.sum()]))
        if self.max_per_name is not None:
            parts.append(self._per_name(inputs) - t)
        return np.concatenate(parts)

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> LinearForm | None:
        rows = () if self.max_total is None else (
            LinearRows(sum_row(inputs.n), one(-np.inf), one(self.max_total), on="abs_trade"),)
        if self.max_per_name is None:
            return LinearForm(rows=rows)
        cap = self._per_name(inputs)
        return LinearForm(lower=inputs.current - cap, upper=inputs.current + cap, rows=rows)


class BetaNeutral(Constraint):
    """``|beta'w - target| <= tolerance`` with betas from ``inputs.betas``."""

    def __init__(self, tolerance: float = 0.0, target: float = 0.0,
                 label: str | None = None) -> None:
        super().__init__(label)
        self.tolerance = _nonneg(tolerance, "tolerance")
        self.target = float(target)

    def build(self, ctx: BuildContext, relax: Relax = 0.0) -> list[cp.Constraint]:
        require(ctx.inputs, "betas", self.name)
        beta = ctx.param("betas", (ctx.n,), lambda x: x.betas)
        return [_le(cp.abs(beta @ ctx.w - self.target), self.tolerance, relax)]  # type: ignore[arg-type]

    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> np.ndarray:
        b = require(inputs, "betas", self.name)
        return np.array([float(self.tolerance) - abs(float(b @ w) - self.target)])  # type: ignore[arg-type]

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> LinearForm | None:
        b = require(inputs, "betas", self.name)
        tol = float(self.tolerance)  # type: ignore[arg-type]
        return LinearForm(rows=(LinearRows(sp.csr_matrix(b[None, :]), one(self.target - tol),
                                           one(self.target + tol)),))


Caps: TypeAlias = float | Mapping[str, float] | None


class SectorCaps(Constraint):
    """Per-sector limits on long, short and net weight (sectors from ``inputs.sectors``).

    Each cap is a scalar (every sector) or a mapping sector -> cap (sectors not named are
    free). ``long``: sum of positive weights; ``short``: sum of |negative weights|; ``net``:
    ``|sum of weights|``.
    """

    def __init__(self, long: Caps = None, short: Caps = None, net: Caps = None,
                 label: str | None = None) -> None:
        super().__init__(label)
        if long is None and short is None and net is None:
            raise ValidationError("give long, short and/or net caps", field="long")
        for nm, c in (("long", long), ("short", short), ("net", net)):
            vals = c.values() if isinstance(c, Mapping) else ([] if c is None else [c])
            for v in vals:
                _nonneg(v, nm)
        self.long, self.short, self.net = long, short, net

    def _membership(self, inputs: PortfolioInputs) -> tuple[np.ndarray, sp.csr_matrix]:
        sectors = require(inputs, "sectors", "SectorCaps")
        cached = getattr(self, "_member_cache", None)
        if cached is not None and cached[0] is sectors:
            return cached[1]
        labels, codes = np.unique(sectors.astype(str), return_inverse=True)
        n = len(sectors)
        m = sp.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(len(labels), n))
        self._member_cache = (sectors, (labels, m))
        return labels, m

    @staticmethod
    def _caps(caps: Caps, labels: np.ndarray) -> np.ndarray:
        if caps is None:
            return np.full(len(labels), np.inf)
        if isinstance(caps, Mapping):
            return np.array([float(caps.get(lab, np.inf)) for lab in labels])
        return np.full(len(labels), float(caps))

    def _parts(self, labels: np.ndarray) -> list[tuple[str, np.ndarray]]:
        return [(nm, self._caps(c, labels)) for nm, c in
                (("long", self.long), ("short", self.short), ("net", self.net))
                if c is not None]

    def build(self, ctx: BuildContext, relax: Relax = 0.0) -> list[cp.Constraint]:
        labels, m = self._membership(ctx.inputs)
        exprs = {"long": lambda: cp.pos(ctx.w), "short": lambda: cp.neg(ctx.w)}
        out = []
        for nm, caps in self._parts(labels):
            rows = np.flatnonzero(np.isfinite(caps))
            if not len(rows):
                continue
            msub = m[rows]
            lhs = cp.abs(msub @ ctx.w) if nm == "net" else msub @ exprs[nm]()
            out.append(_le(lhs, caps[rows], relax))
        return out

    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> np.ndarray:
        labels, m = self._membership(inputs)
        vals = {"long": m @ np.maximum(w, 0), "short": m @ np.maximum(-w, 0),
                "net": np.abs(m @ w)}
        parts = [(caps - vals[nm])[np.isfinite(caps)] for nm, caps in self._parts(labels)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def structure(self, inputs: PortfolioInputs) -> Hashable:
        return fingerprint(inputs.sectors)

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> LinearForm | None:
        if not nonneg and (self.long is not None or self.short is not None):
            return None  # pos()/neg() sums need the long/short split: left to CVXPY
        labels, m = self._membership(inputs)
        rows = []
        for nm, caps in self._parts(labels):
            keep = np.flatnonzero(np.isfinite(caps))
            if nm == "short" or not len(keep):
                continue  # w >= 0: every short sum is zero
            lo = -caps[keep] if nm == "net" else np.full(len(keep), -np.inf)
            rows.append(LinearRows(self._sub(m, keep), lo, caps[keep]))
        return LinearForm(rows=tuple(rows))

    def _sub(self, m: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
        """``m[keep]``, the same object while ``m`` (held) and ``keep`` are unchanged, so a
        re-solve reuses it (and the direct solvers compare it by identity first)."""
        memo = getattr(self, "_sub_memo", None)
        if memo is not None and memo[0] is m and np.array_equal(memo[1], keep):
            return memo[2]
        sub = m[keep]
        self._sub_memo = (m, keep, sub)
        return sub


class Liquidity(Constraint):
    """``|trade_i| <= max_trade_adv * ADV_i`` and ``|w_i| <= max_position_adv * ADV_i``.

    ADV comes from ``inputs.adv_weight`` (average daily traded value in NAV units), so
    ``max_trade_adv=0.1`` means trading at most 10% of a day's volume.
    """

    per_name = True

    def __init__(self, max_trade_adv: float | None = None,
                 max_position_adv: float | None = None, label: str | None = None) -> None:
        super().__init__(label)
        if max_trade_adv is None and max_position_adv is None:
            raise ValidationError("give max_trade_adv and/or max_position_adv",
                                  field="max_trade_adv")
        self.max_trade_adv = _nonneg(max_trade_adv, "max_trade_adv")
        self.max_position_adv = _nonneg(max_position_adv, "max_position_adv")

    def build(self, ctx: BuildContext, relax: Relax = 0.0) -> list[cp.Constraint]:
        require(ctx.inputs, "adv_weight", self.name)
        adv = ctx.param("adv_weight", (ctx.n,), lambda x: x.adv_weight, nonneg=True)
        out = []
        if self.max_trade_adv is not None:
            out.append(_le(cp.abs(ctx.trade), self.max_trade_adv * adv, relax))
        if self.max_position_adv is not None:
            out.append(_le(cp.abs(ctx.w), self.max_position_adv * adv, relax))
        return out

    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> np.ndarray:
        adv = require(inputs, "adv_weight", self.name)
        parts = []
        if self.max_trade_adv is not None:
            parts.append(self.max_trade_adv * adv - np.abs(w - inputs.current))
        if self.max_position_adv is not None:
            parts.append(self.max_position_adv * adv - np.abs(w))
        return np.concatenate(parts)

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> LinearForm | None:
        adv = require(inputs, "adv_weight", self.name)
        lo, hi = np.full(inputs.n, -np.inf), np.full(inputs.n, np.inf)
        if self.max_trade_adv is not None:
            cap = self.max_trade_adv * adv
            lo, hi = np.maximum(lo, inputs.current - cap), np.minimum(hi, inputs.current + cap)
        if self.max_position_adv is not None:
            cap = self.max_position_adv * adv
            lo, hi = np.maximum(lo, -cap), np.minimum(hi, cap)
        return LinearForm(lower=lo, upper=hi)


class FactorExposureBounds(Constraint):
    """``lower_k <= (B'w)_k <= upper_k`` on the risk model's factor exposures.

    ``lower``/``upper``: a scalar (every factor) or a mapping factor -> bound (factors not
    named are free). Needs a factored risk model in ``inputs.risk``.
    """

    def __init__(self, lower: Caps = None, upper: Caps = None,
                 label: str | None = None) -> None:
        super().__init__(label)
        if lower is None and upper is None:
            raise ValidationError("give lower and/or upper", field="upper")
        self.lower, self.upper = lower, upper

    def _fc(self, inputs: PortfolioInputs) -> FactorCovariance:
        fc = require(inputs, "risk", self.name)
        if not isinstance(fc, FactorCovariance):
            raise ValidationError("FactorExposureBounds needs a factored risk model",
                                  field="risk", value=type(fc).__name__)
        return fc

    @staticmethod
    def _vec(b: Caps, factors: pd.Index, default: float) -> np.ndarray:
        if b is None:
            return np.full(len(factors), default)
        if isinstance(b, Mapping):
            unknown = set(map(str, b)) - set(map(str, factors))
            if unknown:
                raise ValidationError("unknown factor", field="factor", value=sorted(unknown)[0])
            return np.array([float(b.get(str(f), default)) for f in factors])
        return np.full(len(factors), float(b))

    def _bounds(self, inputs: PortfolioInputs) -> tuple[np.ndarray, np.ndarray]:
        factors = self._fc(inputs).factors
        return self._vec(self.lower, factors, -np.inf), self._vec(self.upper, factors, np.inf)

    def build(self, ctx: BuildContext, relax: Relax = 0.0) -> list[cp.Constraint]:
        fc = self._fc(ctx.inputs)
        lo, hi = self._bounds(ctx.inputs)
        bt = ctx.param("risk_Bt", (fc.n_factors, ctx.n), lambda x: factor_of(x).exposures.T)
        expo = bt @ ctx.w
        out = []
        up, dn = np.flatnonzero(np.isfinite(hi)), np.flatnonzero(np.isfinite(lo))
        if len(up):
            out.append(_le(expo[up], hi[up], relax))
        if len(dn):
            out.append(_le(-expo[dn], -lo[dn], relax))
        return out

    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> np.ndarray:
        expo = self._fc(inputs).exposures.T @ w
        lo, hi = self._bounds(inputs)
        m = np.concatenate([hi - expo, expo - lo])
        return m[np.isfinite(m)]

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> LinearForm | None:
        lo, hi = self._bounds(inputs)
        keep = np.isfinite(lo) | np.isfinite(hi)
        fc = self._fc(inputs)
        # the (K, N) rows are kept with the model they came from (held, so compared by
        # identity safely): a re-solve with the same model reuses the same matrix object
        memo = getattr(self, "_rows_memo", None)
        if memo is not None and memo[0] is fc and np.array_equal(memo[1], keep):
            bt = memo[2]
        else:
            bt = sp.csr_matrix(fc.exposures.T[keep])
            self._rows_memo = (fc, keep, bt)
        return LinearForm(rows=(LinearRows(bt, lo[keep], hi[keep]),))

    def structure(self, inputs: PortfolioInputs) -> Hashable:
        fc = inputs.risk
        return tuple(map(str, fc.factors)) if isinstance(fc, FactorCovariance) else None


class TrackingError(Constraint):
    """``sqrt((w-b)' Sigma (w-b)) <= max_te`` (volatility per period of the risk model).

    The benchmark is ``inputs.benchmark`` (zero weights if absent: then it caps total vol).
    """

    def __init__(self, max_te: float, label: str | None = None) -> None:
        super().__init__(label)
        self.max_te = _nonneg(max_te, "max_te")

    def build(self, ctx: BuildContext, relax: Relax = 0.0) -> list[cp.Constraint]:
        offset = "benchmark" if ctx.inputs.benchmark is not None else None
        vec = cp.hstack(ctx.risk_vectors(offset))
        return [_le(cp.norm(vec, 2), self.max_te, relax)]  # type: ignore[arg-type]

    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> np.ndarray:
        b = inputs.benchmark if inputs.benchmark is not None else 0.0
        te = np.sqrt(max(inputs.variance(w - b), 0.0))
        return np.array([float(self.max_te) - te])  # type: ignore[arg-type]


class MinCash(Constraint):
    """``1 - sum(w) >= min_cash`` (cash as a fraction of NAV)."""

    def __init__(self, min_cash: float, label: str | None = None) -> None:
        super().__init__(label)
        if not np.isfinite(min_cash):
            raise ValidationError("min_cash must be finite", field="min_cash", value=min_cash)
        self.min_cash = float(min_cash)

    def build(self, ctx: BuildContext, relax: Relax = 0.0) -> list[cp.Constraint]:
        return [_le(cp.sum(ctx.w), 1.0 - self.min_cash, relax)]

    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> np.ndarray:
        return np.array([1.0 - self.min_cash - float(np.sum(w))])

    def solver_form(self, inputs: PortfolioInputs, nonneg: bool = False) -> LinearForm | None:
        return LinearForm(rows=(LinearRows(sum_row(inputs.n), one(-np.inf),
                                           one(1.0 - self.min_cash)),))


def unique_names(constraints: list[Constraint]) -> list[str]:
    """Constraint names, with ``#2``, ``#3`` appended to repeats."""
    seen: dict[str, int] = {}
    out = []
    for c in constraints:
        k = seen.get(c.name, 0) + 1
        seen[c.name] = k
        out.append(c.name if k == 1 else f"{c.name}#{k}")
    return out
