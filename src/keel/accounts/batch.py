"""The batch rebalance: the risk model fitted once, accounts solved in chunks on local
processes or on Ray (the same :func:`~keel.accounts.solve.solve_chunk`), orders aggregated
into gross block orders per symbol.

>>> shared = prepare(config, market, book.models(), now)      # risk fitted ONCE here
>>> result = run_batch(book.accounts(), shared, workers=2)    # or backend="ray"
>>> result.blocks                                             # BlockOrder per (symbol, side)

Results come back in account-id order whatever the backend or the completion order, so the
local and Ray runs give identical orders.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pandas as pd

from keel.accounts.allocation import AccountOrder, BlockOrder, build_blocks
from keel.accounts.book import Account, ModelPortfolio
from keel.accounts.solve import AccountResult, Settings, Shared, solve_chunk
from keel.accounts.tax import Gains
from keel.errors import ConfigError, ValidationError
from keel.types import ZERO, Side, ensure_utc, to_price

CENT = Decimal("0.01")

if TYPE_CHECKING:
    from keel.config import KeelConfig
    from keel.data.market import MarketData

Progress = Callable[[int, int], None]
_Part = tuple[list[AccountResult], float, int]


def prepare(config: KeelConfig, market: MarketData, models: dict[str, ModelPortfolio],
            now: datetime) -> Shared:
    """The batch's shared inputs: prices (the last close, to the cent) and the desk's risk
    model (the configured chain of :meth:`keel.app.pipeline.Pipeline.fit_risk`), fitted once."""
    from keel.app.pipeline import Pipeline

    now = ensure_utc(now, "now")
    pipe = Pipeline(config, live=False)
    fit = pipe.fit_risk(market)
    last = market.latest("prices")
    prices: dict[str, Decimal] = {}
    for s, p in last.items():
        if p == p and p > 0:  # NaN or non-positive: the name has no price and cannot trade
            prices[str(s)] = to_price(float(p), CENT)
    symbols = tuple(s for s in map(str, market.symbols) if s in prices)
    risk = fit.model.reindex(pd.Index(symbols)) if len(symbols) < market.n_assets else fit.model
    h = hashlib.sha256(now.isoformat().encode())
    for s in symbols:
        h.update(f"|{s}={prices[s]}".encode())
    for mid in sorted(models):
        h.update(f"|{mid}".encode())
    return Shared(h.hexdigest()[:16], now, symbols, prices, risk, dict(models),
                  Settings.from_config(config))


@dataclass
class BatchResult:
    """Every account's result (account-id order), the block orders and timings."""

    results: list[AccountResult]
    blocks: list[BlockOrder]
    backend: str
    workers: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def orders(self) -> list[AccountOrder]:
        return [AccountOrder(r.account_id, s, side, q) for r in self.results
                for s, side, q in r.orders]

    def summary(self, prices: dict[str, Decimal] | None = None) -> dict[str, Any]:
        reasons: Counter[str] = Counter()
        paths: Counter[str] = Counter()
        gains = Gains()
        for r in self.results:
            paths[r.path] += 1
            gains = gains + r.gains
            for c in r.reasons:
                reasons[c.split(":")[0]] += 1
        orders = self.orders
        out: dict[str, Any] = {
            "accounts": len(self.results),
            "accounts_trading": sum(1 for r in self.results if r.orders),
            "errors": sum(1 for r in self.results if r.error),
            "orders": len(orders), "blocks": len(self.blocks),
            "buy_blocks": sum(1 for b in self.blocks if b.side is Side.BUY),
            "sell_blocks": sum(1 for b in self.blocks if b.side is Side.SELL),
            "shares": sum(o.qty for o in orders),
            "paths": dict(sorted(paths.items())), "reasons": dict(sorted(reasons.items())),
            "realised_short_term": str(gains.short_term),
            "realised_long_term": str(gains.long_term),
            "backend": self.backend, "workers": self.workers,
            "seconds": round(self.seconds, 3),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }
        if prices is not None:
            out["notional"] = str(sum((Decimal(b.qty) * prices[b.symbol]
                                       for b in self.blocks), ZERO))
        return out


def timed_chunk(shared: Shared, accounts: list[Account]
                ) -> tuple[list[AccountResult], float, int]:
    """:func:`solve_chunk` plus the CPU seconds it took and the process id (the scaling
    evidence: CPU split over workers, whatever else the machine runs)."""
    import os

    c0 = time.process_time()
    out = solve_chunk(shared, accounts)
    return out, time.process_time() - c0, os.getpid()


def _chunks(accounts: Sequence[Account], size: int) -> list[list[Account]]:
    return [list(accounts[i:i + size]) for i in range(0, len(accounts), size)]


def run_batch(accounts: Sequence[Account], shared: Shared, *, workers: int = 1,
              chunk_size: int = 250, backend: str = "local", ray_address: str | None = None,
              progress: Progress | None = None) -> BatchResult:
    """Solve every account and aggregate the orders into gross blocks.

    Args:
        backend: ``local`` (``workers`` processes; 1: this process) or ``ray``
            (``ray.init(address=ray_address)``; ``None``: a local Ray with ``workers`` CPUs).
        progress: called with (accounts done, total) after each chunk.

    Raises:
        ValidationError: duplicate account ids, workers or chunk_size below 1.
        ConfigError: ``ray`` asked for without the ``ray`` extra installed.
    """
    if workers < 1:
        raise ValidationError("workers must be >= 1", field="workers", value=workers)
    if chunk_size < 1:
        raise ValidationError("chunk_size must be >= 1", field="chunk_size", value=chunk_size)
    ids = [a.account_id for a in accounts]
    if len(set(ids)) != len(ids):
        dup = next(i for i, n in Counter(ids).items() if n > 1)
        raise ValidationError("duplicate account id", field="account_id", value=dup)
    accounts = sorted(accounts, key=lambda a: a.account_id)
    chunks = _chunks(accounts, chunk_size)
    total = len(accounts)
    t0 = time.perf_counter()
    if backend == "ray":
        parts = _run_ray(chunks, shared, workers, ray_address, progress, total)
    elif backend == "local":
        parts = _run_local(chunks, shared, workers, progress, total)
    else:
        raise ValidationError("backend must be local or ray", field="backend", value=backend)
    t1 = time.perf_counter()
    results = [r for part, _, _ in parts for r in part]
    cpu: dict[int, float] = {}
    for _, c, pid in parts:
        cpu[pid] = cpu.get(pid, 0.0) + c
    blocks = build_blocks(AccountOrder(r.account_id, s, side, q) for r in results
                          for s, side, q in r.orders)
    t2 = time.perf_counter()
    return BatchResult(results, blocks, backend, workers, t2 - t0,
                       {"solve_s": t1 - t0, "blocks_s": t2 - t1,
                        "solve_cpu_s": sum(cpu.values()),
                        **{f"cpu_s_process_{i}": v for i, v in enumerate(
                            sorted(cpu.values(), reverse=True))}})


def _run_local(chunks: list[list[Account]], shared: Shared, workers: int,
               progress: Progress | None, total: int) -> list[_Part]:
    parts: list[_Part] = [([], 0.0, 0) for _ in chunks]
    done = 0
    if workers == 1 or len(chunks) <= 1:
        for i, c in enumerate(chunks):
            parts[i] = timed_chunk(shared, c)
            done += len(c)
            if progress:
                progress(done, total)
        return parts
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending = {pool.submit(timed_chunk, shared, c): i for i, c in enumerate(chunks)}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                i = pending.pop(f)
                parts[i] = f.result()
                done += len(chunks[i])
                if progress:
                    progress(done, total)
    return parts


def _run_ray(chunks: list[list[Account]], shared: Shared, workers: int,
             address: str | None, progress: Progress | None, total: int) -> list[_Part]:
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs the `ray` extra (pip install keel[ray])",
                          field="accounts.ray_address", value=address) from None
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:  # workers import the driver's keel (not whichever keel site-packages holds)
            import os
            from pathlib import Path

            import keel

            src = str(Path(keel.__file__).resolve().parents[1])
            path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": path}})
    remote = ray.remote(num_cpus=1)(timed_chunk)
    ref = ray.put(shared)
    pending = {remote.remote(ref, c): i for i, c in enumerate(chunks)}
    parts: list[_Part] = [([], 0.0, 0) for _ in chunks]
    done = 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for r in ready:
            i = pending.pop(r)
            parts[i] = ray.get(r)
            done += len(chunks[i])
            if progress:
                progress(done, total)
    return parts
