"""Data-layer benchmarks: S&P 500 5-year file load, synthetic market and order-book generation.

Run from the repository root:

    PYTHONPATH=src python bench/data/bench_data.py [--repeat 3]

Prints a Markdown table (best and median wall time of ``--repeat`` runs, after one warm-up).
Needs the real data in ../shared/data for the S&P rows (skipped otherwise).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
SP500 = DATA / "daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz"
SECTORS = DATA / "daily/sp500_constituents/constituents_2018-04-02.csv"


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm-up (imports, calendar cache)
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return min(runs), statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import pandas as pd

    from keel.data.intraday import synthetic_order_book
    from keel.data.prices import load_prices_long, read_ohlcv_long
    from keel.data.synthetic import generate_market

    rows: list[tuple[str, str, float, float]] = []
    if SP500.exists():
        best, med = timed(lambda: pd.read_csv(SP500), args.repeat)
        rows.append(("pandas.read_csv only (reference)", "619,040 rows", best, med))
        best, med = timed(lambda: read_ohlcv_long(SP500, on_missing="ffill"), args.repeat)
        rows.append(("read_ohlcv_long (validate + pivot + stamp)", "505 symbols", best, med))
        best, med = timed(lambda: load_prices_long(SP500, sectors=SECTORS, on_missing="ffill"),
                          args.repeat)
        rows.append(("load_prices_long -> MarketData (+ sectors, spread est.)", "476 x 1259",
                     best, med))
    for n, d in ((100, 756), (500, 2000)):
        best, med = timed(lambda n=n, d=d: generate_market(n_assets=n, n_days=d, seed=1),
                          args.repeat)
        rows.append(("generate_market", f"{n} assets x {d} days", best, med))
    best, med = timed(lambda: synthetic_order_book(10_000, 10, seed=1), args.repeat)
    rows.append(("synthetic_order_book", "10,000 x 10 levels", best, med))

    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python "
          f"{platform.python_version()}, pandas {pd.__version__}\n")
    print("| step | size | best (s) | median (s) |")
    print("|---|---|---:|---:|")
    for name, size, best, med in rows:
        print(f"| {name} | {size} | {best:.2f} | {med:.2f} |")


if __name__ == "__main__":
    main()
