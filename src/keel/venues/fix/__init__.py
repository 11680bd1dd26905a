"""keel's FIX 4.2 / 4.4 engine.

Sans-I/O core: :mod:`.codec` (frames, messages, checksum), :mod:`.dictionary` (QuickFIX XML data
dictionaries read at run time), :mod:`.validate` (session-level validation), :mod:`.session`
(the session state machine), :mod:`.schedule` (session hours) and :mod:`.application` (the
callback interface); :mod:`.config` and :mod:`.settings` (QuickFIX-style settings files).
At the edge: :mod:`.transport` (asyncio acceptor / initiator, TLS), :mod:`.store` (memory,
file, SQL). On top: :mod:`.messages` (orders <-> FIX), :mod:`.broker` (:class:`FixBroker`),
:mod:`.sim` (a minimal ack-and-fill venue), :mod:`.marketdata` (top-of-book MarketDataRequest /
Snapshot / IncrementalRefresh, both sides) and :mod:`.acceptance` (QuickFIX's test server).
"""

from keel.venues.fix.application import (
    Application,
    BusinessReject,
    BusinessRejectReason,
    UnsupportedMessageType,
)
from keel.venues.fix.codec import (
    FieldMap,
    FieldValueError,
    FrameSplitter,
    InvalidMessage,
    Message,
    decode,
)
from keel.venues.fix.dictionary import DataDictionary, find_spec_dir, load_dictionary
from keel.venues.fix.schedule import SessionSchedule
from keel.venues.fix.session import Session, SessionConfig
from keel.venues.fix.settings import FixSessionSettings, load_settings, parse_settings
from keel.venues.fix.store import FileStore, MemoryStore, MessageStore, SqlStore
from keel.venues.fix.validate import RejectError, SessionRejectReason

__all__ = [
    "Application",
    "BusinessReject",
    "BusinessRejectReason",
    "DataDictionary",
    "FieldMap",
    "FieldValueError",
    "FileStore",
    "FixSessionSettings",
    "FrameSplitter",
    "InvalidMessage",
    "MemoryStore",
    "Message",
    "MessageStore",
    "RejectError",
    "Session",
    "SessionConfig",
    "SessionRejectReason",
    "SessionSchedule",
    "SqlStore",
    "UnsupportedMessageType",
    "decode",
    "find_spec_dir",
    "load_dictionary",
    "load_settings",
    "parse_settings",
]
