"""Instrument specifications and their registry: rounding, margin and risk per instrument.

Every spec rounds quantities to its lot size (``make_qty``) and prices to its tick size
(``make_price``) in ``Decimal`` with an explicit :class:`Rounding` mode: quantities round toward
zero by default (never trade more than asked), prices half-even. Units: ``qty`` in units
(shares, contracts, coins; negative short); ``price`` per unit; ``multiplier`` currency per
(unit x price point); margins in currency; ``vol`` daily fraction; risk in currency (1 sigma,
1 day).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np

from keel.errors import ValidationError
from keel.portfolio.options import Greeks, bs_greeks, bs_price
from keel.types import Rounding, ensure_utc, to_decimal, to_price, to_qty
from keel.types import quantize_to as quantize_to  # re-exported: its home is keel.types

ONE = Decimal(1)
ZERO = Decimal(0)


class AssetClass(StrEnum):
    EQUITY = "equity"
    ETF = "etf"
    FUTURE = "future"
    OPTION = "option"
    CRYPTO = "crypto"


class OptionRight(StrEnum):
    CALL = "call"
    PUT = "put"


class Settlement(StrEnum):
    """How an option settles at expiry: the intrinsic value in cash, or delivery of the
    underlying at the strike (exercise when long, assignment when short)."""

    CASH = "cash"
    PHYSICAL = "physical"


def _dec(value: Any, name: str, symbol: str, *, positive: bool = True) -> Decimal:
    d = to_decimal(value, name, symbol=symbol)
    if (positive and d <= 0) or d < 0:
        raise ValidationError(f"{name} must be {'> 0' if positive else '>= 0'}", field=name,
                              symbol=symbol, value=value)
    return d


@dataclass(frozen=True)
class Instrument:
    """Base spec: identity, rounding grid, margin rates and risk.

    Attributes:
        symbol: the instrument's symbol.
        lot_size: quantity grid (1 = whole shares; 0.0001 for fractional shares).
        tick_size: price grid, currency.
        multiplier: currency per unit per price point.
        initial_rate, maintenance_rate: margin as a fraction of |notional|.
        sector: reference sector label (for governance).
        qty_rounding, price_rounding: default rounding modes.
    """

    symbol: str
    lot_size: Decimal = ONE
    tick_size: Decimal = Decimal("0.01")
    multiplier: Decimal = ONE
    initial_rate: Decimal = ONE
    maintenance_rate: Decimal = ONE
    sector: str = "Unknown"
    qty_rounding: Rounding = Rounding.DOWN
    price_rounding: Rounding = Rounding.HALF_EVEN

    asset_class: ClassVar[AssetClass] = AssetClass.EQUITY
    trades_24_7: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol.strip():
            raise ValidationError("symbol must be a non-empty string", field="symbol",
                                  value=self.symbol)
        for name in ("lot_size", "tick_size", "multiplier"):
            object.__setattr__(self, name, _dec(getattr(self, name), name, self.symbol))
        for name in ("initial_rate", "maintenance_rate"):
            object.__setattr__(self, name, _dec(getattr(self, name), name, self.symbol,
                                                positive=False))
        object.__setattr__(self, "qty_rounding", Rounding(self.qty_rounding))
        object.__setattr__(self, "price_rounding", Rounding(self.price_rounding))

    @property
    def fractional(self) -> bool:
        return self.lot_size < 1

    def make_qty(self, qty: Any, rounding: Rounding | str | None = None) -> Decimal:
        """``qty`` (signed allowed) rounded to the lot size; default toward zero.

        ``rounding``: a :class:`Rounding` or a ``decimal.ROUND_*`` constant."""
        return to_qty(qty, self.lot_size, rounding or self.qty_rounding, symbol=self.symbol)

    def make_price(self, price: Any, rounding: Rounding | str | None = None) -> Decimal:
        """``price`` (> 0) rounded to the tick size; a price that rounds to 0 is refused."""
        return to_price(price, self.tick_size, rounding or self.price_rounding,
                        symbol=self.symbol)

    def notional(self, qty: Any, price: Any) -> Decimal:
        """Signed value of ``qty`` at ``price`` (currency)."""
        return (to_decimal(qty, "qty", symbol=self.symbol)
                * _dec(price, "price", self.symbol) * self.multiplier)

    def initial_margin(self, qty: Any, price: Any, **_: Any) -> Decimal:
        """Margin to open ``qty`` at ``price`` (currency)."""
        return abs(self.notional(qty, price)) * self.initial_rate

    def maintenance_margin(self, qty: Any, price: Any, **_: Any) -> Decimal:
        """Margin to keep ``qty`` open at ``price`` (currency)."""
        return abs(self.notional(qty, price)) * self.maintenance_rate

    def exposure(self, qty: Any, price: Any, **_: Any) -> float:
        """Signed exposure to the underlying risk, currency (delta-adjusted for options)."""
        return float(self.notional(qty, price))

    def position_risk(self, qty: Any, price: Any, vol: float, **kwargs: Any) -> float:
        """One-sigma one-day loss of the position (currency): |exposure| x daily vol."""
        if not np.isfinite(vol) or vol < 0:
            raise ValidationError("vol must be finite and >= 0", field="vol",
                                  symbol=self.symbol, value=vol)
        return abs(self.exposure(qty, price, **kwargs)) * float(vol)


@dataclass(frozen=True)
class Equity(Instrument):
    """A listed share under Reg T: 50% initial, 25% maintenance margin."""

    initial_rate: Decimal = Decimal("0.5")
    maintenance_rate: Decimal = Decimal("0.25")


@dataclass(frozen=True)
class ETF(Equity):
    """An exchange-traded fund: an equity with an annual expense ratio (fraction, 0.0009)."""

    expense_ratio: Decimal = ZERO
    asset_class: ClassVar[AssetClass] = AssetClass.ETF

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "expense_ratio",
                           _dec(self.expense_ratio, "expense_ratio", self.symbol,
                                positive=False))

    def expense(self, market_value: Any, days: int = 1) -> Decimal:
        """Expense accrued on ``market_value`` over ``days`` calendar days (ACT/365)."""
        mv = abs(to_decimal(market_value, "market_value", symbol=self.symbol))
        return mv * self.expense_ratio * days / Decimal(365)


@dataclass(frozen=True)
class Future(Instrument):
    """A futures contract: multiplier, per-contract margins (currency), expiry, roll rule.

    Attributes:
        initial_per_contract, maintenance_per_contract: exchange margins, currency.
        expiry: last trading day.
        root: the product (``ES``); contracts of one root form a :class:`RollCalendar`.
        roll_days: sessions before expiry on which the position rolls to the next contract.
    """

    initial_per_contract: Decimal = ZERO
    maintenance_per_contract: Decimal = ZERO
    expiry: date | None = None
    root: str = ""
    roll_days: int = 5
    tick_size: Decimal = Decimal("0.25")
    asset_class: ClassVar[AssetClass] = AssetClass.FUTURE

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("initial_per_contract", "maintenance_per_contract"):
            object.__setattr__(self, name, _dec(getattr(self, name), name, self.symbol,
                                                positive=False))
        if self.expiry is None:
            raise ValidationError("a future needs an expiry", field="expiry",
                                  symbol=self.symbol)
        if self.maintenance_per_contract > self.initial_per_contract:
            raise ValidationError("maintenance margin exceeds initial margin",
                                  field="maintenance_per_contract", symbol=self.symbol,
                                  value=self.maintenance_per_contract)

    def initial_margin(self, qty: Any, price: Any = None, **_: Any) -> Decimal:
        return abs(to_decimal(qty, "qty", symbol=self.symbol)) * self.initial_per_contract

    def maintenance_margin(self, qty: Any, price: Any = None, **_: Any) -> Decimal:
        return abs(to_decimal(qty, "qty", symbol=self.symbol)) * self.maintenance_per_contract


class RollCalendar:
    """Which contract of a futures root is held on a date, and when it rolls.

    A contract is active until ``roll_days`` exchange sessions before its expiry; then the
    next expiry takes over. Sessions come from ``exchange_calendars`` (``calendar`` name).
    """

    def __init__(self, contracts: Iterable[Future], calendar: str = "XNYS") -> None:
        import pandas as pd

        from keel.data.calendar import get_calendar

        self.contracts = sorted(contracts, key=lambda f: f.expiry or date.min)
        if not self.contracts:
            raise ValidationError("a roll calendar needs contracts", field="contracts")
        sessions = get_calendar(calendar).sessions()
        self._roll: list[date] = []
        for f in self.contracts:
            # last session on or before expiry, then roll_days sessions earlier
            i = int(sessions.searchsorted(pd.Timestamp(f.expiry), side="right")) - 1
            self._roll.append(sessions[i - f.roll_days].date())

    def roll_date(self, symbol: str) -> date:
        """First session on which ``symbol`` is no longer the held contract."""
        for f, d in zip(self.contracts, self._roll, strict=True):
            if f.symbol == symbol:
                return d
        raise ValidationError("unknown contract", field="symbol", symbol=symbol)

    def active(self, on: date) -> Future:
        """The contract to hold on ``on``."""
        for f, d in zip(self.contracts, self._roll, strict=True):
            if on < d:
                return f
        raise ValidationError("no contract left to hold after the last roll", field="on",
                              value=on)

    def schedule(self) -> list[tuple[date, str, str]]:
        """``(roll date, from symbol, to symbol)`` for each roll in the chain."""
        c = self.contracts
        return [(self._roll[i], c[i].symbol, c[i + 1].symbol) for i in range(len(c) - 1)]


@dataclass(frozen=True)
class Option(Instrument):
    """A European option on ``underlying`` priced with Black-Scholes.

    Margin (CBOE/Reg T style, per unit, times multiplier and |qty|): long positions need the
    premium; a short call needs premium + max(20% spot - out-of-the-money amount, 10% spot);
    a short put premium + max(20% spot - OTM amount, 10% strike).

    At expiry (``Ledger.expire``) it is worth its intrinsic value; ``settlement`` says whether
    that is paid in cash (index options) or by delivery of the underlying (equity options,
    the default): ``multiplier`` units of the underlying per contract at the strike.
    """

    underlying: str = ""
    strike: Decimal = ZERO
    expiry: datetime | None = None
    right: OptionRight = OptionRight.CALL
    multiplier: Decimal = Decimal(100)
    settlement: Settlement = Settlement.PHYSICAL
    asset_class: ClassVar[AssetClass] = AssetClass.OPTION

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "strike", _dec(self.strike, "strike", self.symbol))
        object.__setattr__(self, "right", OptionRight(self.right))
        object.__setattr__(self, "settlement", Settlement(self.settlement))
        if not self.underlying:
            raise ValidationError("an option needs an underlying", field="underlying",
                                  symbol=self.symbol)
        if self.expiry is None:
            raise ValidationError("an option needs an expiry", field="expiry",
                                  symbol=self.symbol)
        object.__setattr__(self, "expiry", ensure_utc(self.expiry, "expiry"))

    @property
    def is_call(self) -> bool:
        return self.right is OptionRight.CALL

    def intrinsic(self, underlying_price: Any) -> Decimal:
        """Value per unit at expiry: ``max(S - K, 0)`` for a call, ``max(K - S, 0)`` a put."""
        s = _dec(underlying_price, "underlying_price", self.symbol)
        return max(s - self.strike, ZERO) if self.is_call else max(self.strike - s, ZERO)

    def years_to_expiry(self, now: datetime) -> float:
        """ACT/365 years from ``now`` to expiry (> 0, else a ValidationError)."""
        assert self.expiry is not None
        t = (self.expiry - ensure_utc(now, "now")).total_seconds() / (365.0 * 86400.0)
        if t <= 0:
            raise ValidationError("option has expired", field="now", symbol=self.symbol,
                                  value=now)
        return t

    def theoretical_price(self, spot: float, vol: float, now: datetime, rate: float = 0.0,
                          div_yield: float = 0.0) -> float:
        """Black-Scholes value per unit of underlying (annualised ``vol``)."""
        return float(bs_price(spot, float(self.strike), self.years_to_expiry(now), vol, rate,
                              div_yield, self.is_call))

    def greeks(self, spot: float, vol: float, now: datetime, rate: float = 0.0,
               div_yield: float = 0.0) -> Greeks:
        """Black-Scholes Greeks per unit of underlying (see :mod:`keel.portfolio.options`)."""
        return bs_greeks(spot, float(self.strike), self.years_to_expiry(now), vol, rate,
                         div_yield, self.is_call)

    def _margin(self, qty: Any, price: Any, underlying_price: Any) -> Decimal:
        q = to_decimal(qty, "qty", symbol=self.symbol)
        premium = _dec(price, "price", self.symbol)
        if q >= 0:
            return q * premium * self.multiplier
        if underlying_price is None:
            raise ValidationError("short option margin needs the underlying price",
                                  field="underlying_price", symbol=self.symbol)
        s = _dec(underlying_price, "underlying_price", self.symbol)
        k = self.strike
        otm = max(k - s, ZERO) if self.is_call else max(s - k, ZERO)
        floor = Decimal("0.10") * (s if self.is_call else k)
        per_unit = premium + max(Decimal("0.20") * s - otm, floor)
        return abs(q) * per_unit * self.multiplier

    def initial_margin(self, qty: Any, price: Any, *, underlying_price: Any = None,
                       **_: Any) -> Decimal:
        return self._margin(qty, price, underlying_price)

    def maintenance_margin(self, qty: Any, price: Any, *, underlying_price: Any = None,
                           **_: Any) -> Decimal:
        return self._margin(qty, price, underlying_price)

    def exposure(self, qty: Any, price: Any, *, underlying_price: Any = None,
                 vol: float | None = None, now: datetime | None = None, rate: float = 0.0,
                 **_: Any) -> float:
        """Delta-adjusted exposure (currency) = qty x multiplier x delta x spot."""
        if underlying_price is None or vol is None or now is None:
            raise ValidationError("option exposure needs underlying_price, vol (annual) and now",
                                  field="underlying_price", symbol=self.symbol)
        s = float(underlying_price)
        delta = float(self.greeks(s, vol, now, rate).delta)
        return float(to_decimal(qty, "qty", symbol=self.symbol)) * float(self.multiplier) \
            * delta * s

    def position_risk(self, qty: Any, price: Any, vol: float, **kwargs: Any) -> float:
        """1-sigma 1-day delta risk: |delta exposure| x daily vol of the underlying.

        ``vol`` is the daily vol; the annual vol for the delta is ``vol x sqrt(252)``.
        """
        kwargs.setdefault("vol", float(vol) * float(np.sqrt(252.0)))
        return abs(self.exposure(qty, price, **kwargs)) * float(vol)


@dataclass(frozen=True)
class Crypto(Instrument):
    """A crypto asset: trades 24/7, fractional (``lot_size`` is the minimum increment)."""

    lot_size: Decimal = Decimal("0.00000001")
    asset_class: ClassVar[AssetClass] = AssetClass.CRYPTO
    trades_24_7: ClassVar[bool] = True


@dataclass
class InstrumentRegistry:
    """Symbol -> instrument spec. Unknown symbols raise ``ValidationError(field='symbol')``."""

    instruments: dict[str, Instrument] = field(default_factory=dict)

    @classmethod
    def of(cls, instruments: Iterable[Instrument]) -> InstrumentRegistry:
        reg = cls()
        for inst in instruments:
            reg.add(inst)
        return reg

    @classmethod
    def equities(cls, symbols: Iterable[str], *, fractional: bool = False,
                 sectors: Mapping[str, str] | None = None) -> InstrumentRegistry:
        """Whole-share (or 0.0001-fractional) US equities for ``symbols``."""
        lot = Decimal("0.0001") if fractional else ONE
        sec = dict(sectors or {})
        return cls.of(Equity(s, lot_size=lot, sector=sec.get(s, "Unknown")) for s in symbols)

    def add(self, instrument: Instrument) -> None:
        if instrument.symbol in self.instruments:
            raise ValidationError("instrument already registered", field="symbol",
                                  symbol=instrument.symbol)
        self.instruments[instrument.symbol] = instrument

    def get(self, symbol: str) -> Instrument:
        try:
            return self.instruments[symbol]
        except KeyError:
            raise ValidationError("unknown symbol", field="symbol", symbol=str(symbol)) from None

    def __contains__(self, symbol: object) -> bool:
        return symbol in self.instruments

    def __iter__(self) -> Iterator[str]:
        return iter(self.instruments)

    def __len__(self) -> int:
        return len(self.instruments)

    def multiplier(self, symbol: str) -> Decimal:
        return self.get(symbol).multiplier

    def make_qty(self, symbol: str, qty: Any, rounding: Rounding | str | None = None
                 ) -> Decimal:
        return self.get(symbol).make_qty(qty, rounding)

    def make_price(self, symbol: str, price: Any, rounding: Rounding | str | None = None
                   ) -> Decimal:
        return self.get(symbol).make_price(price, rounding)

    def sectors(self) -> dict[str, str]:
        return {s: i.sector for s, i in self.instruments.items()}

    def margin_requirement(self, positions: Mapping[str, Any], prices: Mapping[str, Any],
                           *, maintenance: bool = False, **kwargs: Any) -> Decimal:
        """Total initial (or maintenance) margin of ``positions`` (symbol -> qty) at ``prices``."""
        total = ZERO
        for sym, qty in positions.items():
            inst = self.get(sym)
            if sym not in prices:
                raise ValidationError("missing price", field="prices", symbol=sym)
            fn = inst.maintenance_margin if maintenance else inst.initial_margin
            total += fn(qty, prices[sym], **kwargs.get(sym, {}))
        return total
