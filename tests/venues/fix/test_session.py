"""Session state machine, sans-I/O: frames and time in, frames and disconnects out."""

from __future__ import annotations

import pytest
from tests.venues.fix.conftest import fixify

from keel.venues.fix.application import Application
from keel.venues.fix.codec import FrameSplitter, Message, decode, format_utc
from keel.venues.fix.session import Session, SessionConfig
from keel.venues.fix.store import MemoryStore

T0 = 1_763_713_800.0


class Echo(Application):
    """Echo NewOrderSingle; record what arrives."""

    def __init__(self) -> None:
        self.received: list[Message] = []
        self.logons = self.logouts = 0

    def on_logon(self, session: Session) -> None:
        self.logons += 1

    def on_logout(self, session: Session) -> None:
        self.logouts += 1

    def from_app(self, msg: Message, session: Session) -> None:
        self.received.append(msg)
        if msg.msg_type == "D" and not session.config.initiator:
            session.send(msg.copy())
        elif msg.msg_type not in ("8", "D"):
            super().from_app(msg, session)


class Peer:
    """The counterparty TW42 writing raw frames."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.seq = 1

    def send(self, body: str, t: float, seq: int | None = None, header: str = "",
             sent_at: float | None = None) -> None:
        if not body.endswith("|"):
            body += "|"
        n = self.seq if seq is None else seq
        if seq is None:
            self.seq += 1
        stamp = format_utc(t if sent_at is None else sent_at, millis=False)
        frame = fixify(f"8=FIX.4.2|{body.split('|', 1)[0]}|34={n}|49=TW42|"
                       f"52={stamp}|56=ISLD|{header}"
                       f"{body.split('|', 1)[1] if '|' in body else ''}")
        self.s.on_frame(frame, t)

    def logon(self, t: float = T0, hb: int = 30, extra: str = "") -> None:
        self.send(f"35=A|98=0|108={hb}|{extra}", t)

    def out(self) -> list[Message]:
        return [decode(f, self.s.dd) for f in self.s.take_output()]


def acceptor(dd, app: Application | None = None, **kw) -> tuple[Session, Peer]:
    s = Session(SessionConfig("FIX.4.2", "ISLD", "TW42", **kw), dd, MemoryStore(), app)
    s.on_connect(T0)
    return s, Peer(s)


def body(m: Message) -> dict[int, str]:
    return dict(m.body.fields)


def test_logon_reply_and_heartbeat_timers(dd42) -> None:
    s, p = acceptor(dd42)
    p.logon(hb=6)
    (reply,) = p.out()
    assert reply.msg_type == "A" and body(reply) == {98: "0", 108: "6"} and reply.seq_num == 1
    assert s.is_logged_on
    s.on_timer(T0 + 5.9)
    assert p.out() == []
    s.on_timer(T0 + 6.0)
    assert [m.msg_type for m in p.out()] == ["0"]
    p.send("35=0|", T0 + 6)
    s.on_timer(T0 + 12.0)
    assert [m.msg_type for m in p.out()] == ["0"]
    s.on_timer(T0 + 13.2)
    (tr,) = p.out()
    assert tr.msg_type == "1" and tr[112] == "TEST"
    s.on_timer(T0 + 20.3)
    assert not s.disconnect_requested
    s.on_timer(T0 + 20.4)
    assert s.disconnect_requested and not s.is_logged_on


def test_test_request_answered_with_its_id(dd42) -> None:
    _s, p = acceptor(dd42)
    p.logon()
    p.out()
    p.send("35=1|112=PING", T0 + 1)
    (hb,) = p.out()
    assert hb.msg_type == "0" and hb[112] == "PING"


def test_gap_triggers_resend_request_and_queue_is_drained(dd42) -> None:
    s, p = acceptor(dd42)
    p.logon()
    p.out()
    p.send("35=0|", T0, seq=5)
    (rr,) = p.out()
    assert rr.msg_type == "2" and body(rr) == {7: "2", 16: "0"}
    p.send("35=0|", T0, seq=6)
    assert p.out() == []  # already asked; no redundant request
    for n in (2, 3, 4):
        p.send("35=0|", T0, seq=n)
    assert s.next_target == 7
    assert s.resend_range is None


def test_resend_request_replays_application_and_gap_fills_admin(dd42) -> None:
    app = Echo()
    _s, p = acceptor(dd42, app)
    p.logon()
    p.send("35=D|11=ID|21=3|40=1|54=1|55=INTC|60=20251121-08:30:00", T0 + 1)
    p.send("35=1|112=X", T0 + 1)
    first = p.out()
    assert [m.msg_type for m in first] == ["A", "D", "0"]
    p.send("35=2|7=1|16=0", T0 + 2)
    out = p.out()
    assert [(m.msg_type, m.seq_num) for m in out] == [("4", 1), ("D", 2), ("4", 3)]
    assert body(out[0]) == {36: "2", 123: "Y"} and out[0].header[43] == "Y"
    d = out[1]
    assert d.header[43] == "Y" and d.header[122] == first[1].header[52]
    assert body(d) == body(first[1])
    assert body(out[2]) == {36: "4", 123: "Y"}


def test_resend_can_be_vetoed_by_application(dd42) -> None:
    class NoResend(Echo):
        def on_resend(self, msg: Message, session: Session) -> bool:
            return False

    _s, p = acceptor(dd42, NoResend())
    p.logon()
    p.send("35=D|11=ID|21=3|40=1|54=1|55=INTC|60=20251121-08:30:00", T0 + 1)
    p.out()
    p.send("35=2|7=1|16=0", T0 + 2)
    assert [(m.msg_type, m[36]) for m in p.out()] == [("4", "3")]


def test_sequence_reset_modes(dd42) -> None:
    s, p = acceptor(dd42)
    p.logon()
    p.out()
    p.send("35=4|36=10", T0, seq=0)  # reset mode: seq ignored
    assert s.next_target == 10
    p.send("35=4|36=5", T0, seq=0)
    (rej,) = p.out()
    assert rej.msg_type == "3" and rej[373] == "5" and rej[45] == "0"
    p.send("35=4|36=20|123=Y", T0, seq=10)  # gap fill
    assert s.next_target == 20


def test_seq_too_low_logs_out_and_disconnects(dd42) -> None:
    s, p = acceptor(dd42)
    p.logon()
    p.send("35=0|", T0)
    p.out()
    p.send("35=0|", T0, seq=2)
    (lo,) = p.out()
    assert lo.msg_type == "5" and lo[58] == "MsgSeqNum too low, expecting 3 but received 2"
    assert s.disconnect_requested


def test_poss_dup_too_low_is_ignored(dd42) -> None:
    s, p = acceptor(dd42)
    p.logon()
    p.send("35=0|", T0)
    p.out()
    ts = format_utc(T0, millis=False)
    p.send("35=0|", T0, seq=2, header=f"43=Y|122={ts}|")
    assert p.out() == [] and not s.disconnect_requested


def test_duplicate_logon_on_a_live_session_disconnects(dd42) -> None:
    s, p = acceptor(dd42)
    p.logon()
    p.out()
    p.logon()
    assert s.disconnect_requested


def test_first_message_must_be_logon(dd42) -> None:
    s, p = acceptor(dd42)
    p.send("35=0|", T0)
    assert s.disconnect_requested and p.out() == []


def test_bad_logon_sending_time_disconnects_silently(dd42) -> None:
    s, p = acceptor(dd42)
    p.send("35=A|98=0|108=30", T0, sent_at=T0 - 500)
    assert s.disconnect_requested and p.out() == []


def test_sending_time_and_comp_id_checks(dd42) -> None:
    s, p = acceptor(dd42)
    p.logon()
    p.out()
    p.send("35=0|", T0, sent_at=T0 + 121)
    rej, lo = p.out()
    assert (rej.msg_type, rej[373], rej[58]) == ("3", "10", "SendingTime accuracy problem")
    assert lo.msg_type == "5" and s.sent_logout
    s.on_timer(T0 + 1.9)
    assert not s.disconnect_requested
    s.on_timer(T0 + 2.1)  # logout timeout
    assert s.disconnect_requested


def test_garbled_frame_ignored_when_logged_on(dd42) -> None:
    s, p = acceptor(dd42)
    p.logon()
    p.out()
    s.on_frame(b"8=FIX.4.2\x019=5\x0135=0\x0110=000\x01", T0)
    assert not s.disconnect_requested and p.out() == []
    p.send("35=0|", T0)
    assert s.next_target == 3


def test_garbled_logon_disconnects(dd42) -> None:
    s, _ = acceptor(dd42)
    s.on_frame(b"8=FIX.4.2\x019=5\x0135=A\x0110=000\x01", T0)
    assert s.disconnect_requested


def test_unsupported_app_message_gets_business_reject(dd42) -> None:
    s, p = acceptor(dd42)
    p.logon()
    p.out()
    p.send("35=8|37=1|17=1|20=0|150=0|39=0|55=X|54=1|151=1|14=0|6=0", T0)
    (j,) = p.out()
    assert j.msg_type == "j" and body(j) == {45: "2", 58: "Unsupported Message Type",
                                             372: "8", 380: "3"}
    assert s.next_target == 3


def test_reset_seq_num_flag_resets_both_sides(dd42) -> None:
    s, p = acceptor(dd42)
    p.logon()
    for _ in range(3):
        p.send("35=0|", T0)
    p.out()
    p.seq = 1
    p.logon(extra="141=Y|")
    (a,) = p.out()
    assert a.msg_type == "A" and a.seq_num == 1 and a[141] == "Y"
    assert s.next_target == 2 and s.next_sender == 2


def test_send_while_logged_out_is_stored_not_written(dd42) -> None:
    s, p = acceptor(dd42)
    seq = s.send(Message("8", {37: "1"}), T0)
    assert seq == 1 and p.out() == [] and s.next_sender == 2
    assert s.store.get(1, 1)[0][0] == 1


# ---------------------------------------------------------------- two sessions, in memory


def pair(dd, store_i=None, store_a=None, reset=False):
    ini = Session(SessionConfig("FIX.4.2", "KEEL", "VENUE", initiator=True,
                                heartbeat_interval=30, reset_on_logon=reset), dd,
                  store_i or MemoryStore(), Echo())
    acc = Session(SessionConfig("FIX.4.2", "VENUE", "KEEL", reset_on_logon=reset), dd,
                  store_a or MemoryStore(), Echo())
    return ini, acc


def pump(a: Session, b: Session, t: float, chunk: int = 7, drop_to_a: bool = False) -> None:
    """Deliver each side's output to the other in ``chunk``-byte pieces until quiet."""
    sp_a, sp_b = FrameSplitter(), FrameSplitter()
    for _ in range(50):
        moved = False
        for src, dst, sp, drop in ((a, b, sp_b, False), (b, a, sp_a, drop_to_a)):
            data = b"".join(src.take_output())
            if not data:
                continue
            moved = True
            if drop or not dst.connected:
                continue
            for i in range(0, len(data), chunk):
                for f in sp.feed(data[i:i + chunk]):
                    dst.on_frame(f, t)
        if not moved:
            return


def connect(ini: Session, acc: Session, t: float) -> None:
    acc.on_connect(t)
    ini.on_connect(t)
    pump(ini, acc, t)


def test_initiator_and_acceptor_log_on_and_trade(dd42) -> None:
    ini, acc = pair(dd42)
    connect(ini, acc, T0)
    assert ini.is_logged_on and acc.is_logged_on
    ini.send(Message("D", {11: "c1", 21: "1", 40: "1", 54: "1", 55: "X", 60: "20251121-08:30:00"}),
             T0)
    pump(ini, acc, T0)
    assert [m.get(11) for m in acc.app.received] == ["c1"]  # type: ignore[attr-defined]
    assert [m.get(11) for m in ini.app.received] == ["c1"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_exactly_once_across_a_reconnect(dd42, chunk: int) -> None:
    """The venue's replies are lost with the connection, and an order is sent while down:
    after the next Logon the gaps are resent and each message is processed exactly once."""
    ini, acc = pair(dd42)
    connect(ini, acc, T0)
    order = {21: "1", 40: "1", 54: "1", 55: "X", 60: "20251121-08:30:00"}
    ini.send(Message("D", {11: "c1", **order}), T0)
    pump(ini, acc, T0, chunk, drop_to_a=True)  # the echo is lost
    ini.on_disconnect(T0 + 1)
    acc.on_disconnect(T0 + 1)
    ini.send(Message("D", {11: "c2", **order}), T0 + 2)  # while down: stored
    connect(ini, acc, T0 + 3)
    pump(ini, acc, T0 + 3, chunk)
    assert [m.get(11) for m in acc.app.received] == ["c1", "c2"]  # type: ignore[attr-defined]
    got = [m.get(11) for m in ini.app.received]  # type: ignore[attr-defined]
    assert got == ["c1", "c2"]
    for k in range(1, 4):  # heartbeats close any remaining admin gap
        ini.on_timer(T0 + 3 + 31 * k)
        acc.on_timer(T0 + 3 + 31 * k)
        pump(ini, acc, T0 + 3 + 31 * k, chunk)
    assert ini.next_sender == acc.next_target and acc.next_sender == ini.next_target


def test_wrong_comp_id_mid_session_rejects_and_logs_out(dd42, fx) -> None:
    s, p = acceptor(dd42)
    p.logon()
    p.out()
    stamp = format_utc(T0, millis=False)
    s.on_frame(fx(f"8=FIX.4.2|35=0|34=2|49=WT|52={stamp}|56=ISLD|"), T0)
    rej, lo = p.out()
    assert (rej.msg_type, rej[373], lo.msg_type) == ("3", "9", "5")


def test_initiator_logon_timeout(dd42) -> None:
    ini = Session(SessionConfig("FIX.4.2", "TW42", "ISLD", initiator=True, logon_timeout=10),
                  dd42)
    ini.on_connect(T0)
    (logon,) = [decode(f, dd42) for f in ini.take_output()]
    assert logon.msg_type == "A" and logon[108] == "30" and 141 not in logon
    ini.on_timer(T0 + 9.9)
    assert not ini.disconnect_requested
    ini.on_timer(T0 + 10)
    assert ini.disconnect_requested


def test_initiator_reset_on_logon_sends_141(dd42) -> None:
    ini, acc = pair(dd42, reset=True)
    connect(ini, acc, T0)
    assert ini.is_logged_on and acc.is_logged_on
    ini.on_disconnect(T0 + 1)
    acc.on_disconnect(T0 + 1)
    connect(ini, acc, T0 + 2)  # both start again from 1
    assert ini.is_logged_on and ini.next_sender == 2 and acc.next_target == 2
