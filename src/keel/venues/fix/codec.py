"""FIX tag=value codec: messages, parsing, encoding, checksum and the stream frame splitter.

Sans-I/O: bytes in, :class:`Message` objects out, and back. Values are ``str`` (the wire is
decoded as Latin-1, so every byte round-trips). Encoding follows QuickFIX's layout so byte
counts match its acceptance suite: ``8, 9, 35``, then the other header tags ascending, the body
ascending by tag with each repeating group inline after its NumInGroup tag, then the trailer
(``10`` last). Times are POSIX seconds (float, UTC); FIX UTCTimestamps carry milliseconds.
"""

from __future__ import annotations

import calendar
import os
import re
import time
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING, cast
from zlib import adler32

from keel.errors import ConfigError, ProtocolError, ValidationError

if TYPE_CHECKING:
    from types import ModuleType

    from keel.venues.fix.dictionary import DataDictionary, GroupDef

#: environment variable choosing the codec: ``auto`` (default: compiled when installed),
#: ``python`` (never the compiled one) or ``native`` (refuse to start without it)
CODEC_ENV = "KEEL_FIX_CODEC"
_NATIVE_ABI = 2


def _load_native() -> ModuleType | None:
    """The optional C codec (``native/keel_fixcodec``, built by ``scripts/build-native``)."""
    try:
        import keel_fixcodec  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    if getattr(keel_fixcodec, "ABI", None) != _NATIVE_ABI:
        return None  # built from another keel version: its contract may differ
    return cast("ModuleType", keel_fixcodec)


_NATIVE_MODULE = _load_native()
_native: ModuleType | None = None  # the compiled codec in use (None: pure Python)


def available_codecs() -> list[str]:
    """The codecs this process can use: ``python`` always, ``native`` when it is installed."""
    return ["python", "native"] if _NATIVE_MODULE is not None else ["python"]


def codec_name() -> str:
    """The codec in use: ``native`` (the C hot loops) or ``python``."""
    return "native" if _native is not None else "python"


def use_codec(name: str) -> None:
    """Switch the codec of this process: ``python``, ``native`` or ``auto`` (native when
    installed). Both give identical bytes and fields (tests run the golden bytes on both)."""
    global _native
    if name == "python":
        _native = None
    elif name == "native":
        if _NATIVE_MODULE is None:
            raise ConfigError("the compiled FIX codec is not installed (run "
                              "scripts/build-native)", field=CODEC_ENV, value=name)
        _native = _NATIVE_MODULE
    elif name == "auto":
        _native = _NATIVE_MODULE
    else:
        raise ConfigError("unknown FIX codec (python, native or auto)", field=CODEC_ENV,
                          value=name)

SOH = "\x01"
_SOH_B = b"\x01"

# Header tags every message carries; written by the session, not by the application.
BEGIN_STRING, BODY_LENGTH, MSG_TYPE, CHECKSUM = 8, 9, 35, 10
MSG_SEQ_NUM, SENDER_COMP_ID, TARGET_COMP_ID, SENDING_TIME = 34, 49, 56, 52
POSS_DUP, POSS_RESEND, ORIG_SENDING_TIME = 43, 97, 122


class InvalidMessage(ProtocolError):
    """A frame that cannot be a FIX message (garbled, bad BodyLength/CheckSum): ignored."""


class FieldValueError(ValidationError):
    """An outbound value that cannot go on the wire as one field: it holds SOH (it would
    inject a tag), another control character, or a character the wire encoding (Latin-1)
    cannot carry. ``field`` names the tag (``"11 (ClOrdID)"``), ``value`` the value."""


WIRE_ENCODING = "latin-1"
# DATA-type fields (with a length field before them) may carry any byte, SOH included.
DATA_TAGS = frozenset({89, 91, 96, 213, 349, 351, 353, 355, 357, 359, 361, 363, 365, 446, 619,
                       622})
# C0 controls except SOH (the separator, counted separately), DEL and C1 controls.
_CONTROL_RE = re.compile("[\x00\x02-\x1f\x7f-\x9f]")
_TAG_NAMES = {1: "Account", 11: "ClOrdID", 17: "ExecID", 37: "OrderID", 41: "OrigClOrdID",
              49: "SenderCompID", 50: "SenderSubID", 55: "Symbol", 56: "TargetCompID",
              57: "TargetSubID", 58: "Text", 100: "ExDestination", 109: "ClientID",
              112: "TestReqID", 262: "MDReqID", 448: "PartyID"}


def _field_name(tag: int) -> str:
    name = _TAG_NAMES.get(tag)
    return f"{tag} ({name})" if name else str(tag)


def check_value(tag: int, value: str) -> None:
    """Raise :class:`FieldValueError` unless ``value`` can be sent as field ``tag``."""
    if not isinstance(value, str):
        raise FieldValueError("FIX field value is not a string", field=_field_name(tag),
                              value=value)
    if tag not in DATA_TAGS:
        if "\x01" in value:
            raise FieldValueError("FIX field value contains SOH (it would inject a tag)",
                                  field=_field_name(tag), value=value)
        if _CONTROL_RE.search(value) is not None:
            raise FieldValueError("FIX field value contains a control character",
                                  field=_field_name(tag), value=value)
    try:
        value.encode(WIRE_ENCODING)
    except UnicodeEncodeError:
        raise FieldValueError(f"FIX field value is not encodable in {WIRE_ENCODING}",
                              field=_field_name(tag), value=value) from None


def _check_map(fm: FieldMap) -> None:
    for tag, value in fm.fields.items():
        check_value(tag, value)
    for entries in fm.groups.values():
        for entry in entries:
            _check_map(entry)


class FieldMap:
    """Fields of one section (header, body, trailer or group entry).

    ``fields`` keeps wire order; ``groups`` maps a NumInGroup tag to its entries; ``repeated``
    holds tags seen more than once (the first value is kept; validation rejects them).
    """

    __slots__ = ("fields", "groups", "repeated")

    def __init__(self, fields: dict[int, str] | None = None) -> None:
        self.fields: dict[int, str] = fields if fields is not None else {}
        self.groups: dict[int, list[FieldMap]] = {}
        self.repeated: set[int] | None = None

    def add(self, tag: int, value: str) -> None:
        if tag in self.fields:
            if self.repeated is None:
                self.repeated = set()
            self.repeated.add(tag)
        else:
            self.fields[tag] = value

    def get(self, tag: int, default: str | None = None) -> str | None:
        return self.fields.get(tag, default)

    def __getitem__(self, tag: int) -> str:
        return self.fields[tag]

    def __setitem__(self, tag: int, value: str | int) -> None:
        self.fields[tag] = str(value)

    def __contains__(self, tag: object) -> bool:
        return tag in self.fields

    def pop(self, tag: int) -> str | None:
        return self.fields.pop(tag, None)

    def set_group(self, count_tag: int, entries: list[dict[int, str]]) -> None:
        """Set a repeating group from a list of entries (each a tag -> value dict, in order)."""
        self.fields[count_tag] = str(len(entries))
        self.groups[count_tag] = [FieldMap(dict(e)) for e in entries]

    def emit(self, parts: list[str], sort: bool = True) -> None:
        """Append ``tag=value<SOH>`` strings (ascending tags, groups inline)."""
        groups = self.groups
        for tag in sorted(self.fields) if sort else self.fields:
            parts.append(f"{tag}={self.fields[tag]}\x01")
            if groups and tag in groups:
                for entry in groups[tag]:
                    entry.emit(parts, sort=False)


class Message:
    """A FIX message: ``header``, ``body`` and ``trailer`` field maps.

    ``out_of_order_tag`` is the first header tag found after the body (or body tag after the
    trailer), 0 when the structure is valid; ``raw`` is the received frame, if any.
    """

    __slots__ = ("body", "header", "out_of_order_tag", "raw", "trailer")

    def __init__(self, msg_type: str | None = None, body: dict[int, str] | None = None) -> None:
        self.header = FieldMap()
        self.body = FieldMap(body)
        self.trailer = FieldMap()
        self.out_of_order_tag = 0
        self.raw = b""
        if msg_type is not None:
            self.header.fields[MSG_TYPE] = msg_type

    @property
    def msg_type(self) -> str:
        return self.header.fields.get(MSG_TYPE, "")

    @property
    def seq_num(self) -> int:
        """MsgSeqNum, or 0 when absent or not an integer."""
        return _int_or(self.header.fields.get(MSG_SEQ_NUM), 0)

    def get(self, tag: int, default: str | None = None) -> str | None:
        """A body field's value (or ``default``)."""
        return self.body.fields.get(tag, default)

    def __getitem__(self, tag: int) -> str:
        return self.body.fields[tag]

    def __setitem__(self, tag: int, value: str | int) -> None:
        self.body.fields[tag] = str(value)

    def __contains__(self, tag: object) -> bool:
        return tag in self.body.fields

    def is_poss_dup(self) -> bool:
        return self.header.fields.get(POSS_DUP) == "Y"

    def copy(self) -> Message:
        m = Message()
        m.header = _copy_map(self.header)
        m.body = _copy_map(self.body)
        m.trailer = _copy_map(self.trailer)
        return m

    def encode(self) -> bytes:
        """Wire bytes with BodyLength and CheckSum computed (BeginString from the header)."""
        h = self.header.fields
        if MSG_TYPE in h and not (self.header.groups or self.body.groups
                                  or self.trailer.fields):
            b = self.body.fields
            key = (*h, 0, *b)  # tag 0 does not exist: it separates header from body
            tpl = _TEMPLATES.get(key)
            if tpl is None:
                tpl = _template(h, b)
                if len(_TEMPLATES) < 1024:
                    _TEMPLATES[key] = tpl
            fmt, hget, bget, n_fields, keys = tpl
            nat = _native
            if nat is not None:
                data = nat.encode(h.get(BEGIN_STRING, ""), keys, (*hget(h), *bget(b)))
                if data is not None:
                    return cast(bytes, data)
                # a control character, SOH or non-Latin-1 value: the Python path decides
            text = fmt.format(*hget(h), *bget(b))
            if text.count("\x01") != n_fields or _CONTROL_RE.search(text) is not None:
                self.check_values()
            try:
                data = text.encode(WIRE_ENCODING)
            except UnicodeEncodeError:
                self.check_values()
                raise
            return frame(h.get(BEGIN_STRING, ""), data)
        return self.encode_general()

    def encode_general(self) -> bytes:
        """:meth:`encode` without the precompiled templates (groups, trailer fields, a
        missing MsgType): the reference the fast path is tested against."""
        h = self.header.fields
        parts = [f"35={h.get(MSG_TYPE, '')}\x01"]
        for tag in sorted(h):
            if tag not in (8, 9, 35):
                parts.append(f"{tag}={h[tag]}\x01")
        if self.header.groups:  # only NoHops in FIX.4.4; rare
            parts = [f"35={h.get(MSG_TYPE, '')}\x01"]
            hdr = FieldMap({t: v for t, v in h.items() if t not in (8, 9, 35)})
            hdr.groups = self.header.groups
            hdr.emit(parts)
        self.body.emit(parts)
        for tag, value in self.trailer.fields.items():
            if tag != CHECKSUM:
                parts.append(f"{tag}={value}\x01")
        text = "".join(parts)
        # One pass in C over the whole body: exactly one SOH per field, no other control
        # character, every character in Latin-1. Only a failure walks the fields to name one.
        if text.count("\x01") != len(parts) or _CONTROL_RE.search(text) is not None:
            self.check_values()
        try:
            body = text.encode(WIRE_ENCODING)
        except UnicodeEncodeError:
            self.check_values()
            raise
        return frame(h.get(BEGIN_STRING, ""), body)

    def check_values(self) -> None:
        """Raise :class:`FieldValueError` naming the first field that cannot go on the wire
        (SOH, a control character, not Latin-1); DATA fields may hold any Latin-1 byte."""
        _check_map(self.header)
        _check_map(self.body)
        _check_map(self.trailer)

    def __repr__(self) -> str:
        return f"Message({self.encode().decode('latin-1').replace(SOH, '|')})"


_Getter = Callable[[dict[int, str]], tuple[str, ...]]
_Template = tuple[str, _Getter, _Getter, int, tuple[bytes, ...]]
_TEMPLATES: dict[tuple[int, ...], _Template] = {}


def _getter(order: list[int]) -> _Getter:
    if not order:
        return lambda d: ()
    if len(order) == 1:
        t = order[0]
        return lambda d: (d[t],)
    return cast(_Getter, itemgetter(*order))


def _template(h: dict[int, str], b: dict[int, str]) -> _Template:
    """A precompiled layout for messages with these header and body tags: one format string
    (``35={}\x0134={}\x01...``, QuickFIX's order) and the getters of its values, so an
    encode is one ``str.format`` call instead of a sort and a loop (one C call with the
    compiled codec, which takes the ``b"35="``-style keys)."""
    others = sorted(t for t in h if t not in (BEGIN_STRING, BODY_LENGTH, MSG_TYPE))
    horder = [MSG_TYPE, *others]
    border = sorted(b)
    fmt = "".join(f"{t}={{}}\x01" for t in horder + border)
    keys = tuple(b"%d=" % t for t in horder + border)
    return fmt, _getter(horder), _getter(border), len(horder) + len(border), keys


def _copy_map(fm: FieldMap) -> FieldMap:
    out = FieldMap(dict(fm.fields))
    if fm.groups:
        out.groups = {t: [_copy_map(e) for e in entries] for t, entries in fm.groups.items()}
    return out


def frame(begin_string: str, body: bytes) -> bytes:
    """``8=..|9=len|`` + ``body`` + ``10=sum|``: a complete FIX frame."""
    head = b"8=%s\x019=%d\x01" % (begin_string.encode("latin-1"), len(body))
    return b"%s%s10=%03d\x01" % (head, body, (checksum(head) + checksum(body)) & 0xFF)


def checksum(data: bytes) -> int:
    """FIX CheckSum: sum of the bytes modulo 256.

    Computed in C through Adler-32, whose low half is 1 + the byte sum modulo 65521: exact for
    chunks of at most 256 bytes (their sum stays below 65521).
    """
    if len(data) <= 256:
        return ((adler32(data) & 0xFFFF) - 1) & 0xFF
    mv = memoryview(data)
    total = 0
    for i in range(0, len(data), 256):
        total += (adler32(mv[i:i + 256]) & 0xFFFF) - 1
    return total & 0xFF


def _int_or(value: str | None, default: int) -> int:
    if value is None:
        return default
    if value.isascii() and (value.isdigit() or (value[:1] == "-" and value[1:].isdigit())):
        return int(value)
    return default


def _tag(text: str) -> int:
    if text.isascii():
        if text.isdigit():
            return int(text)
        if text[:1] == "-" and text[1:].isdigit():
            return int(text)
    raise InvalidMessage("field tag is not a number", value=text)


_TAG_CACHE: dict[str, int] = {}
_FIELD_RE = re.compile("([^=\x01]*)=([^\x01]*)\x01")


def parse_fields(raw: str, dd: DataDictionary | None = None) -> list[tuple[int, str]]:
    """Split ``tag=value<SOH>...`` into ``(tag, value)`` pairs; DATA fields use their length.

    Raises ``InvalidMessage`` for a missing ``=``, a non-numeric tag or a missing SOH.
    """
    data_len = dd.data_length_tag if dd is not None else None
    pairs = _FIELD_RE.findall(raw)
    if len(pairs) != raw.count(SOH) or raw[-1:] != SOH:
        return _parse_fields_slow(raw, data_len)  # raises the precise error (or DATA fields)
    cache = _TAG_CACHE
    try:
        out = [(cache[t], v) for t, v in pairs]
    except KeyError:
        if data_len:
            return _parse_fields_slow(raw, data_len)
        out = [(_cached_tag(t), v) for t, v in pairs]
    if data_len and not data_len.keys().isdisjoint([t for t, _ in out]):
        return _parse_fields_slow(raw, data_len)  # a DATA value may hold SOH: use lengths
    return out


def _cached_tag(text: str) -> int:
    tag = _TAG_CACHE.get(text)
    if tag is None:
        tag = _tag(text)
        if len(_TAG_CACHE) < 4096:
            _TAG_CACHE[text] = tag
    return tag


def _parse_fields_slow(raw: str, data_len: dict[int, int] | None) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pos, n = 0, len(raw)
    seen: dict[int, str] = {}
    while pos < n:
        eq = raw.find("=", pos)
        if eq < 0:
            raise InvalidMessage("equal sign not found in field", value=raw[pos:pos + 20])
        tag = _cached_tag(raw[pos:eq])
        end = -1
        if data_len and tag in data_len:
            length = _int_or(seen.get(data_len[tag]), -1)
            if length >= 0:
                end = eq + 1 + length
                if end >= n or raw[end] != SOH:
                    raise InvalidMessage("data field length mismatch", field=str(tag))
        if end < 0:
            end = raw.find(SOH, eq + 1)
            if end < 0:
                raise InvalidMessage("field not terminated by SOH", field=str(tag))
        value = raw[eq + 1:end]
        out.append((tag, value))
        seen[tag] = value
        pos = end + 1
    return out


def decode(data: bytes, dd: DataDictionary | None = None, *, check: bool = True) -> Message:
    """Parse one frame into a :class:`Message` (groups resolved with ``dd``).

    With ``check`` the first three tags must be 8, 9, 35 and BodyLength and CheckSum must be
    right; otherwise ``InvalidMessage`` (QuickFIX ignores such frames once logged on).
    """
    nat = _native
    if nat is not None:
        parsed = nat.parse(data)
        if parsed is not None:
            msg = _decode_parsed(data, parsed, dd, check, nat)
            if msg is not None:
                return msg
    raw = data.decode("latin-1")
    if raw.count("=") == raw.count(SOH) and raw[-1:] == SOH:
        msg = _decode_fast(data, raw, dd, check)
        if msg is not None:
            return msg
    return decode_general(data, dd, check=check)


def decode_general(data: bytes, dd: DataDictionary | None = None, *,
                   check: bool = True) -> Message:
    """:func:`decode` by the general path (any field, DATA fields, groups, repeated tags):
    the reference the fast path is tested against."""
    raw = data.decode("latin-1")
    fields = parse_fields(raw, dd)
    if check:
        if len(fields) < 3 or fields[0][0] != 8 or fields[1][0] != 9 or fields[2][0] != 35:
            raise InvalidMessage("header fields out of order")
        if fields[-1][0] != CHECKSUM:
            raise InvalidMessage("CheckSum is not the last field")
        start = raw.find("\x0135=") + 1
        end = raw.rfind("\x0110=") + 1
        if _int_or(fields[1][1], -1) != end - start:
            raise InvalidMessage("wrong BodyLength", value=fields[1][1])
        if fields[-1][1] != f"{checksum(data[:end]):03d}":
            raise InvalidMessage("wrong CheckSum", value=fields[-1][1])
    msg = build(fields, dd)
    msg.raw = data
    return msg


def _decode_fast(data: bytes, raw: str, dd: DataDictionary | None,
                 check: bool) -> Message | None:
    """The common case in a few C-level passes: one ``=`` per field (no ``=`` inside a
    value), no DATA field, header tags first, trailer last, no repeated tag, no repeating
    group. Returns None when any of that does not hold (the general path decides)."""
    parts = raw.replace("=", SOH).split(SOH)
    values = parts[1::2]
    try:
        tags = list(map(_TAG_CACHE.__getitem__, parts[0:-1:2]))
    except KeyError:
        return None
    n = len(tags)
    if check:
        if n < 4 or tags[0] != 8 or tags[1] != 9 or tags[2] != 35 or tags[-1] != CHECKSUM:
            return None  # the general path raises the precise error
        start = raw.find("\x0135=") + 1
        end = raw.rfind("\x0110=") + 1
        if _int_or(values[1], -1) != end - start:
            raise InvalidMessage("wrong BodyLength", value=values[1])
        if values[-1] != f"{checksum(data[:end]):03d}":
            raise InvalidMessage("wrong CheckSum", value=values[-1])
    # The layout depends only on the tag sequence (and the dictionary): work it out once per
    # sequence and message type, e.g. once for all NewOrderSingles of one shape.
    cache = cast(dict[tuple[object, ...], object], _SHAPES if dd is None else
                 dd.validation_cache.setdefault("decode_shapes", {}))
    key = (values[2] if n > 2 else "", *tags)
    shape = cache.get(key)
    if shape is None:
        shape = _shape(tags, values[2] if n > 2 else "", dd)
        if len(cache) < 4096:
            cache[key] = shape
    if shape is False:
        return None
    nh, nt = cast(tuple[int, int], shape)
    msg = Message()
    msg.header.fields = dict(zip(tags[:nh], values[:nh], strict=False))
    msg.body.fields = dict(zip(tags[nh:nt], values[nh:nt], strict=False))
    msg.trailer.fields = dict(zip(tags[nt:], values[nt:], strict=False))
    msg.raw = data
    return msg


_SHAPES: dict[tuple[object, ...], object] = {}
_CS_TEXT = tuple(f"{i:03d}" for i in range(256))
_new_message = Message.__new__
_new_map = FieldMap.__new__


def _decode_parsed(data: bytes, parsed: tuple[tuple[int, ...], list[str], int, int, int],
                   dd: DataDictionary | None, check: bool, nat: ModuleType) -> Message | None:
    """:func:`_decode_fast` on the compiled codec's one-pass split (tags, values, the
    BodyLength span and the CheckSum computed in C). None: the general path decides."""
    tags, values, start, last, cs = parsed
    if check:
        if tags[0] != 8 or tags[1] != 9 or tags[2] != 35 or tags[-1] != CHECKSUM:
            return None  # the general path raises the precise error
        if _int_or(values[1], -1) != last - start:
            raise InvalidMessage("wrong BodyLength", value=values[1])
        if values[-1] != _CS_TEXT[cs]:
            raise InvalidMessage("wrong CheckSum", value=values[-1])
    cache = cast(dict[tuple[object, ...], object], _SHAPES if dd is None else
                 dd.validation_cache.setdefault("decode_shapes", {}))
    key = (values[2], tags)
    shape = cache.get(key)
    if shape is None:
        shape = _shape(list(tags), values[2], dd)
        if len(cache) < 4096:
            cache[key] = shape
    if shape is False:
        return None
    nh, nt = cast(tuple[int, int], shape)
    msg = _new_message(Message)
    msg.out_of_order_tag = 0
    msg.raw = data
    maps = []
    for fields in nat.maps(tags, values, nh, nt):
        fm = _new_map(FieldMap)
        fm.fields = fields
        fm.groups = {}
        fm.repeated = None
        maps.append(fm)
    msg.header, msg.body, msg.trailer = maps
    return msg


def _shape(tags: list[int], msg_type: str, dd: DataDictionary | None) -> tuple[int, int] | bool:
    """(end of header, start of trailer) when ``tags`` can take the fast path, else False."""
    if dd is not None:
        if dd.data_length_tag and not dd.data_length_tag.keys().isdisjoint(tags):
            return False
        header_tags, trailer_tags = dd.header_tags, dd.trailer_tags
    else:
        header_tags, trailer_tags = _DEFAULT_HEADER, _DEFAULT_TRAILER
    n = len(tags)
    nh = 0
    for t in tags:
        if t not in header_tags:
            break
        nh += 1
    nt = n
    while nt > nh and tags[nt - 1] in trailer_tags:
        nt -= 1
    body_tags = tags[nh:nt]
    if (len(set(tags)) != n or not header_tags.isdisjoint(body_tags)
            or not trailer_tags.isdisjoint(body_tags)):
        return False
    if dd is not None:
        if dd.header.groups and not dd.header.groups.keys().isdisjoint(tags[:nh]):
            return False
        md = dd.messages.get(msg_type)
        if md is not None and md.groups and not md.groups.keys().isdisjoint(body_tags):
            return False
    return nh, nt


def build(fields: list[tuple[int, str]], dd: DataDictionary | None) -> Message:
    """Sort ``(tag, value)`` pairs into header/body/trailer and repeating groups."""
    msg = Message()
    header, body, trailer = msg.header, msg.body, msg.trailer
    hf, bf, tf = header.fields, body.fields, trailer.fields
    msg_def = None
    if dd is not None:
        header_tags, trailer_tags = dd.header_tags, dd.trailer_tags
        header_groups = dd.header.groups
    else:
        header_tags, trailer_tags = _DEFAULT_HEADER, _DEFAULT_TRAILER
        header_groups = {}
    body_groups: dict[int, GroupDef] = {}
    state = 0  # 0 header, 1 body, 2 trailer
    i, n = 0, len(fields)
    while i < n:
        tag, value = fields[i]
        i += 1
        if tag in header_tags:
            if state and not msg.out_of_order_tag:
                msg.out_of_order_tag = tag
            if tag in hf:
                header.add(tag, value)
            else:
                hf[tag] = value
            if tag == MSG_TYPE and dd is not None:
                msg_def = dd.messages.get(value)
                if msg_def is not None:
                    body_groups = msg_def.groups
            elif tag in header_groups:
                i = _group(fields, i, header_groups[tag], header)
        elif tag in trailer_tags:
            state = 2
            if tag in tf:
                trailer.add(tag, value)
            else:
                tf[tag] = value
        else:
            if state == 2 and not msg.out_of_order_tag:
                msg.out_of_order_tag = tag
            state = 1
            if tag in bf:
                body.add(tag, value)
            else:
                bf[tag] = value
            if tag in body_groups:
                i = _group(fields, i, body_groups[tag], body)
    return msg


_DEFAULT_HEADER = frozenset({8, 9, 35, 34, 43, 49, 52, 56, 97, 115, 116, 122, 128, 129, 144,
                             145})
_DEFAULT_TRAILER = frozenset({10, 89, 93})


def _group(fields: list[tuple[int, str]], i: int, gdef: GroupDef, parent: FieldMap) -> int:
    entries: list[FieldMap] = []
    members = gdef.members
    cur: FieldMap | None = None
    n = len(fields)
    while i < n:
        tag, value = fields[i]
        if tag == gdef.delim or (cur is None and tag in members):
            cur = FieldMap()
            entries.append(cur)
        elif cur is None or tag not in members:
            break
        cur.add(tag, value)
        i += 1
        if tag in gdef.groups:
            i = _group(fields, i, gdef.groups[tag], cur)
    parent.groups[gdef.count_tag] = entries
    return i


class FrameSplitter:
    """Cut a TCP byte stream into FIX frames, the way QuickFIX's parser does.

    A frame starts at ``8=``, announces its BodyLength in ``9=``, and ends at the first
    ``<SOH>10=...<SOH>`` found from (BodyLength - 1) bytes past the ``9=`` field. Garbage before
    ``8=`` is skipped; a non-numeric BodyLength is skipped and counted in ``garbled``; frames
    longer than ``max_message_size`` bytes set ``oversized`` (the transport disconnects). The
    buffer never holds more than ``max_message_size`` plus one read.
    """

    __slots__ = ("_buf", "_pos", "garbled", "max_message_size", "oversized")

    def __init__(self, max_message_size: int = 1 << 20) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.max_message_size = max_message_size
        self.garbled = 0
        self.oversized = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the complete frames now available, in order."""
        nat = _native
        if nat is not None and not self._buf and data:
            # nothing held back: the compiled codec cuts the regular frames in one call and
            # the loop below takes whatever it stopped at (garbage, a partial frame, ...)
            out, used = nat.frames(data, self.max_message_size)
            if used == len(data):
                return cast(list[bytes], out)
            self._buf += memoryview(data)[used:]
        else:
            self._buf += data
            out = []
        while True:
            f = self._next()
            if f is None:
                break
            if f:
                out.append(f)
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        return out

    @property
    def buffered(self) -> int:
        """Bytes waiting for the rest of their frame."""
        return len(self._buf) - self._pos

    def _next(self) -> bytes | None:
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 2:
            return None
        start = buf.find(b"8=", pos)
        if start < 0:
            self._pos = len(buf) - 1  # the last byte may be the '8' of a split "8="
            return None
        self._pos = pos = start
        i = buf.find(_SOH_B, pos)
        if i >= 0 and len(buf) >= i + 3 and buf[i + 1:i + 3] != b"9=":
            self._pos = start + 1  # an "8=" that does not open a frame: resync after it
            return b""
        j = buf.find(_SOH_B, i + 3) if i >= 0 and len(buf) >= i + 3 else -1
        if j < 0:
            if len(buf) - pos > self.max_message_size:
                self._skip_oversized(pos)
            return None
        length_s = bytes(buf[i + 3:j])
        if not length_s.isdigit():
            self.garbled += 1
            self._pos = j + 1
            return b""
        end = j + 1 + int(length_s)
        if end - pos > self.max_message_size:
            self._skip_oversized(j + 1)
            return None
        if len(buf) < end:
            return None
        k = buf.find(b"\x0110=", end - 1)
        m = buf.find(_SOH_B, k + 4) if k >= 0 else -1
        if m < 0:
            if len(buf) - pos > self.max_message_size:
                self._skip_oversized(j + 1)
            return None
        self._pos = m + 1
        return bytes(buf[pos:m + 1])

    def _skip_oversized(self, to: int) -> None:
        self.oversized = True
        self._pos = max(to, len(self._buf) - 1)


# ------------------------------------------------------------------------ time fields

_prefix_cache: dict[int, str] = {}


def format_utc(now: float, millis: bool = True) -> str:
    """``YYYYMMDD-HH:MM:SS.sss`` (UTC) for POSIX seconds ``now`` (rounded to the millisecond)."""
    total_ms = round(now * 1000)
    sec, ms = divmod(total_ms, 1000)
    prefix = _prefix_cache.get(sec)
    if prefix is None:
        if len(_prefix_cache) > 64:
            _prefix_cache.clear()
        prefix = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(sec))
        _prefix_cache[sec] = prefix
    if not millis:
        return prefix
    return f"{prefix}.{ms:03d}"


_ts_cache: dict[str, float] = {}


def parse_utc_timestamp(text: str) -> float | None:
    """POSIX seconds of ``YYYYMMDD-HH:MM:SS[.sss...]``; None when malformed."""
    n = len(text)
    if n < 17:
        return None
    head = text[:17] if n > 17 else text
    base = _ts_cache.get(head)
    if base is None:
        base = _parse_seconds(head)
        if base is None:
            return None
        if len(_ts_cache) > 256:
            _ts_cache.clear()
        _ts_cache[head] = base
    if n == 17:
        return base
    tail = text[18:]
    if text[17] != "." or not tail.isdigit() or not tail.isascii() or len(tail) > 9:
        return None
    return base + int(tail) / (10 ** len(tail))


def _parse_seconds(text: str) -> float | None:
    if text[8] != "-" or text[11] != ":" or text[14] != ":" or not text.isascii():
        return None
    d, hms = text[:8], text[9:17]
    if not (d.isdigit() and hms[:2].isdigit() and hms[3:5].isdigit() and hms[6:8].isdigit()):
        return None
    y, mo, dd = int(d[:4]), int(d[4:6]), int(d[6:8])
    h, mi, s = int(hms[:2]), int(hms[3:5]), int(hms[6:8])
    if not (1 <= mo <= 12 and 1 <= dd <= 31 and h < 24 and mi < 60 and s <= 60):
        return None
    return float(calendar.timegm((y, mo, dd, h, mi, s, 0, 0, 0)))


use_codec(os.environ.get(CODEC_ENV, "auto") or "auto")
