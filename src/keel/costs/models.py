"""Standard cost models: broker commission, half-spread with a time-of-day curve, sqrt impact.

Every model computes its currency cost from signed trades in currency (``cost_array``) and
gives the same number as a convex CVXPY expression in NAV units (``expr``). The only place
the two views can differ is a commission minimum/maximum per ticket (a fixed charge is not
convex): see :class:`Commission`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keel.costs._session import SESSION_MINUTES, minutes_after_open
from keel.costs._validate import check_scalar
from keel.costs.base import CostModel, SeparableForm, TradeContext
from keel.errors import DataError, ValidationError

if TYPE_CHECKING:
    import cvxpy as cp


def _positive_prices(ctx: TradeContext) -> np.ndarray:
    if np.any(ctx.prices <= 0):
        i = int(np.argmax(ctx.prices <= 0))
        raise ValidationError("prices must be > 0", field="prices", symbol=str(ctx.symbols[i]),
                              value=float(ctx.prices[i]))
    return ctx.prices


class Commission(CostModel):
    """Broker fee per ticket: ``per_share * |shares| + bps * |notional|``, then bounded.

    Args:
        per_share: currency per share traded.
        bps: basis points of traded notional.
        min_per_ticket: minimum charge (currency) for any non-zero trade.
        max_per_ticket: maximum charge (currency) per trade, or None.
        max_pct_notional: maximum charge as a fraction of the trade's notional, or None
            (e.g. 0.01 for a 1 % cap, as on IBKR's tiered schedule).

    The convex expression is the proportional part; it equals the numeric cost whenever the
    minimum and maximum do not bind (``binding`` says where they do). A minimum is a fixed
    charge on any non-zero trade, which no convex expression can represent exactly.
    """

    name = "commission"

    def __init__(self, per_share: float = 0.0, bps: float = 0.0, *, min_per_ticket: float = 0.0,
                 max_per_ticket: float | None = None,
                 max_pct_notional: float | None = None) -> None:
        self.per_share = check_scalar(per_share, "per_share")
        self.bps = check_scalar(bps, "bps")
        self.min_per_ticket = check_scalar(min_per_ticket, "min_per_ticket")
        self.max_per_ticket = (None if max_per_ticket is None
                               else check_scalar(max_per_ticket, "max_per_ticket"))
        self.max_pct_notional = (None if max_pct_notional is None
                                 else check_scalar(max_pct_notional, "max_pct_notional"))
        if self.max_per_ticket is not None and self.max_per_ticket < self.min_per_ticket:
            raise ValidationError("max_per_ticket must be >= min_per_ticket",
                                  field="max_per_ticket", value=self.max_per_ticket)

    def _raw(self, traded: np.ndarray, ctx: TradeContext) -> np.ndarray:
        shares = traded / _positive_prices(ctx) if self.per_share else 0.0 * traded
        return self.per_share * shares + self.bps * 1e-4 * traded

    def _bounds(self, traded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hi = np.full(traded.shape, np.inf)
        if self.max_per_ticket is not None:
            hi = np.minimum(hi, self.max_per_ticket)
        if self.max_pct_notional is not None:
            hi = np.minimum(hi, self.max_pct_notional * traded)
        lo = np.minimum(np.full(traded.shape, self.min_per_ticket), hi)
        return lo, hi

    def cost_array(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        traded = np.abs(trades_notional)
        lo, hi = self._bounds(traded)
        fee = np.clip(self._raw(traded, ctx), lo, hi)
        return np.where(traded > 0, fee, 0.0)

    def binding(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        """(N,) bool: where the minimum or maximum per ticket sets the fee."""
        traded = np.abs(trades_notional)
        raw = self._raw(traded, ctx)
        lo, hi = self._bounds(traded)
        return (traded > 0) & ((raw < lo) | (raw > hi))

    def expr(self, trade_weights: cp.Expression, ctx: TradeContext) -> cp.Expression:
        import cvxpy as cp

        rate = self.bps * 1e-4 + (self.per_share / _positive_prices(ctx) if self.per_share
                                  else np.zeros(len(ctx.symbols)))
        return cp.sum(cp.multiply(rate, cp.abs(trade_weights)))

    def separable_form(self, ctx: TradeContext) -> SeparableForm | None:
        """Linear only when no minimum or maximum per ticket can set the fee."""
        if self.min_per_ticket or self.max_per_ticket is not None \
                or self.max_pct_notional is not None:
            return None
        rate = self.bps * 1e-4 + (self.per_share / _positive_prices(ctx) if self.per_share
                                  else np.zeros(len(ctx.symbols)))
        return SeparableForm(np.asarray(rate, dtype=np.float64))

    def __repr__(self) -> str:
        return (f"Commission(per_share={self.per_share}, bps={self.bps}, "
                f"min_per_ticket={self.min_per_ticket}, max_per_ticket={self.max_per_ticket})")


@dataclass(frozen=True)
class SpreadCurve:
    """Time-of-day multiplier of the quoted spread (1.0 = the session average).

    Attributes:
        edges_min: (B+1,) bucket edges in minutes after the open (0 ... 390).
        multipliers: (B,) mean relative spread in each bucket / the session mean.
    """

    edges_min: np.ndarray
    multipliers: np.ndarray

    def __post_init__(self) -> None:
        e = np.asarray(self.edges_min, dtype=np.float64)
        m = np.asarray(self.multipliers, dtype=np.float64)
        if e.ndim != 1 or m.shape != (len(e) - 1,) or len(m) == 0:
            raise ValidationError("need B+1 edges for B multipliers", field="multipliers",
                                  value=(e.shape, m.shape))
        if np.any(np.diff(e) <= 0):
            raise ValidationError("edges must increase", field="edges_min")
        if not np.all(np.isfinite(m)) or np.any(m <= 0):
            raise ValidationError("multipliers must be finite and > 0", field="multipliers")
        object.__setattr__(self, "edges_min", e)
        object.__setattr__(self, "multipliers", m)

    @classmethod
    def flat(cls) -> SpreadCurve:
        return cls(np.array([0.0, SESSION_MINUTES]), np.array([1.0]))

    @classmethod
    def fit(cls, quotes: pd.DataFrame, bucket_minutes: float = 15.0) -> SpreadCurve:
        """Fit from minute quote bars.

        Args:
            quotes: columns ``day`` (any label), ``minute`` (minutes after the 09:30 open),
                ``bid`` and ``ask`` (currency); rows outside [0, 390) are ignored.
            bucket_minutes: bucket width in minutes.

        Each day's relative spreads are divided by that day's mean, so a wide-spread day does
        not dominate; the multiplier is the mean of those ratios in each bucket.
        """
        need = {"day", "minute", "bid", "ask"}
        if not need <= set(quotes.columns):
            raise DataError("quotes need columns day, minute, bid, ask", field="quotes",
                            value=sorted(need - set(quotes.columns)))
        bw = check_scalar(bucket_minutes, "bucket_minutes", positive=True)
        q = quotes[(quotes["minute"] >= 0) & (quotes["minute"] < SESSION_MINUTES)]
        q = q[(q["bid"] > 0) & (q["ask"] > q["bid"])]
        if q.empty:
            raise DataError("no valid in-session quotes (bid > 0, ask > bid)", field="quotes")
        rel = (q["ask"] - q["bid"]) / (0.5 * (q["ask"] + q["bid"]))
        ratio = rel / rel.groupby(q["day"]).transform("mean")
        edges = np.append(np.arange(0.0, SESSION_MINUTES, bw), SESSION_MINUTES)
        bucket = np.clip(np.searchsorted(edges, q["minute"].to_numpy(), side="right") - 1,
                         0, len(edges) - 2)
        mult = pd.Series(ratio.to_numpy()).groupby(bucket).mean()
        full = mult.reindex(range(len(edges) - 1)).interpolate(limit_direction="both")
        return cls(edges, full.to_numpy() / full.mean())

    @classmethod
    def fit_quote_bars(cls, bars: pd.DataFrame, bucket_minutes: float = 15.0) -> SpreadCurve:
        """Fit from minute quote bars as ``keel.data.lean.load_lean_minute(_folder)`` returns
        them (``bar_start`` UTC, ``bid_close``, ``ask_close``); one day per local date."""
        need = {"bar_start", "bid_close", "ask_close"}
        if not need <= set(bars.columns):
            raise DataError("quote bars need bar_start, bid_close, ask_close", field="quotes",
                            value=sorted(need - set(bars.columns)))
        start = pd.DatetimeIndex(bars["bar_start"])
        quotes = pd.DataFrame({"day": start.tz_convert("America/New_York").date,
                               "minute": minutes_after_open(start),
                               "bid": bars["bid_close"].to_numpy(),
                               "ask": bars["ask_close"].to_numpy()})
        return cls.fit(quotes, bucket_minutes)

    def multiplier(self, minutes: float | np.ndarray | None) -> np.ndarray:
        """Multiplier at ``minutes`` after the open (None: 1.0, a day-average trade)."""
        if minutes is None:
            return np.asarray(1.0)
        m = np.asarray(minutes, dtype=np.float64)
        i = np.clip(np.searchsorted(self.edges_min, m, side="right") - 1, 0,
                    len(self.multipliers) - 1)
        return self.multipliers[i]

    def to_dict(self) -> dict[str, Any]:
        return {"edges_min": self.edges_min.tolist(), "multipliers": self.multipliers.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpreadCurve:
        return cls(np.asarray(d["edges_min"]), np.asarray(d["multipliers"]))


class SpreadCost(CostModel):
    """Pay half the quoted spread on the traded notional, scaled by the time-of-day curve.

    ``cost = fraction * spread/2 * |notional| * curve(ctx.time_of_day)`` with ``ctx.spreads``
    the full spread as a fraction of mid; ``fraction=1`` crosses the whole half-spread.
    """

    name = "spread"

    def __init__(self, curve: SpreadCurve | None = None, fraction: float = 1.0) -> None:
        self.curve = curve or SpreadCurve.flat()
        self.fraction = check_scalar(fraction, "fraction")

    def _rate(self, ctx: TradeContext) -> np.ndarray:
        return self.fraction * 0.5 * ctx.spreads * float(self.curve.multiplier(ctx.time_of_day))

    def cost_array(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        return self._rate(ctx) * np.abs(trades_notional)

    def expr(self, trade_weights: cp.Expression, ctx: TradeContext) -> cp.Expression:
        import cvxpy as cp

        return cp.sum(cp.multiply(self._rate(ctx), cp.abs(trade_weights)))

    def separable_form(self, ctx: TradeContext) -> SeparableForm | None:
        return SeparableForm(np.asarray(self._rate(ctx), dtype=np.float64))

    def __repr__(self) -> str:
        return f"SpreadCost(fraction={self.fraction}, buckets={len(self.curve.multipliers)})"


class SquareRootImpact(CostModel):
    """Square-root market impact with participation-rate dependence.

    Price impact as a fraction of price, for a trade of notional ``Q`` executed over
    ``h = ctx.horizon_days`` at participation ``rho = |Q| / (ADV h)``:
    ``I = Y sigma sqrt(h) rho^beta``; the cost is ``I |Q|``. With ``beta = 1/2`` this is the
    classic ``Y sigma sqrt(Q / ADV)`` whatever the horizon. In NAV units the cost is
    ``Y sigma h^(1/2-beta) (nav/ADV)^beta |w|^(1+beta)``: a convex power (3/2 for beta=1/2).

    Args:
        y: dimensionless constant Y (order 1 in empirical studies).
        beta: participation exponent in (0, 1].
    """

    name = "impact"

    def __init__(self, y: float = 1.0, beta: float = 0.5) -> None:
        self.y = check_scalar(y, "y")
        self.beta = check_scalar(beta, "beta", positive=True, upper=1.0)

    def _coef(self, ctx: TradeContext, traded: np.ndarray | None) -> np.ndarray:
        adv = ctx.adv_notional
        need = np.ones(len(adv), dtype=bool) if traded is None else traded > 0
        ctx.require_inputs("square-root impact", need)
        bad = need & (adv <= 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValidationError("adv_notional must be > 0 for a traded name",
                                  field="adv_notional", symbol=str(ctx.symbols[i]),
                                  value=float(adv[i]))
        h = check_scalar(ctx.horizon_days, "horizon_days", positive=True)
        safe = np.where(adv > 0, adv, 1.0)
        return self.y * ctx.volatility * h ** (0.5 - self.beta) * safe ** (-self.beta)

    def participation(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        """(N,) participation rate ``|Q| / (ADV * horizon_days)``."""
        with np.errstate(divide="ignore"):
            return np.abs(trades_notional) / (ctx.adv_notional * ctx.horizon_days)

    def cost_array(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        traded = np.abs(trades_notional)
        return self._coef(ctx, traded) * traded ** (1.0 + self.beta)

    def expr(self, trade_weights: cp.Expression, ctx: TradeContext) -> cp.Expression:
        import cvxpy as cp

        coef = self._coef(ctx, None) * ctx.nav ** self.beta
        return cp.sum(cp.multiply(coef, cp.power(cp.abs(trade_weights), 1.0 + self.beta)))

    def separable_form(self, ctx: TradeContext) -> SeparableForm | None:
        coef = self._coef(ctx, None) * ctx.nav ** self.beta
        return SeparableForm(np.zeros(len(coef)), coef, 1.0 + self.beta)

    def __repr__(self) -> str:
        return f"SquareRootImpact(y={self.y}, beta={self.beta})"
