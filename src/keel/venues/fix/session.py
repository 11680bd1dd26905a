"""The FIX session state machine (sans-I/O): frames and time in, frames and a disconnect flag out.

The transport calls :meth:`Session.on_connect`, :meth:`Session.on_frame` (one complete frame
from :class:`~keel.venues.fix.codec.FrameSplitter`), :meth:`Session.on_timer` (about every
100 ms) and :meth:`Session.on_disconnect`; after each call it writes :meth:`Session.take_output`
to the socket and closes it when :attr:`Session.disconnect_requested` is set. Time is POSIX
seconds (float) passed in by the caller; the session never reads a clock or touches a socket.

Behaviour follows the FIX session protocol as QuickFIX implements it (so its acceptance suite
passes): Logon with HeartBtInt and ResetSeqNumFlag, Heartbeat / TestRequest timers (TestRequest
after 1.2 x HeartBtInt of silence, disconnect after 2.4 x), sequence gaps answered by
ResendRequest (messages above the gap are queued), replay with PossDupFlag / OrigSendingTime and
admin messages replaced by SequenceReset-GapFill, SequenceReset in both modes, session Reject
with SessionRejectReason, BusinessMessageReject, Logout (2 s logout timeout), SendingTime
accuracy (120 s) and CompID checks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from keel.errors import ProtocolError
from keel.venues.fix.application import (
    Application,
    BusinessReject,
    BusinessRejectReason,
    UnsupportedMessageType,
)
from keel.venues.fix.codec import (
    InvalidMessage,
    Message,
    decode,
    format_utc,
    parse_utc_timestamp,
)
from keel.venues.fix.config import SessionConfig
from keel.venues.fix.dictionary import DataDictionary
from keel.venues.fix.store import MemoryStore, MessageStore
from keel.venues.fix.validate import REJECT_TEXT, RejectError, SessionRejectReason, validate

log = logging.getLogger("keel.venues.fix")

ADMIN_TYPES = frozenset({"0", "A", "1", "2", "3", "4", "5"})
_ALWAYS_SENT = frozenset({"A", "5", "2", "4"})
_ROUTE_SWAP = ((115, 128), (128, 115), (116, 129), (129, 116))
_LOCATION_SWAP = ((144, 145), (145, 144))


class _Disconnect(Exception):
    pass


class _FieldNotFound(Exception):
    def __init__(self, tag: int) -> None:
        self.tag = tag


class _UnsupportedVersion(Exception):
    pass


class Session:
    """One FIX session: sequence numbers, timers, validation and the application callbacks.

    Args:
        config: the session's :class:`SessionConfig`.
        dictionary: data dictionary of ``config.begin_string``.
        store: message store (default: a fresh :class:`MemoryStore`).
        application: callbacks (default: :class:`Application`, which rejects app messages).
    """

    def __init__(self, config: SessionConfig, dictionary: DataDictionary,
                 store: MessageStore | None = None,
                 application: Application | None = None) -> None:
        if dictionary.begin_string != config.begin_string:
            raise ProtocolError("dictionary and session versions differ",
                                field="begin_string", value=dictionary.begin_string)
        self.config = config
        self.dd = dictionary
        self.store: MessageStore = store if store is not None else MemoryStore()
        self._store_flush: Callable[[], None] | None = getattr(self.store, "flush", None)
        self.app = application if application is not None else Application()
        self.session_id = config.session_id
        self._begin = config.begin_string
        self._fix42_plus = config.begin_string >= "FIX.4.2"
        self._outbox: list[bytes] = []
        self.disconnect_requested = False
        self.connected = False
        self.received_logon = False
        self.sent_logon = False
        self.sent_logout = False
        self.received_reset = False
        self.sent_reset = False
        self.heartbeat_interval = config.heartbeat_interval
        self.last_sent = 0.0
        self.last_received = 0.0
        self.test_request = 0
        self.resend_range: tuple[int, int] | None = None
        self._queue: dict[int, Message] = {}
        self._now = 0.0
        #: (start, end) of the schedule period the sequence numbers belong to (None: not
        #: seen yet; a new period resets them, as QuickFIX does)
        self.period: tuple[float, float] | None = None
        self.on_event: Callable[[str], None] | None = None
        #: lazy validation: the values checked per message type (strict: none named)
        self._read_tags: Mapping[str, frozenset[int]] = (
            self.app.read_tags if config.validation == "lazy" else {})
        self.app.on_create(self)

    # ------------------------------------------------------------------ public API

    @property
    def is_logged_on(self) -> bool:
        return self.received_logon and self.sent_logon

    @property
    def next_sender(self) -> int:
        return self.store.next_sender

    @property
    def next_target(self) -> int:
        return self.store.next_target

    def take_output(self) -> list[bytes]:
        """Frames to write to the socket, in order (the list is handed over and cleared).

        A store that holds writes back (``FileStore(deferred=True)``) is flushed first, so a
        message is in the store before the peer can see it."""
        flush = self._store_flush
        if flush is not None:
            flush()
        out, self._outbox = self._outbox, []
        return out

    def on_connect(self, now: float) -> None:
        """A transport connection is up; an initiator sends its Logon now."""
        self._now = now
        self.connected = True
        self.disconnect_requested = False
        self.last_sent = self.last_received = now
        if not self.in_session_time(now):
            self._event("connected outside the session's hours; disconnecting")
            self._disconnect()
            return
        if self.config.initiator:
            if self.config.reset_on_logon:
                self.store.reset()
            self._generate_logon(None)

    def on_disconnect(self, now: float) -> None:
        """The transport connection is gone (either side closed it)."""
        self._now = now
        if self.connected:
            self._disconnect()
        self.connected = False
        if self._store_flush is not None:
            self._store_flush()

    def on_frame(self, data: bytes, now: float) -> None:
        """Process one frame from the peer."""
        self._now = now
        if self.disconnect_requested:
            return
        if not self.in_session_time(now):
            self._event("message received outside the session's hours; disconnecting")
            self._disconnect()
            return
        try:
            msg = decode(data, self.dd)
        except InvalidMessage as exc:
            self._event(f"ignored invalid frame: {exc}")
            if not self.is_logged_on:
                self._disconnect()
            return
        self._next(msg, now, queued=False)

    def on_timer(self, now: float) -> None:
        """Heartbeats, test requests and time-outs; call it about every 100 ms."""
        self._now = now
        if not self.connected or self.disconnect_requested:
            return
        if not self.in_session_time(now):
            self._event("session hours ended")
            if self.is_logged_on and not self.sent_logout:
                self._generate_logout("Session end")
            self._disconnect()
            return
        if not self.received_logon:
            if self.sent_logon and now - self.last_received >= self.config.logon_timeout:
                self._event("timed out waiting for logon response")
                self._disconnect()
            return
        hb = self.heartbeat_interval
        if hb <= 0:
            return
        if self.sent_logout and now - self.last_sent >= self.config.logout_timeout:
            self._event("timed out waiting for logout response")
            self._disconnect()
            return
        since_recv = now - self.last_received
        if now - self.last_sent < hb and since_recv < hb:
            return
        if since_recv >= 2.4 * hb:
            self._event("timed out waiting for heartbeat")
            self._disconnect()
        elif since_recv >= 1.2 * (self.test_request + 1) * hb:
            self._generate_test_request("TEST")
            self.test_request += 1
        elif now - self.last_sent >= hb and not self.test_request:
            self._generate_heartbeat(None)

    def in_session_time(self, now: float) -> bool:
        """True when the schedule has the session open at ``now`` (always without one).

        Entering a new schedule period resets both sequence numbers (and the stored messages),
        as QuickFIX does at the start of each session.
        """
        schedule = self.config.schedule
        if schedule is None:
            return True
        p = self.period
        if p is not None and p[0] <= now <= p[1]:
            return True
        current = schedule.period(now)
        if current is None:
            return False
        # the period the stored numbers belong to: this process's, else the store's record
        # (a restart in a later period must reset too, as QuickFIX's creation time makes it)
        known = p[0] if p is not None else getattr(self.store, "period_start", None)
        if known is not None and current[0] != known:
            self._event("new session period: resetting sequence numbers")
            self.store.reset()
        if known != current[0]:
            mark = getattr(self.store, "set_period_start", None)
            if mark is not None:
                mark(current[0])
        self.period = current
        return True

    def send(self, msg: Message, now: float | None = None) -> int:
        """Send an application message; returns its MsgSeqNum.

        While logged out the message is stored (sequence number consumed) and reaches the peer
        through its ResendRequest after the next Logon, so nothing is lost.
        """
        if now is not None:
            self._now = now
        h = msg.header.fields
        h.pop(43, None)
        h.pop(122, None)
        return self._send_raw(msg)

    def logout(self, text: str = "", now: float | None = None) -> None:
        """Start an orderly Logout (the session disconnects on the reply or after 2 s)."""
        if now is not None:
            self._now = now
        if self.is_logged_on and not self.sent_logout:
            self._generate_logout(text)

    # ------------------------------------------------------------------ inbound

    def _next(self, msg: Message, now: float, queued: bool) -> None:
        h = msg.header.fields
        mt = h.get(35, "")
        try:
            if 49 not in h:
                raise _FieldNotFound(49)
            if 56 not in h:
                raise _FieldNotFound(56)
            if h.get(8) != self._begin:
                raise _UnsupportedVersion()
            validate(msg, self.dd, check_user_defined=self.config.validate_user_defined_fields,
                     read_tags=None if mt in ADMIN_TYPES else self._read_tags.get(mt))
            if mt == "A":
                self._next_logon(msg, now)
            elif mt == "0":
                self._next_heartbeat(msg, now)
            elif mt == "1":
                self._next_test_request(msg, now)
            elif mt == "4":
                self._next_sequence_reset(msg)
            elif mt == "5":
                self._next_logout(msg)
            elif mt == "2":
                self._next_resend_request(msg)
            elif mt == "3":
                self._next_reject(msg, now)
            else:
                if not self._verify(msg):
                    return
                self._incr_target()
        except RejectError as exc:
            self._generate_reject(msg, exc.reason, exc.ref_tag)
            if mt == "A":
                self._disconnect()
        except _FieldNotFound as exc:
            if self._fix42_plus and mt not in ADMIN_TYPES:
                self._generate_business_reject(
                    msg, BusinessRejectReason.CONDITIONALLY_REQUIRED_FIELD_MISSING, exc.tag)
            else:
                self._generate_reject(msg, SessionRejectReason.REQUIRED_TAG_MISSING, exc.tag)
                if mt == "A":
                    self._disconnect()
        except UnsupportedMessageType:
            self._generate_business_reject(msg, BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE)
        except BusinessReject as exc:
            self._generate_business_reject(msg, exc.reason, exc.ref_tag, exc.text)
        except _UnsupportedVersion:
            if mt == "5":
                self._next_logout(msg)
            else:
                self._generate_logout("Incorrect BeginString")
                self._incr_target()
        except _Disconnect:
            self._disconnect()
        if self.disconnect_requested:
            return
        if not queued:
            self._next_queued(now)
        if self.is_logged_on:
            self.on_timer(now)

    def _verify(self, msg: Message, too_high: bool = True, too_low: bool = True) -> bool:
        h = msg.header.fields
        mt = h[35]
        seq = msg.seq_num
        try:
            if not self._valid_logon_state(mt):
                raise _Disconnect("logon state is not valid for message")
            if not self._good_time(h[52]):
                if mt == "A" and not self.received_logon:
                    raise _Disconnect("logon with bad SendingTime")
                self._generate_reject(msg, SessionRejectReason.SENDINGTIME_ACCURACY_PROBLEM)
                self._generate_logout()
                return False
            cfg = self.config
            if cfg.check_comp_id and (h[49] != cfg.target_comp_id or h[56] != cfg.sender_comp_id):
                if mt == "A" and not self.received_logon:
                    raise _Disconnect("logon with wrong CompID")
                self._generate_reject(msg, SessionRejectReason.COMPID_PROBLEM)
                self._generate_logout()
                return False
            expected = self.store.next_target
            if too_high and seq > expected:
                self._do_target_too_high(msg)
                return False
            if too_low and seq < expected:
                self._do_target_too_low(msg)
                return False
            rr = self.resend_range
            if (too_high or too_low) and rr is not None and seq >= rr[1]:
                self._event("resend request satisfied")
                self.resend_range = None
        except _Disconnect as exc:
            self._event(str(exc))
            self._disconnect()
            return False
        self.last_received = self._now
        self.test_request = 0
        if mt in ADMIN_TYPES:
            self.app.from_admin(msg, self)
        else:
            self.app.from_app(msg, self)
        return True

    def _valid_logon_state(self, mt: str) -> bool:
        if (mt == "A" and self.sent_reset) or self.received_reset:
            return True
        if (mt == "A" and not self.received_logon) or (mt != "A" and self.received_logon):
            return True
        if mt == "5" and self.sent_logon:
            return True
        if mt != "5" and self.sent_logout:
            return True
        return mt in ("4", "3")

    def _good_time(self, sending_time: str) -> bool:
        if not self.config.check_latency:
            return True
        t = parse_utc_timestamp(sending_time)
        return t is not None and abs(self._now - t) <= self.config.max_latency

    def _do_target_too_high(self, msg: Message) -> None:
        seq = msg.seq_num
        self._event(f"MsgSeqNum too high, expecting {self.store.next_target} but received {seq}")
        if len(self._queue) < self.config.max_queued:
            self._queue[seq] = msg
        if self.resend_range is not None and seq >= self.resend_range[0]:
            return
        self._generate_resend_request(seq)

    def _do_target_too_low(self, msg: Message) -> None:
        if not msg.is_poss_dup():
            text = (f"MsgSeqNum too low, expecting {self.store.next_target} "
                    f"but received {msg.seq_num}")
            self._generate_logout(text)
            raise _Disconnect(text)
        h = msg.header.fields
        if h[35] != "4":
            orig = h.get(122)
            if orig is None:
                self._generate_reject(msg, SessionRejectReason.REQUIRED_TAG_MISSING, 122)
                return
            t_orig, t_send = parse_utc_timestamp(orig), parse_utc_timestamp(h[52])
            if t_orig is not None and t_send is not None and t_orig > t_send:
                self._generate_reject(msg, SessionRejectReason.SENDINGTIME_ACCURACY_PROBLEM)
                self._generate_logout()

    def _next_logon(self, msg: Message, now: float) -> None:
        reset_flag = msg.get(141) == "Y"
        self.received_reset = reset_flag
        if reset_flag and not self.sent_reset:
            self.store.reset()
        if self.config.initiator and not self.sent_logon and not reset_flag:
            raise _Disconnect("received logon response before sending request")
        if not self.config.initiator and self.config.reset_on_logon:
            self.store.reset()
        if not self._verify(msg, False, True):
            return
        self.received_logon = True
        if not self.config.initiator or (self.received_reset and not self.sent_reset):
            hb = msg.get(108)
            if hb is not None and hb.isdigit():
                self.heartbeat_interval = int(hb)
            self._generate_logon(msg)
        self.sent_reset = self.received_reset = False
        if msg.seq_num > self.store.next_target and not reset_flag:
            self._do_target_too_high(msg)
        else:
            self._incr_target()
            self._next_queued(now)
        if self.is_logged_on:
            self.app.on_logon(self)

    def _next_heartbeat(self, msg: Message, now: float) -> None:
        if self._verify(msg):
            self._incr_target()
            self._next_queued(now)

    def _next_test_request(self, msg: Message, now: float) -> None:
        if self._verify(msg):
            self._generate_heartbeat(msg.get(112))
            self._incr_target()
            self._next_queued(now)

    def _next_reject(self, msg: Message, now: float) -> None:
        if self._verify(msg, False, True):
            self._incr_target()
            self._next_queued(now)

    def _next_logout(self, msg: Message) -> None:
        if not self._verify(msg, False, False):
            return
        if not self.sent_logout:
            self._generate_logout()
        self._incr_target()
        if self.config.reset_on_logout:
            self.store.reset()
        self._disconnect()

    def _next_sequence_reset(self, msg: Message) -> None:
        gap_fill = msg.get(123) == "Y"
        if not self._verify(msg, gap_fill, gap_fill):
            return
        new_seq = msg.get(36)
        if new_seq is None:
            return
        n = int(new_seq)
        if n > self.store.next_target:
            self.store.set_next_target(n)
        elif n < self.store.next_target:
            self._generate_reject(msg, SessionRejectReason.VALUE_IS_INCORRECT)

    def _next_resend_request(self, msg: Message) -> None:
        if not self._verify(msg, False, False):
            return
        from keel.venues.fix.resend import replay

        replay(self, int(msg[7]), int(msg[16]))
        seq = msg.seq_num
        if seq == self.store.next_target:
            self._incr_target()

    def _next_queued(self, now: float) -> None:
        queue = self._queue
        while queue and not self.disconnect_requested:
            msg = queue.pop(self.store.next_target, None)
            if msg is None:
                return
            self._event(f"processing queued message {msg.seq_num}")
            if msg.msg_type in ("A", "2"):
                self._incr_target()
            else:
                self._next(msg, now, queued=True)

    def _incr_target(self) -> None:
        self.store.set_next_target(self.store.next_target + 1)

    # ------------------------------------------------------------------ outbound

    def _fill_header(self, msg: Message, seq: int) -> None:
        h = msg.header.fields
        h[8] = self._begin
        h[49] = self.config.sender_comp_id
        h[56] = self.config.target_comp_id
        h[34] = str(seq)
        h[52] = format_utc(self._now)

    def _send_raw(self, msg: Message, num: int = 0) -> int:
        seq = num or self.store.next_sender
        self._fill_header(msg, seq)
        mt = msg.header.fields.get(35, "")
        if mt == "4" and num:
            msg.header.fields[122] = msg.header.fields[52]
        data = msg.encode()
        if not num:
            if self.config.persist_messages:
                self.store.save(seq, data)
            self.store.set_next_sender(seq + 1)
        if self.is_logged_on or (mt in _ALWAYS_SENT and self.connected):
            self._write(data)
        return seq

    def _write(self, data: bytes) -> None:
        self._outbox.append(data)
        self.last_sent = self._now

    def _generate_logon(self, peer: Message | None) -> None:
        m = Message("A", {98: "0", 108: str(self.heartbeat_interval)})
        if self.received_reset or (peer is None and self.config.reset_on_logon):
            m[141] = "Y"
            if peer is None:
                self.sent_reset = True
        self._send_raw(m)
        self.sent_logon = True

    def _generate_logout(self, text: str = "") -> None:
        m = Message("5")
        if text:
            m[58] = text
        self._send_raw(m)
        self.sent_logout = True

    def _generate_heartbeat(self, test_req_id: str | None) -> None:
        m = Message("0")
        if test_req_id is not None:
            m[112] = test_req_id
        self._send_raw(m)

    def _generate_test_request(self, test_req_id: str) -> None:
        self._send_raw(Message("1", {112: test_req_id}))

    def _generate_resend_request(self, seq: int) -> None:
        begin = self.store.next_target
        end = 0 if self._fix42_plus else 999999
        self._send_raw(Message("2", {7: str(begin), 16: str(end)}))
        self._event(f"sent ResendRequest from {begin} to {end}")
        self.resend_range = (begin, seq - 1)

    def generate_sequence_reset(self, begin: int, new_seq: int) -> None:
        """Send SequenceReset-GapFill numbered ``begin`` moving the peer to ``new_seq``."""
        m = Message("4", {36: str(new_seq), 123: "Y"})
        m.header.fields[43] = "Y"
        self._send_raw(m, num=begin)

    def _generate_reject(self, msg: Message, reason: int, tag: int = 0) -> None:
        src = msg.header.fields
        r = Message("3")
        _reverse_route(src, r.header.fields, self._begin)
        seq_s = src.get(34, "")
        mt = src.get(35, "")
        if seq_s:
            r[45] = seq_s
        if self._fix42_plus:
            if mt:
                r[372] = mt
            if self._begin > "FIX.4.2" or reason <= SessionRejectReason.INVALID_MSGTYPE:
                r[373] = str(int(reason))
        if mt not in ("A", "4") and msg.seq_num == self.store.next_target:
            self._incr_target()
        text = REJECT_TEXT.get(reason)
        if text:
            if tag or reason == SessionRejectReason.INVALID_TAG_NUMBER:
                if self._fix42_plus:
                    r[371] = str(tag)
                    r[58] = text
                else:
                    r[58] = f"{text} ({tag})"
            else:
                r[58] = text
        self._event(f"message {seq_s} rejected: {text}:{tag}")
        self._send_raw(r)

    def _generate_business_reject(self, msg: Message, reason: int, tag: int = 0,
                                  text: str | None = None) -> None:
        src = msg.header.fields
        r = Message("j", {372: src.get(35, ""), 45: src.get(34, ""), 380: str(int(reason))})
        self._incr_target()
        text = text or BusinessRejectReason.text(reason)
        if text:
            r[58] = f"{text} ({tag})" if tag else text
        self._send_raw(r)

    # ------------------------------------------------------------------ state

    def _disconnect(self) -> None:
        self.disconnect_requested = True
        if self.received_logon or self.sent_logon:
            self.received_logon = self.sent_logon = False
            self.app.on_logout(self)
        self.sent_logout = self.received_reset = self.sent_reset = False
        self._queue.clear()
        self.resend_range = None
        self.test_request = 0
        if self.config.reset_on_disconnect:
            self.store.reset()

    def _event(self, text: str) -> None:
        if self.on_event is not None:
            self.on_event(f"{self.session_id}: {text}")
        log.debug("%s: %s", self.session_id, text)


def _reverse_route(src: dict[int, str], dst: dict[int, str], begin: str) -> None:
    for a, b in _ROUTE_SWAP:
        v = src.get(a)
        if v:
            dst[b] = v
    if begin >= "FIX.4.1":
        for a, b in _LOCATION_SWAP:
            v = src.get(a)
            if v:
                dst[b] = v
