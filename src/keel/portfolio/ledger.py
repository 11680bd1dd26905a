"""The portfolio ledger: positions, cash and equity in ``Decimal``, transactional and persisted.

>>> ledger = Ledger.open(store, clock=clock)          # rebuilds from the store
>>> with ledger.transaction():                         # all or nothing
...     ledger.deposit("100000")
...     ledger.apply_fill(fill)
>>> ledger.equity, ledger.position("AAPL").qty

Every change is a versioned entry written to ``ledger_entries`` together with an ``audit_log``
row in one database transaction. A ledger whose version is stale (another writer booked first)
gets a :class:`~keel.errors.ConcurrencyError` and its in-memory state is rolled back; call
:meth:`Ledger.refresh` to catch up and retry. Without a store the ledger lives in memory (the
backtest's ledger). Time comes from the fill or from the injected :class:`~keel.clock.Clock`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any, Protocol

from keel.clock import Clock
from keel.errors import LedgerError, ValidationError
from keel.portfolio.book import (
    ONE,
    Book,
    LedgerState,
    apply_entry,
    book_fill,
    fill_payload,
    positive_amount,
    state_from_json,
)
from keel.store.db import Store
from keel.store.ledger_repo import AuditRecord, EntryRecord, LedgerRepository, SnapshotRecord
from keel.types import (
    FINE_QUANTUM,
    MONEY_CONTEXT,
    ZERO,
    Fill,
    Position,
    Rounding,
    Side,
    ensure_utc,
    money_context,
    quantize_to,
    to_decimal,
)


def fine_decimals(values: Any, rounding: Rounding, field_name: str) -> list[Decimal]:
    """``[to_qty(v, rounding=rounding) for v in values]`` (equally ``to_price`` without its
    > 0 check, ``to_money``): each float through its shortest ``repr`` onto the
    :data:`~keel.types.FINE_QUANTUM` grid, under one money context for the whole batch
    (the backtest books hundreds of fills per rebalance). Raises ``ValidationError`` naming
    ``field_name`` on a non-finite value."""
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValidationError("number must be finite", field=field_name,
                              value=float(arr[~np.isfinite(arr)][0]))
    mode, step = rounding.value, FINE_QUANTUM
    with localcontext(MONEY_CONTEXT):
        return [(Decimal(repr(v)) / step).to_integral_value(rounding=mode) * step
                for v in arr.tolist()]


class _Multipliers(Protocol):
    def multiplier(self, symbol: str) -> Decimal: ...


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    """What the ledger refuses.

    Attributes:
        allow_short: accept fills that take a position below zero.
        allow_negative_cash: accept fills, withdrawals and fees that take cash below zero
            (margin borrowing).
        enforce_initial_margin: refuse a fill that opens or adds to futures contracts when
            equity would then be below their total initial margin (needs a registry).
    """

    allow_short: bool = True
    allow_negative_cash: bool = True
    enforce_initial_margin: bool = True


@dataclass(frozen=True, slots=True)
class MarginStatus:
    """Futures margin of an account at its current marks (currency).

    Attributes:
        equity: the ledger's equity.
        initial, maintenance: summed per-contract margins of the margined holdings.
        excess: ``equity - initial`` (negative: no new contracts may open).
        call: the deposit that restores ``initial`` once equity is below ``maintenance``
            (0 otherwise).
    """

    equity: Decimal
    initial: Decimal
    maintenance: Decimal

    @property
    def excess(self) -> Decimal:
        return self.equity - self.initial

    @property
    def call(self) -> Decimal:
        return self.initial - self.equity if self.equity < self.maintenance else ZERO


class Ledger:
    """Positions, cash and equity of one account, booked exactly and persisted.

    Args:
        store: the database; ``None`` keeps the ledger in memory only.
        clock: source of time for deposits, withdrawals, fees, marks and snapshots.
        account: account name inside the store.
        registry: an :class:`~keel.portfolio.instruments.InstrumentRegistry` (or anything with
            ``multiplier(symbol)``); unknown symbols are then refused. Without it every symbol
            is accepted with multiplier 1.
        config: :class:`LedgerConfig`.
        actor: name written in audit rows.

    Use :meth:`open` to rebuild a persisted ledger; the constructor starts from the state the
    store holds only when you call :meth:`refresh` (``open`` does both).
    """

    def __init__(self, store: Store | None = None, *, clock: Clock, account: str = "default",
                 registry: _Multipliers | None = None, config: LedgerConfig | None = None,
                 actor: str = "ledger") -> None:
        self.store = store
        self.clock = clock
        self.account = account
        self.registry = registry
        self.config = config or LedgerConfig()
        self.actor = actor
        self._repo = LedgerRepository(store, account) if store is not None else None
        self._book = Book()
        self._pending: list[EntryRecord] = []
        self._notes: list[AuditRecord] = []
        self._depth = 0
        self._base_version = 0
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ construction

    @classmethod
    def open(cls, store: Store, *, clock: Clock, account: str = "default",
             **kwargs: Any) -> Ledger:
        """The ledger of ``account`` rebuilt from the store: latest snapshot + later entries."""
        ledger = cls(store, clock=clock, account=account, **kwargs)
        ledger.refresh()
        return ledger

    def refresh(self) -> LedgerState:
        """Catch up with the store (entries booked by other writers); refused in a transaction."""
        with self._lock:
            if self._depth:
                raise LedgerError("cannot refresh inside a transaction", field="transaction")
            if self._repo is None:
                return self.state
            if self._book.version == 0:
                snap = self._repo.latest_snapshot()
                if snap is not None:
                    self._book = Book(state_from_json(snap.state))
            for e in self._repo.entries_after(self._book.version):
                apply_entry(self._book, e.kind, e.payload, e.timestamp)
            self._base_version = self._book.version
            return self.state

    @staticmethod
    def replay(entries: Iterable[EntryRecord], start: LedgerState | None = None) -> LedgerState:
        """The state obtained by booking ``entries`` in order on ``start`` (pure)."""
        book = Book(start)
        for e in entries:
            apply_entry(book, e.kind, e.payload, e.timestamp)
        return book.freeze()

    # ------------------------------------------------------------------ reads

    @property
    def state(self) -> LedgerState:
        """A frozen copy of the current state (including uncommitted changes in a transaction)."""
        with self._lock:
            return self._book.freeze()

    @property
    def version(self) -> int:
        return self._book.version

    @property
    def cash(self) -> Decimal:
        return self._book.cash

    @property
    def equity(self) -> Decimal:
        return self.state.equity

    @property
    def positions(self) -> dict[str, Position]:
        return self.state.positions

    def position(self, symbol: str) -> Position:
        """The position in ``symbol`` (flat ``Position`` when none is held)."""
        h = self._book.holdings.get(symbol)
        return Position(symbol, h.qty, h.avg_price) if h else Position(symbol)

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self) -> Iterator[Ledger]:
        """All changes inside commit as one unit, or none of them do.

        On any exception (including a :class:`ConcurrencyError` at commit) the in-memory state
        returns exactly to what it was and nothing is written. Nested blocks act as savepoints:
        an inner failure undoes only the inner block (if the caller catches it).
        """
        with self._lock:
            saved = self._book.checkpoint()
            n_pending, n_notes = len(self._pending), len(self._notes)
            self._depth += 1
            try:
                yield self
                if self._depth == 1:
                    self._flush()
                    self._book.forget_log()
            except BaseException:
                self._book.rollback(saved)
                del self._pending[n_pending:]
                del self._notes[n_notes:]
                raise
            finally:
                self._depth -= 1

    def _flush(self) -> None:
        if not self._pending and not self._notes:
            return
        if self._repo is not None:
            audits = [AuditRecord(timestamp=e.timestamp, actor=self.actor,
                                  action=f"ledger.{e.kind}", entity="ledger",
                                  entity_id=f"{self.account}:{e.version}", payload=e.payload)
                      for e in self._pending]
            self._repo.append(self._base_version, list(self._pending), audits + self._notes)
        self._base_version = self._book.version
        self._pending.clear()
        self._notes.clear()

    def note(self, action: str, payload: dict[str, Any], *,
             timestamp: datetime | None = None) -> None:
        """Write an audit row (a decision, not a booking) atomically with the surrounding
        transaction's entries; outside a transaction it is written at once."""
        with self.transaction():
            self._notes.append(AuditRecord(self._now(timestamp), self.actor, action, "ledger",
                                           f"{self.account}:{self._book.version}",
                                           dict(payload)))

    def _book_entry(self, kind: str, payload: dict[str, Any], timestamp: datetime,
                    margin_check: bool = False) -> None:
        with self.transaction():
            apply_entry(self._book, kind, payload, timestamp)
            self._check_limits()
            if margin_check and self.config.enforce_initial_margin:
                m = self.margin()
                if m.excess < 0:
                    raise LedgerError("fill would leave equity below the initial margin of "
                                      "the futures held", field="margin",
                                      symbol=payload.get("symbol"), value=m.excess,
                                      account=self.account)
            self._pending.append(EntryRecord(self._book.version, kind, payload, timestamp))

    def _check_limits(self) -> None:
        if not self.config.allow_negative_cash and self._book.cash < 0:
            raise LedgerError("booking would take cash below zero", field="cash",
                              value=self._book.cash, account=self.account)
        if not self.config.allow_short:
            for sym, h in self._book.holdings.items():
                if h.qty < 0:
                    raise LedgerError("booking would open a short position", field="qty",
                                      symbol=sym, value=h.qty, account=self.account)

    def _now(self, timestamp: datetime | None) -> datetime:
        return ensure_utc(timestamp if timestamp is not None else self.clock.now())

    def _multiplier(self, symbol: str) -> Decimal:
        return ONE if self.registry is None else self.registry.multiplier(symbol)

    def _spec(self, symbol: str) -> Any:
        """The registry's instrument spec for ``symbol`` (None without a registry)."""
        get = getattr(self.registry, "get", None)
        return None if get is None else get(symbol)

    def _margined(self, symbol: str) -> bool:
        spec = self._spec(symbol)
        return spec is not None and getattr(spec, "asset_class", None) == "future"

    # ------------------------------------------------------------------ bookings

    def apply_fill(self, fill: Fill) -> bool:
        """Book ``fill`` (position, average price, realised P&L, cash, commission).

        Returns:
            True if booked, False if this ``exec_id`` was already booked (idempotent).

        Raises:
            ValidationError: unknown symbol (with a registry), not a Fill.
            LedgerError: the fill breaks :class:`LedgerConfig` (short, negative cash).
            ConcurrencyError: another writer booked first (state unchanged).
        """
        if not isinstance(fill, Fill):
            raise ValidationError("expected a keel.types.Fill", field="fill",
                                  value=type(fill).__name__)
        with self._lock:
            if fill.exec_id in self._book.exec_ids:
                return False
            margined = self._margined(fill.symbol)
            payload = fill_payload(fill, self._multiplier(fill.symbol), margined)
            q = self._book.holdings[fill.symbol].qty if fill.symbol in self._book.holdings \
                else ZERO
            adds = margined and abs(q + fill.signed_qty) > abs(q)
            self._book_entry("fill", payload, fill.timestamp, margin_check=adds)
            return True

    def apply_fills(self, fills: Iterable[Fill]) -> int:
        """Book several fills as one transaction; returns how many were new.

        Without a registry (multiplier 1, nothing margined) and with shorts allowed, the
        batch is booked in one pass under one money context and one checkpoint (a
        rebalance's hundreds of fills); the entries, versions and state are exactly those of
        booking the fills one by one with :meth:`apply_fill`."""
        with self.transaction():
            if self.registry is None and self.config.allow_short:
                return self._apply_fills_fast(fills)
            return sum(self.apply_fill(f) for f in fills)

    def _apply_fills_fast(self, fills: Iterable[Fill]) -> int:
        book = self._book
        persist = self._repo is not None
        check_cash = not self.config.allow_negative_cash
        n = 0
        with money_context():
            for fill in fills:
                if not isinstance(fill, Fill):
                    raise ValidationError("expected a keel.types.Fill", field="fill",
                                          value=type(fill).__name__)
                if fill.exec_id in book.exec_ids:
                    continue
                book_fill(book, fill.exec_id, fill.symbol, fill.signed_qty, fill.price, ONE,
                          fill.commission)
                book.version += 1
                book.updated_at = fill.timestamp
                if check_cash:
                    self._check_limits()
                if persist:
                    self._pending.append(EntryRecord(book.version, "fill",
                                                     fill_payload(fill, ONE, False),
                                                     fill.timestamp))
                n += 1
        return n

    def apply_trades(self, client_order_id: str, exec_ids: list[str], symbols: list[str],
                     sides: list[Side], qty: list[Decimal], prices: list[Decimal],
                     commissions: list[Decimal], timestamp: datetime) -> int:
        """Book a batch of fills given as columns of Decimals (one client order id and
        time): exactly :meth:`apply_fills` of the :class:`~keel.types.Fill` s they make
        (their checks, before any write; the same entries, versions and state). Without a
        registry or a store and with shorts allowed, no ``Fill`` object is built (the
        backtest books hundreds of fills per rebalance)."""
        n = len(exec_ids)
        if not all(len(c) == n for c in (symbols, sides, qty, prices, commissions)):
            raise ValidationError("trade columns differ in length", field="exec_ids",
                                  value=n)
        if self._repo is not None or self.registry is not None or not self.config.allow_short:
            return self.apply_fills(
                Fill(e, client_order_id, s, sd, q, p, timestamp, commission=c)
                for e, s, sd, q, p, c in zip(exec_ids, symbols, sides, qty, prices,
                                             commissions, strict=True))
        if not isinstance(client_order_id, str) or not client_order_id:
            raise ValidationError("client_order_id must be a non-empty string",
                                  field="client_order_id", value=client_order_id)
        ts = ensure_utc(timestamp, "timestamp")
        for e, s, sd, q, p, c in zip(exec_ids, symbols, sides, qty, prices, commissions,
                                     strict=True):
            if not isinstance(e, str) or not e:
                raise ValidationError("exec_id must be a non-empty string", field="exec_id",
                                      value=e)
            if not isinstance(s, str) or not s.strip():
                raise ValidationError("symbol must be a non-empty string", field="symbol",
                                      value=s)
            if not isinstance(sd, Side):
                raise ValidationError("expected a Side", field="side", symbol=s, value=sd)
            if not (isinstance(q, Decimal) and q.is_finite() and q > 0):
                raise ValidationError("fill qty must be > 0", field="qty", symbol=s, value=q)
            if not (isinstance(p, Decimal) and p.is_finite() and p > 0):
                raise ValidationError("fill price must be > 0", field="price", symbol=s,
                                      value=p)
            if not (isinstance(c, Decimal) and c.is_finite() and c >= 0):
                raise ValidationError("commission must be >= 0", field="commission",
                                      symbol=s, value=c)
        book = self._book
        check_cash = not self.config.allow_negative_cash
        done = 0
        with self.transaction(), money_context():
            for e, s, sd, q, p, c in zip(exec_ids, symbols, sides, qty, prices, commissions,
                                         strict=True):
                if e in book.exec_ids:
                    continue
                book_fill(book, e, s, q * sd.sign, p, ONE, c)
                book.version += 1
                book.updated_at = ts
                if check_cash:
                    self._check_limits()
                done += 1
        return done

    def deposit(self, amount: Any, *, timestamp: datetime | None = None,
                memo: str = "") -> None:
        """Add ``amount`` (> 0, currency) to cash."""
        a = positive_amount(amount, "amount")
        self._book_entry("deposit", {"amount": str(a), "memo": memo}, self._now(timestamp))

    def withdraw(self, amount: Any, *, timestamp: datetime | None = None,
                 memo: str = "") -> None:
        """Take ``amount`` (> 0, currency) out of cash."""
        a = positive_amount(amount, "amount")
        self._book_entry("withdrawal", {"amount": str(a), "memo": memo}, self._now(timestamp))

    def charge_fee(self, amount: Any, *, timestamp: datetime | None = None,
                   memo: str = "") -> None:
        """Charge a fee (> 0, currency) outside any fill (custody, data, financing)."""
        a = positive_amount(amount, "amount")
        self._book_entry("fee", {"amount": str(a), "memo": memo}, self._now(timestamp))

    def mark(self, prices: Mapping[str, Any], *, timestamp: datetime | None = None) -> None:
        """Revalue held positions at ``prices`` (symbol -> price > 0); other symbols ignored."""
        with self._lock:
            clean = {sym: str(p) for sym, p in self._clean_prices(prices).items()
                     if sym in self._book.holdings}
            if clean:
                self._book_entry("mark", {"prices": clean}, self._now(timestamp))

    def settle(self, prices: Mapping[str, Any], *,
               timestamp: datetime | None = None) -> MarginStatus:
        """Daily settlement at ``prices`` (symbol -> settlement price > 0): each held future
        pays ``qty x (price - last settle) x multiplier`` into cash (variation margin) and
        takes ``price`` as its new settlement price; other held symbols are marked. Returns
        the margin status after settlement (``call`` > 0: equity fell below maintenance)."""
        with self._lock:
            clean = {sym: str(p) for sym, p in self._clean_prices(prices).items()
                     if sym in self._book.holdings}
            if clean:
                self._book_entry("settle", {"prices": clean}, self._now(timestamp))
            return self.margin()

    def margin(self) -> MarginStatus:
        """Initial and maintenance margin of the futures held, against equity."""
        with self._lock:
            init = maint = ZERO
            for sym, h in self._book.holdings.items():
                spec = self._spec(sym) if h.margined else None
                if spec is not None:
                    init += spec.initial_margin(h.qty, h.mark)
                    maint += spec.maintenance_margin(h.qty, h.mark)
            return MarginStatus(self._book.freeze().equity, init, maint)

    def expire(self, symbol: str, underlying_price: Any = None, *,
               final_price: Any = None, timestamp: datetime | None = None) -> None:
        """Expire the held contract ``symbol`` (needs a registry).

        * Option: closes at its intrinsic value at ``underlying_price``. Cash-settled
          (``Settlement.CASH``): the intrinsic value is paid in cash. Physical: an in-the-money
          option is exercised (long) or assigned (short): ``qty x multiplier / underlying
          multiplier`` units of the underlying trade at the underlying price while cash moves
          at the strike; out of (or at) the money it expires worthless.
        * Future: final settlement at ``final_price``; the position closes.

        Refused before the contract's expiry (``field="timestamp"``) and for symbols not held.
        """
        with self._lock:
            ts = self._now(timestamp)
            h = self._book.holdings.get(symbol)
            if h is None:
                raise LedgerError("no position to expire", field="symbol", symbol=symbol,
                                  account=self.account)
            spec = self._spec(symbol)
            kind = getattr(spec, "asset_class", None)
            if kind not in ("option", "future"):
                raise LedgerError("only options and futures expire", field="symbol",
                                  symbol=symbol, value=kind, account=self.account)
            expiry = spec.expiry
            due = expiry if isinstance(expiry, datetime) else None
            if due is None and ts.date() < expiry:
                raise LedgerError("contract has not expired", field="timestamp",
                                  symbol=symbol, value=ts, account=self.account)
            if due is not None and ts < due:
                raise LedgerError("contract has not expired", field="timestamp",
                                  symbol=symbol, value=ts, account=self.account)
            payload: dict[str, Any] = {"symbol": symbol}
            if kind == "future":
                px = self._clean_prices({symbol: final_price})[symbol]
                payload["price"] = str(px)
            else:
                s = self._clean_prices({spec.underlying: underlying_price})[spec.underlying]
                intrinsic = spec.intrinsic(s)
                payload.update(price=str(intrinsic), underlying_price=str(s),
                               settlement=str(spec.settlement))
                if intrinsic > 0 and spec.settlement == "physical":
                    with money_context():
                        units = h.qty * spec.multiplier / self._multiplier(spec.underlying)
                    sign = 1 if spec.is_call else -1
                    payload["delivery"] = {
                        "symbol": spec.underlying, "qty": str(sign * units), "price": str(s),
                        "multiplier": str(self._multiplier(spec.underlying)),
                        "margined": self._margined(spec.underlying)}
            self._book_entry("expiry", payload, ts)

    def _clean_prices(self, prices: Mapping[str, Any]) -> dict[str, Decimal]:
        out = {}
        for sym, px in prices.items():
            if px is None:
                raise ValidationError("price is required", field="price", symbol=sym)
            p = to_decimal(px, "price", symbol=sym)
            if p <= 0:
                raise ValidationError("price must be > 0", field="price", symbol=sym,
                                      value=px)
            out[sym] = p
        return out

    # ------------------------------------------------------------------ snapshots

    def snapshot(self, label: str = "") -> LedgerState:
        """The current committed state, also saved to ``portfolio_snapshots`` with a store.

        Snapshots shorten recovery (replay starts from the newest one) and are what
        :meth:`restore` accepts. Refused inside a transaction (the state is not committed).
        """
        with self._lock:
            if self._depth:
                raise LedgerError("cannot snapshot inside a transaction", field="transaction")
            st = self.state
            if self._repo is not None:
                ts = self.clock.now()
                self._repo.save_snapshot(
                    SnapshotRecord(st.version, ts, _column(st.cash), _column(st.equity),
                                   st.to_json(), label),
                    AuditRecord(ts, self.actor, "ledger.snapshot", "ledger",
                                f"{self.account}:{st.version}", {"label": label}))
            return st

    def restore(self, state: LedgerState, *, memo: str = "") -> None:
        """Set positions, cash and totals back to ``state`` as a new booked version."""
        if not isinstance(state, LedgerState):
            raise ValidationError("expected a LedgerState", field="state",
                                  value=type(state).__name__)
        self._book_entry("restore", {"state": state.to_json(), "memo": memo},
                         self.clock.now())

    def __repr__(self) -> str:
        st = self.state
        return (f"Ledger(account={self.account!r}, version={st.version}, cash={st.cash}, "
                f"equity={st.equity}, positions={len(st.holdings)})")


def _column(d: Decimal) -> Decimal:
    """``d`` at most 12 decimal places: what the NUMERIC(38, 12) summary columns hold (the
    exact state is the snapshot's JSON)."""
    if d.as_tuple().exponent >= -12:  # type: ignore[operator]
        return d
    return quantize_to(d, Decimal("1e-12"), Rounding.HALF_EVEN)


__all__ = ["ZERO", "Ledger", "LedgerConfig", "LedgerState", "MarginStatus"]
