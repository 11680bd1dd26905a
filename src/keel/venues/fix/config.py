"""Settings of one FIX session."""

from __future__ import annotations

from dataclasses import dataclass

from keel.errors import ConfigError
from keel.venues.fix.schedule import SessionSchedule

VALIDATION_MODES = ("strict", "lazy")


@dataclass(frozen=True)
class SessionConfig:
    """Settings of one FIX session (QuickFIX's defaults unless noted).

    Attributes:
        begin_string: ``FIX.4.2`` or ``FIX.4.4``.
        sender_comp_id / target_comp_id: our and the peer's CompID.
        initiator: True for the side that connects and sends the first Logon.
        heartbeat_interval: HeartBtInt (s) an initiator proposes; acceptors take the peer's.
        reset_on_logon: reset both sequence numbers at each Logon (initiator sends 141=Y).
        reset_on_logout / reset_on_disconnect: reset them at Logout / disconnect.
        check_latency / max_latency: reject messages whose SendingTime is off by more (s).
        logon_timeout / logout_timeout: seconds to wait for the peer's Logon / Logout.
        check_comp_id: reject messages whose CompIDs are not this session's.
        validate_user_defined_fields: reject unknown tags >= 5000 too.
        validation: ``"strict"`` checks every value of every message against the dictionary
            (QuickFIX's behaviour; the acceptance suite runs so). ``"lazy"`` checks a message
            in full the first time its shape (type and tags in order) is seen; after that
            the structure still holds by shape, and only the values the session and the
            application read are checked (admin messages always in full). What the
            application reads is its ``read_tags`` (per message type; a type it does not
            name is checked in full, so an application that declares nothing gets strict
            checking). The default is lazy.
        persist_messages: keep sent messages to answer ResendRequest (else gap fill all).
        max_queued: messages above a sequence gap held at most (more are dropped and resent).
        schedule: the hours the session is open (None: always, QuickFIX's NonStopSession).
            Outside them a Logon is refused and a logged-on session logs out; both sequence
            numbers reset when a new session period starts.
    """

    begin_string: str
    sender_comp_id: str
    target_comp_id: str
    initiator: bool = False
    heartbeat_interval: int = 30
    reset_on_logon: bool = False
    reset_on_logout: bool = False
    reset_on_disconnect: bool = False
    check_latency: bool = True
    max_latency: float = 120.0
    logon_timeout: float = 10.0
    logout_timeout: float = 2.0
    check_comp_id: bool = True
    validate_user_defined_fields: bool = True
    validation: str = "lazy"
    persist_messages: bool = True
    max_queued: int = 10_000
    schedule: SessionSchedule | None = None

    def __post_init__(self) -> None:
        if self.validation not in VALIDATION_MODES:
            raise ConfigError("unknown FIX validation mode (strict or lazy)",
                              field="validation", value=self.validation)

    @property
    def session_id(self) -> str:
        return f"{self.begin_string}:{self.sender_comp_id}->{self.target_comp_id}"
