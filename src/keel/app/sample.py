"""Write a small, realistic trading record into a store (for the service's tests and a look at
the dashboard without a running ``keel run``).

Each trade is what the order manager and the ledger would write: a parent order with its
arrival price, child slices sent (``PENDING``) then acknowledged and filled, one fill per
child in ``fills``, the same fills booked in the ledger, then the ledger marked at the market.
Prices in currency per share, quantities in shares; ``slippage_bps`` moves fill prices
against the trader.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from keel.clock import SimulatedClock
from keel.data.market import MarketData
from keel.portfolio.ledger import Ledger
from keel.store.db import Store
from keel.store.orders_repo import OrderRecord, OrdersRepo, StateChange
from keel.types import (
    ChildOrder,
    Fill,
    Order,
    OrderStatus,
    Side,
    average_price,
    to_money,
    to_price,
)

CENT = Decimal("0.01")


def deposit(store: Store, clock: SimulatedClock, amount: str, account: str = "default") -> None:
    """Book a cash deposit in the ledger."""
    Ledger.open(store, clock=clock, account=account).deposit(amount)


def trade(store: Store, clock: SimulatedClock, market: MarketData, order_id: str,
          symbol: str, side: Side, qty: int, *, slices: int = 2, slippage_bps: float = 3.0,
          venue: str = "fix", ack_seconds: float = 0.004, account: str = "default",
          reject_reason: str | None = None) -> None:
    """One parent order of ``qty`` shares worked in ``slices`` children, fully filled (or
    refused by the venue with ``reject_reason``), written to the store and booked."""
    repo = OrdersRepo(store)
    px = to_price(market.latest("prices")[symbol], CENT, symbol=symbol)
    now = clock.now()
    parent = Order(order_id, symbol, side, Decimal(qty), now, strategy="sample")
    sizes = [qty // slices + (1 if i < qty % slices else 0) for i in range(slices)]
    kids = [ChildOrder(f"{order_id}-{i}", order_id, symbol, side, Decimal(q), now,
                       slice_index=i) for i, q in enumerate(sizes)]
    rec = OrderRecord(parent, OrderStatus.NEW, algo="vwap", arrival_price=px,
                      decision_price=px)
    repo.add_parent(rec, now, reason="accepted", children=kids)
    ledger = Ledger.open(store, clock=clock, account=account)
    filled, notional = Decimal(0), Decimal(0)
    for i, k in enumerate(kids):
        krec = OrderRecord(k, OrderStatus.NEW)
        sent = krec.with_changes(status=OrderStatus.PENDING)
        repo.apply([StateChange(sent, OrderStatus.NEW, "sent")], clock.now())
        clock.advance(timedelta(seconds=ack_seconds))
        if reject_reason is not None:
            repo.apply([StateChange(sent.with_changes(status=OrderStatus.REJECTED),
                                    OrderStatus.PENDING, reject_reason)], clock.now())
            continue
        acked = sent.with_changes(status=OrderStatus.ACKNOWLEDGED)
        repo.apply([StateChange(acked, OrderStatus.PENDING, "ack")], clock.now())
        clock.advance(timedelta(seconds=30))
        fpx = to_price(px * (1 + Decimal(side.sign) * Decimal(str(slippage_bps)) / 10_000), CENT)
        fill = Fill(f"{order_id}-x{i}", k.client_order_id, symbol, side, k.qty, fpx,
                    clock.now(), commission=to_money(k.qty * fpx * Decimal("0.00005"), CENT),
                    venue=venue)
        filled += k.qty
        notional += k.qty * fpx
        done = acked.with_changes(status=OrderStatus.FILLED, filled_qty=k.qty)
        status = OrderStatus.FILLED if i == len(kids) - 1 else OrderStatus.PARTIALLY_FILLED
        prec = rec.with_changes(status=status, filled_qty=filled,
                                avg_price=average_price(notional, filled, Decimal("1E-6")))
        repo.apply([StateChange(done, OrderStatus.ACKNOWLEDGED, "fill"),
                    StateChange(prec, rec.status, "fill")], clock.now(), fill=fill,
                   parent_id=order_id)
        rec = prec
        ledger.apply_fill(fill)
    if reject_reason is not None:
        repo.apply([StateChange(rec.with_changes(status=OrderStatus.REJECTED),
                                OrderStatus.NEW, reject_reason)], clock.now())


def mark(store: Store, clock: SimulatedClock, market: MarketData,
         account: str = "default") -> None:
    """Revalue the held positions at the market's latest prices."""
    ledger = Ledger.open(store, clock=clock, account=account)
    px = market.latest("prices")
    held = [s for s in ledger.state.holdings if s in px.index]
    if held:
        ledger.mark({s: to_price(px[s], CENT, symbol=s) for s in held})


def sample_book(store: Store, clock: SimulatedClock, market: MarketData,
                symbols: Sequence[str] | None = None, *, cash: str = "10000000",
                shares: int = 2000) -> list[str]:
    """Deposit ``cash``, buy ``shares`` of each of ``symbols`` (default: the first 12 of the
    market) through two-slice parents, mark the book; returns the parent ids."""
    syms = list(symbols) if symbols is not None else [str(s) for s in market.symbols[:12]]
    deposit(store, clock, cash)
    ids = []
    for j, s in enumerate(syms):
        oid = f"sample-{j:03d}"
        trade(store, clock, market, oid, s, Side.BUY, shares * (1 + j % 4),
              slippage_bps=1.0 + 2.0 * (j % 5))
        ids.append(oid)
    mark(store, clock, market)
    return ids
