"""Loopback round trips through the simulated exchange's FIX front end.

FixBroker -> FixExchangeServer -> SimulatedExchange (matching) -> ExecutionReport -> FixBroker:
time from ``submit`` to the broker's event, one order at a time, for a resting limit order
(ACK) and a marketable one (ACK + FILL, measured to the fill). Run from the repository root:

    python bench/exchange/bench_exchange.py [N]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from keel.types import EventKind, Order, OrderType, Side, utc
from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange
from keel.venues.exchange.fix_front import FixExchangeServer
from keel.venues.fix.broker import FixBroker
from keel.venues.fix.session import SessionConfig

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "fix" / "spec"
T0 = utc(2024, 1, 2, 15)


def round_trips(broker: FixBroker, n: int, px: str, until: EventKind,
                tag: str) -> np.ndarray:
    out = np.empty(n)
    for i in range(n):
        cid = f"{tag}{i}"
        t = time.perf_counter()
        broker.submit(Order(cid, "AAPL", Side.BUY, 1, T0, order_type=OrderType.LIMIT,
                            limit_price=px))
        while True:
            evs = broker.poll_events()
            if any(e.kind is until and e.client_order_id == cid for e in evs):
                break
            time.sleep(0)
        out[i] = time.perf_counter() - t
    return out


def main(n: int = 2000) -> None:
    ex = SimulatedExchange(["AAPL"])
    LiquidityProvider(ex, size=10_000_000).quote("AAPL", 100.0, T0)
    with FixExchangeServer(ex, spec_dir=SPEC, begin_string="FIX.4.2") as server, \
            FixBroker(SessionConfig("FIX.4.2", "KEEL", "KEELX"), "127.0.0.1", server.port,
                      spec_dir=str(SPEC)).start(wait_logon=5) as broker:
        round_trips(broker, 200, "90", EventKind.ACK, "w")  # warm-up
        print(f"{'case':<28}{'n':>6}{'p50 us':>10}{'p99 us':>10}{'per s':>9}")
        for name, px, kind in (("resting limit -> ACK", "90", EventKind.ACK),
                               ("marketable -> FILL", "101", EventKind.FILL)):
            rt = round_trips(broker, n, px, kind, kind.value)
            p50, p99 = np.percentile(rt, [50, 99]) * 1e6
            print(f"{name:<28}{n:>6}{p50:>10.0f}{p99:>10.0f}{1 / rt.mean():>9.0f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
