"""The test application and server QuickFIX's acceptance suite expects (``keel fix
acceptance-server``): SenderCompID ISLD, a FIX.4.2 session with TW42 and a FIX.4.4 session with
TW44, sequence numbers reset at every Logon.

The application echoes NewOrderSingle (35=D) and SecurityDefinition (35=d) back, drops a
NewOrderSingle re-sent with PossResend=Y whose ClOrdID it has already seen on the session
(memory cleared at logout), and answers any other application message with a
BusinessMessageReject "Unsupported Message Type".
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Sequence

from keel.venues.fix.application import Application, UnsupportedMessageType
from keel.venues.fix.codec import Message
from keel.venues.fix.dictionary import load_dictionary
from keel.venues.fix.session import Session, SessionConfig
from keel.venues.fix.settings import FixSessionSettings, only
from keel.venues.fix.transport import Acceptor

ACCEPTANCE_SESSIONS = (("FIX.4.2", "TW42"), ("FIX.4.4", "TW44"))


class AcceptanceApplication(Application):
    """QuickFIX's ``at_application``: echo orders, suppress PossResend duplicates."""

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = defaultdict(set)

    def on_logout(self, session: Session) -> None:
        self._seen.pop(session.session_id, None)

    def from_app(self, msg: Message, session: Session) -> None:
        mt = msg.msg_type
        if mt == "D":
            cl_ord_id = msg.get(11, "") or ""
            seen = self._seen[session.session_id]
            if msg.header.get(97) == "Y" and cl_ord_id in seen:
                return
            seen.add(cl_ord_id)
            session.send(msg.copy())
        elif mt == "d":
            session.send(msg.copy())
        else:
            raise UnsupportedMessageType(mt)


def acceptance_sessions(spec_dir: str | os.PathLike[str] | None = None,
                        application: Application | None = None,
                        settings: Sequence[FixSessionSettings] | None = None) -> list[Session]:
    """The ISLD->TW42 (FIX.4.2) and ISLD->TW44 (FIX.4.4) sessions with the reference settings,
    or the acceptor sessions of a QuickFIX-style settings file (``settings``)."""
    app = application if application is not None else AcceptanceApplication()
    out = []
    if settings is not None:
        for s in only(list(settings), initiator=False):
            out.append(Session(s.config, s.dictionary(spec_dir), s.store(), application=app))
        return out
    for begin, target in ACCEPTANCE_SESSIONS:
        cfg = SessionConfig(begin_string=begin, sender_comp_id="ISLD", target_comp_id=target,
                            reset_on_logon=True, validation="strict")
        out.append(Session(cfg, load_dictionary(begin, spec_dir), application=app))
    return out


async def serve_acceptance(port: int, host: str = "127.0.0.1",
                           spec_dir: str | os.PathLike[str] | None = None,
                           ready: asyncio.Event | None = None,
                           settings: Sequence[FixSessionSettings] | None = None) -> None:
    """Run the acceptance server until cancelled (``settings``: sessions from a settings
    file instead of the reference ones)."""
    acceptor = Acceptor(acceptance_sessions(spec_dir, settings=settings), host, port)
    await acceptor.start()
    if ready is not None:
        ready.set()
    try:
        await acceptor.serve_forever()
    finally:
        await acceptor.stop()
