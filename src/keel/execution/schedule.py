"""Schedulers: turn a parent order into timed child orders (TWAP, VWAP, IS, POV).

Every scheduler has ``schedule(parent, market, clock) -> list[ChildOrder]``:

* the slices lie inside market hours of the exchange calendar (half days included), starting
  at ``clock.now()`` (or the next open) and ending at the horizon (default: the session close);
* child quantities are whole lots (the odd-lot remainder of the parent goes to the last child),
  each at least ``min_child_qty`` (smaller slices are merged forward), and they sum *exactly*
  to the parent quantity, also when the quantity is smaller than the number of slices;
* with ``limit_offset_bps`` children are LIMIT orders priced at the reference price moved
  ``offset`` bps in the favourable direction (buy below, sell above; negative = more aggressive).

Weights per slice are float64; quantities are ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from keel.clock import Clock
from keel.costs.almgren_chriss import ac_trajectory
from keel.data.calendar import ExchangeCalendar, regular_hours
from keel.errors import DataError, ValidationError
from keel.execution.hours import (
    Window,
    next_trading_time,
    session_close_after,
    trading_to_wall,
    trading_windows,
)
from keel.execution.profile import VolumeProfile
from keel.types import (
    ChildOrder,
    Order,
    OrderType,
    Rounding,
    TimeInForce,
    money_context,
    quantize_to,
    to_decimal,
)

if TYPE_CHECKING:
    from keel.data.market import MarketData


class Algo(StrEnum):
    """Execution algorithms."""

    MARKET = "market"
    TWAP = "twap"
    VWAP = "vwap"
    IS = "is"
    POV = "pov"


@dataclass(frozen=True)
class ExecutionContext:
    """Market inputs a scheduler needs for one symbol.

    Attributes:
        price: reference (arrival) price, currency/share.
        adv_shares: average daily volume, shares/day (POV forecast, IS impact scale).
        daily_volatility: daily volatility of returns (fraction); NaN = not known (only IS
            with an explicit risk aversion needs it, and refuses NaN naming the symbol).
        spread_bps: quoted spread in bps of the mid.
        profile: intraday volume profile (VWAP, POV); None means flat.
    """

    price: float
    adv_shares: float = 1e6
    daily_volatility: float = 0.02
    spread_bps: float = 1.0
    profile: VolumeProfile | None = None

    def __post_init__(self) -> None:
        for name in ("price", "adv_shares"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValidationError(f"{name} must be > 0", field=name, value=v)
        if not (np.isnan(self.daily_volatility) or (np.isfinite(self.daily_volatility)
                                                     and self.daily_volatility >= 0)):
            raise ValidationError("daily_volatility must be >= 0 (or NaN: unknown)",
                                  field="daily_volatility", value=self.daily_volatility)
        for name in ("spread_bps",):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValidationError(f"{name} must be >= 0", field=name, value=v)

    @classmethod
    def from_market(cls, market: MarketData, symbol: str, *,
                    profile: VolumeProfile | None = None,
                    default_spread_bps: float = 1.0) -> ExecutionContext:
        """Latest price, ADV (shares), volatility and spread of ``symbol`` in ``market``
        (use ``market.as_of(t)`` first for a past date).

        A missing volatility stays NaN (unknown, never a made-up 2 %); a missing ADV is
        refused naming the symbol."""
        if symbol not in market.symbols:
            raise ValidationError("symbol not in the market", field="symbol", symbol=symbol)
        vol = float(market.latest("volatility").get(symbol, np.nan))
        adv = float(market.latest("adv_shares")[symbol])
        if not (np.isfinite(adv) and adv > 0):
            raise DataError("no average daily volume for this name (too little history?)",
                            field="adv_shares", symbol=symbol, value=adv)
        spread = default_spread_bps
        if market.spreads is not None and np.isfinite(market.latest("spreads")[symbol]):
            spread = float(market.latest("spreads")[symbol]) * 1e4
        return cls(price=float(market.latest("prices")[symbol]),
                   adv_shares=adv, daily_volatility=vol if np.isfinite(vol) else np.nan,
                   spread_bps=spread,
                   profile=profile)


@dataclass(frozen=True)
class ScheduleConfig:
    """Slicing options shared by every scheduler.

    Attributes:
        n_slices: number of equal trading-time slices over the horizon.
        horizon: trading horizon as wall time from the start (None: until the session close).
        lot_size: round-lot size in shares; children are whole lots (the odd lot goes last).
        min_child_qty: smallest child in shares (smaller slices are merged forward).
        limit_offset_bps: None for MARKET children, else LIMIT at ref * (1 - side * offset).
        tick_size: price increment for limit prices (currency).
        calendar: exchange calendar name.
        tif: time in force of the children.
    """

    n_slices: int = 13
    horizon: timedelta | None = None
    lot_size: int = 1
    min_child_qty: Decimal = Decimal(1)
    limit_offset_bps: float | None = None
    tick_size: Decimal = Decimal("0.01")
    calendar: str = "XNYS"
    tif: TimeInForce = TimeInForce.DAY

    def __post_init__(self) -> None:
        if not isinstance(self.n_slices, int) or self.n_slices < 1:
            raise ValidationError("n_slices must be an int >= 1", field="n_slices",
                                  value=self.n_slices)
        if not isinstance(self.lot_size, int) or self.lot_size < 1:
            raise ValidationError("lot_size must be an int >= 1", field="lot_size",
                                  value=self.lot_size)
        mc = to_decimal(self.min_child_qty, "min_child_qty")
        if mc <= 0:
            raise ValidationError("min_child_qty must be > 0", field="min_child_qty", value=mc)
        object.__setattr__(self, "min_child_qty", mc)
        if self.horizon is not None and self.horizon <= timedelta(0):
            raise ValidationError("horizon must be positive", field="horizon",
                                  value=self.horizon)
        object.__setattr__(self, "tif", TimeInForce(self.tif))


# --------------------------------------------------------------------------- allocation


def allocate(qty: Decimal, weights: np.ndarray, lot_size: int = 1,
             min_child_qty: Decimal = Decimal(1)) -> list[Decimal]:
    """Split ``qty`` over slices in proportion to ``weights``, exactly.

    Whole lots go by largest remainder; slices under ``min_child_qty`` are carried into the
    next slice; the odd-lot remainder of ``qty`` joins the last non-empty slice. The result
    has ``len(weights)`` entries (zeros for empty slices) summing exactly to ``qty``.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) \
            or w.sum() <= 0:
        raise ValidationError("weights must be a non-empty, non-negative vector with a "
                              "positive sum", field="weights")
    lot = Decimal(lot_size)
    n_lots = int((qty / lot).to_integral_value(rounding=ROUND_DOWN))
    odd = qty - lot * n_lots
    w = w / w.sum()
    raw = w * n_lots
    lots = np.floor(raw).astype(np.int64)
    short = n_lots - int(lots.sum())
    if short > 0:
        # largest remainder; ties broken by the earliest slice (stable)
        order = np.argsort(-(raw - lots), kind="stable")[:short]
        lots[order] += 1
    min_lots = max(1, int((min_child_qty / lot).to_integral_value(rounding="ROUND_CEILING")))
    merged = np.zeros_like(lots)
    carry, last = 0, -1
    for i, k in enumerate(lots):
        carry += int(k)
        if carry >= min_lots:
            merged[i], carry, last = carry, 0, i
    if carry:
        merged[last if last >= 0 else int(np.argmax(w))] += carry
    out = [lot * int(k) for k in merged]
    if odd:
        nz = [i for i, q in enumerate(out) if q > 0]
        out[nz[-1] if nz else int(np.argmax(w))] += odd
    return out


def _limit_price(side_sign: int, ref: float, offset_bps: float, tick: Decimal) -> Decimal:
    with money_context():
        px = to_decimal(ref, "price") * (1 - side_sign * to_decimal(offset_bps, "bps") / 10_000)
    return max(tick, quantize_to(px, tick, Rounding.HALF_EVEN))


# --------------------------------------------------------------------------- schedulers


class Scheduler:
    """Base: equal trading-time slices, weights from :meth:`weights`."""

    algo: Algo = Algo.TWAP

    def __init__(self, config: ScheduleConfig | None = None) -> None:
        self.config = config or ScheduleConfig()

    def weights(self, windows: list[Window], bounds: list[pd.Timestamp], parent: Order,
                market: ExecutionContext) -> np.ndarray:
        """(n_slices,) non-negative weights of each slice."""
        return np.ones(len(bounds) - 1)

    def grid(self, start: pd.Timestamp) -> tuple[list[Window], list[pd.Timestamp]]:
        """Trading windows and the ``n_slices + 1`` slice boundaries from ``start``."""
        cfg = self.config
        begin = next_trading_time(start, cfg.calendar)
        end = (begin + cfg.horizon if cfg.horizon is not None
               else session_close_after(begin, cfg.calendar))
        windows = trading_windows(begin, end, cfg.calendar)
        total = sum(w.minutes for w in windows)
        bounds = trading_to_wall(windows, np.linspace(0.0, total, cfg.n_slices + 1))
        return windows, bounds

    def schedule(self, parent: Order, market: ExecutionContext, clock: Clock
                 ) -> list[ChildOrder]:
        """Child orders for ``parent`` starting now (see the module doc for the guarantees)."""
        if not isinstance(market, ExecutionContext):
            raise ValidationError("market must be an ExecutionContext", field="market",
                                  value=type(market).__name__)
        now = pd.Timestamp(clock.now())
        windows, bounds = self.grid(now)
        w = self.weights(windows, bounds, parent, market)
        qtys = allocate(parent.qty, w, self.config.lot_size, self.config.min_child_qty)
        return self._children(parent, market, bounds, qtys, now)

    def _children(self, parent: Order, market: ExecutionContext,
                  bounds: Sequence[pd.Timestamp], qtys: list[Decimal], now: pd.Timestamp
                  ) -> list[ChildOrder]:
        cfg = self.config
        limit = None
        if cfg.limit_offset_bps is not None:
            limit = _limit_price(parent.side.sign, market.price, cfg.limit_offset_bps,
                                 cfg.tick_size)
        out: list[ChildOrder] = []
        for i, q in enumerate(qtys):
            if q <= 0:
                continue
            out.append(ChildOrder(
                client_order_id=f"{parent.client_order_id}-{len(out):03d}",
                parent_id=parent.client_order_id, symbol=parent.symbol, side=parent.side,
                qty=q, created_at=now.to_pydatetime(), slice_index=len(out),
                not_before=bounds[i].to_pydatetime(), expire_at=bounds[i + 1].to_pydatetime(),
                order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
                limit_price=limit, tif=cfg.tif, strategy=self.algo.value))
        return out


class TWAP(Scheduler):
    """Equal quantities per equal trading-time slice."""

    algo = Algo.TWAP


def _profile_fractions(profile: VolumeProfile, windows: list[Window],
                       bounds: list[pd.Timestamp]) -> np.ndarray:
    """(n_slices,) expected fraction of a day's volume in each slice (summed over sessions)."""
    return np.array([sum(profile.window_fraction(w, bounds[i], bounds[i + 1]) for w in windows)
                     for i in range(len(bounds) - 1)])


class VWAP(Scheduler):
    """Slices in proportion to the expected volume in each (from a fitted profile)."""

    algo = Algo.VWAP

    def __init__(self, profile: VolumeProfile | None = None,
                 config: ScheduleConfig | None = None) -> None:
        super().__init__(config)
        self.profile = profile

    def weights(self, windows: list[Window], bounds: list[pd.Timestamp], parent: Order,
                market: ExecutionContext) -> np.ndarray:
        profile = self.profile or market.profile or VolumeProfile.flat()
        f = _profile_fractions(profile, windows, bounds)
        return f if f.sum() > 0 else np.ones(len(f))


#: default urgency ``kappa * T`` of the IS scheduler (about 56 % of the order done at half time)
DEFAULT_URGENCY = 1.0


def urgency_kappa_tilde2(urgency: float, total_days: float, n: int) -> float:
    """``kappa_tilde^2 = lambda sigma^2 / eta_tilde`` (1/day^2) that makes the discrete
    Almgren-Chriss trajectory over ``n`` intervals of ``total_days / n`` have ``kappa T`` equal
    to ``urgency`` exactly (inverse of ``kappa = arccosh(1 + kappa_tilde^2 tau^2 / 2) / tau``)."""
    tau = total_days / n
    return 2.0 * (np.cosh(urgency / total_days * tau) - 1.0) / tau**2


def urgency_risk_aversion(urgency: float, total_days: float, n: int, sigma: float, eta: float,
                          gamma: float = 0.0) -> float:
    """Risk aversion lambda (1/currency) equivalent to ``urgency`` for these coefficients
    (``sigma`` currency/share/sqrt(day), ``eta``, ``gamma`` as in ``ac_trajectory``)."""
    tau = total_days / n
    return urgency_kappa_tilde2(urgency, total_days, n) * (eta - 0.5 * gamma * tau) / sigma**2


def session_volatility(bars: pd.DataFrame, n_sessions: int = 1,
                       calendar: ExchangeCalendar | str = "XNYS") -> float:
    """Daily volatility (fraction) from the intraday returns of the last ``n_sessions``.

    ``bars``: minute bars with a tz-aware (UTC) bar-start index and a ``close`` column. Only
    the regular session of ``calendar`` counts (its open to its close, early on half days);
    the realised variance of each session is the sum of its squared log returns between
    consecutive bars (no overnight gap, whatever the sampling gaps), and the result is the
    square root of the mean over the last ``n_sessions`` sessions. Closes from sessions years
    apart never meet in one return.

    Raises:
        DataError: no session with at least two regular-hours bars (field ``bars``).
        ValidationError: ``n_sessions < 1``.
    """
    if n_sessions < 1:
        raise ValidationError("n_sessions must be >= 1", field="n_sessions", value=n_sessions)
    regular, local = regular_hours(pd.DatetimeIndex(bars.index), calendar)
    close = np.log(bars["close"].to_numpy(dtype=np.float64)[regular])
    day = np.asarray(local[regular].normalize().tz_localize(None))
    ret = pd.Series(np.diff(close), index=day[1:])[day[1:] == day[:-1]]
    if ret.empty or not np.all(np.isfinite(ret.to_numpy())):
        raise DataError("no session with two valid regular-hours closes for a volatility",
                        field="bars", symbol=str(bars.attrs.get("symbol", "")) or None)
    rv = (ret**2).groupby(level=0).sum().sort_index()
    return float(np.sqrt(rv.iloc[-n_sessions:].mean()))


class ImplementationShortfall(Scheduler):
    """Almgren-Chriss optimal trajectory: front-loaded as the urgency grows.

    The knob is the scale-free **urgency** ``u = kappa * T``: the remaining holdings follow
    ``sinh(u (1 - t/T)) / sinh(u)``, so the trajectory does not depend on the price, the
    volatility or the impact estimate. The share of the order done by half time is
    ``1 - 1 / (2 cosh(u/2))``: u = 0 is TWAP (50 %), 1 is mild (56 %, the default), 2 is 68 %,
    5 is urgent (92 %). The risk aversion lambda it implies is
    :func:`urgency_risk_aversion` (exact for the discrete trajectory).

    Args:
        risk_aversion: lambda in 1/currency; when given (and ``urgency`` is not), the
            trajectory uses it with the context's volatility and impact (a raw lambda is not
            scale-free: the same value front-loads a 450-dollar stock far more than a 5-dollar
            one). None and no urgency: ``DEFAULT_URGENCY``.
        eta: temporary impact, currency/share per share/day (None: one spread per 1% ADV/day).
        gamma: permanent impact, currency/share per share (None: one spread per 10% ADV).
        urgency: ``kappa * T`` (>= 0); takes precedence over ``risk_aversion``.
    """

    algo = Algo.IS

    def __init__(self, risk_aversion: float | None = None,
                 config: ScheduleConfig | None = None, *, eta: float | None = None,
                 gamma: float | None = None, urgency: float | None = None) -> None:
        super().__init__(config)
        if risk_aversion is not None and not (np.isfinite(risk_aversion)
                                              and risk_aversion >= 0):
            raise ValidationError("risk_aversion must be >= 0", field="risk_aversion",
                                  value=risk_aversion)
        if urgency is not None and not (np.isfinite(urgency) and urgency >= 0):
            raise ValidationError("urgency must be >= 0", field="urgency", value=urgency)
        if urgency is None and risk_aversion is None:
            urgency = DEFAULT_URGENCY
        self.risk_aversion = risk_aversion
        self.eta = eta
        self.gamma = gamma
        self.urgency = urgency

    def weights(self, windows: list[Window], bounds: list[pd.Timestamp], parent: Order,
                market: ExecutionContext) -> np.ndarray:
        n = len(bounds) - 1
        total_days = sum(w.minutes for w in windows) / 390.0
        tau = total_days / n
        if self.urgency is not None:
            # the trajectory depends on kappa only: unit coefficients with that kappa
            kt2 = urgency_kappa_tilde2(self.urgency, total_days, n)
            traj = ac_trajectory(float(parent.qty), n, tau, 1.0, 1.0, 0.0, 0.0, kt2)
            return np.maximum(traj, 0.0)
        if not np.isfinite(market.daily_volatility):
            raise DataError("IS with a risk aversion needs the daily volatility, which is "
                            "missing; give it or use urgency", field="daily_volatility",
                            symbol=parent.symbol)
        spread = market.price * market.spread_bps / 1e4
        eta = self.eta if self.eta is not None else spread / (0.01 * market.adv_shares)
        gamma = self.gamma if self.gamma is not None else spread / (0.1 * market.adv_shares)
        sigma = market.daily_volatility * market.price
        traj = ac_trajectory(float(parent.qty), n, tau, sigma, eta, gamma, 0.5 * spread,
                             float(self.risk_aversion or 0.0))
        return np.maximum(traj, 0.0)


class POV(Scheduler):
    """Trade a target fraction of the forecast volume (ADV x profile) in each slice.

    The rate used is ``participation`` clipped to ``[min_participation, max_participation]``;
    when the parent cannot finish within the horizon at that rate, the rate rises to what is
    needed, and if that exceeds ``max_participation`` the order is refused (``qty``). Slices
    after the parent is done are dropped.
    """

    algo = Algo.POV

    def __init__(self, participation: float = 0.1, config: ScheduleConfig | None = None, *,
                 min_participation: float = 0.0, max_participation: float = 0.25,
                 profile: VolumeProfile | None = None) -> None:
        super().__init__(config)
        if not 0 <= min_participation <= participation <= max_participation <= 1:
            raise ValidationError("need 0 <= min <= participation <= max <= 1",
                                  field="participation",
                                  value=(min_participation, participation, max_participation))
        if participation <= 0:
            raise ValidationError("participation must be > 0", field="participation",
                                  value=participation)
        self.participation = participation
        self.min_participation = min_participation
        self.max_participation = max_participation
        self.profile = profile

    def forecast_volume(self, windows: list[Window], bounds: list[pd.Timestamp],
                        market: ExecutionContext) -> np.ndarray:
        """(n_slices,) forecast market volume per slice, shares."""
        profile = self.profile or market.profile or VolumeProfile.flat()
        return market.adv_shares * _profile_fractions(profile, windows, bounds)

    def weights(self, windows: list[Window], bounds: list[pd.Timestamp], parent: Order,
                market: ExecutionContext) -> np.ndarray:
        vol = self.forecast_volume(windows, bounds, market)
        qty = float(parent.qty)
        rate = self.participation
        if rate * vol.sum() < qty:
            rate = qty / max(vol.sum(), 1e-12)
            if rate > self.max_participation:
                raise ValidationError(
                    f"needs {rate:.1%} of forecast volume, above max_participation "
                    f"{self.max_participation:.1%}", field="qty", symbol=parent.symbol,
                    value=parent.qty)
        target = rate * vol
        cum = np.cumsum(target)
        done = np.searchsorted(cum, qty - 1e-9)  # first slice reaching the parent quantity
        w = target.copy()
        w[done + 1:] = 0.0
        w[done] = qty - (cum[done - 1] if done > 0 else 0.0)
        return np.maximum(w, 0.0)


def make_scheduler(algo: Algo | str, config: ScheduleConfig | None = None, *,
                   profile: VolumeProfile | None = None, risk_aversion: float | None = None,
                   participation: float = 0.1, urgency: float | None = None) -> Scheduler:
    """A scheduler by name (``twap``, ``vwap``, ``is``, ``pov``; ``market`` = one slice)."""
    try:
        a = Algo(str(algo).lower())
    except ValueError:
        raise ValidationError("unknown algorithm", field="algo", value=algo) from None
    if a is Algo.MARKET:
        cfg = config or ScheduleConfig()
        single = ScheduleConfig(n_slices=1, horizon=timedelta(minutes=1), lot_size=1,
                                min_child_qty=Decimal(1), calendar=cfg.calendar, tif=cfg.tif)
        s: Scheduler = TWAP(single)
        s.algo = Algo.MARKET
        return s
    if a is Algo.TWAP:
        return TWAP(config)
    if a is Algo.VWAP:
        return VWAP(profile, config)
    if a is Algo.IS:
        return ImplementationShortfall(risk_aversion, config, urgency=urgency)
    return POV(participation, config, profile=profile)
