"""Costs-layer benchmarks: book walking and the optimal split. Prints a markdown table.

Run from the repository root:  PYTHONPATH=src python bench/costs/bench_costs.py
Baselines in the same run: a plain Python loop for the book walk; SciPy SLSQP and CVXPY
(Clarabel) for the split.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keel.costs.allocation import SplitSolver, exact_quadratic_split, optimal_split, upper_bounds
from keel.costs.curves import QuadraticCurves
from keel.costs.impact import walk_book
from keel.data.lobster import find_lobster_pair, load_lobster

DATA = Path(os.environ.get("KEEL_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data"


def best_of(fn: Callable[[], object], repeat: int = 5, number: int = 1) -> float:
    """Best wall time of ``repeat`` runs of ``number`` calls, seconds per call."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return min(times)


def loop_walk(px: np.ndarray, sz: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    out = np.full((px.shape[0], len(sizes)), np.nan)
    for t in range(px.shape[0]):
        for k, x in enumerate(sizes):
            left, paid = x, 0.0
            for lvl in range(px.shape[1]):
                take = min(left, sz[t, lvl])
                paid += take * px[t, lvl] if take > 0 else 0.0
                left -= take
                if left <= 0:
                    break
            if left <= 0 and x > 0:
                out[t, k] = paid / x
    return out


def main() -> None:
    rows = []
    for folder, n_sizes in (("lobster_AAPL_2012-06-21_L10_head", 1001),
                            ("lobster_AMZN_2012-06-21_L1", 18)):
        book = load_lobster(*find_lobster_pair(DATA / "lob" / folder)).book
        sizes = np.linspace(0, 2000, n_sizes)
        pairs = book.n_snapshots * n_sizes
        t = best_of(lambda b=book, s=sizes: walk_book(b, s), repeat=3)
        k = 50  # the Python loop on a slice, scaled per pair
        t_loop = best_of(lambda b=book, s=sizes, k=k: loop_walk(b.ask_px[:k], b.ask_sz[:k], s),
                         repeat=1) * book.n_snapshots / k
        rows.append((f"walk_book {book.symbol} L{book.n_levels}: {book.n_snapshots:,} snapshots"
                     f" x {n_sizes:,} sizes = {pairs:,} pairs", f"{t * 1e3:,.0f} ms",
                     f"Python loop ~{t_loop:,.1f} s (x{t_loop / t:,.0f})"))
    rng = np.random.default_rng(0)
    n = 390
    tt = np.linspace(-1, 1, n)
    curves = QuadraticCurves(1e-6 / (0.4 + tt**2 + 0.1 * rng.random(n)), 0.01 * (1.2 - 0.2 * tt**2))
    s = 2e5
    upper = upper_bounds(s, n, cap=0.01)
    t_exact = best_of(lambda: exact_quadratic_split(s, curves.a, curves.b, upper), 7, 200)
    t_full = best_of(lambda: optimal_split(s, curves, cap=0.01, solver="exact"), 7, 200)
    res = {sv: optimal_split(s, curves, cap=0.01, solver=sv)
           for sv in (SplitSolver.EXACT, SplitSolver.CVXPY)}
    t_cvx = best_of(lambda: optimal_split(s, curves, cap=0.01, solver="cvxpy"), 3)
    t0 = time.perf_counter()
    res[SplitSolver.SLSQP] = optimal_split(s, curves, cap=0.01, solver="slsqp")
    t_slsqp = time.perf_counter() - t0  # one run: SLSQP is O(T^3) per iteration
    gap = max(abs(r.cost / res[SplitSolver.EXACT].cost - 1) for r in res.values())
    rows.append(("optimal split T=390 exact (KKT water-filling core)", f"{t_exact * 1e6:,.0f} us",
                 f"with validation + uniform comparison {t_full * 1e6:,.0f} us"))
    rows.append(("optimal split T=390 SLSQP / CVXPY (Clarabel)",
                 f"{t_slsqp * 1e3:,.0f} ms / {t_cvx * 1e3:,.0f} ms",
                 f"max relative cost gap to exact {gap:.1e}"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), "
          f"Python {platform.python_version()}\n")
    print("| benchmark | time | baseline / note |\n|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
