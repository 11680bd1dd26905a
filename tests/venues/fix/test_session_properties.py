"""Property: whatever is lost with dropped connections, after a reconnect and a few heartbeats
every application message has been processed exactly once, in order, on both sides."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import FIX_SPEC

from keel.venues.fix.application import Application
from keel.venues.fix.codec import FrameSplitter, Message
from keel.venues.fix.dictionary import load_dictionary
from keel.venues.fix.session import Session, SessionConfig

T0 = 1_763_713_800.0


class Recorder(Application):
    def __init__(self) -> None:
        self.got: list[str] = []

    def from_app(self, msg: Message, session: Session) -> None:
        self.got.append(msg.get(11) or "")


def _deliver(src: Session, dst: Session, sp: FrameSplitter, t: float, lose: bool) -> bool:
    data = b"".join(src.take_output())
    if not data or lose or not dst.connected or not src.connected:
        return bool(data)
    for f in sp.feed(data):
        dst.on_frame(f, t)
    return True


def _order(cid: str) -> Message:
    return Message("D", {11: cid, 21: "1", 40: "1", 54: "1", 55: "X",
                         60: "20251121-08:30:00"})


OPS = st.lists(st.sampled_from(["ini", "acc", "drop", "lose", "tick"]), max_size=25)


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_exactly_once_in_order_whatever_is_lost(ops: list[str]) -> None:
    dd = load_dictionary("FIX.4.2", FIX_SPEC)
    ini = Session(SessionConfig("FIX.4.2", "A", "B", initiator=True, check_latency=False), dd,
                  application=Recorder())
    acc = Session(SessionConfig("FIX.4.2", "B", "A", check_latency=False), dd,
                  application=Recorder())
    t = T0
    sent_by_ini: list[str] = []
    sent_by_acc: list[str] = []
    sp_i, sp_a = FrameSplitter(), FrameSplitter()

    def connect() -> None:
        nonlocal sp_i, sp_a
        sp_i, sp_a = FrameSplitter(), FrameSplitter()
        acc.on_connect(t)
        ini.on_connect(t)

    def pump(lose_to_ini: bool = False) -> None:
        for _ in range(40):
            moved = _deliver(ini, acc, sp_a, t, False)
            moved |= _deliver(acc, ini, sp_i, t, lose_to_ini)
            if acc.disconnect_requested or ini.disconnect_requested:
                ini.on_disconnect(t)
                acc.on_disconnect(t)
            if not moved:
                return

    connect()
    pump()
    for i, op in enumerate(ops):
        t += 1
        if op == "ini":
            sent_by_ini.append(f"i{i}")
            ini.send(_order(f"i{i}"), t)
            pump()
        elif op == "acc":
            sent_by_acc.append(f"a{i}")
            acc.send(_order(f"a{i}"), t)
            pump()
        elif op == "lose":
            sent_by_acc.append(f"a{i}")
            acc.send(_order(f"a{i}"), t)
            pump(lose_to_ini=True)
        elif op == "drop":
            ini.on_disconnect(t)
            acc.on_disconnect(t)
        elif op == "tick":
            if not ini.connected:
                connect()
            pump()
    if not ini.connected or not acc.connected:
        connect()
        pump()
    for _ in range(4):  # heartbeats expose any remaining gap, which is then filled
        t += 31
        ini.on_timer(t)
        acc.on_timer(t)
        pump()
        if not ini.connected:
            connect()
            pump()
    assert acc.app.got == sent_by_ini  # type: ignore[attr-defined]
    assert ini.app.got == sent_by_acc  # type: ignore[attr-defined]
