"""Answering a ResendRequest: replay stored application messages, gap-fill the rest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel.venues.fix.codec import InvalidMessage, decode, format_utc

if TYPE_CHECKING:
    from keel.venues.fix.session import Session

_ADMIN = frozenset({"0", "A", "1", "2", "3", "4", "5"})


def replay(session: Session, begin: int, end: int) -> None:
    """Resend messages ``begin..end`` (0 or 999999: up to the last sent) as QuickFIX does.

    Application messages go out again with PossDupFlag=Y, OrigSendingTime = their first
    SendingTime and a fresh SendingTime; runs of admin messages (and messages no longer in the
    store) become one SequenceReset-GapFill each.
    """
    next_sender = session.store.next_sender
    fix42_plus = session.config.begin_string >= "FIX.4.2"
    if ((fix42_plus and end == 0) or (session.config.begin_string <= "FIX.4.2"
                                       and end == 999999) or end >= next_sender):
        end = next_sender - 1
    if end < begin:
        return
    if not session.config.persist_messages:
        session.generate_sequence_reset(begin, min(end + 1, next_sender))
        return
    gap_begin = 0
    current = begin
    for seq, data in session.store.get(begin, end):
        if current != seq and not gap_begin:
            gap_begin = current
        current = seq + 1
        try:
            msg = decode(data, session.dd, check=False)
        except InvalidMessage:
            msg = None
        if msg is None or msg.msg_type in _ADMIN or not session.app.on_resend(msg, session):
            if not gap_begin:
                gap_begin = seq
            continue
        if gap_begin:
            session.generate_sequence_reset(gap_begin, seq)
            gap_begin = 0
        h = msg.header.fields
        h[122] = h.get(52, "")
        h[43] = "Y"
        h[52] = format_utc(session._now)
        session._write(msg.encode())
    if gap_begin:
        session.generate_sequence_reset(gap_begin, current)
    if end >= current:
        session.generate_sequence_reset(current, min(end + 1, next_sender))
