"""The application callback interface a FIX session drives (sans-I/O).

Subclass :class:`Application` and override what you need. Callbacks run inside the session's
processing of a frame or timer, on the transport's thread; anything they send with
``session.send(msg)`` goes out in the same write as the session's own replies.

* ``from_app(msg, session)``: an application message passed every session check (sequence
  number in order, CompIDs, SendingTime, dictionary validation). Reply with
  ``session.send(...)``. Raise :class:`UnsupportedMessageType` to answer with a
  BusinessMessageReject (380=3), :class:`BusinessReject` for any other business-level refusal,
  or :class:`~keel.venues.fix.validate.RejectError` for a session Reject naming a tag.
* ``from_admin(msg, session)``: a verified admin message (Logon, Heartbeat, ...), for logging.
* ``on_logon`` / ``on_logout``: the session went up / down (logout also on a dropped socket).
* ``on_resend(msg, session) -> bool``: an application message about to be replayed with
  PossDupFlag=Y for a ResendRequest; return False to gap-fill it instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import TYPE_CHECKING, ClassVar

from keel.errors import ProtocolError

if TYPE_CHECKING:
    from keel.venues.fix.codec import Message
    from keel.venues.fix.session import Session


class BusinessRejectReason(IntEnum):
    """FIX BusinessRejectReason (380)."""

    OTHER = 0
    UNKNOWN_ID = 1
    UNKNOWN_SECURITY = 2
    UNSUPPORTED_MESSAGE_TYPE = 3
    APPLICATION_NOT_AVAILABLE = 4
    CONDITIONALLY_REQUIRED_FIELD_MISSING = 5
    NOT_AUTHORIZED = 6
    DELIVERTO_FIRM_NOT_AVAILABLE = 7

    @staticmethod
    def text(reason: int) -> str:
        return _BUSINESS_TEXT.get(reason, "")


_BUSINESS_TEXT = {
    0: "Other",
    1: "Unknown ID",
    2: "Unknown Security",
    3: "Unsupported Message Type",
    4: "Application not available",
    5: "Conditionally Required Field Missing",
    6: "Not authorized",
    7: "DeliverTo firm not available at this time",
}


class UnsupportedMessageType(ProtocolError):
    """Raised by ``from_app`` for a message type the application does not handle."""

    def __init__(self, msg_type: str = "") -> None:
        super().__init__("unsupported message type", field="35", value=msg_type or None)


class BusinessReject(ProtocolError):
    """Raised by ``from_app`` to answer with BusinessMessageReject (35=j)."""

    def __init__(self, reason: BusinessRejectReason, text: str | None = None,
                 ref_tag: int = 0) -> None:
        self.reason = BusinessRejectReason(reason)
        self.text = text
        self.ref_tag = ref_tag
        super().__init__(text or BusinessRejectReason.text(reason), value=int(reason))


class Application:
    """Base application: accepts logons, rejects every application message type."""

    #: the body tags ``from_app`` reads, per message type: with lazy validation
    #: (``SessionConfig.validation``) only these values (and the session's header tags) are
    #: checked once a message's shape has passed in full; a type not named is checked in full
    read_tags: ClassVar[Mapping[str, frozenset[int]]] = {}

    def on_create(self, session: Session) -> None:
        """The session object was created (once, before any connection)."""

    def on_logon(self, session: Session) -> None:
        """Both Logons exchanged: the session is up."""

    def on_logout(self, session: Session) -> None:
        """The session went down (Logout exchanged, timed out or socket closed)."""

    def from_admin(self, msg: Message, session: Session) -> None:
        """A verified admin message."""

    def from_app(self, msg: Message, session: Session) -> None:
        """A verified application message (see the module doc for the replies)."""
        raise UnsupportedMessageType(msg.msg_type)

    def on_resend(self, msg: Message, session: Session) -> bool:
        """Replay ``msg`` (True) or gap-fill it (False) when the peer asks for a resend."""
        return True
