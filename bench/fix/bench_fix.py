"""FIX engine benchmark: loopback NewOrderSingle -> ExecutionReport round trips.

keel: the venue is keel's asyncio ``Acceptor`` (in its own process) whose application answers
each NewOrderSingle with one ExecutionReport; the client is a keel ``Session`` on a blocking
socket. QuickFIX (if ``import quickfix`` works): a QuickFIX ``SocketAcceptor`` process with the
same application and a QuickFIX ``SocketInitiator`` client. Both validate every message against
the FIX 4.2 dictionary and keep messages in memory.

Measured: round-trip latency one order at a time (p50 / p99, microseconds) and pipelined
throughput (round trips per second with up to ``--window`` orders in flight, refilled in
batches of ``window / 2``: keel's client writes each batch with one ``send``, QuickFIX's
``sendToTarget`` writes every message itself).

    python bench/fix/bench_fix.py --spec-dir ../shared/fix/spec [--n 5000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

NOS_BODY = {11: "", 21: "1", 38: "100", 40: "2", 44: "10.5", 54: "1", 55: "AAPL",
            60: "20251121-08:30:00.000"}


# --------------------------------------------------------------------------- keel venue


def run_keel_server(port: int, spec_dir: str) -> None:
    import asyncio

    from keel.venues.fix import Application, Message, Session, SessionConfig, load_dictionary
    from keel.venues.fix.transport import Acceptor

    class Venue(Application):
        def __init__(self) -> None:
            self.n = 0

        def from_app(self, msg: Message, session: Session) -> None:
            self.n += 1
            b = msg.body.fields
            session.send(Message("8", {
                37: f"O{self.n}", 17: f"E{self.n}", 20: "0", 150: "2", 39: "2", 11: b[11],
                55: b[55], 54: b[54], 38: b[38], 32: b[38], 31: b[44], 151: "0", 14: b[38],
                6: b[44]}))

    cfg = SessionConfig("FIX.4.2", "VENUE", "BENCH", check_latency=False)
    session = Session(cfg, load_dictionary("FIX.4.2", spec_dir), application=Venue())

    async def main() -> None:
        acc = Acceptor([session], "127.0.0.1", port)
        await acc.start()
        print("ready", flush=True)
        await acc.serve_forever()

    asyncio.run(main())


def keel_client(port: int, spec_dir: str, n: int, window: int) -> dict[str, float]:
    from keel.venues.fix import (
        Application,
        FrameSplitter,
        Message,
        Session,
        SessionConfig,
        load_dictionary,
    )

    class Client(Application):
        def __init__(self) -> None:
            self.reports = 0

        def from_app(self, msg: Message, session: Session) -> None:
            self.reports += 1

    app = Client()
    cfg = SessionConfig("FIX.4.2", "BENCH", "VENUE", initiator=True, check_latency=False)
    s = Session(cfg, load_dictionary("FIX.4.2", spec_dir), application=app)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sp = FrameSplitter()
    clock = time.time

    def flush() -> None:
        out = s.take_output()
        if out:
            sock.sendall(b"".join(out))

    def pump_until(reports: int) -> None:
        while app.reports < reports:
            data = sock.recv(1 << 16)
            if not data:
                raise RuntimeError("venue closed the connection")
            now = clock()
            for f in sp.feed(data):
                s.on_frame(f, now)
            flush()

    s.on_connect(clock())
    flush()
    while not s.is_logged_on:
        data = sock.recv(1 << 16)
        for f in sp.feed(data):
            s.on_frame(f, clock())
        flush()

    def order(i: int) -> Message:
        body = dict(NOS_BODY)
        body[11] = f"C{i}"
        return Message("D", body)

    for i in range(200):  # warm up
        s.send(order(i), clock())
        flush()
        pump_until(app.reports + 1)
    lat = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        s.send(order(i), clock())
        flush()
        pump_until(app.reports + 1)
        lat.append((time.perf_counter_ns() - t0) / 1000)
    base = app.reports
    t0 = time.perf_counter()
    sent = 0
    while app.reports - base < n:
        if sent - (app.reports - base) <= window // 2:  # refill in batches of window/2
            while sent < n and sent - (app.reports - base) < window:
                s.send(order(sent), clock())
                sent += 1
            flush()  # one write for the whole batch
        pump_until(min(base + sent, app.reports + 1))
    rate = n / (time.perf_counter() - t0)
    sock.close()
    return _summary(lat, rate)


def _summary(lat: list[float], rate: float) -> dict[str, float]:
    q = statistics.quantiles(lat, n=100)
    return {"p50_us": statistics.median(lat), "p99_us": q[98], "round_trips_per_s": rate}


# --------------------------------------------------------------------------- QuickFIX


def _qf_cfg(folder: Path, port: int, spec_dir: str, acceptor: bool) -> Path:
    role = "acceptor" if acceptor else "initiator"
    sender, target = ("VENUE", "BENCH") if acceptor else ("BENCH", "VENUE")
    extra = (f"SocketAcceptPort={port}\n" if acceptor else
             f"SocketConnectHost=127.0.0.1\nSocketConnectPort={port}\nHeartBtInt=30\n"
             "ReconnectInterval=1\n")
    cfg = folder / f"{role}.cfg"
    cfg.write_text(
        f"[DEFAULT]\nConnectionType={role}\nStartTime=00:00:00\nEndTime=00:00:00\n"
        f"UseDataDictionary=Y\nDataDictionary={spec_dir}/FIX42.xml\nResetOnLogon=Y\n"
        f"CheckLatency=N\nSocketNodelay=Y\n{extra}"
        f"[SESSION]\nBeginString=FIX.4.2\nSenderCompID={sender}\nTargetCompID={target}\n")
    return cfg


def run_qf_server(port: int, spec_dir: str) -> None:
    import quickfix as fix

    class Venue(fix.Application):  # type: ignore[misc]
        n = 0

        def onCreate(self, sid): ...
        def onLogon(self, sid): ...
        def onLogout(self, sid): ...
        def toAdmin(self, msg, sid): ...
        def fromAdmin(self, msg, sid): ...
        def toApp(self, msg, sid): ...

        def fromApp(self, msg, sid):
            Venue.n += 1
            er = fix.Message()
            er.getHeader().setField(fix.MsgType("8"))
            for tag, value in ((37, f"O{Venue.n}"), (17, f"E{Venue.n}"), (20, "0"),
                               (150, "2"), (39, "2"), (151, "0"), (14, "100"), (6, "10.5")):
                er.setField(tag, value)
            for tag in (11, 55, 54, 38):
                er.setField(tag, msg.getField(tag))
            er.setField(32, msg.getField(38))
            er.setField(31, msg.getField(44))
            fix.Session.sendToTarget(er, sid)

    folder = Path(tempfile.mkdtemp())
    settings = fix.SessionSettings(str(_qf_cfg(folder, port, spec_dir, True)))
    app = Venue()
    acceptor = fix.SocketAcceptor(app, fix.MemoryStoreFactory(), settings,
                                  fix.ScreenLogFactory(False, False, False))
    acceptor.start()
    print("ready", flush=True)
    while True:
        time.sleep(1)


def qf_client(port: int, spec_dir: str, n: int, window: int) -> dict[str, float]:
    import threading

    import quickfix as fix

    cond = threading.Condition()
    state = {"reports": 0, "logged_on": False, "sid": None}

    class Client(fix.Application):  # type: ignore[misc]
        def onCreate(self, sid): ...

        def onLogon(self, sid):
            with cond:
                state["logged_on"] = True
                state["sid"] = sid
                cond.notify_all()

        def onLogout(self, sid): ...
        def toAdmin(self, msg, sid): ...
        def fromAdmin(self, msg, sid): ...
        def toApp(self, msg, sid): ...

        def fromApp(self, msg, sid):
            with cond:
                state["reports"] += 1
                cond.notify_all()

    folder = Path(tempfile.mkdtemp())
    settings = fix.SessionSettings(str(_qf_cfg(folder, port, spec_dir, False)))
    ini = fix.SocketInitiator(Client(), fix.MemoryStoreFactory(), settings,
                              fix.ScreenLogFactory(False, False, False))
    ini.start()
    with cond:
        cond.wait_for(lambda: state["logged_on"], 10)
    sid = state["sid"]

    def order(i: int):  # type: ignore[no-untyped-def]
        m = fix.Message()
        m.getHeader().setField(fix.MsgType("D"))
        for tag, value in NOS_BODY.items():
            m.setField(tag, f"C{i}" if tag == 11 else value)
        return m

    def wait(k: int) -> None:
        with cond:
            cond.wait_for(lambda: state["reports"] >= k, 10)

    for i in range(200):
        target = state["reports"] + 1  # read before sending: the report may beat us back
        fix.Session.sendToTarget(order(i), sid)
        wait(target)
    lat = []
    for i in range(n):
        target = state["reports"] + 1
        t0 = time.perf_counter_ns()
        fix.Session.sendToTarget(order(i), sid)
        wait(target)
        lat.append((time.perf_counter_ns() - t0) / 1000)
    base = state["reports"]
    t0 = time.perf_counter()
    sent = 0
    while sent < n:  # same refill rule; QuickFIX writes each message itself
        while sent < n and sent - (state["reports"] - base) < window:
            fix.Session.sendToTarget(order(sent), sid)
            sent += 1
        wait(min(base + sent, base + sent - window // 2))
    wait(base + n)
    rate = n / (time.perf_counter() - t0)
    ini.stop()
    return _summary(lat, rate)


# --------------------------------------------------------------------------- driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(role: str, spec_dir: str) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", role, "--port", str(port),
                             "--spec-dir", spec_dir], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready" not in line:
        proc.kill()
        raise RuntimeError(f"{role} server failed to start")
    return proc, port


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec-dir", default=os.environ.get("KEEL_FIX_SPEC_DIR",
                                                         str(HERE.parents[2] / "shared" / "fix"
                                                             / "spec")))
    ap.add_argument("--n", type=int, default=5000, help="round trips per measurement")
    ap.add_argument("--window", type=int, default=64, help="orders in flight when pipelined")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--serve", choices=["keel", "quickfix"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve == "keel":
        run_keel_server(a.port, a.spec_dir)
        return
    if a.serve == "quickfix":
        run_qf_server(a.port, a.spec_dir)
        return
    results: dict[str, dict[str, float]] = {}
    runs = [("keel", keel_client)]
    try:
        import quickfix  # noqa: F401

        runs.append(("quickfix", qf_client))
    except ImportError:
        print("quickfix not installed: keel only", file=sys.stderr)
    for name, client in runs:
        proc, port = _serve(name, a.spec_dir)
        try:
            time.sleep(0.2)
            results[name] = client(port, a.spec_dir, a.n, a.window)
        finally:
            proc.kill()
            proc.wait()
    print("| engine | p50 round trip (µs) | p99 round trip (µs) | pipelined round trips/s |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | "
              f"{r['round_trips_per_s']:,.0f} |")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
