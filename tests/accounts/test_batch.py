"""The batch: local processes and Ray give the same orders as one process; blocks add up."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from keel.accounts.batch import run_batch
from keel.accounts.synthetic import synthetic_accounts
from keel.errors import ValidationError


@pytest.fixture(scope="module")
def accounts(shared, model):
    rng = np.random.default_rng(5)
    return synthetic_accounts(40, [model], shared.prices, shared.trade_date, rng,
                              tax_share=0.4, restricted_share=0.3)


def _orders(res):
    return [(o.account_id, o.symbol, o.side, o.qty) for o in res.orders]


def test_blocks_add_up_to_the_accounts_orders(shared, accounts):
    res = run_batch(accounts, shared, workers=1, chunk_size=7)
    assert [r.account_id for r in res.results] == sorted(a.account_id for a in accounts)
    per = Counter()
    for o in res.orders:
        per[(o.symbol, o.side)] += o.qty
    assert {(b.symbol, b.side): b.qty for b in res.blocks} == dict(per)
    s = res.summary(shared.prices)
    assert s["orders"] == len(res.orders) and s["blocks"] == len(res.blocks)
    assert s["accounts"] == 40 and s["errors"] == 0
    assert {"model", "qp"} <= set(s["paths"])


def test_two_processes_give_the_same_orders(shared, accounts):
    one = run_batch(accounts, shared, workers=1, chunk_size=10)
    seen = []
    two = run_batch(list(reversed(accounts)), shared, workers=2, chunk_size=10,
                    progress=lambda d, t: seen.append((d, t)))
    assert _orders(two) == _orders(one)
    assert [r.reasons for r in two.results] == [r.reasons for r in one.results]
    assert seen[-1] == (40, 40) and len(seen) == 4


def test_bad_arguments(shared, accounts):
    with pytest.raises(ValidationError):
        run_batch(accounts + accounts[:1], shared)
    with pytest.raises(ValidationError):
        run_batch(accounts, shared, workers=0)
    with pytest.raises(ValidationError):
        run_batch(accounts, shared, backend="dask")


@pytest.mark.slow
def test_ray_gives_the_same_orders_as_local_processes(shared, accounts):
    ray = pytest.importorskip("ray")
    local = run_batch(accounts, shared, workers=2, chunk_size=10)
    try:
        remote = run_batch(accounts, shared, workers=2, chunk_size=10, backend="ray")
    finally:
        ray.shutdown()
    assert remote.backend == "ray"
    assert _orders(remote) == _orders(local)
    assert [r.reasons for r in remote.results] == [r.reasons for r in local.results]
    assert [(b.symbol, b.side, b.legs) for b in remote.blocks] == \
        [(b.symbol, b.side, b.legs) for b in local.blocks]
