"""Rebalance triggers: when to trade, which names, and why, as a :class:`RebalanceDecision`.

Each rule is a small object with one job and a role (:class:`Role`):

* TRIGGER -- a reason to trade (drift bands, portfolio L1 drift, per-name drift, calendar);
* GATE -- a reason to wait (cooldown, outside the scheduled windows);
* OVERRIDE -- trade now whatever the gates say (volatility spike: de-risk);
* FILTER -- names that must not trade now (spread blowout), or none at all (kill switch).

:class:`RebalancePolicy` evaluates every rule on a :class:`PolicyContext` and combines them:
kill switch > overrides > gates > triggers. Weights are fractions of NAV (float).

Boundaries: every threshold fires *at* its value (``>=``), with a tolerance of
:data:`BOUNDARY_ULPS` units in the last place of the compared magnitudes (:func:`at_least`),
so a documented example fires exactly: a 5% absolute band fires for 25% -> 30% although
``0.30 - 0.25 == 0.04999999999999999`` in binary floating point. Time rules read the
exchange calendar through :mod:`keel.policy.sessions` (half days and holidays included), the
same function the governance market-hours rule uses.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from keel.errors import ValidationError
from keel.policy import sessions
from keel.types import ensure_utc


class Role(StrEnum):
    TRIGGER = "trigger"
    GATE = "gate"
    OVERRIDE = "override"
    FILTER = "filter"


class ReasonCode(StrEnum):
    """Stable machine-readable reasons of a rebalance decision."""

    DRIFT_ABSOLUTE = "DRIFT_ABSOLUTE"
    DRIFT_RELATIVE = "DRIFT_RELATIVE"
    DRIFT_L1 = "DRIFT_L1"
    DRIFT_NAME = "DRIFT_NAME"
    CALENDAR = "CALENDAR"
    COOLDOWN = "COOLDOWN"
    OUTSIDE_WINDOW = "OUTSIDE_WINDOW"
    VOL_SPIKE = "VOL_SPIKE"
    SPREAD_BLOWOUT = "SPREAD_BLOWOUT"
    KILL_SWITCH = "KILL_SWITCH"
    NO_TRIGGER = "NO_TRIGGER"
    NO_TRADABLE_NAMES = "NO_TRADABLE_NAMES"


class Frequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"


@dataclass(frozen=True)
class PolicyContext:
    """What the triggers see at ``now``.

    Attributes:
        now: UTC time of the decision (from the caller's clock).
        weights: symbol -> current weight (fraction of NAV).
        targets: symbol -> target weight (fraction of NAV).
        last_rebalance: UTC time of the last rebalance (None: never).
        vol_ratio: short-horizon / long-horizon realised market volatility (None: unknown).
        spread_ratio: symbol -> current spread / its usual spread (None: unknown).
    """

    now: datetime
    weights: pd.Series
    targets: pd.Series
    last_rebalance: datetime | None = None
    vol_ratio: float | None = None
    spread_ratio: pd.Series | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", ensure_utc(self.now, "now"))
        if self.last_rebalance is not None:
            object.__setattr__(self, "last_rebalance",
                               ensure_utc(self.last_rebalance, "last_rebalance"))
        for name in ("weights", "targets"):
            s = pd.Series(getattr(self, name), dtype=np.float64)
            if not np.all(np.isfinite(s.to_numpy())):
                bad = s.index[~np.isfinite(s.to_numpy())][0]
                raise ValidationError(f"{name} must be finite", field=name, symbol=str(bad))
            object.__setattr__(self, name, s)

    # Derived views, computed once per context (a context is immutable; every rule of a
    # decision reads them). When weights and targets share one index (the backtest's and
    # the live cycle's case) no reindexing happens at all.

    @cached_property
    def _same_index(self) -> bool:
        w, t = self.weights.index, self.targets.index
        return w is t or w.equals(t)

    @cached_property
    def universe(self) -> pd.Index:
        if self._same_index:
            return self.weights.index
        return self.weights.index.union(self.targets.index)

    @cached_property
    def universe_names(self) -> tuple[str, ...]:
        """The universe's symbols as strings, in index order."""
        return tuple(str(s) for s in self.universe.tolist())

    @cached_property
    def _aligned(self) -> tuple[np.ndarray, np.ndarray]:
        """(weights, targets) as arrays over :attr:`universe` (missing = 0)."""
        if self._same_index:
            return self.weights.to_numpy(), self.targets.to_numpy()
        u = self.universe
        return (self.weights.reindex(u, fill_value=0.0).to_numpy(),
                self.targets.reindex(u, fill_value=0.0).to_numpy())

    @cached_property
    def _abs_drift(self) -> np.ndarray:
        w, t = self._aligned
        return np.abs(w - t)

    @cached_property
    def drift(self) -> pd.Series:
        """current - target weight over the union of both (missing = 0)."""
        w, t = self._aligned
        return pd.Series(w - t, index=self.universe)

    @classmethod
    def from_market(cls, now: datetime, weights: Mapping[str, float] | pd.Series,
                    targets: Mapping[str, float] | pd.Series, market: object,
                    last_rebalance: datetime | None = None, short_window: int = 10,
                    long_window: int = 63, spread_window: int = 20) -> PolicyContext:
        """A context whose risk inputs come from a :class:`~keel.data.market.MarketData`
        seen as of ``now``: ``vol_ratio`` = std of the last ``short_window`` market returns /
        std of the last ``long_window``; ``spread_ratio`` = latest spread / median of the last
        ``spread_window`` rows."""
        view = market.as_of(now)  # type: ignore[attr-defined]
        m = view.market_returns
        vol_ratio = None
        if len(m) >= max(short_window, 2):
            long_sd = float(m.tail(long_window).std())
            vol_ratio = float(m.tail(short_window).std()) / long_sd if long_sd > 0 else None
        spread_ratio = None
        if view.spreads is not None:
            sp = view.spreads
            spread_ratio = sp.iloc[-1] / sp.tail(spread_window).median()
        return cls(now=now, weights=pd.Series(weights, dtype=np.float64),
                   targets=pd.Series(targets, dtype=np.float64), last_rebalance=last_rebalance,
                   vol_ratio=vol_ratio, spread_ratio=spread_ratio)


@dataclass(frozen=True)
class Check:
    """One rule's verdict. ``names`` None means "every name in the universe"."""

    rule: str
    role: Role
    fired: bool
    code: ReasonCode
    names: tuple[str, ...] | None = ()
    detail: str = ""


class Rule(Protocol):
    """Anything with a ``role`` and ``check(ctx) -> Check``."""

    @property
    def role(self) -> Role: ...

    def check(self, ctx: PolicyContext) -> Check: ...


def _names(mask: pd.Series) -> tuple[str, ...]:
    return tuple(sorted(map(str, mask.index[mask.to_numpy()])))


def _universe_names(ctx: PolicyContext, mask: np.ndarray) -> tuple[str, ...]:
    """Sorted names of ``ctx.universe`` where ``mask`` (aligned with it) is True."""
    hit = np.flatnonzero(mask)
    if len(hit) == 0:
        return ()
    if "universe_names" in ctx.__dict__:  # already built for this context
        names = ctx.universe_names
        return tuple(sorted(names[i] for i in hit))
    return tuple(sorted(str(s) for s in ctx.universe[hit].tolist()))


#: How many units in the last place a float may fall short of a threshold and still fire.
#: Subtracting two weights rounds once per operand and once for the result; 4 covers that.
BOUNDARY_ULPS = 4


def at_least(x: ArrayLike, bound: ArrayLike, scale: ArrayLike | None = None) -> np.ndarray:
    """``x >= bound`` up to :data:`BOUNDARY_ULPS` ulps of ``scale`` (default: the larger of
    ``|x|`` and ``|bound|``), elementwise. NaN compares False (never "at the boundary")."""
    xa = np.asarray(x, dtype=np.float64)
    ba = np.asarray(bound, dtype=np.float64)
    sc = np.maximum(np.abs(xa), np.abs(ba)) if scale is None else np.abs(
        np.asarray(scale, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        return np.asarray(xa >= ba - BOUNDARY_ULPS * np.spacing(sc))


def _at_least_series(x: pd.Series, bound: ArrayLike, scale: ArrayLike | None = None
                     ) -> pd.Series:
    return pd.Series(at_least(x.to_numpy(), bound, scale), index=x.index)


def _operand_scale(ctx: PolicyContext, index: pd.Index) -> np.ndarray:
    """The larger of |weight| and |target| per name: the magnitude a drift was computed from."""
    w = ctx.weights.reindex(index, fill_value=0.0).abs().to_numpy()
    t = ctx.targets.reindex(index, fill_value=0.0).abs().to_numpy()
    return np.maximum(w, t)


# --------------------------------------------------------------------------- triggers


@dataclass(frozen=True)
class AbsoluteDrift:
    """Fires for names whose |weight - target| reaches ``band`` (weight units): at the band
    itself, within :data:`BOUNDARY_ULPS` ulps."""

    band: float = 0.05
    role: Role = field(default=Role.TRIGGER, init=False)

    def check(self, ctx: PolicyContext) -> Check:
        d = ctx._abs_drift
        w, t = ctx._aligned
        scale = np.maximum(np.maximum(np.abs(w), np.abs(t)), self.band)
        names = _universe_names(ctx, at_least(d, self.band, scale) & (d > 0))
        return Check("AbsoluteDrift", self.role, bool(names), ReasonCode.DRIFT_ABSOLUTE, names,
                     f"max |drift| {d.max() if len(d) else 0.0:.4f} vs band {self.band}")


@dataclass(frozen=True)
class RelativeDrift:
    """Fires for names whose |weight - target| reaches ``band`` x |target| (a held name with
    target 0 always counts); at the boundary within :data:`BOUNDARY_ULPS` ulps."""

    band: float = 0.05
    role: Role = field(default=Role.TRIGGER, init=False)

    def check(self, ctx: PolicyContext) -> Check:
        d = ctx._abs_drift
        w, t = np.abs(ctx._aligned[0]), np.abs(ctx._aligned[1])
        names = _universe_names(ctx, at_least(d, self.band * t, np.maximum(w, t)) & (d > 0))
        return Check("RelativeDrift", self.role, bool(names), ReasonCode.DRIFT_RELATIVE,
                     names, f"relative band {self.band}")


@dataclass(frozen=True)
class PortfolioDrift:
    """Fires when the L1 drift sum |weight - target| reaches ``threshold``; names: all drifted.

    The tolerance grows with the number of terms summed (``BOUNDARY_ULPS`` ulps of the
    largest weight per name, plus the threshold's own)."""

    threshold: float = 0.05
    role: Role = field(default=Role.TRIGGER, init=False)

    def check(self, ctx: PolicyContext) -> Check:
        d = ctx.drift.abs()
        l1 = float(d.sum())
        scale = float(_operand_scale(ctx, d.index).max(initial=0.0)) * max(len(d), 1)
        fired = l1 > 0 and bool(at_least(l1, self.threshold, max(scale, self.threshold, l1)))
        return Check("PortfolioDrift", self.role, fired, ReasonCode.DRIFT_L1,
                     _names(d > 0) if fired else (), f"L1 drift {l1:.4f} vs {self.threshold}")


@dataclass(frozen=True)
class NameDrift:
    """Per-name absolute bands (symbol -> band), fired at the band like :class:`AbsoluteDrift`;
    names without a band are not watched."""

    bands: Mapping[str, float]
    role: Role = field(default=Role.TRIGGER, init=False)

    def check(self, ctx: PolicyContext) -> Check:
        d = ctx.drift.abs()
        b = pd.Series(dict(self.bands), dtype=np.float64).reindex(d.index).to_numpy()
        scale = np.fmax(_operand_scale(ctx, d.index), b)
        names = _names(_at_least_series(d, b, scale) & (d > 0))
        return Check("NameDrift", self.role, bool(names), ReasonCode.DRIFT_NAME, names,
                     f"{len(self.bands)} per-name bands")


def _period(day: date, freq: Frequency) -> tuple[int, ...]:
    if freq is Frequency.DAILY:
        return (day.year, day.month, day.day)
    if freq is Frequency.WEEKLY:
        iso = day.isocalendar()
        return (iso[0], iso[1])
    if freq is Frequency.MONTHLY:
        return (day.year, day.month)
    return (day.year, (day.month - 1) // 3)


@dataclass(frozen=True)
class CalendarSchedule:
    """Fires on an exchange session in a new period (day/week/month/quarter) since the last
    rebalance; all names trade."""

    frequency: Frequency = Frequency.MONTHLY
    calendar: str = "XNYS"
    role: Role = field(default=Role.TRIGGER, init=False)

    def check(self, ctx: PolicyContext) -> Check:
        freq = Frequency(self.frequency)
        today = sessions.local_date(ctx.now, self.calendar)
        if not sessions.is_session(today, self.calendar):
            return Check("CalendarSchedule", self.role, False, ReasonCode.CALENDAR, (),
                         f"{today} is not a {self.calendar} session")
        if ctx.last_rebalance is not None:
            last = sessions.local_date(ctx.last_rebalance, self.calendar)
            if _period(last, freq) == _period(today, freq):
                return Check("CalendarSchedule", self.role, False, ReasonCode.CALENDAR, (),
                             f"already rebalanced this {freq.value} period ({last})")
        return Check("CalendarSchedule", self.role, True, ReasonCode.CALENDAR, None,
                     f"first {freq.value} session without a rebalance ({today})")


# --------------------------------------------------------------------------- gates


@dataclass(frozen=True)
class Cooldown:
    """Blocks while the last rebalance is too recent: fewer than ``days`` exchange sessions
    (sessions in ``(last, now]``, by exchange-local date) or fewer than ``minutes`` wall-clock
    minutes since it. At exactly ``days`` sessions / ``minutes`` minutes the gate opens.

    ``Cooldown()`` is 5 sessions; ``Cooldown(minutes=30)`` only 30 minutes;
    ``Cooldown(days=1, minutes=30)`` both (either one blocks).
    """

    days: int | None = None
    minutes: float | None = None
    calendar: str = "XNYS"
    role: Role = field(default=Role.GATE, init=False)

    def __post_init__(self) -> None:
        if self.days is None and self.minutes is None:
            object.__setattr__(self, "days", 5)
        for name in ("days", "minutes"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v >= 0):
                raise ValidationError(f"{name} must be finite and >= 0", field=name, value=v)

    def check(self, ctx: PolicyContext) -> Check:
        if ctx.last_rebalance is None:
            return Check("Cooldown", self.role, False, ReasonCode.COOLDOWN, (), "never rebalanced")
        why: list[str] = []
        block = False
        if self.days is not None:
            n = sessions.sessions_between(sessions.local_date(ctx.last_rebalance, self.calendar),
                                          sessions.local_date(ctx.now, self.calendar),
                                          self.calendar)
            block |= n < self.days
            why.append(f"{n} sessions since last rebalance, cooldown {self.days}")
        if self.minutes is not None:
            elapsed = ctx.now - ctx.last_rebalance
            block |= elapsed < timedelta(minutes=self.minutes)
            why.append(f"{elapsed.total_seconds() / 60:.1f} min since last rebalance, "
                       f"cooldown {self.minutes} min")
        return Check("Cooldown", self.role, block, ReasonCode.COOLDOWN, None, "; ".join(why))


DEFAULT_WINDOWS = ("09:35", "10:30", "12:00", "14:30", "15:50")


@dataclass(frozen=True)
class TradingWindows:
    """Blocks unless ``now`` falls in ``[t, t + width)`` of a window *and* the exchange is
    open at ``now`` (:func:`keel.policy.sessions.is_open`, the function the governance
    market-hours rule uses): on a half day (close 13:00 New York) the 14:30 and 15:50 windows
    do not open; on a holiday none does.

    Attributes:
        times: local wall-clock times ``HH:MM`` in ``tz``.
        width: minutes each window stays open.
    """

    times: Sequence[str] = DEFAULT_WINDOWS
    tz: str = "America/New_York"
    width: int = 5
    calendar: str = "XNYS"
    role: Role = field(default=Role.GATE, init=False)

    def check(self, ctx: PolicyContext) -> Check:
        local = ctx.now.astimezone(ZoneInfo(self.tz))
        if not sessions.is_session(local.date(), self.calendar):
            return Check("TradingWindows", self.role, True, ReasonCode.OUTSIDE_WINDOW, None,
                         f"{local.date()} is not a session")
        if not sessions.is_open(ctx.now, self.calendar):
            return Check("TradingWindows", self.role, True, ReasonCode.OUTSIDE_WINDOW, None,
                         f"{self.calendar} is closed at {local.time():%H:%M}")
        for hhmm in self.times:
            start = datetime.combine(local.date(), time.fromisoformat(hhmm), local.tzinfo)
            if start <= local < start + timedelta(minutes=self.width):
                return Check("TradingWindows", self.role, False, ReasonCode.OUTSIDE_WINDOW,
                             (), f"inside the {hhmm} window")
        return Check("TradingWindows", self.role, True, ReasonCode.OUTSIDE_WINDOW, None,
                     f"{local.time():%H:%M} is outside every window")


# --------------------------------------------------------------------------- risk overrides


@dataclass(frozen=True)
class VolatilitySpike:
    """Override: trade now (to the new, de-risked targets) when ``vol_ratio >= ratio``."""

    ratio: float = 2.0
    role: Role = field(default=Role.OVERRIDE, init=False)

    def check(self, ctx: PolicyContext) -> Check:
        v = ctx.vol_ratio
        fired = v is not None and bool(at_least(v, self.ratio))
        names = _universe_names(ctx, ctx._abs_drift > 0) if fired else ()
        return Check("VolatilitySpike", self.role, fired, ReasonCode.VOL_SPIKE, names,
                     f"vol ratio {v} vs {self.ratio}")


@dataclass(frozen=True)
class SpreadBlowout:
    """Filter: names whose spread is ``ratio`` x their usual spread or more do not trade."""

    ratio: float = 3.0
    role: Role = field(default=Role.FILTER, init=False)

    def check(self, ctx: PolicyContext) -> Check:
        if ctx.spread_ratio is None:
            return Check("SpreadBlowout", self.role, False, ReasonCode.SPREAD_BLOWOUT, (),
                         "no spread data")
        sr = pd.Series(ctx.spread_ratio, dtype=np.float64)
        names = _names(_at_least_series(sr, self.ratio))  # NaN: unknown, never fires
        return Check("SpreadBlowout", self.role, bool(names), ReasonCode.SPREAD_BLOWOUT, names,
                     f"spread ratio >= {self.ratio}")


class KillSwitch:
    """Stops all trading while engaged (a live control: thread-safe, mutable on purpose)."""

    role = Role.FILTER

    def __init__(self, engaged: bool = False, reason: str = "") -> None:
        self._engaged = threading.Event()
        self.reason = reason
        if engaged:
            self._engaged.set()

    @property
    def engaged(self) -> bool:
        return self._engaged.is_set()

    def engage(self, reason: str = "") -> None:
        self.reason = reason
        self._engaged.set()

    def release(self) -> None:
        self.reason = ""
        self._engaged.clear()

    def check(self, ctx: PolicyContext) -> Check:
        on = self.engaged
        return Check("KillSwitch", self.role, on, ReasonCode.KILL_SWITCH, None if on else (),
                     self.reason if on else "released")


# --------------------------------------------------------------------------- decision


@dataclass(frozen=True)
class RebalanceDecision:
    """Trade or not, which names, and why (``reasons``); ``checks`` keeps every rule's verdict."""

    trade: bool
    names: tuple[str, ...]
    reasons: tuple[ReasonCode, ...]
    checks: tuple[Check, ...]
    now: datetime

    def explain(self) -> str:
        verb = "TRADE" if self.trade else "HOLD"
        codes = ", ".join(r.value for r in self.reasons)
        return f"{verb} [{codes}] names={list(self.names)}"


class RebalancePolicy:
    """Combines rules into a :class:`RebalanceDecision`.

    Precedence: a fired kill switch holds everything; a fired override trades whatever the
    gates say; otherwise any fired gate holds; otherwise fired triggers trade their names.
    Filters then remove names (spread blowout); nothing left means hold.
    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = list(rules)
        # (index, its symbols as strings) of the last context: a backtest or live loop
        # decides on the same universe index every session. Holding the index keeps its
        # identity (and an Index is immutable), so an ``is`` match is the same universe.
        self._names: tuple[pd.Index, tuple[str, ...]] | None = None

    @classmethod
    def default(cls, kill_switch: KillSwitch | None = None) -> RebalancePolicy:
        """Drift 5% (absolute, L1), monthly calendar, 5-session cooldown, default windows,
        volatility spike 2x, spread blowout 3x, and a kill switch."""
        return cls([AbsoluteDrift(), PortfolioDrift(), CalendarSchedule(), Cooldown(),
                    TradingWindows(), VolatilitySpike(), SpreadBlowout(),
                    kill_switch or KillSwitch()])

    def decide(self, ctx: PolicyContext) -> RebalanceDecision:
        u = ctx.universe
        if self._names is not None and self._names[0] is u:
            ctx.__dict__.setdefault("universe_names", self._names[1])
        checks = tuple(r.check(ctx) for r in self.rules)
        if "universe_names" in ctx.__dict__:
            self._names = (u, ctx.universe_names)
        fired = [c for c in checks if c.fired]

        def hold(*codes: ReasonCode) -> RebalanceDecision:
            return RebalanceDecision(False, (), tuple(codes), checks, ctx.now)

        if any(c.code is ReasonCode.KILL_SWITCH for c in fired):
            return hold(ReasonCode.KILL_SWITCH)
        drivers = [c for c in fired if c.role is Role.OVERRIDE]
        if not drivers:
            gates = [c for c in fired if c.role is Role.GATE]
            if gates:
                return hold(*dict.fromkeys(c.code for c in gates))
            drivers = [c for c in fired if c.role is Role.TRIGGER]
        if not drivers:
            return hold(ReasonCode.NO_TRIGGER)
        universe = ctx.universe_names
        self._names = (u, universe)
        names: set[str] = set()
        for c in drivers:
            names |= set(universe if c.names is None else c.names)
        filters = [c for c in fired if c.role is Role.FILTER]
        for c in filters:
            names -= set(universe if c.names is None else c.names)
        reasons = tuple(dict.fromkeys([c.code for c in drivers] + [c.code for c in filters]))
        if not names:
            return hold(*reasons, ReasonCode.NO_TRADABLE_NAMES)
        return RebalanceDecision(True, tuple(sorted(names)), reasons, checks, ctx.now)
