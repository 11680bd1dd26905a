"""FIX sessions read from a QuickFIX-style settings file (``[DEFAULT]`` / ``[SESSION]``).

The file is the one QuickFIX, QuickFIX/J and QuickFIX/n read: ``Key=Value`` lines, ``#``
comments, one ``[DEFAULT]`` section whose keys every ``[SESSION]`` inherits, one ``[SESSION]``
per session. Each session becomes a :class:`FixSessionSettings`: keel's
:class:`~keel.venues.fix.config.SessionConfig` (with its
:class:`~keel.venues.fix.schedule.SessionSchedule`) plus where it connects or listens, its
store folder and its data dictionary. Relative paths (``FileStorePath``, ``DataDictionary``)
are resolved against the settings file's folder, never searched for.

A key keel does not know, or does not honour, is refused with a ``ConfigError`` naming the
section and the key; so is a bad value (``HeartBtInt=abc``, ``ConnectionType=server``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.errors import ConfigError
from keel.venues.fix.config import SessionConfig
from keel.venues.fix.dictionary import DataDictionary, load_dictionary
from keel.venues.fix.schedule import SessionSchedule, parse_day, parse_time, zone
from keel.venues.fix.store import FileStore, MemoryStore, MessageStore

#: BeginStrings keel ships dictionaries for
BEGIN_STRINGS = ("FIX.4.2", "FIX.4.4")


@dataclass(frozen=True)
class FixSessionSettings:
    """One ``[SESSION]`` of a settings file.

    Attributes:
        config: the session's protocol settings (``config.initiator`` from ConnectionType).
        section: where it came from (``SESSION 2`` = the second ``[SESSION]``), for messages.
        connect_host / connect_port: SocketConnectHost / SocketConnectPort (initiators).
        accept_host / accept_port: SocketAcceptAddress / SocketAcceptPort (acceptors).
        reconnect_interval: ReconnectInterval, seconds (initiators; None: the initiator's
            default back-off).
        file_store_path: FileStorePath (a folder), None for an in-memory store.
        data_dictionary: DataDictionary (an XML file), None for keel's dictionary folder.
    """

    config: SessionConfig
    section: str = "SESSION 1"
    connect_host: str | None = None
    connect_port: int | None = None
    accept_host: str = "0.0.0.0"
    accept_port: int | None = None
    reconnect_interval: float | None = None
    file_store_path: Path | None = None
    data_dictionary: Path | None = None

    @property
    def initiator(self) -> bool:
        return self.config.initiator

    def dictionary(self, spec_dir: str | os.PathLike[str] | None = None) -> DataDictionary:
        """The DataDictionary file when one is set, else ``config.begin_string``'s dictionary
        from ``spec_dir`` (see :func:`~keel.venues.fix.dictionary.find_spec_dir`)."""
        if self.data_dictionary is not None:
            dd = DataDictionary.load(self.data_dictionary)
            if dd.begin_string != self.config.begin_string:
                raise ConfigError(f"[{self.section}] DataDictionary is for another FIX version",
                                  field="DataDictionary", value=str(self.data_dictionary),
                                  section=self.section)
            return dd
        return load_dictionary(self.config.begin_string, spec_dir)

    def store(self, *, fsync: bool = False) -> MessageStore:
        """A :class:`FileStore` in FileStorePath, else a fresh :class:`MemoryStore`."""
        if self.file_store_path is None:
            return MemoryStore()
        return FileStore(self.file_store_path, self.config.session_id, fsync=fsync)


def only(sessions: list[FixSessionSettings], *, initiator: bool,
         source: str = "fix_settings") -> list[FixSessionSettings]:
    """The sessions of one ConnectionType; ConfigError when there are none."""
    out = [s for s in sessions if s.initiator == initiator]
    if not out:
        kind = "initiator" if initiator else "acceptor"
        raise ConfigError(f"no [SESSION] with ConnectionType={kind}", field="ConnectionType",
                          file=source)
    return out


def accept_port(sessions: list[FixSessionSettings], *, source: str = "fix_settings") -> int:
    """The one SocketAcceptPort of acceptor ``sessions`` (keel serves them on one port)."""
    ports = sorted({s.accept_port for s in sessions if s.accept_port is not None})
    if len(ports) != 1:
        raise ConfigError("acceptor sessions must share one SocketAcceptPort",
                          field="SocketAcceptPort", value=ports, file=source)
    return ports[0]


def _yes_no(value: str) -> bool:
    v = value.strip().upper()
    if v not in ("Y", "N"):
        raise ValueError("expected Y or N")
    return v == "Y"


def _positive_int(value: str) -> int:
    n = int(value.strip())
    if n <= 0:
        raise ValueError("expected a positive integer")
    return n


def _non_negative_int(value: str) -> int:
    n = int(value.strip())
    if n < 0:
        raise ValueError("expected an integer >= 0")
    return n


def _port(value: str) -> int:
    n = int(value.strip())
    if not 0 <= n < 65536:
        raise ValueError("expected a port 0..65535")
    return n


def _seconds(value: str) -> float:
    x = float(value.strip())
    if not x > 0:
        raise ValueError("expected a positive number of seconds")
    return x


def _comp_id(value: str) -> str:
    v = value.strip()
    if not v or "\x01" in v or "=" in v:
        raise ValueError("expected a non-empty CompID without SOH or '='")
    return v


def _begin(value: str) -> str:
    v = value.strip()
    if v not in BEGIN_STRINGS:
        raise ValueError(f"expected one of {', '.join(BEGIN_STRINGS)}")
    return v


def _connection_type(value: str) -> bool:
    v = value.strip().lower()
    if v not in ("initiator", "acceptor"):
        raise ValueError("expected initiator or acceptor")
    return v == "initiator"


def _text(value: str) -> str:
    v = value.strip()
    if not v:
        raise ValueError("expected a value")
    return v


def _reuse_address(value: str) -> bool:
    if not _yes_no(value):
        raise ValueError("keel's acceptor always reuses the address; only Y is supported")
    return True


def _use_dictionary(value: str) -> bool:
    if not _yes_no(value):
        raise ValueError("keel always validates against a data dictionary; only Y is "
                         "supported")
    return True


#: QuickFIX key -> (parser, destination). Destinations ``cfg.x`` go to SessionConfig,
#: ``ep.x`` to FixSessionSettings, ``sch.x`` to the schedule; None: checked, nothing to keep.
_KEYS: dict[str, tuple[Callable[[str], Any], str | None]] = {
    "BeginString": (_begin, "cfg.begin_string"),
    "SenderCompID": (_comp_id, "cfg.sender_comp_id"),
    "TargetCompID": (_comp_id, "cfg.target_comp_id"),
    "ConnectionType": (_connection_type, "cfg.initiator"),
    "HeartBtInt": (_positive_int, "cfg.heartbeat_interval"),
    "ResetOnLogon": (_yes_no, "cfg.reset_on_logon"),
    "ResetOnLogout": (_yes_no, "cfg.reset_on_logout"),
    "ResetOnDisconnect": (_yes_no, "cfg.reset_on_disconnect"),
    "CheckLatency": (_yes_no, "cfg.check_latency"),
    "MaxLatency": (_positive_int, "cfg.max_latency"),
    "LogonTimeout": (_positive_int, "cfg.logon_timeout"),
    "LogoutTimeout": (_positive_int, "cfg.logout_timeout"),
    "CheckCompID": (_yes_no, "cfg.check_comp_id"),
    "ValidateUserDefinedFields": (_yes_no, "cfg.validate_user_defined_fields"),
    "PersistMessages": (_yes_no, "cfg.persist_messages"),
    "SocketConnectHost": (_text, "ep.connect_host"),
    "SocketConnectPort": (_port, "ep.connect_port"),
    "SocketAcceptAddress": (_text, "ep.accept_host"),
    "SocketAcceptPort": (_port, "ep.accept_port"),
    "SocketReuseAddress": (_reuse_address, None),
    "ReconnectInterval": (_seconds, "ep.reconnect_interval"),
    "FileStorePath": (_text, "ep.file_store_path"),
    "DataDictionary": (_text, "ep.data_dictionary"),
    "UseDataDictionary": (_use_dictionary, None),
    "StartTime": (lambda v: parse_time(v, field="StartTime"), "sch.start_time"),
    "EndTime": (lambda v: parse_time(v, field="EndTime"), "sch.end_time"),
    "TimeZone": (lambda v: zone(v).key, "sch.time_zone"),
    "StartDay": (lambda v: parse_day(v, field="StartDay"), "sch.start_day"),
    "EndDay": (lambda v: parse_day(v, field="EndDay"), "sch.end_day"),
    "NonStopSession": (_yes_no, "sch.non_stop"),
}


def _sections(text: str, source: str) -> list[tuple[str, int, dict[str, tuple[int, str]]]]:
    """[(section name, its line, {key: (line, raw value)})] in file order."""
    out: list[tuple[str, int, dict[str, tuple[int, str]]]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith(";"):
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip().upper()
            if name not in ("DEFAULT", "SESSION"):
                raise ConfigError("unknown section (expected [DEFAULT] or [SESSION])",
                                  field=f"line {n}", value=line, file=source)
            if name == "DEFAULT" and any(s[0] == "DEFAULT" for s in out):
                raise ConfigError("a second [DEFAULT] section", field=f"line {n}",
                                  value=line, file=source)
            out.append((name, n, {}))
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("expected Key=Value", field=f"line {n}", value=line, file=source)
        if not out:
            raise ConfigError("setting before any [DEFAULT] or [SESSION] section",
                              field=key, value=value.strip(), file=source)
        entries = out[-1][2]
        if key in entries:
            raise ConfigError(f"{key} given twice in one section", field=key,
                              value=value.strip(), file=source)
        entries[key] = (n, value)
    return out


def parse_settings(text: str, *, base_dir: str | os.PathLike[str] = ".",
                   source: str = "<settings>") -> list[FixSessionSettings]:
    """The sessions of a QuickFIX-style settings text, in file order.

    Args:
        text: the file's contents.
        base_dir: folder relative paths (FileStorePath, DataDictionary) are resolved against.
        source: the file's name, for error messages.

    Raises:
        ConfigError: naming the section (``[SESSION 2]``) and key of an unknown key, a bad
            value, a missing required key, or two sessions with the same identity.
    """
    sections = _sections(text, source)
    defaults: dict[str, tuple[int, str]] = {}
    for name, _, entries in sections:
        if name == "DEFAULT":
            defaults = entries
    sessions = [entries for name, _, entries in sections if name == "SESSION"]
    if not sessions:
        raise ConfigError("no [SESSION] section", field="SESSION", file=source)
    out = []
    seen: dict[str, str] = {}
    for i, entries in enumerate(sessions, 1):
        s = _one({**defaults, **entries}, f"SESSION {i}", Path(base_dir), source,
                 set(entries))
        if s.config.session_id in seen:
            raise ConfigError(f"same session as [{seen[s.config.session_id]}]",
                              field=s.section, value=s.config.session_id, file=source)
        seen[s.config.session_id] = s.section
        out.append(s)
    return out


def load_settings(path: str | os.PathLike[str]) -> list[FixSessionSettings]:
    """:func:`parse_settings` of the file at ``path`` (relative paths inside it are taken
    relative to the file's folder)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read FIX settings file: {exc.strerror}", field="fix_settings",
                          value=str(p)) from None
    return parse_settings(text, base_dir=p.resolve().parent, source=str(p))


def _one(entries: dict[str, tuple[int, str]], section: str, base: Path, source: str,
         own: set[str]) -> FixSessionSettings:
    cfg: dict[str, Any] = {}
    ep: dict[str, Any] = {}
    sch: dict[str, Any] = {}
    dests = {"cfg": cfg, "ep": ep, "sch": sch}
    for key, (line, raw) in entries.items():
        where = section if key in own else f"{section}, from DEFAULT"
        spec = _KEYS.get(key)
        if spec is None:
            raise ConfigError(f"[{where}] unknown or unsupported QuickFIX setting (line "
                              f"{line}); supported: {', '.join(sorted(_KEYS))}",
                              field=key, value=raw.strip(), file=source, section=where)
        parse, dest = spec
        try:
            value = parse(raw)
        except (ValueError, ConfigError) as exc:
            msg = exc.message if isinstance(exc, ConfigError) else str(exc)
            raise ConfigError(f"[{where}] bad value (line {line}): {msg}", field=key,
                              value=raw.strip(), file=source, section=where) from None
        if dest is not None:
            group, attr = dest.split(".")
            dests[group][attr] = value
    for key in ("BeginString", "SenderCompID", "TargetCompID", "ConnectionType"):
        if key not in entries:
            raise ConfigError(f"[{section}] missing required setting", field=key, file=source,
                              section=section)
    initiator = cfg["initiator"]
    need = ("SocketConnectHost", "SocketConnectPort") if initiator else ("SocketAcceptPort",)
    for key in need:
        if key not in entries:
            raise ConfigError(f"[{section}] missing required setting for an "
                              f"{'initiator' if initiator else 'acceptor'}", field=key,
                              file=source, section=section)
    for key in ("file_store_path", "data_dictionary"):
        if key in ep:
            p = Path(ep[key]).expanduser()
            ep[key] = p if p.is_absolute() else base / p
    dd = ep.get("data_dictionary")
    if dd is not None and not dd.is_file():
        raise ConfigError(f"[{section}] data dictionary file not found", field="DataDictionary",
                          value=str(dd), file=source, section=section)
    cfg["schedule"] = _schedule(sch, entries, section, source)
    for key in ("max_latency", "logon_timeout", "logout_timeout"):
        if key in cfg:
            cfg[key] = float(cfg[key])
    return FixSessionSettings(config=SessionConfig(**cfg), section=section, **ep)


def _schedule(sch: dict[str, Any], entries: dict[str, tuple[int, str]], section: str,
              source: str) -> SessionSchedule | None:
    non_stop = sch.pop("non_stop", False)
    if non_stop:
        extra = [k for k in ("StartTime", "EndTime", "StartDay", "EndDay") if k in entries]
        if extra:
            raise ConfigError(f"[{section}] NonStopSession=Y with a schedule", field=extra[0],
                              value=entries[extra[0]][1].strip(), file=source, section=section)
        return None
    for key in ("StartTime", "EndTime"):
        if key not in entries:
            raise ConfigError(f"[{section}] missing required setting (or NonStopSession=Y)",
                              field=key, file=source, section=section)
    try:
        return SessionSchedule(**sch)
    except ConfigError as exc:
        raise ConfigError(f"[{section}] {exc.message}", field=exc.field, value=exc.value,
                          file=source, section=section) from None
