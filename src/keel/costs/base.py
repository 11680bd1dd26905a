"""One cost-model interface: a number for realised trades, a convex expression for the optimizer.

A :class:`CostModel` answers two questions about the same trades with the same coefficients:

* ``cost(trades, ctx)``: realised cost, vectorised per name, in currency and in bps of the
  traded notional (backtest charge, TCA prediction);
* ``expr(trade_weights, ctx)``: a convex CVXPY expression of the cost as a fraction of NAV,
  for the optimizer, where ``trade_weights`` is the vector of trades in NAV units.

Both read per-name market inputs from a :class:`TradeContext`. Models add with ``+``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keel.errors import DataError, ValidationError

if TYPE_CHECKING:
    import cvxpy as cp

    from keel.data.market import MarketData


@dataclass(frozen=True)
class TradeContext:
    """Per-name market inputs a cost model may need, aligned to ``symbols`` (all float64, (N,)).

    Attributes:
        symbols: the names, in the order of every array below and of the trade vector.
        prices: price per share, currency.
        adv_notional: average daily traded value, currency.
        volatility: daily volatility of simple returns (fraction, e.g. 0.02).
        spreads: full bid-ask spread as a fraction of mid (e.g. 0.0005 = 5 bps).
        nav: portfolio value in currency (converts NAV units to currency).
        horizon_days: time over which a trade is executed, in trading days (impact scaling).
        time_of_day: minutes after the open when trading (None: a day-average trade).
        extra: model-specific arrays (borrow fees, ...), each (N,).
    """

    symbols: pd.Index
    prices: np.ndarray
    adv_notional: np.ndarray
    volatility: np.ndarray
    spreads: np.ndarray
    nav: float = 1.0
    horizon_days: float = 1.0
    time_of_day: float | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.symbols)
        for name in ("prices", "adv_notional", "volatility", "spreads"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (n,):
                raise ValidationError(f"{name} must have shape ({n},)", field=name,
                                      value=arr.shape)
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                i = int(np.argmax(~np.isfinite(arr) | (arr < 0)))
                raise ValidationError(f"{name} must be finite and >= 0", field=name,
                                      symbol=str(self.symbols[i]), value=float(arr[i]))
            object.__setattr__(self, name, arr)
        if not (self.nav > 0 and np.isfinite(self.nav)):
            raise ValidationError("nav must be > 0", field="nav", value=self.nav)

    @classmethod
    def from_market(cls, market: MarketData, nav: float = 1.0, *,
                    default_spread: float | None = None, on_missing: str = "raise",
                    symbols: Any = None, **kwargs: Any) -> TradeContext:
        """Latest values of ``market`` (use ``market.as_of(t)`` first for a past date).

        ``default_spread`` stands in where the market has no spread for a name (no spreads
        at all, or NaN for that name); without it such a name is an error rather than a silent
        guess. A name without a volatility or an ADV (too little history) is never given 0:
        ``on_missing="raise"`` (default) refuses it with a ``DataError`` naming the field and
        the symbol; ``"flag"`` keeps it out of reach of the cost models instead: its value is
        0 and ``extra["missing_inputs"]`` is 1.0 there, so any model that needs it refuses to
        price a trade in it (``missing_symbols`` lists them for the caller to exclude).
        ``symbols``: only these names (e.g. the session's tradable universe: a name whose data
        stopped has no price to give); unknown names raise.
        """
        names = market.symbols
        pos = np.arange(len(names))
        if symbols is not None:
            names = pd.Index(symbols).astype(str)
            pos = market.symbols.get_indexer(names)
            if np.any(pos < 0):
                raise ValidationError("unknown symbol", field="symbols",
                                      symbol=str(names[int(np.argmax(pos < 0))]))
        if market.spreads is not None:
            spreads = market.latest("spreads").to_numpy()[pos]
        else:
            spreads = np.full(len(names), np.nan)
        if default_spread is not None:
            spreads = np.where(np.isfinite(spreads), spreads, float(default_spread))
        elif not np.all(np.isfinite(spreads)):
            i = int(np.argmax(~np.isfinite(spreads)))
            raise ValidationError("market has no spread for this name; pass default_spread",
                                  field="spreads", symbol=str(names[i]))
        if on_missing not in ("raise", "flag"):
            raise ValidationError("on_missing must be 'raise' or 'flag'", field="on_missing",
                                  value=on_missing)
        vol = market.latest("volatility").to_numpy(dtype=np.float64)[pos]
        adv = market.latest("adv_notional").to_numpy(dtype=np.float64)[pos]
        missing = ~np.isfinite(vol) | ~np.isfinite(adv)
        if missing.any() and on_missing == "raise":
            i = int(np.argmax(missing))
            name = "volatility" if not np.isfinite(vol[i]) else "adv_notional"
            raise DataError(f"no {name} for this name (too little history?); "
                            f"{int(missing.sum())} name(s) affected; pass on_missing='flag' "
                            "to price the others", field=name, symbol=str(market.symbols[i]))
        extra = dict(kwargs.pop("extra", {}))
        if missing.any():
            extra["missing_inputs"] = missing.astype(np.float64)
        return cls(symbols=names, prices=market.latest("prices").to_numpy()[pos],
                   adv_notional=np.where(missing, 0.0, adv),
                   volatility=np.where(missing, 0.0, vol), spreads=spreads, nav=nav,
                   extra=extra, **kwargs)

    @property
    def missing_symbols(self) -> list[str]:
        """Names flagged by ``from_market(on_missing="flag")`` (no volatility or ADV)."""
        m = self.extra.get("missing_inputs")
        return [] if m is None else [str(s) for s in self.symbols[np.asarray(m) > 0]]

    def require_inputs(self, model: str, traded: np.ndarray | None = None) -> None:
        """Refuse when a flagged name (no volatility/ADV) is traded (``traded`` (N,) bool, or
        None: any flagged name at all, as an optimizer expression covers every name)."""
        m = self.extra.get("missing_inputs")
        if m is None:
            return
        bad = np.asarray(m) > 0
        if traded is not None:
            bad = bad & traded
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{model} needs the volatility and ADV this name lacks",
                            field="volatility", symbol=str(self.symbols[i]))

    def subset(self, idx: np.ndarray) -> TradeContext:
        """The context restricted to positions ``idx`` (integer index array)."""
        return TradeContext(
            symbols=self.symbols[idx], prices=self.prices[idx],
            adv_notional=self.adv_notional[idx], volatility=self.volatility[idx],
            spreads=self.spreads[idx], nav=self.nav, horizon_days=self.horizon_days,
            time_of_day=self.time_of_day, extra={k: v[idx] for k, v in self.extra.items()},
        )


@dataclass(frozen=True)
class CostEstimate:
    """Per-name cost of a set of trades.

    Attributes:
        currency: cost in currency, (N,) Series indexed by symbol (>= 0 for pure costs).
        bps: cost in basis points of each name's traded notional (0 where nothing trades).
        components: optional split by source (``spread``, ``impact``, ``commission``, ...),
            each a currency Series; they sum to ``currency``.
    """

    currency: pd.Series
    bps: pd.Series
    components: dict[str, pd.Series] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """Total cost in currency."""
        return float(self.currency.sum())

    def total_bps(self, traded_notional: float) -> float:
        """Total cost in bps of ``traded_notional``."""
        return 0.0 if traded_notional <= 0 else 1e4 * self.total / traded_notional


def to_notional_trades(trades: pd.Series | np.ndarray, ctx: TradeContext) -> np.ndarray:
    """Signed trades as a float64 (N,) array in currency aligned to ``ctx.symbols``."""
    if isinstance(trades, pd.Series):
        unknown = trades.index.difference(ctx.symbols)
        if len(unknown):
            raise ValidationError("trade in a symbol the context does not know",
                                  field="trades", symbol=str(unknown[0]))
        arr = trades.reindex(ctx.symbols).fillna(0.0).to_numpy(dtype=np.float64)
    else:
        arr = np.asarray(trades, dtype=np.float64)
    if arr.shape != (len(ctx.symbols),):
        raise ValidationError(f"trades must have shape ({len(ctx.symbols)},)",
                              field="trades", value=arr.shape)
    if not np.all(np.isfinite(arr)):
        i = int(np.argmax(~np.isfinite(arr)))
        raise ValidationError("trades must be finite", field="trades",
                              symbol=str(ctx.symbols[i]), value=float(arr[i]))
    return arr


def estimate_from_currency(cost: np.ndarray, trades_notional: np.ndarray, ctx: TradeContext,
                           components: dict[str, np.ndarray] | None = None) -> CostEstimate:
    """Build a :class:`CostEstimate` from a per-name currency cost array."""
    traded = np.abs(trades_notional)
    with np.errstate(divide="ignore", invalid="ignore"):
        bps = np.where(traded > 0, 1e4 * cost / np.where(traded > 0, traded, 1.0), 0.0)
    comps = {k: pd.Series(v, index=ctx.symbols, name=k) for k, v in (components or {}).items()}
    return CostEstimate(currency=pd.Series(cost, index=ctx.symbols, name="cost"),
                        bps=pd.Series(bps, index=ctx.symbols, name="cost_bps"),
                        components=comps)


@dataclass(frozen=True)
class SeparableForm:
    """A cost declared in closed form for the optimizer (NAV units, ``t`` the trade weights):

    ``cost / nav = sum_i linear_i |t_i| + power_i |t_i| ** exponent``

    Attributes:
        linear: (N,) >= 0 rate on ``|t|`` (spread, proportional commission).
        power: (N,) >= 0 coefficient of ``|t| ** exponent``, or None (no such part).
        exponent: > 1 (1.5 for square-root impact, 2 for quadratic impact).
    """

    linear: np.ndarray
    power: np.ndarray | None = None
    exponent: float = 1.0

    def scaled(self, k: float) -> SeparableForm:
        """The form of ``k`` times the cost (``k >= 0``)."""
        return SeparableForm(k * self.linear, None if self.power is None else k * self.power,
                             self.exponent)

    def __add__(self, other: SeparableForm) -> SeparableForm | None:
        if self.power is None:
            return SeparableForm(self.linear + other.linear, other.power, other.exponent)
        if other.power is None:
            return SeparableForm(self.linear + other.linear, self.power, self.exponent)
        if self.exponent != other.exponent:
            return None
        return SeparableForm(self.linear + other.linear, self.power + other.power,
                             self.exponent)


class CostModel(ABC):
    """A transaction or holding cost. Subclasses implement both views with the same numbers."""

    #: short name used as the component key in estimates and reports
    name: str = "cost"

    def separable_form(self, ctx: TradeContext) -> SeparableForm | None:
        """The cost's declared closed form (see :class:`SeparableForm`), or None when the
        model has none (the optimizer then uses ``expr``). Must agree with ``cost_array``."""
        return None

    @abstractmethod
    def cost_array(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        """Per-name cost in currency of signed trades in currency, (N,) -> (N,)."""

    @abstractmethod
    def expr(self, trade_weights: cp.Expression, ctx: TradeContext) -> cp.Expression:
        """Convex scalar CVXPY expression: total cost as a fraction of NAV.

        ``trade_weights`` is an (N,) expression of trades in NAV units (currency / nav).
        Must equal ``cost_array(trade_weights * nav, ctx).sum() / nav`` at any point.
        """

    def cost(self, trades: pd.Series | np.ndarray, ctx: TradeContext) -> CostEstimate:
        """Realised cost of ``trades`` (signed, currency) per name, in currency and bps."""
        notional = to_notional_trades(trades, ctx)
        parts = self.components(notional, ctx)
        total = np.sum(list(parts.values()), axis=0) if parts else np.zeros(len(notional))
        return estimate_from_currency(total, notional, ctx, parts)

    def components(self, trades_notional: np.ndarray, ctx: TradeContext
                   ) -> dict[str, np.ndarray]:
        """Cost split by source; a single model is one component named ``self.name``."""
        return {self.name: self.cost_array(trades_notional, ctx)}

    def __add__(self, other: CostModel) -> CompositeCost:
        if not isinstance(other, CostModel):
            return NotImplemented
        left = self.models if isinstance(self, CompositeCost) else (self,)
        right = other.models if isinstance(other, CompositeCost) else (other,)
        return CompositeCost(left + right)


class CompositeCost(CostModel):
    """The sum of several cost models (``a + b + c``)."""

    name = "total"

    def __init__(self, models: tuple[CostModel, ...]) -> None:
        if not models:
            raise ValidationError("a composite cost needs at least one model", field="models")
        self.models = tuple(models)

    def cost_array(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        return np.sum([m.cost_array(trades_notional, ctx) for m in self.models], axis=0)

    def expr(self, trade_weights: cp.Expression, ctx: TradeContext) -> cp.Expression:
        exprs = [m.expr(trade_weights, ctx) for m in self.models]
        total = exprs[0]
        for e in exprs[1:]:
            total = total + e
        return total

    def separable_form(self, ctx: TradeContext) -> SeparableForm | None:
        forms = [m.separable_form(ctx) for m in self.models]
        total: SeparableForm | None = forms[0]
        for f in forms[1:]:
            if total is None or f is None:
                return None
            total = total + f
        return total

    def components(self, trades_notional: np.ndarray, ctx: TradeContext
                   ) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for m in self.models:
            for k, v in m.components(trades_notional, ctx).items():
                out[k] = out[k] + v if k in out else v
        return out

    def __repr__(self) -> str:
        return " + ".join(repr(m) for m in self.models)
