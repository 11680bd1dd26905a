"""Fair FIX engine benchmark: NewOrderSingle -> ExecutionReport round trips over loopback.

Both engines get the same structure on both sides:

* **venue** (a separate process): keel's asyncio ``Acceptor`` / QuickFIX's ``SocketAcceptor``,
  whose application answers each NewOrderSingle with one ExecutionReport (filled). Both
  validate every message against the same ``FIX42.xml``.
* **client** (this process, one thread, no hand-off): keel's ``Session`` on a blocking socket /
  QuickFIX's ``SocketInitiator`` driven by ``poll()`` from this thread, so ``fromApp`` runs
  here too. Each order is built, sent, and the report awaited by the same thread.
* **store**: ``--store memory`` (both engines' memory stores) or ``--store file`` (keel's
  ``FileStore`` / QuickFIX's ``FileStore``: every sent message appended and flushed to the
  OS before the next, sequence numbers rewritten in place; neither calls fsync).

Phases, per engine, interleaved round by round (engine order alternates each round):

1. ``latency``: one order at a time; p50 / p99 / p99.9 round trip in µs.
2. ``pipelined``: up to ``--window`` orders in flight, **one write per order** on both.
3. ``batched``: the same, but refilled ``window / 2`` orders at a time: keel writes each refill
   with one ``send``; QuickFIX's API has no way to coalesce (``sendToTarget`` writes each
   message itself), so its batched figure is its one-write-per-order path refilled the same way.

CPU per round trip per side (client: this process' rusage; venue: ``/proc/<pid>/stat``) is
measured over the pipelined phase. Floors in the same run: a raw TCP echo (blocking thread
server) and an asyncio echo (``asyncio.Protocol``), each echoing a FIX-sized message to the
same blocking client.

    python bench/fix/bench_fix.py --rounds 5 --n 2000 [--store file] [--json out.json]

QuickFIX is measured when ``import quickfix`` works: run this with the interpreter of the
virtualenv ``bench/fix/build_quickfix.sh`` builds (it sees keel through ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

NOS_BODY = {11: "", 21: "1", 38: "100", 40: "2", 44: "10.5", 54: "1", 55: "AAPL",
            60: "20251121-08:30:00.000"}

# keel's #18 steps as engines of one run (client and venue alike): codec, validation mode,
# FileStore deferred (matters with --store file), venue loop on uvloop (needs keel[fast])
KEEL_VARIANTS: dict[str, dict[str, object]] = {
    "keel-base": {"codec": "python", "validation": "strict", "deferred": False, "uvloop": False},
    "keel-lazy": {"codec": "python", "validation": "lazy", "deferred": False, "uvloop": False},
    "keel-native": {"codec": "native", "validation": "lazy", "deferred": False, "uvloop": False},
    "keel-deferred": {"codec": "native", "validation": "lazy", "deferred": True,
                      "uvloop": False},
    "keel": {"codec": "native", "validation": "lazy", "deferred": True, "uvloop": True},
}
# what each side's application reads (lazy validation checks these values)
VENUE_READS = {"D": frozenset({11, 38, 44, 54, 55})}
CLIENT_READS: dict[str, frozenset[int]] = {"8": frozenset()}


def _variant(name: str, uvloop_flag: bool) -> dict[str, object]:
    v = dict(KEEL_VARIANTS[name])
    v["uvloop"] = bool(v["uvloop"]) or uvloop_flag
    if v["uvloop"]:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            v["uvloop"] = False
    from keel.venues.fix import codec

    if v["codec"] not in codec.available_codecs():
        raise SystemExit(f"{name}: the compiled codec is not installed (scripts/build-native)")
    codec.use_codec(str(v["codec"]))
    return v
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _spec_default() -> str:
    from keel.venues.fix.dictionary import find_spec_dir

    return os.environ.get("KEEL_FIX_SPEC_DIR") or str(find_spec_dir(None))


# --------------------------------------------------------------------------- venues


def run_keel_server(port: int, spec_dir: str, store: str, variant: str, uvloop: bool) -> None:
    import asyncio

    from keel.venues.fix import (
        Application,
        FileStore,
        Message,
        Session,
        SessionConfig,
        load_dictionary,
    )
    from keel.venues.fix.transport import Acceptor

    v = _variant(variant, uvloop)
    uvloop = bool(v["uvloop"])

    class Venue(Application):
        read_tags = VENUE_READS

        def __init__(self) -> None:
            self.n = 0

        def from_app(self, msg: Message, session: Session) -> None:
            self.n += 1
            b = msg.body.fields
            session.send(Message("8", {
                37: f"O{self.n}", 17: f"E{self.n}", 20: "0", 150: "2", 39: "2", 11: b[11],
                55: b[55], 54: b[54], 38: b[38], 32: b[38], 31: b[44], 151: "0", 14: b[38],
                6: b[44]}))

    cfg = SessionConfig("FIX.4.2", "VENUE", "BENCH", check_latency=False,
                        validation=str(v["validation"]))
    st = (FileStore(tempfile.mkdtemp(), cfg.session_id, deferred=bool(v["deferred"]))
          if store == "file" else None)
    session = Session(cfg, load_dictionary("FIX.4.2", spec_dir), store=st, application=Venue())

    async def main() -> None:
        acc = Acceptor([session], "127.0.0.1", port)
        await acc.start()
        print("ready", flush=True)
        await acc.serve_forever()

    if uvloop:
        import uvloop as _uv

        _uv.run(main())
    else:
        asyncio.run(main())


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
        f"CheckLatency=N\nSocketNodelay=Y\nFileStorePath={folder}/store\n{extra}"
        f"[SESSION]\nBeginString=FIX.4.2\nSenderCompID={sender}\nTargetCompID={target}\n")
    return cfg


def _qf_store(fix, settings, store: str):  # type: ignore[no-untyped-def]
    return fix.FileStoreFactory(settings) if store == "file" else fix.MemoryStoreFactory()


def run_qf_server(port: int, spec_dir: str, store: str) -> None:
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
                               (150, "2"), (39, "2"), (151, "0")):
                er.setField(tag, value)
            for tag in (11, 55, 54, 38):
                er.setField(tag, msg.getField(tag))
            er.setField(32, msg.getField(38))
            er.setField(14, msg.getField(38))
            er.setField(31, msg.getField(44))
            er.setField(6, msg.getField(44))
            fix.Session.sendToTarget(er, sid)

    folder = Path(tempfile.mkdtemp())
    settings = fix.SessionSettings(str(_qf_cfg(folder, port, spec_dir, True)))
    app, st, log = Venue(), _qf_store(fix, settings, store), fix.ScreenLogFactory(False, False,
                                                                               False)
    acceptor = fix.SocketAcceptor(app, st, settings, log)  # keep the factories referenced
    print("ready", flush=True)
    acceptor.block()  # the venue's own thread runs the engine: no hand-off


def run_tcp_echo(port: int) -> None:
    srv = socket.create_server(("127.0.0.1", port))
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = conn.recv(1 << 16)
            if not data:
                break
            conn.sendall(data)
        conn.close()


def run_asyncio_echo(port: int, uvloop: bool) -> None:
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport  # type: ignore[assignment]
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def data_received(self, data: bytes) -> None:
            self.t.write(data)  # type: ignore[attr-defined]

    async def main() -> None:
        srv = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", port)
        print("ready", flush=True)
        await srv.serve_forever()

    if uvloop:
        import uvloop as _uv

        _uv.run(main())
    else:
        asyncio.run(main())


# --------------------------------------------------------------------------- clients
# A client exposes send_one(i) (build + encode + write one order), send_many(ids) (one write
# for all when the engine can), and wait(k) (block in this thread until k reports are in).


class KeelClient:
    def __init__(self, port: int, spec_dir: str, store: str, variant: str = "keel") -> None:
        from keel.venues.fix import (
            Application,
            FileStore,
            FrameSplitter,
            Message,
            Session,
            SessionConfig,
            load_dictionary,
        )

        self.Message = Message
        self.variant = variant
        v = _variant(variant, False)

        class App(Application):
            reports = 0
            read_tags = CLIENT_READS

            def from_app(self, msg: Message, session: Session) -> None:
                App.reports += 1

        self.app = App
        cfg = SessionConfig("FIX.4.2", "BENCH", "VENUE", initiator=True, check_latency=False,
                            reset_on_logon=True, validation=str(v["validation"]))
        st = (FileStore(tempfile.mkdtemp(), cfg.session_id, deferred=bool(v["deferred"]))
              if store == "file" else None)
        self.s = Session(cfg, load_dictionary("FIX.4.2", spec_dir), store=st, application=App())
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sp = FrameSplitter()
        self.s.on_connect(time.time())
        self._flush()
        while not self.s.is_logged_on:
            self._pump()

    @property
    def reports(self) -> int:
        return self.app.reports

    def _flush(self) -> None:
        out = self.s.take_output()
        if out:
            self.sock.sendall(out[0] if len(out) == 1 else b"".join(out))

    def _pump(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise RuntimeError("venue closed the connection")
        now = time.time()
        for f in self.sp.feed(data):
            self.s.on_frame(f, now)
        self._flush()

    def _order(self, i: int):  # type: ignore[no-untyped-def]
        body = dict(NOS_BODY)
        body[11] = f"C{i}"
        return self.Message("D", body)

    def activate(self) -> None:
        """Make this variant's codec the process's (variants share the client process)."""
        from keel.venues.fix import codec

        codec.use_codec(str(KEEL_VARIANTS[self.variant]["codec"]))

    def send_one(self, i: int) -> None:
        self.s.send(self._order(i), time.time())
        self._flush()

    def send_many(self, ids: range) -> None:
        now = time.time()
        for i in ids:
            self.s.send(self._order(i), now)
        self._flush()  # one write for the batch

    def wait(self, k: int) -> None:
        while self.app.reports < k:
            self._pump()

    def close(self) -> None:
        self.sock.close()


class QuickFixClient:
    def __init__(self, port: int, spec_dir: str, store: str) -> None:
        import quickfix as fix

        self.fix = fix
        state = self.state = {"reports": 0, "sid": None}

        class App(fix.Application):  # type: ignore[misc]
            def onCreate(self, sid): ...
            def onLogon(self, sid):
                state["sid"] = sid

            def onLogout(self, sid): ...
            def toAdmin(self, msg, sid): ...
            def fromAdmin(self, msg, sid): ...
            def toApp(self, msg, sid): ...

            def fromApp(self, msg, sid):
                state["reports"] += 1

        folder = Path(tempfile.mkdtemp())
        settings = fix.SessionSettings(str(_qf_cfg(folder, port, spec_dir, False)))
        self._app = App()
        self._keep = (settings, _qf_store(fix, settings, store),
                      fix.ScreenLogFactory(False, False, False))  # must outlive the engine
        self.ini = fix.SocketInitiator(self._app, self._keep[1], settings, self._keep[2])
        deadline = time.monotonic() + 10
        while state["sid"] is None:
            self.ini.poll()  # runs the engine in this thread: no hand-off
            if time.monotonic() > deadline:
                raise RuntimeError("QuickFIX client did not log on")
        self.sid = state["sid"]

    @property
    def reports(self) -> int:
        return int(self.state["reports"])  # type: ignore[call-overload]

    def _order(self, i: int):  # type: ignore[no-untyped-def]
        m = self.fix.Message()
        m.getHeader().setField(self.fix.MsgType("D"))
        for tag, value in NOS_BODY.items():
            m.setField(tag, f"C{i}" if tag == 11 else value)
        return m

    def send_one(self, i: int) -> None:
        self.fix.Session.sendToTarget(self._order(i), self.sid)

    def send_many(self, ids: range) -> None:
        for i in ids:  # no batching API: each sendToTarget writes its message
            self.fix.Session.sendToTarget(self._order(i), self.sid)

    def wait(self, k: int) -> None:
        state, poll = self.state, self.ini.poll
        while state["reports"] < k:  # type: ignore[operator]
            poll()

    def close(self) -> None:
        self.ini.stop(True)


class EchoClient:
    """The floor: the same blocking client, a FIX-sized message, the server echoes it."""

    def __init__(self, port: int, spec_dir: str, store: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.msg = b"x" * 160
        self.reports = 0
        self._got = 0

    def send_one(self, i: int) -> None:
        self.sock.sendall(self.msg)

    def send_many(self, ids: range) -> None:
        self.sock.sendall(self.msg * len(ids))

    def wait(self, k: int) -> None:
        need = k * len(self.msg)
        while self._got < need:
            data = self.sock.recv(1 << 16)
            if not data:
                raise RuntimeError("echo server closed")
            self._got += len(data)
        self.reports = self._got // len(self.msg)

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- measurement


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(client, pid: int, n: int, window: int, warmup: int = 200) -> dict[str, object]:  # type: ignore[no-untyped-def]
    c = client
    if hasattr(c, "activate"):
        c.activate()
    i = 0
    for _ in range(warmup):
        k = c.reports + 1
        c.send_one(i)
        i += 1
        c.wait(k)
    lat: list[float] = []
    cpu_c, cpu_s = _self_cpu(), _proc_cpu(pid)
    for _ in range(n):
        k = c.reports + 1
        t0 = time.perf_counter_ns()
        c.send_one(i)
        c.wait(k)
        lat.append((time.perf_counter_ns() - t0) / 1000)
        i += 1
    out: dict[str, object] = {"lat_us": lat,
                              "cpu_lat_client_us": (_self_cpu() - cpu_c) / n * 1e6,
                              "cpu_lat_venue_us": (_proc_cpu(pid) - cpu_s) / n * 1e6}

    def pipelined(batched: bool) -> tuple[float, float, float]:
        nonlocal i
        base = c.reports
        sent = 0
        cpu_c, cpu_s = _self_cpu(), _proc_cpu(pid)
        t0 = time.perf_counter()
        while sent < n:
            if batched:
                k = min(window // 2, n - sent)
                c.send_many(range(i, i + k))
                i += k
                sent += k
                c.wait(base + max(sent - window // 2, 0))
            else:
                while sent < n and sent - (c.reports - base) < window:
                    c.send_one(i)
                    i += 1
                    sent += 1
                c.wait(c.reports + 1)
        c.wait(base + n)
        dt = time.perf_counter() - t0
        return n / dt, (_self_cpu() - cpu_c) / n * 1e6, (_proc_cpu(pid) - cpu_s) / n * 1e6

    out["pipelined"], out["cpu_client_us"], out["cpu_venue_us"] = pipelined(False)
    out["batched"], _, _ = pipelined(True)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(role: str, a: argparse.Namespace) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    cmd = [sys.executable, __file__, "--serve", role, "--port", str(port), "--spec-dir",
           a.spec_dir, "--store", a.store] + (["--uvloop"] if a.uvloop else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready" not in line:
        proc.kill()
        raise RuntimeError(f"{role} server failed to start")
    time.sleep(0.2)
    return proc, port


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec-dir", default=None)
    ap.add_argument("--n", type=int, default=2000, help="round trips per phase per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--window", type=int, default=64, help="orders in flight when pipelined")
    ap.add_argument("--store", choices=["memory", "file"], default="memory")
    ap.add_argument("--uvloop", action="store_true", help="keel venue and asyncio floor on uvloop")
    ap.add_argument("--engines", default="tcp,asyncio,keel,quickfix",
                    help="comma list; keel variants: " + ", ".join(KEEL_VARIANTS))
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.spec_dir = a.spec_dir or _spec_default()
    servers: dict[str, Callable[[], None]] = {
        "quickfix": lambda: run_qf_server(a.port, a.spec_dir, a.store),
        "tcp": lambda: run_tcp_echo(a.port),
        "asyncio": lambda: run_asyncio_echo(a.port, a.uvloop),
    }
    if a.serve:
        if a.serve in KEEL_VARIANTS:
            run_keel_server(a.port, a.spec_dir, a.store, a.serve, a.uvloop)
        else:
            servers[a.serve]()
        return
    clients: dict[str, Callable[..., object]] = {
        "quickfix": QuickFixClient, "tcp": EchoClient, "asyncio": EchoClient}
    for name in KEEL_VARIANTS:
        clients[name] = (lambda port, spec, store, _n=name: KeelClient(port, spec, store, _n))
    engines = [e for e in a.engines.split(",") if e]
    if "quickfix" in engines:
        try:
            import quickfix  # noqa: F401
        except ImportError:
            print("quickfix not importable (build it: bench/fix/build_quickfix.sh): skipped",
                  file=sys.stderr)
            engines.remove("quickfix")
    procs = {e: _serve(e, a) for e in engines}
    acc: dict[str, dict[str, list]] = {e: {"lat_us": [], "pipelined": [], "batched": [],  # type: ignore[type-arg]
                                           "cpu_client_us": [], "cpu_venue_us": [],
                                           "cpu_lat_client_us": [], "cpu_lat_venue_us": []}
                                       for e in engines}
    load = []
    conns = {}
    try:
        # one connection per engine for the whole run (QuickFIX's poll-mode initiator cannot
        # log on again in the same process after stop())
        conns = {e: clients[e](procs[e][1], a.spec_dir, a.store) for e in engines}
        for r in range(a.rounds):
            order = engines if r % 2 == 0 else engines[::-1]
            for e in order:
                proc, _ = procs[e]
                res = measure(conns[e], proc.pid, a.n, a.window)
                acc[e]["lat_us"].extend(res["lat_us"])  # type: ignore[arg-type]
                for k in ("pipelined", "batched", "cpu_client_us", "cpu_venue_us",
                          "cpu_lat_client_us", "cpu_lat_venue_us"):
                    acc[e][k].append(res[k])
                lat = res["lat_us"]
                print(f"round {r} {e:9s} p50 {statistics.median(lat):6.0f} µs  "  # type: ignore[arg-type]
                      f"pipelined {res['pipelined']:8,.0f}/s  batched {res['batched']:8,.0f}/s  "
                      f"cpu client {res['cpu_client_us']:5.0f} venue {res['cpu_venue_us']:5.0f} µs",
                      file=sys.stderr, flush=True)
            load.append(os.getloadavg()[0])
    finally:
        for c in conns.values():
            c.close()
        for proc, _ in procs.values():
            proc.kill()
            proc.wait()
    summary: dict[str, object] = {
        "machine": f"{platform.node()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "store": a.store, "uvloop": a.uvloop, "rounds": a.rounds, "n": a.n, "window": a.window,
        "load_avg_1m": [round(x, 2) for x in load]}
    print(f"\nstore={a.store} uvloop={a.uvloop} rounds={a.rounds} n={a.n} window={a.window} "
          f"load(1m)={min(load):.1f}-{max(load):.1f}")
    print("| engine | p50 µs | p99 µs | p99.9 µs | pipelined/s (1 write/order) | batched/s |"
          " CPU µs/rt client / venue, one at a time | pipelined |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for e in engines:
        d = acc[e]
        lat = d["lat_us"]
        row = {"p50_us": statistics.median(lat), "p99_us": _pct(lat, 0.99),
               "p999_us": _pct(lat, 0.999),
               "pipelined_per_s_best": max(d["pipelined"]),
               "pipelined_per_s_median": statistics.median(d["pipelined"]),
               "batched_per_s_best": max(d["batched"]),
               "batched_per_s_median": statistics.median(d["batched"]),
               "cpu_client_us": min(d["cpu_client_us"]), "cpu_venue_us": min(d["cpu_venue_us"]),
               "cpu_lat_client_us": min(d["cpu_lat_client_us"]),
               "cpu_lat_venue_us": min(d["cpu_lat_venue_us"]),
               "p50_by_round": [statistics.median(lat[i:i + a.n])
                                for i in range(0, len(lat), a.n)]}
        summary[e] = row
        print(f"| {e} | {row['p50_us']:.0f} | {row['p99_us']:.0f} | {row['p999_us']:.0f} | "
              f"{row['pipelined_per_s_median']:,.0f} (best {row['pipelined_per_s_best']:,.0f}) | "
              f"{row['batched_per_s_median']:,.0f} (best {row['batched_per_s_best']:,.0f}) | "
              f"{row['cpu_lat_client_us']:.0f} / {row['cpu_lat_venue_us']:.0f} | "
              f"{row['cpu_client_us']:.0f} / {row['cpu_venue_us']:.0f} |")
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
