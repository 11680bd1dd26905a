"""The booking arithmetic of the ledger: a mutable book, its frozen state, and the operations.

Every change to a ledger is one *entry* ``(kind, payload)`` whose payload is JSON made of exact
decimal strings. The same function (:func:`apply_entry`) books an entry live and replays it
after a restart, so a ledger rebuilt from the store equals the live one by construction.

Units: cash, equity, P&L and fees in account currency; quantities in units (shares,
contracts, coins; negative is short); prices per unit; ``multiplier`` currency per
(unit x price point), 1 for cash instruments, e.g. 50 for an E-mini future.

Two kinds of holding. A *paid* holding (shares, ETFs, options, crypto) costs its notional:
cash moves by ``-qty x price x multiplier``. A *margined* holding (a future) costs nothing
when traded: it carries a settlement price, its unsettled variation
``qty x (mark - settle) x multiplier`` counts in equity, and variation margin moves into cash
when it is settled (:func:`settle` entries daily, and on every fill of that contract, which
first settles the held contracts to the fill price). All arithmetic runs under the pinned
:data:`~keel.types.MONEY_CONTEXT`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from keel.errors import LedgerError, ValidationError
from keel.types import ZERO, Position, money_context, to_decimal

ONE = Decimal(1)

#: Entry kinds, in the order a reader meets them most often.
KINDS = ("fill", "deposit", "withdrawal", "fee", "mark", "restore", "settle", "expiry")


@dataclass(frozen=True, slots=True)
class Holding:
    """A non-zero position with its last mark and contract multiplier.

    ``settle`` is the last settlement price of a margined holding (a future) and ``None`` for
    a paid one.
    """

    qty: Decimal
    avg_price: Decimal
    mark: Decimal
    multiplier: Decimal = ONE
    settle: Decimal | None = None

    @property
    def margined(self) -> bool:
        return self.settle is not None

    @property
    def market_value(self) -> Decimal:
        """Signed notional at the mark (exposure), currency."""
        return self.qty * self.mark * self.multiplier

    @property
    def equity_value(self) -> Decimal:
        """What the holding adds to equity: its notional when paid, its unsettled variation
        ``qty x (mark - settle) x multiplier`` when margined."""
        if self.settle is None:
            return self.market_value
        return self.qty * (self.mark - self.settle) * self.multiplier

    @property
    def unrealized_pnl(self) -> Decimal:
        return self.qty * (self.mark - self.avg_price) * self.multiplier


@dataclass(frozen=True)
class LedgerState:
    """An immutable picture of a ledger at ``version``.

    ``equity`` is always ``cash + sum(equity_value)`` (``qty x mark x multiplier`` for paid
    holdings, the unsettled variation for margined ones); flat positions are absent.
    """

    cash: Decimal = ZERO
    holdings: Mapping[str, Holding] = field(default_factory=dict)
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    net_deposits: Decimal = ZERO
    exec_ids: frozenset[str] = frozenset()
    version: int = 0
    updated_at: datetime | None = None

    @property
    def equity(self) -> Decimal:
        return self.cash + sum((h.equity_value for h in self.holdings.values()), ZERO)

    @property
    def positions(self) -> dict[str, Position]:
        """Symbol -> :class:`~keel.types.Position` (signed qty, average entry price)."""
        return {s: Position(s, h.qty, h.avg_price) for s, h in self.holdings.items()}

    @property
    def gross_exposure(self) -> Decimal:
        return sum((abs(h.market_value) for h in self.holdings.values()), ZERO)

    def qty(self, symbol: str) -> Decimal:
        h = self.holdings.get(symbol)
        return h.qty if h is not None else ZERO

    def weights(self) -> dict[str, float]:
        """Symbol -> market value / equity (float analytics; empty when equity is 0)."""
        eq = self.equity
        if eq == 0:
            return {}
        return {s: float(h.market_value / eq) for s, h in self.holdings.items()}

    def to_json(self) -> dict[str, Any]:
        """Exact JSON form (decimals as strings); :func:`state_from_json` inverts it."""
        return {
            "cash": str(self.cash), "realized_pnl": str(self.realized_pnl),
            "fees": str(self.fees), "net_deposits": str(self.net_deposits),
            "version": self.version,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "exec_ids": sorted(self.exec_ids),
            "holdings": {s: _holding_json(h) for s, h in sorted(self.holdings.items())},
        }


def _holding_json(h: Holding) -> dict[str, str]:
    out = {"qty": str(h.qty), "avg_price": str(h.avg_price), "mark": str(h.mark),
           "multiplier": str(h.multiplier)}
    if h.settle is not None:
        out["settle"] = str(h.settle)
    return out


def state_from_json(data: Mapping[str, Any]) -> LedgerState:
    """Inverse of :meth:`LedgerState.to_json`."""
    ts = data.get("updated_at")
    return LedgerState(
        cash=Decimal(data["cash"]), realized_pnl=Decimal(data["realized_pnl"]),
        fees=Decimal(data["fees"]), net_deposits=Decimal(data["net_deposits"]),
        version=int(data["version"]),
        updated_at=datetime.fromisoformat(ts) if ts else None,
        exec_ids=frozenset(data.get("exec_ids", ())),
        holdings={s: Holding(Decimal(h["qty"]), Decimal(h["avg_price"]), Decimal(h["mark"]),
                             Decimal(h["multiplier"]),
                             Decimal(h["settle"]) if h.get("settle") is not None else None)
                  for s, h in data["holdings"].items()},
    )


class Book:
    """The mutable working copy behind a ledger (not thread-safe; the ledger locks)."""

    __slots__ = ("_exec_log", "cash", "exec_ids", "fees", "holdings", "net_deposits",
                 "realized_pnl", "updated_at", "version")

    def __init__(self, state: LedgerState | None = None) -> None:
        st = state or LedgerState()
        self.cash = st.cash
        self.holdings: dict[str, Holding] = dict(st.holdings)
        self.realized_pnl = st.realized_pnl
        self.fees = st.fees
        self.net_deposits = st.net_deposits
        self.exec_ids: set[str] = set(st.exec_ids)
        self.version = st.version
        self.updated_at = st.updated_at
        self._exec_log: list[tuple[set[str], str]] = []

    def add_exec_id(self, exec_id: str) -> None:
        if exec_id not in self.exec_ids:
            self.exec_ids.add(exec_id)
            self._exec_log.append((self.exec_ids, exec_id))

    def checkpoint(self) -> tuple[Any, ...]:
        """A cheap restore point: O(positions), not O(booked fills)."""
        return (self.cash, dict(self.holdings), self.realized_pnl, self.fees,
                self.net_deposits, self.version, self.updated_at, self.exec_ids,
                len(self._exec_log))

    def rollback(self, cp: tuple[Any, ...]) -> None:
        """Return exactly to the state at ``cp`` (see :meth:`checkpoint`)."""
        (self.cash, holdings, self.realized_pnl, self.fees, self.net_deposits, self.version,
         self.updated_at, exec_ids, n_log) = cp
        self.holdings = dict(holdings)
        for target, exec_id in reversed(self._exec_log[n_log:]):
            target.discard(exec_id)
        del self._exec_log[n_log:]
        self.exec_ids = exec_ids

    def forget_log(self) -> None:
        """Drop rollback bookkeeping once no checkpoint can reach back (after a commit)."""
        self._exec_log.clear()

    def freeze(self) -> LedgerState:
        return LedgerState(cash=self.cash, holdings=dict(self.holdings),
                           realized_pnl=self.realized_pnl, fees=self.fees,
                           net_deposits=self.net_deposits, exec_ids=frozenset(self.exec_ids),
                           version=self.version, updated_at=self.updated_at)


# --------------------------------------------------------------------------- operations


def fill_payload(fill: Any, multiplier: Decimal, margined: bool = False) -> dict[str, Any]:
    """The JSON payload of a fill entry (a :class:`~keel.types.Fill`); ``margined`` for a
    contract settled by variation margin (a future)."""
    p = {"exec_id": fill.exec_id, "client_order_id": fill.client_order_id,
         "symbol": fill.symbol, "side": fill.side.value, "qty": str(fill.qty),
         "price": str(fill.price), "commission": str(fill.commission),
         "venue": fill.venue, "multiplier": str(multiplier)}
    if margined:
        p["margined"] = True
    return p


def book_trade(book: Book, symbol: str, signed_qty: Decimal, price: Decimal,
               multiplier: Decimal, margined: bool = False) -> Decimal:
    """Move a position by ``signed_qty`` at ``price``; return the cash it moves (currency,
    before commission). The realised P&L is added to ``book.realized_pnl``.

    Adding to a position (or opening one) averages the entry price; reducing realises
    ``closed x (price - avg) x sign x multiplier``; crossing zero closes the old position and
    opens the remainder at ``price``; a position that reaches zero is removed.
    A paid trade moves ``-signed_qty x price x multiplier``; a margined one moves only the
    variation of the held contracts since their last settlement,
    ``qty x (price - settle) x multiplier``, and the position is then settled at ``price``.
    """
    with money_context():
        return _trade(book, symbol, signed_qty, price, multiplier, margined)


def _trade(book: Book, symbol: str, signed_qty: Decimal, price: Decimal,
           multiplier: Decimal, margined: bool) -> Decimal:
    """:func:`book_trade` for a caller already under the money context."""
    h = book.holdings.get(symbol)
    q, avg = (h.qty, h.avg_price) if h is not None else (ZERO, ZERO)
    if margined:
        settle = h.settle if h is not None and h.settle is not None else price
        cash = q * (price - settle) * multiplier
    else:
        cash = -signed_qty * price * multiplier
    realized = ZERO
    if q == 0 or (q > 0) == (signed_qty > 0):
        new_q = q + signed_qty
        new_avg = (abs(q) * avg + abs(signed_qty) * price) / abs(new_q)
    else:
        closed = min(abs(q), abs(signed_qty))
        realized = closed * (price - avg) * (1 if q > 0 else -1) * multiplier
        new_q = q + signed_qty
        new_avg = avg if abs(signed_qty) <= abs(q) else price
    if new_q == 0:
        book.holdings.pop(symbol, None)
    else:
        book.holdings[symbol] = Holding(new_q, new_avg, price, multiplier,
                                        price if margined else None)
    book.realized_pnl += realized
    return cash


def book_fill(book: Book, exec_id: str, symbol: str, signed_qty: Decimal, price: Decimal,
              multiplier: Decimal, commission: Decimal, margined: bool = False) -> None:
    """Book one fill's arithmetic (position, cash, fees, exec id); the caller is under the
    money context (:func:`keel.types.money_context`) and bumps the version."""
    book.cash += _trade(book, symbol, signed_qty, price, multiplier, margined) - commission
    book.fees += commission
    book.add_exec_id(exec_id)


def _apply_fill(book: Book, p: Mapping[str, Any]) -> None:
    qty, price = Decimal(p["qty"]), Decimal(p["price"])
    mult, commission = Decimal(p["multiplier"]), Decimal(p["commission"])
    signed = qty if p["side"] == "BUY" else -qty
    with money_context():
        book_fill(book, p["exec_id"], p["symbol"], signed, price, mult, commission,
                  bool(p.get("margined")))


def _apply_deposit(book: Book, p: Mapping[str, Any]) -> None:
    amount = Decimal(p["amount"])
    with money_context():
        book.cash += amount
        book.net_deposits += amount


def _apply_withdrawal(book: Book, p: Mapping[str, Any]) -> None:
    amount = Decimal(p["amount"])
    with money_context():
        book.cash -= amount
        book.net_deposits -= amount


def _apply_fee(book: Book, p: Mapping[str, Any]) -> None:
    amount = Decimal(p["amount"])
    with money_context():
        book.cash -= amount
        book.fees += amount


def _apply_mark(book: Book, p: Mapping[str, Any]) -> None:
    for sym, px in p["prices"].items():
        h = book.holdings.get(sym)
        if h is not None:
            book.holdings[sym] = Holding(h.qty, h.avg_price, Decimal(px), h.multiplier,
                                         h.settle)


def _apply_settle(book: Book, p: Mapping[str, Any]) -> None:
    """Daily settlement: margined holdings pay their variation since the last settlement
    into cash and take the settlement price as their new reference; paid ones are marked."""
    with money_context():
        for sym, px in p["prices"].items():
            h = book.holdings.get(sym)
            if h is None:
                continue
            price = Decimal(px)
            if h.settle is not None:
                book.cash += h.qty * (price - h.settle) * h.multiplier
                book.holdings[sym] = Holding(h.qty, h.avg_price, price, h.multiplier, price)
            else:
                book.holdings[sym] = Holding(h.qty, h.avg_price, price, h.multiplier)


def _apply_expiry(book: Book, p: Mapping[str, Any]) -> None:
    """An expiring contract closes at its settlement ``price`` (an option's intrinsic value,
    a future's final settlement); a physically delivered option then trades the underlying:
    ``delivery`` units (signed) at ``underlying_price``, while cash moves at the strike."""
    with money_context():
        h = book.holdings[p["symbol"]]
        book.cash += book_trade(book, p["symbol"], -h.qty, Decimal(p["price"]), h.multiplier,
                                h.margined)
        d = p.get("delivery")
        if d:
            qty = Decimal(d["qty"])
            book.cash += book_trade(book, d["symbol"], qty, Decimal(d["price"]),
                                    Decimal(d["multiplier"]), bool(d.get("margined")))


def _apply_restore(book: Book, p: Mapping[str, Any]) -> None:
    st = state_from_json(p["state"])
    # fresh containers: a rollback of this entry puts the old ones back untouched
    book.cash, book.holdings = st.cash, dict(st.holdings)
    book.realized_pnl, book.fees, book.net_deposits = st.realized_pnl, st.fees, st.net_deposits
    book.exec_ids = set(st.exec_ids)


_APPLY = {"fill": _apply_fill, "deposit": _apply_deposit, "withdrawal": _apply_withdrawal,
          "fee": _apply_fee, "mark": _apply_mark, "restore": _apply_restore,
          "settle": _apply_settle, "expiry": _apply_expiry}


def apply_entry(book: Book, kind: str, payload: Mapping[str, Any], timestamp: datetime) -> None:
    """Book one entry and bump the version (live and on replay alike)."""
    fn = _APPLY.get(kind)
    if fn is None:
        raise LedgerError("unknown ledger entry kind", field="kind", value=kind)
    fn(book, payload)
    book.version += 1
    book.updated_at = timestamp


def positive_amount(value: Any, field_name: str) -> Decimal:
    """A strictly positive Decimal amount or a ``ValidationError`` naming the field."""
    amount = to_decimal(value, field_name)
    if amount <= 0:
        raise ValidationError(f"{field_name} must be > 0", field=field_name, value=value)
    return amount
