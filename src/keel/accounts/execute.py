"""Execute a batch: block orders to a venue, block fills allocated back, booked in one
transaction.

>>> broker = close_broker(shared, config.costs.commission_per_share)  # paper venue, last close
>>> ex = execute_batch(store, result, shared, accounts, broker, commission_bps=0.5)
>>> ex = execute_from_config(store, result, shared, accounts, config)  # the same, the CLI's
>>> ex.already_booked, ex.summary()

Steps (:func:`execute_batch`):

1. **Idempotency.** The batch id (default: the batch token of :func:`~keel.accounts.batch.
   prepare`, a hash of the time, the prices and the models) is looked up in
   ``account_batches``; a batch already booked is not sent again and nothing is written.
2. **Sells, then buys.** The SELL blocks (gross, per symbol) go first, one MARKET DAY order
   per block (client order id ``<batch>:<symbol>:<side>``) through the
   :class:`~keel.venues.base.Broker` interface; events are polled until every order is
   terminal (else cancelled at ``timeout_s``). Their fills are allocated (step 3). Then each
   account's buys are trimmed (whole shares, last buy first) until buys + commission fit the
   cash its sells actually raised (``Execution.trimmed``: the planner knows neither the
   commission nor a partial sale), and the BUY blocks go the same way.
3. **Allocation.** Each block's filled shares ``F`` go back to its accounts by
   :func:`~keel.accounts.allocation.allocate` (largest remainder, exact), at the block's
   average fill price ``p`` (venue notional / F, rounded to 1e-6). Commission of an allocation
   of ``q`` shares: ``q p commission_bps / 1e4 + q commission_per_share`` (``[costs]``),
   rounded half-up to the cent.
4. **Booking (ONE transaction).** Every touched account is rebuilt as a new
   :class:`~keel.accounts.book.Account` first (sells relieve lots by ``accounts.lot_method``,
   ``specific`` named as HIFO like the planner; buys open one lot
   ``<symbol>@<batch>`` each; cash moves by ``-(q p + c)`` for a buy and ``+q p - c`` for a
   sale), which validates cash >= 0, holdings > 0 and lots == holdings. Only then one store
   session writes the ``account_batches`` row (primary key: a concurrent second booking of
   the batch fails and rolls back), the cash, holdings, lots and the ``account_sales`` rows.
   The cash read at planning time is checked inside the transaction (the book changed under
   the batch -> :class:`~keel.errors.StoreError`, nothing written).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import bindparam, delete, insert, select, update

from keel.accounts.allocation import (
    AccountOrder,
    Allocation,
    BlockOrder,
    allocate_block,
    build_blocks,
)
from keel.accounts.book import Account
from keel.accounts.solve import Shared
from keel.accounts.tax import LotMethod, Relief, TaxLot, sell
from keel.errors import OrderRejected, StoreError, ValidationError
from keel.store.tables import (
    AccountBatchRow,
    AccountRow,
    AccountSaleRow,
    HoldingRow,
    TaxLotRow,
)
from keel.types import ZERO, EventKind, Fill, Order, OrderType, Side, TimeInForce, to_decimal

if TYPE_CHECKING:
    from keel.accounts.batch import BatchResult
    from keel.config import KeelConfig
    from keel.store.db import Store
    from keel.venues.base import Broker
    from keel.venues.paper import PaperBroker

CENT = Decimal("0.01")
PX_TICK = Decimal("0.000001")
MAX_BATCH_ID = 31  # lot ids are "<symbol>@<batch>" in a String(64)
_CHUNK = 5000
_TERMINAL = {EventKind.CANCELLED, EventKind.REJECTED, EventKind.EXPIRED}


# --------------------------------------------------------------------------- the venue


class CloseFillModel:
    """A :class:`~keel.venues.fills.FillModel` whose liquidity events (one a second for
    ``hours`` from ``at``) fill the whole order at ``prices[symbol]`` (the batch's last
    close): no spread, no impact, no partial fills."""

    def __init__(self, prices: Mapping[str, Decimal], at: datetime, hours: int = 8) -> None:
        self._px = {s: float(p) for s, p in prices.items()}
        t0 = int(at.timestamp() * 1e6) * 1000
        self._t = t0 + np.arange(hours * 3600, dtype=np.int64) * 1_000_000_000

    def symbols(self) -> list[str]:
        return list(self._px)

    def event_times(self, symbol: str) -> np.ndarray:
        return self._t

    def quote(self, symbol: str, i: int) -> tuple[float, float]:
        return self._px[symbol], 0.0

    def fill(self, symbol: str, side: Side, leaves: Decimal, limit: Decimal | None, i: int
             ) -> tuple[Decimal, float] | None:
        return leaves, self._px[symbol]


def close_broker(shared: Shared, commission_per_share: Decimal | float = 0) -> PaperBroker:
    """The desk's :class:`~keel.venues.paper.PaperBroker` filling every block in full at the
    batch's last close (:class:`CloseFillModel`), one second after ``shared.now``."""
    from keel.clock import SimulatedClock
    from keel.venues.paper import PaperBroker

    clock = SimulatedClock(shared.now - timedelta(seconds=1))
    return PaperBroker(clock, CloseFillModel(shared.prices, shared.now),
                       commission_per_share=commission_per_share, cash=0, name="accounts")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BlockFill:
    """What the venue did with one block."""

    block: BlockOrder
    client_order_id: str
    filled: int
    avg_price: Decimal
    fills: tuple[Fill, ...] = ()
    rejected: str | None = None


@dataclass
class Execution:
    """The outcome of :func:`execute_batch`."""

    batch_id: str
    already_booked: bool
    blocks: list[BlockFill] = field(default_factory=list)
    allocations: list[Allocation] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)  # the booked (new) accounts
    sales: int = 0
    trimmed: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id, "already_booked": self.already_booked,
            "blocks": len(self.blocks),
            "blocks_filled": sum(1 for b in self.blocks if b.filled == b.block.qty),
            "blocks_rejected": sum(1 for b in self.blocks if b.rejected),
            "shares_filled": sum(b.filled for b in self.blocks),
            "allocations": sum(len([q for q in a.shares.values() if q]) for a in
                               self.allocations),
            "accounts_booked": len(self.accounts), "sales_rows": self.sales,
            "commission_trimmed_accounts": len(self.trimmed),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


# --------------------------------------------------------------------------- pieces


def commission(qty: int, price: Decimal, bps: Decimal, per_share: Decimal) -> Decimal:
    """Commission of ``qty`` shares at ``price``: bps of notional + per share, to the cent."""
    return (qty * price * bps / 10000 + qty * per_share).quantize(CENT, ROUND_HALF_UP)


def trim_for_commission(acc: Account, orders: Sequence[tuple[str, Side, int]],
                        prices: Mapping[str, Decimal], bps: Decimal, per_share: Decimal
                        ) -> tuple[list[tuple[str, Side, int]], int]:
    """The account's orders with buys cut (last buy first, whole shares) until buys +
    commission fit cash + sale proceeds - sale commission at ``prices``; and how many shares
    were cut."""
    out = list(orders)

    def room() -> Decimal:
        r = acc.cash
        for s, side, q in out:
            px = prices[s]
            c = commission(q, px, bps, per_share)
            r += (q * px - c) if side is Side.SELL else -(q * px + c)
        return r

    cut = 0
    i = len(out) - 1
    while room() < 0 and i >= 0:
        s, side, q = out[i]
        if side is not Side.BUY or q == 0:
            i -= 1
            continue
        unit = prices[s] * (1 + bps / 10000) + per_share
        need = max(int((-room() / unit).to_integral_value(ROUND_HALF_UP)), 1)
        take = min(need, q)
        out[i] = (s, side, q - take)
        cut += take
        if take == q:
            i -= 1
    return [o for o in out if o[2] > 0], cut


def _collect(broker: Broker, coids: set[str], timeout_s: float) -> dict[str, list[Fill]]:
    """Fills per order until every order is terminal (filled, cancelled, rejected); orders
    still open at ``timeout_s`` are cancelled and polled once more."""
    from keel.clock import SimulatedClock

    fills: dict[str, list[Fill]] = {c: [] for c in coids}
    seen: set[str] = set()
    left = {c: None for c in coids}
    found = getattr(broker, "clock", None)
    clock = found if isinstance(found, SimulatedClock) else None
    deadline = time.monotonic() + timeout_s
    cancelled = False
    simulated = clock is not None
    while left:
        if clock is not None:
            clock.advance(1.0)
        events = broker.poll_events()
        for ev in events:
            if ev.client_order_id not in fills:
                continue
            if ev.kind is EventKind.FILL and ev.fill is not None:
                if ev.fill.exec_id not in seen:
                    seen.add(ev.fill.exec_id)
                    fills[ev.client_order_id].append(ev.fill)
                if ev.leaves_qty is not None and ev.leaves_qty == 0:
                    left.pop(ev.client_order_id, None)
            elif ev.kind in _TERMINAL:
                left.pop(ev.client_order_id, None)
        if not left:
            break
        if time.monotonic() > deadline or (simulated and not events):  # a paper venue
            # whose clock moved without any event will not fill the rest: cancel now
            if cancelled:
                break
            for c in list(left):
                broker.cancel(c)
            cancelled = True
            deadline = time.monotonic() + min(timeout_s, 5.0)
        elif not simulated:
            time.sleep(0.05)
    return fills


def book_account(acc: Account, legs: Sequence[tuple[Side, str, int, Decimal, Decimal]],
                 batch_id: str, day: date, method: LotMethod | str
                 ) -> tuple[Account, list[Relief]]:
    """``acc`` after its allocations ``(side, symbol, qty, price, commission)`` (sells
    first): the new account (validated) and the lots its sales relieved."""
    method = LotMethod(method)
    if method is LotMethod.SPECIFIC:  # the batch names lots as HIFO would (see solve)
        method = LotMethod.HIFO
    keep_lots = bool(acc.lots) or (acc.tax_aware and not acc.holdings)
    cash = acc.cash
    hold = dict(acc.holdings)
    lots: tuple[TaxLot, ...] = acc.lots
    reliefs: list[Relief] = []
    for side, sym, q, px, c in sorted(legs, key=lambda x: (x[0] is not Side.SELL, x[1])):
        if q == 0:
            continue
        if side is Side.SELL:
            have = hold.get(sym, ZERO)
            if q > have:
                raise ValidationError("allocated sale exceeds the holding", field="qty",
                                      symbol=sym, value=q, held=have, account=acc.account_id)
            if keep_lots:
                sale = sell(lots, sym, q, px, day, method)
                lots = sale.remaining
                reliefs.extend(sale.reliefs)
            hold[sym] = have - q
            if hold[sym] == 0:
                del hold[sym]
            cash += q * px - c
        else:
            hold[sym] = hold.get(sym, ZERO) + q
            if keep_lots:
                lid = f"{sym}@{batch_id}"
                if any(x.lot_id == lid for x in lots):
                    raise ValidationError("the batch opens one lot per symbol", field="lot_id",
                                          value=lid, account=acc.account_id)
                lots = (*lots, TaxLot(lid, sym, Decimal(q), px, day))
            cash -= q * px + c
    if cash < 0:
        raise ValidationError("booking the fills leaves negative cash", field="cash",
                              value=cash, account=acc.account_id)
    new = Account(acc.account_id, acc.name, cash, acc.model_id, acc.drift_band, hold,
                  acc.restrictions, acc.tax_aware, tuple(sorted(lots, key=lambda x: x.lot_id)),
                  acc.loss_sales)
    return new, reliefs


# --------------------------------------------------------------------------- the batch


def _send_and_allocate(broker: Broker, bid: str, shared: Shared, blocks: list[BlockOrder],
                       bps: Decimal, per_share: Decimal, timeout_s: float,
                       fills: list[BlockFill], allocs: list[Allocation],
                       legs: dict[str, list[tuple[Side, str, int, Decimal, Decimal]]]) -> None:
    """Send ``blocks``, collect their fills, allocate them; appends to the three outputs."""
    sent: set[str] = set()
    rejected: dict[str, str] = {}
    for b in blocks:
        coid = f"{bid}:{b.symbol}:{b.side.value}"
        try:
            broker.submit(Order(coid, b.symbol, b.side, Decimal(b.qty), shared.now,
                                OrderType.MARKET, tif=TimeInForce.DAY, strategy="accounts"))
        except OrderRejected as e:
            rejected[coid] = getattr(e, "reason_code", None) or str(e)
            continue
        sent.add(coid)
    got = _collect(broker, sent, timeout_s) if sent else {}
    for b in blocks:
        coid = f"{bid}:{b.symbol}:{b.side.value}"
        fl = got.get(coid, [])
        qty = sum((f.qty for f in fl), ZERO)
        filled = int(qty)
        if qty != filled or filled > b.qty:
            raise ValidationError("block fill is not whole shares within the block",
                                  field="filled", value=qty, block=coid)
        avg = ZERO
        if filled:
            avg = (sum((f.qty * f.price for f in fl), ZERO) / qty).quantize(
                PX_TICK, ROUND_HALF_EVEN)
        fills.append(BlockFill(b, coid, filled, avg, tuple(fl), rejected.get(coid)))
        a = allocate_block(b, filled, avg)
        allocs.append(a)
        for aid, q in a.shares.items():
            if q:
                legs.setdefault(aid, []).append(
                    (b.side, b.symbol, q, avg, commission(q, avg, bps, per_share)))


def execute_batch(store: Store, result: BatchResult, shared: Shared,
                  accounts: Sequence[Account], broker: Broker, *,
                  commission_bps: float = 0.0, commission_per_share: float = 0.0,
                  batch_id: str | None = None, timeout_s: float = 60.0) -> Execution:
    """Send the batch's blocks to ``broker``, allocate the fills and book them (module doc).

    Raises:
        ValidationError: a bad batch id, an account of the result missing from ``accounts``,
            a booking that would leave an account invalid (nothing written).
        StoreError: an account's cash changed in the store since it was read.
    """
    bid = batch_id or shared.token
    if not isinstance(bid, str) or not 0 < len(bid) <= MAX_BATCH_ID or ":" in bid:
        raise ValidationError(f"batch id must be 1-{MAX_BATCH_ID} characters without ':'",
                              field="batch_id", value=bid)
    bps = to_decimal(commission_bps, "costs.commission_bps")
    per_share = to_decimal(commission_per_share, "costs.commission_per_share")
    t0 = time.perf_counter()
    with store.session() as s:
        if s.get(AccountBatchRow, bid) is not None:
            return Execution(bid, True)
    by_id = {a.account_id: a for a in accounts}
    planned: dict[str, list[tuple[str, Side, int]]] = {}
    for r in result.results:
        if not r.orders:
            continue
        if r.account_id not in by_id:
            raise ValidationError("account of the batch not in the book", field="account_id",
                                  value=r.account_id)
        planned[r.account_id] = list(r.orders)
    fills: list[BlockFill] = []
    allocs: list[Allocation] = []
    legs: dict[str, list[tuple[Side, str, int, Decimal, Decimal]]] = {}
    # phase 1: the sells (their proceeds fund the buys)
    sells = [AccountOrder(a, s, side, q) for a, o in sorted(planned.items())
             for s, side, q in o if side is Side.SELL]
    _send_and_allocate(broker, bid, shared, build_blocks(sells), bps, per_share, timeout_s,
                       fills, allocs, legs)
    t1 = time.perf_counter()
    # phase 2: each account's buys trimmed to the cash the sells actually raised
    trimmed: dict[str, int] = {}
    buys: list[AccountOrder] = []
    for aid, o in sorted(planned.items()):
        mine = [x for x in o if x[1] is Side.BUY]
        if not mine:
            continue
        acc = by_id[aid]
        cash = acc.cash + sum(((q * px - c) for _, _, q, px, c in legs.get(aid, [])), ZERO)
        kept, cut = trim_for_commission(replace(acc, cash=max(cash, ZERO)), mine,
                                        shared.prices, bps, per_share)
        if cut:
            trimmed[aid] = cut
        buys += [AccountOrder(aid, s, side, q) for s, side, q in kept]
    _send_and_allocate(broker, bid, shared, build_blocks(buys), bps, per_share, timeout_s,
                       fills, allocs, legs)
    t2 = time.perf_counter()

    day = shared.trade_date
    method = shared.settings.lot_method
    booked: list[Account] = []
    sales: list[dict[str, Any]] = []
    for aid in sorted(legs):
        new, reliefs = book_account(by_id[aid], legs[aid], bid, day, method)
        booked.append(new)
        sales += [{"batch_id": bid, "account_id": aid, "seq": i, "symbol": r.symbol,
                   "lot_id": r.lot_id, "qty": r.qty, "price": r.price,
                   "cost_per_share": r.cost_per_share, "acquired": r.acquired,
                   "sold": r.sold, "gain": r.gain, "long_term": r.long_term}
                  for i, r in enumerate(reliefs)]
    t3 = time.perf_counter()
    _write(store, bid, shared.now, len(fills), sum(len(v) for v in legs.values()),
           booked, by_id, sales)
    t4 = time.perf_counter()
    return Execution(bid, False, fills, allocs, booked, len(sales), trimmed,
                     {"sells_s": t1 - t0, "buys_s": t2 - t1, "book_s": t3 - t2,
                      "write_s": t4 - t3, "execute_s": t4 - t0})


def _write(store: Store, bid: str, now: datetime, n_blocks: int, n_allocs: int,
           booked: list[Account], before: Mapping[str, Account],
           sales: list[dict[str, Any]]) -> None:
    """One transaction: the batch row, then cash, holdings, lots and sales."""
    ids = [a.account_id for a in booked]
    with store.session() as s:
        s.execute(insert(AccountBatchRow), [{"batch_id": bid, "executed_at": now,
                                             "blocks": n_blocks, "allocations": n_allocs}])
        for i in range(0, len(ids), _CHUNK):
            part = ids[i:i + _CHUNK]
            for aid, cash in s.execute(select(AccountRow.id, AccountRow.cash)
                                       .where(AccountRow.id.in_(part))).all():
                if cash != before[aid].cash:
                    raise StoreError("account cash changed since the batch read it",
                                     field="cash", value=str(cash), account=aid,
                                     expected=str(before[aid].cash))
            s.execute(delete(HoldingRow).where(HoldingRow.account_id.in_(part)))
            s.execute(delete(TaxLotRow).where(TaxLotRow.account_id.in_(part)))
        if len({a for a in ids}) != len(ids):  # pragma: no cover - legs are keyed by id
            raise StoreError("account booked twice", field="account_id")
        stmt = (update(AccountRow).where(AccountRow.id == bindparam("b_id"))
                .values(cash=bindparam("b_cash")))
        cash_rows = [{"b_id": a.account_id, "b_cash": a.cash} for a in booked]
        hold = [{"account_id": a.account_id, "symbol": sym, "qty": q}
                for a in booked for sym, q in sorted(a.holdings.items())]
        lots = [{"account_id": a.account_id, "lot_id": x.lot_id, "symbol": x.symbol,
                 "qty": x.qty, "cost_per_share": x.cost_per_share, "acquired": x.acquired}
                for a in booked for x in a.lots]
        for i in range(0, len(cash_rows), _CHUNK):
            s.connection().execute(stmt, cash_rows[i:i + _CHUNK])
        for table, rows in ((HoldingRow, hold), (TaxLotRow, lots), (AccountSaleRow, sales)):
            for i in range(0, len(rows), _CHUNK):
                s.execute(insert(table), rows[i:i + _CHUNK])


def execute_from_config(store: Store, result: BatchResult, shared: Shared,
                        accounts: Sequence[Account], config: KeelConfig, *,
                        batch_id: str | None = None) -> Execution:
    """:func:`execute_batch` on the paper venue at the batch's close with the desk's
    ``[costs]`` commission."""
    c = config.costs
    broker = close_broker(shared, c.commission_per_share)
    try:
        return execute_batch(store, result, shared, accounts, broker,
                             commission_bps=c.commission_bps,
                             commission_per_share=c.commission_per_share, batch_id=batch_id)
    finally:
        broker.close()
