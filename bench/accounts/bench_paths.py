"""Cost per account of each target path, and what recompiling CVXPY per account would cost.

    PYTHONPATH=src python3 bench/accounts/bench_paths.py [N] [NAMES]

Synthetic accounts over a synthetic market (the seed of `keel accounts seed`); each account is
solved by the batch's AccountSolver (closed form or the shared direct QP), timed by path; then
the QP accounts' problems are solved again the naive way: a fresh MeanVariance per account
through CVXPY (compile + Clarabel), for the first few of them. Prints `uptime` first.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    names = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    print(os.popen("uptime").read().strip())
    from keel.accounts.batch import CENT, prepare
    from keel.accounts.solve import AccountSolver
    from keel.accounts.synthetic import synthetic_accounts, synthetic_models
    from keel.app.pipeline import load_market
    from keel.config import parse_config
    from keel.optimize import LongOnly, MeanVariance, NetExposure, Risk
    from keel.optimize.constraints import WeightBounds
    from keel.optimize.tax_term import TaxCost
    from keel.types import to_price

    cfg = parse_config({"data": {"n_assets": names}})
    market = load_market(cfg)
    px = {str(s): to_price(float(p), CENT) for s, p in market.latest("prices").items()}
    rng = np.random.default_rng(cfg.general.seed)
    models = synthetic_models(sorted(px), rng)
    accs = synthetic_accounts(n, models, px, market.now.date(), rng)
    t = time.perf_counter()
    shared = prepare(cfg, market, {m.model_id: m for m in models}, market.now.to_pydatetime())
    print(f"risk fit once: {time.perf_counter() - t:.2f} s")
    solver = AccountSolver(shared)
    by_path: dict[str, list[float]] = {}
    qp_cases = []
    orig = solver._qp

    def spy(*args, **kw):  # record each QP account's exact problem data for the naive re-solve
        out = orig(*args, **kw)
        qp_cases.append((solver.bounds.lower.copy(), solver.bounds.upper.copy(),
                         np.asarray(solver.tax.rates, dtype=float).copy(), args[1], args[2]))
        return out

    solver._qp = spy  # type: ignore[method-assign]
    for a in accs:
        t = time.perf_counter()
        r = solver.solve(a)
        by_path.setdefault(r.path, []).append(time.perf_counter() - t)
    for p, ts in sorted(by_path.items()):
        print(f"path={p:6s} accounts={len(ts):5d} median={np.median(ts) * 1e3:7.2f} ms "
              f"mean={np.mean(ts) * 1e3:7.2f} ms")
    naive = []
    for lo, hi, rates, w0, bm in qp_cases[:10]:
        t = time.perf_counter()
        mv = MeanVariance(terms=[Risk(solver._gamma, benchmark_relative=True), TaxCost(rates)],
                          constraints=[LongOnly(), WeightBounds(lower=lo, upper=hi),
                                       NetExposure(0.0, solver.budget)], direct=[])
        mv.solve(solver.inputs.with_(current=w0, benchmark=bm))
        naive.append(time.perf_counter() - t)
    if naive:
        print(f"naive CVXPY compile+solve per QP account ({len(naive)}): "
              f"median={np.median(naive) * 1e3:.1f} ms")
    print(os.popen("uptime").read().strip())


if __name__ == "__main__":
    main()
