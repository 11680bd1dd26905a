"""Throughput of the backtester on the real S&P 500 file (issue 15 point 6), with profiles.

Two cases, both on ``all_stocks_5yr.csv.gz`` (468 names with the full 5 years):

* ``daily``: daily mean-variance (statistical risk model K=10, refit every 21 sessions,
  float book, governance off), 938 sessions after a 320-session warm-up: the spec of
  ``bench/data/bench_views.py --backtest``;
* ``sp500``: ``examples/sp500.toml`` as ``keel backtest`` runs it (every book, governance on,
  Decimal ledger of every fill); the simulation only (the CLI adds the load, ~1-2 s, and the
  report files).

Run it against any keel source tree (``PYTHONPATH=<tree>/src``) so one session times the code
before and after a change; ``--navs FILE`` saves every book's NAV path (exact ``repr``
floats) and ``--compare FILE`` reports the largest absolute and relative NAV difference
against a saved run:

    PYTHONPATH=/tmp/base/src python bench/backtest/bench_throughput.py --profile \\
        --navs /tmp/navs_before.json
    PYTHONPATH=src python bench/backtest/bench_throughput.py --profile \\
        --compare /tmp/navs_before.json

Prints per case: wall and CPU seconds of the simulation (best of ``--repeat``), the
backtester's own timings, the load average, and with ``--profile`` the top ``--top`` functions
of a separate cProfiled run by cumulative and by own time. Results go to
``bench/backtest/results/bench_throughput[-<label>].json``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SP500 = REPO.parent / "shared" / "data" / "daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz"
EXAMPLE = REPO / "examples" / "sp500.toml"
WARMUP = 320

DAILY_SPEC: dict[str, Any] = {
    "general": {"seed": 1}, "policy": {"frequency": "daily"},
    "risk": {"model": "pca", "n_pca_factors": 10, "lookback_days": 252, "refit_every": 21},
    "optimize": {"risk_aversion": 5.0, "max_weight": 0.02},
    "governance": {"enabled": False},
    "backtest": {"warmup": WARMUP, "ledger": "none", "nav": 1e8}}


def daily_case() -> tuple[Any, Any]:
    from keel.config import parse_config
    from keel.data.prices import load_prices_long

    def load():
        return load_prices_long(SP500, on_missing="drop")

    return parse_config(DAILY_SPEC), load


def sp500_case() -> tuple[Any, Any]:
    from keel.backtest.run import load_market
    from keel.config import load_config

    cwd = os.getcwd()
    os.chdir(REPO)  # the example's relative paths are from the repo root
    try:
        cfg = load_config(EXAMPLE)
    finally:
        os.chdir(cwd)

    def load():
        os.chdir(REPO)
        try:
            return load_market(cfg)
        finally:
            os.chdir(cwd)

    return cfg, load


CASES = {"daily": daily_case, "sp500": sp500_case}


def run_once(cfg: Any, market: Any) -> tuple[Any, float, float]:
    from keel.backtest.engine import Backtester

    w0, c0 = time.perf_counter(), time.process_time()
    res = Backtester(cfg).run(market)
    return res, time.perf_counter() - w0, time.process_time() - c0


def top(prof: cProfile.Profile, key: str, n: int) -> list[str]:
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats(key).print_stats(n)
    lines = buf.getvalue().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    return [ln.rstrip() for ln in lines[start:start + n + 1]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="also a cProfiled run per case")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--navs", type=Path, help="save every book's NAV path here (JSON)")
    ap.add_argument("--compare", type=Path, help="NAV paths of an earlier run (JSON)")
    ap.add_argument("--label", default="", help="suffix of the results file")
    ap.add_argument("--solver-trail", action="store_true",
                    help="count each direct solver's outcomes (the results' fallback trail)")
    args = ap.parse_args()

    import keel
    from keel.policy.governance import GovernanceChain

    src = str(Path(keel.__file__).resolve().parents[1])
    screened = {"batches": 0, "cleared": 0}
    if hasattr(GovernanceChain, "clears"):  # count how often the float screen vouches
        clears = GovernanceChain.clears

        def counting(self, *a, **k):  # type: ignore[no-untyped-def]
            ok = clears(self, *a, **k)
            screened["batches"] += 1
            screened["cleared"] += int(ok)
            return ok

        GovernanceChain.clears = counting  # type: ignore[method-assign]
    trail: dict[str, int] = {}
    if args.solver_trail:  # every optimizer answer's fallback trail, tallied per run
        from keel.optimize.engine import ConvexPortfolioProblem

        solve = ConvexPortfolioProblem.solve

        def tallied(self, inputs):  # type: ignore[no-untyped-def]
            res = solve(self, inputs)
            key = " > ".join(f"{a.solver}:{a.outcome}" for a in res.fallback_trail)
            trail[key] = trail.get(key, 0) + 1
            for a in res.fallback_trail:
                sec = f"{a.solver}:{a.outcome}:seconds"
                trail[sec] = trail.get(sec, 0.0) + a.seconds
            return res

        ConvexPortfolioProblem.solve = tallied  # type: ignore[method-assign]
    out: dict[str, Any] = {"src": src, "cases": {}}
    navs: dict[str, dict[str, list[float]]] = {}
    for name in args.cases:
        cfg, load = CASES[name]()
        best: dict[str, Any] | None = None
        res = None
        for _ in range(args.repeat):
            screened.update(batches=0, cleared=0)
            trail.clear()
            market = load()  # a fresh market: nothing cached from the previous run
            load1 = os.getloadavg()[0]
            res, wall, cpu = run_once(cfg, market)
            if best is None or wall < best["wall_s"]:
                best = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                        "timings": {k: round(v, 2) for k, v in res.timings.items()},
                        "loadavg_start": load1, "loadavg_end": os.getloadavg()[0],
                        "governance_screen": dict(screened)}
                if args.solver_trail:
                    best["solver_trail"] = {k: (round(v, 3) if isinstance(v, float) else v)
                                            for k, v in trail.items()}
        assert best is not None and res is not None
        navs[name] = {b: [float(x) for x in r.nav.to_numpy()] for b, r in res.books.items()}
        best["final_navs"] = {b: repr(v[-1]) for b, v in navs[name].items()}
        best["ledger_rel_diff"] = {b: r.ledger.get("rel_diff") for b, r in res.books.items()
                                   if r.ledger}
        if args.profile:
            market = load()
            prof = cProfile.Profile(time.process_time)  # CPU time: robust to the load
            prof.enable()
            run_once(cfg, market)
            prof.disable()
            best["profile_cumulative"] = top(prof, "cumulative", args.top)
            best["profile_tottime"] = top(prof, "tottime", args.top)
        out["cases"][name] = best
        print(f"== {name}: wall {best['wall_s']} s, CPU {best['cpu_s']} s, load "
              f"{best['loadavg_start']:.2f} -> {best['loadavg_end']:.2f}")
        print("   timings", json.dumps(best["timings"]),
              "governance screen", json.dumps(best["governance_screen"]))
        print("   final NAVs", json.dumps(best["final_navs"]))
        if "solver_trail" in best:
            print("   solver trail", json.dumps(best["solver_trail"], indent=1))
        for key in ("profile_cumulative", "profile_tottime"):
            if key in best:
                print(f"   {key}:")
                print("\n".join("     " + ln for ln in best[key]))
    if args.navs:
        args.navs.write_text(json.dumps(navs))
    if args.compare:
        import numpy as np

        old = json.loads(args.compare.read_text())
        cmp: dict[str, Any] = {}
        for case, books in navs.items():
            for b, v in books.items():
                if case not in old or b not in old[case]:
                    continue
                a, o = np.asarray(v), np.asarray(old[case][b])
                if a.shape != o.shape:
                    cmp[f"{case}:{b}"] = {"error": f"shapes {a.shape} vs {o.shape}"}
                    continue
                d = np.abs(a - o)
                cmp[f"{case}:{b}"] = {"max_abs": float(d.max()),
                                      "max_rel": float((d / np.abs(o)).max()),
                                      "identical": bool(np.array_equal(a, o))}
        out["nav_compare"] = cmp
        for k, v in cmp.items():
            print(f"   NAV vs {args.compare.name} {k}: {v}")
    path = REPO / "bench" / "backtest" / "results" / (
        "bench_throughput" + (f"-{args.label}" if args.label else "") + ".json")
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
