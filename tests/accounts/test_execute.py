"""`execute_batch`: blocks to the paper venue, fills allocated back and booked in one
transaction (SQLite and PostgreSQL through the ``store`` fixture)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from keel.accounts.batch import run_batch
from keel.accounts.book import Account, AccountBook
from keel.accounts.execute import (
    CloseFillModel,
    commission,
    execute_batch,
    execute_from_config,
)
from keel.accounts.synthetic import synthetic_accounts
from keel.accounts.tax import TaxLot, WashSalePolicy, lots_by_symbol
from keel.errors import StoreError, ValidationError
from keel.store.tables import AccountBatchRow, AccountSaleRow
from keel.types import ZERO, Side

BPS, PER_SHARE = 0.5, 0.005


def _seeded(store, shared, model, prices, n, seed):
    book = AccountBook(store)
    book.clear()
    book.put_models([model])
    accs = synthetic_accounts(n, [model], prices, shared.trade_date,
                              np.random.default_rng(seed), tax_share=0.5)
    book.add_accounts(accs)
    return book


def _run(store, shared, book, *, batch_id=None, broker=None):
    accounts = book.accounts()
    res = run_batch(accounts, shared)
    if broker is None:
        from keel.accounts.execute import close_broker

        broker = close_broker(shared, PER_SHARE)
    ex = execute_batch(store, res, shared, accounts, broker, commission_bps=BPS,
                       commission_per_share=PER_SHARE, batch_id=batch_id)
    return accounts, res, ex


def _check_invariants(before, ex, after):
    by_before = {a.account_id: a for a in before}
    by_after = {a.account_id: a for a in after}
    # every block's allocations sum to its fill; nobody gets more than asked
    for bf, al in zip(ex.blocks, ex.allocations, strict=True):
        assert sum(al.shares.values()) == bf.filled
        legs = dict(bf.block.legs)
        assert all(0 <= q <= legs[a] for a, q in al.shares.items())
    # per account: holdings and cash move by exactly the allocations
    moved: dict[str, dict[str, Decimal]] = {}
    cash: dict[str, Decimal] = {}
    for bf, al in zip(ex.blocks, ex.allocations, strict=True):
        for aid, q in al.shares.items():
            if not q:
                continue
            sign = 1 if bf.block.side is Side.BUY else -1
            m = moved.setdefault(aid, {})
            m[bf.block.symbol] = m.get(bf.block.symbol, ZERO) + sign * q
            c = commission(q, bf.avg_price, Decimal(str(BPS)), Decimal(str(PER_SHARE)))
            cash[aid] = cash.get(aid, ZERO) - sign * q * bf.avg_price - c
    for aid, a in by_after.items():
        b = by_before[aid]
        want = dict(b.holdings)
        for s, d in moved.get(aid, {}).items():
            want[s] = want.get(s, ZERO) + d
        assert {s: q for s, q in want.items() if q} == a.holdings, aid
        assert a.cash == b.cash + cash.get(aid, ZERO), aid
        assert a.cash >= 0
        if a.lots:
            assert lots_by_symbol(a.lots) == a.holdings, aid


@pytest.mark.slow
@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 25))
def test_execution_books_exactly_what_was_allocated(store, shared, model, prices, seed, n):
    book = _seeded(store, shared, model, prices, n, seed)
    before, _, ex = _run(store, shared, book, batch_id=f"b{seed}")
    assert not ex.already_booked
    assert sum(b.filled for b in ex.blocks) == sum(b.block.qty for b in ex.blocks)
    after = book.accounts()
    _check_invariants(before, ex, after)
    with store.session() as s:
        sales = s.scalar(select(func.count()).select_from(AccountSaleRow))
    assert sales == ex.sales


class HalfFill(CloseFillModel):
    """Fills half of each order (rounded down) at the close: allocation really pro-rates."""

    def fill(self, symbol, side, leaves, limit, i):
        half = int(leaves) // 2
        return (Decimal(half), self._px[symbol]) if half else None


@settings(max_examples=3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1))
def test_partial_fills_allocate_and_book_exactly(store, shared, model, prices, seed):
    from keel.clock import SimulatedClock
    from keel.venues.paper import PaperBroker

    book = _seeded(store, shared, model, prices, 12, seed)
    broker = PaperBroker(SimulatedClock(shared.now - timedelta(seconds=1)),
                         HalfFill(shared.prices, shared.now), cash=0,
                         commission_per_share=PER_SHARE)
    before, _, ex = _run(store, shared, book, batch_id=f"h{seed}", broker=broker)
    assert any(b.filled < b.block.qty for b in ex.blocks)
    _check_invariants(before, ex, book.accounts())


def test_same_batch_id_books_once(store, shared, model, prices, config):
    book = _seeded(store, shared, model, prices, 10, 1)
    accounts = book.accounts()
    res = run_batch(accounts, shared)
    ex1 = execute_from_config(store, res, shared, accounts, config)
    assert not ex1.already_booked and ex1.accounts
    after1 = book.accounts()
    # the same batch again (same plan, stale accounts): refused before any venue call
    ex2 = execute_from_config(store, res, shared, accounts, config)
    assert ex2.already_booked and not ex2.blocks
    assert book.accounts() == after1
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(AccountBatchRow)) == 1


def test_failed_booking_writes_nothing(store, shared, model, prices, config):
    book = _seeded(store, shared, model, prices, 6, 2)
    accounts = book.accounts()
    res = run_batch(accounts, shared)
    assert any(r.orders for r in res.results)
    # the store changes under the batch: the booking refuses, nothing is written
    trader = next(a for a in accounts if any(r.account_id == a.account_id and r.orders
                                             for r in res.results))
    book.clear()
    book.put_models([model])
    changed = [a if a.account_id != trader.account_id else
               Account(a.account_id, a.name, a.cash + 1, a.model_id, a.drift_band, a.holdings,
                       a.restrictions, a.tax_aware, a.lots) for a in accounts]
    book.add_accounts(changed)
    with pytest.raises(StoreError):
        execute_from_config(store, res, shared, accounts, config)
    assert book.accounts() == changed
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(AccountBatchRow)) == 0


def test_bad_batch_id(store, shared, model, prices, config):
    book = _seeded(store, shared, model, prices, 2, 3)
    accounts = book.accounts()
    res = run_batch(accounts, shared)
    with pytest.raises(ValidationError) as e:
        execute_from_config(store, res, shared, accounts, config, batch_id="x" * 40)
    assert e.value.field == "batch_id"


def _loss_seller(prices, model, day, held_lot_days: int) -> Account:
    """A tax-aware account holding a name outside its model at a loss (it must sell it)."""
    out = sorted(set(prices) - set(model.weights))[0]
    px = prices[out]
    lot = TaxLot("L0", out, Decimal(200), px * 2, day - timedelta(days=held_lot_days))
    return Account("W1", "wash", Decimal(1_000_000), model.model_id, Decimal("0.02"),
                   {out: Decimal(200)}, {}, True, (lot,))


def test_buy_within_30_days_after_a_booked_loss_sale_is_blocked(store, shared, model, prices,
                                                                 config):
    from dataclasses import replace

    book = AccountBook(store)
    book.put_models([model])
    acc = _loss_seller(prices, model, shared.trade_date, 400)
    out = next(iter(acc.holdings))
    book.add_accounts([acc])
    res = run_batch(book.accounts(), shared)
    assert any(s == out and side is Side.SELL for s, side, _ in res.results[0].orders)
    ex = execute_from_config(store, res, shared, book.accounts(), config, batch_id="day0")
    assert ex.sales == 1
    loaded = book.accounts()[0]
    assert loaded.holdings.get(out, ZERO) < 200
    ((sym, sold, loss),) = loaded.loss_sales
    assert (sym, sold) == (out, shared.trade_date) and loss < 0
    # ten days later the model adds the name: buying it back is a wash sale
    later = shared.now + timedelta(days=10)
    w = dict(model.weights)
    first = sorted(w)[0]
    w[out], w[first] = w[first], Decimal(0)
    from keel.accounts.book import ModelPortfolio

    m2 = ModelPortfolio(model.model_id, {k: v for k, v in w.items() if v})
    sh2 = replace(shared, now=later, token="later", models={m2.model_id: m2})
    r2 = run_batch(book.accounts(loss_sales_since=later.date() - timedelta(days=30)), sh2)
    (r,) = r2.results
    assert f"WASH_SALE_BLOCKED:{out}" in r.reasons
    assert not any(s == out and side is Side.BUY for s, side, _ in r.orders)
    # flag policy: the buy goes through and is reported
    sh3 = replace(sh2, token="later-flag",
                  settings=replace(sh2.settings, wash_sale=WashSalePolicy.FLAG))
    r3 = run_batch(book.accounts(loss_sales_since=later.date() - timedelta(days=30)), sh3)
    assert f"WASH_SALE_FLAG:{out}" in r3.results[0].reasons
    # 31 days later: no longer in the window
    sh4 = replace(sh2, now=shared.now + timedelta(days=31), token="later31")
    r4 = run_batch(book.accounts(), sh4)
    assert not any(c.startswith("WASH_SALE") for c in r4.results[0].reasons)
    assert any(s == out and side is Side.BUY for s, side, _ in r4.results[0].orders)

