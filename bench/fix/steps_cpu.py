"""What each #18 step bought, in CPU per round trip: keel's NewOrderSingle -> ExecutionReport
between an initiator and an acceptor ``Session`` in one process (no sockets), the steps
interleaved batch by batch so the machine's load hits them alike.

    PYTHONPATH=src python bench/fix/steps_cpu.py [--spec-dir DIR] [--batches 40] [--batch 200]

Each step adds one change to the one above it. Figure: the best batch (the engine's own cost
with the least interference) and the median batch, µs of process CPU per round trip (both
sides together), per step and store.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

HERE = Path(__file__).resolve().parent
sys.path.insert(0, os.environ.get("KEEL_SRC", str(HERE.parents[1] / "src")))

from keel.venues.fix import (  # noqa: E402
    Application,
    FileStore,
    FrameSplitter,
    Message,
    Session,
    SessionConfig,
    codec,
    load_dictionary,
)

NOS = {11: "", 21: "1", 38: "100", 40: "2", 44: "10.5", 54: "1", 55: "AAPL",
       60: "20251121-08:30:00.000"}
# step -> (codec, validation, FileStore deferred)
STEPS = {
    "base (python codec, strict, write-through store)": ("python", "strict", False),
    "+ lazy validation": ("python", "lazy", False),
    "+ compiled codec": ("native", "lazy", False),
    "+ deferred store writes": ("native", "lazy", True),
}


class Venue(Application):
    read_tags: ClassVar[dict[str, frozenset[int]]] = {"D": frozenset({11, 38, 44, 54, 55})}

    def __init__(self) -> None:
        self.n = 0

    def from_app(self, msg: Message, session: Session) -> None:
        self.n += 1
        b = msg.body.fields
        session.send(Message("8", {37: f"O{self.n}", 17: f"E{self.n}", 20: "0", 150: "2",
                                   39: "2", 11: b[11], 55: b[55], 54: b[54], 38: b[38],
                                   32: b[38], 31: b[44], 151: "0", 14: b[38], 6: b[44]}))


class Client(Application):
    read_tags: ClassVar[dict[str, frozenset[int]]] = {"8": frozenset()}

    def from_app(self, msg: Message, session: Session) -> None:
        pass


def make_pair(spec_dir: str, validation: str, store: str, deferred: bool
              ) -> Callable[[int], None]:
    dd = load_dictionary("FIX.4.2", spec_dir)
    t = time.time()

    def st(name: str) -> FileStore | None:
        return (FileStore(tempfile.mkdtemp(), name, deferred=deferred)
                if store == "file" else None)

    acc = Session(SessionConfig("FIX.4.2", "VENUE", "BENCH", check_latency=False,
                                validation=validation), dd, st("acc"), Venue())
    ini = Session(SessionConfig("FIX.4.2", "BENCH", "VENUE", initiator=True,
                                check_latency=False, validation=validation), dd, st("ini"),
                  Client())
    sp_a, sp_i = FrameSplitter(), FrameSplitter()
    acc.on_connect(t)
    ini.on_connect(t)

    def exchange() -> None:
        for f in sp_a.feed(b"".join(ini.take_output())):
            acc.on_frame(f, t)
        for f in sp_i.feed(b"".join(acc.take_output())):
            ini.on_frame(f, t)

    exchange()
    exchange()
    assert ini.is_logged_on
    seq = [0]

    def run(n: int) -> None:
        for _ in range(n):
            seq[0] += 1
            body = dict(NOS)
            body[11] = f"C{seq[0]}"
            ini.send(Message("D", body), t)
            exchange()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec-dir", default=None)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--stores", default="memory,file")
    a = ap.parse_args()
    if a.spec_dir is None:
        from keel.venues.fix.dictionary import find_spec_dir

        a.spec_dir = str(find_spec_dir(None))
    steps = {k: v for k, v in STEPS.items()
             if v[0] in codec.available_codecs()}
    if len(steps) < len(STEPS):
        print("compiled codec not installed (scripts/build-native): its steps skipped",
              file=sys.stderr)
    load0 = os.getloadavg()[0]
    for store in a.stores.split(","):
        runs = {}
        for name, (cod, validation, deferred) in steps.items():
            if store == "memory" and deferred:
                continue  # deferred writes only change the file store
            codec.use_codec(cod)
            runs[name] = (cod, make_pair(a.spec_dir, validation, store, deferred))
            runs[name][1](500)  # warm up: shapes, templates, caches
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(a.batches):
            for name, (cod, run) in runs.items():
                codec.use_codec(cod)
                c0 = time.process_time()
                run(a.batch)
                times[name].append((time.process_time() - c0) / a.batch * 1e6)
        print(f"\nstore={store} batches={a.batches}x{a.batch} load(1m) "
              f"{load0:.1f}-{os.getloadavg()[0]:.1f}")
        print("| step | best µs/rt | median µs/rt |")
        print("|---|---:|---:|")
        for name, xs in times.items():
            print(f"| {name} | {min(xs):.1f} | {statistics.median(xs):.1f} |")
    codec.use_codec("auto")


if __name__ == "__main__":
    main()
