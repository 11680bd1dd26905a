"""Validation of a decoded message against its data dictionary, in QuickFIX's order.

Order of checks (the first failure wins, as in QuickFIX so the acceptance suite agrees):
structure (header after body, body after trailer), MsgType known, required fields (header,
trailer, body, group entries), then every field of the header, trailer and body in ascending
tag order: repeated, empty, data format, enumerated value, tag known, tag allowed for the message
type, NumInGroup count; then group entries recursively.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import cast

from keel.errors import ProtocolError
from keel.venues.fix.codec import FieldMap, Message, parse_utc_timestamp
from keel.venues.fix.dictionary import (
    FLOAT_TYPES,
    INT_TYPES,
    MULTI_TYPES,
    DataDictionary,
    GroupDef,
    MessageDef,
)

USER_MIN_TAG = 5000


class SessionRejectReason(IntEnum):
    """FIX SessionRejectReason (373)."""

    INVALID_TAG_NUMBER = 0
    REQUIRED_TAG_MISSING = 1
    TAG_NOT_DEFINED_FOR_MESSAGE_TYPE = 2
    UNDEFINED_TAG = 3
    TAG_SPECIFIED_WITHOUT_A_VALUE = 4
    VALUE_IS_INCORRECT = 5
    INCORRECT_DATA_FORMAT = 6
    DECRYPTION_PROBLEM = 7
    SIGNATURE_PROBLEM = 8
    COMPID_PROBLEM = 9
    SENDINGTIME_ACCURACY_PROBLEM = 10
    INVALID_MSGTYPE = 11
    XML_VALIDATION_ERROR = 12
    TAG_APPEARS_MORE_THAN_ONCE = 13
    TAG_SPECIFIED_OUT_OF_REQUIRED_ORDER = 14
    REPEATING_GROUP_FIELDS_OUT_OF_ORDER = 15
    INCORRECT_NUMINGROUP_COUNT = 16
    OTHER = 99


R = SessionRejectReason

REJECT_TEXT: dict[int, str] = {
    R.INVALID_TAG_NUMBER: "Invalid tag number",
    R.REQUIRED_TAG_MISSING: "Required tag missing",
    R.TAG_NOT_DEFINED_FOR_MESSAGE_TYPE: "Tag not defined for this message type",
    R.UNDEFINED_TAG: "Undefined Tag",
    R.TAG_SPECIFIED_WITHOUT_A_VALUE: "Tag specified without a value",
    R.VALUE_IS_INCORRECT: "Value is incorrect (out of range) for this tag",
    R.INCORRECT_DATA_FORMAT: "Incorrect data format for value",
    R.DECRYPTION_PROBLEM: "Decryption problem",
    R.SIGNATURE_PROBLEM: "Signature problem",
    R.COMPID_PROBLEM: "CompID problem",
    R.SENDINGTIME_ACCURACY_PROBLEM: "SendingTime accuracy problem",
    R.INVALID_MSGTYPE: "Invalid MsgType",
    R.TAG_APPEARS_MORE_THAN_ONCE: "Tag appears more than once",
    R.TAG_SPECIFIED_OUT_OF_REQUIRED_ORDER: "Tag specified out of required order",
    R.REPEATING_GROUP_FIELDS_OUT_OF_ORDER: "Repeating group fields out of order",
    R.INCORRECT_NUMINGROUP_COUNT: "Incorrect NumInGroup count for repeating group",
}


class RejectError(ProtocolError):
    """A message breaks a session rule: answer with Reject(35=3), ``reason`` and ``ref_tag``."""

    def __init__(self, reason: SessionRejectReason, ref_tag: int = 0) -> None:
        self.reason = SessionRejectReason(reason)
        self.ref_tag = ref_tag
        super().__init__(REJECT_TEXT.get(reason, reason.name), field=str(ref_tag),
                         value=int(reason))


#: header tags the session itself reads (sequence, PossDup/PossResend, times, CompIDs)
SESSION_READS = (34, 43, 49, 52, 56, 97, 122)


def validate(msg: Message, dd: DataDictionary, *, check_user_defined: bool = True,
             read_tags: frozenset[int] | None = None) -> None:
    """Raise ``RejectError`` for the first problem QuickFIX would report; return when valid.

    ``read_tags`` (lazy validation): once a message of the same shape (type and tags in
    order) has passed the full check, only the values of these body tags and of the header
    tags the session reads are checked; the other values reach the application unchecked.
    The structure (required, allowed, known and repeated tags, order) is the shape's, so it
    is always checked. None (strict): every value, as QuickFIX does."""
    if msg.out_of_order_tag:
        raise RejectError(R.TAG_SPECIFIED_OUT_OF_REQUIRED_ORDER, msg.out_of_order_tag)
    md = dd.messages.get(msg.msg_type)
    if md is None:
        raise RejectError(R.INVALID_MSGTYPE)
    h, b, t = msg.header, msg.body, msg.trailer
    shape = None
    if not (h.groups or b.groups or t.groups or h.repeated or b.repeated or t.repeated):
        # Which tags a message carries, in which order, decides everything but the values:
        # once a shape passed, a message of the same shape only needs its values checked.
        shape = (msg.msg_type, check_user_defined, tuple(h.fields), tuple(b.fields),
                 tuple(t.fields))
        shapes = cast(dict[object, bool], dd.validation_cache.setdefault("shapes", {}))
        if shape in shapes and (_values_ok(msg, dd) if read_tags is None
                                else _read_values_ok(msg, dd, read_tags)):
            return
    _full(msg, md, dd, check_user_defined)
    if shape is not None and len(shapes) < 1024:
        shapes[shape] = True


def _values_ok(msg: Message, dd: DataDictionary) -> bool:
    """Every value non-empty and of its field's format and enumeration (a value found good
    once for a tag is remembered: formats and enumerations do not depend on the message)."""
    checks = _checks(dd)
    good = cast(dict[int, set[str]], dd.validation_cache.setdefault("good_values", {}))
    for fm in (msg.header, msg.body, msg.trailer):
        for tag, value in fm.fields.items():
            ok = good.get(tag)
            if ok is not None and value in ok:
                continue
            if not value:
                return False
            check = checks.get(tag)
            if check is not None:
                fmt, values, multi = check
                if fmt is not None and not fmt(value):
                    return False
                if values is not None and value not in values and not (
                        multi and all(v in values for v in value.split(" "))):
                    return False
            if ok is None:
                good[tag] = {value}
            elif len(ok) < _SEEN_PER_TAG:
                ok.add(value)
    return True


def _read_values_ok(msg: Message, dd: DataDictionary, read_tags: frozenset[int]) -> bool:
    """:func:`_values_ok` over the session's header tags and ``read_tags`` of the body, by a
    plan made once per ``read_tags``: (header?, tag, format, enumeration, multi-value)."""
    plans = cast(dict[frozenset[int], list[tuple[bool, int, _Check | None]]],
                 dd.validation_cache.setdefault("read_plans", {}))
    plan = plans.get(read_tags)
    if plan is None:
        checks = _checks(dd)
        plan = [(True, t, checks.get(t)) for t in SESSION_READS]
        plan += [(False, t, checks.get(t)) for t in sorted(read_tags)]
        plans[read_tags] = plan
    h, b = msg.header.fields, msg.body.fields
    for in_header, tag, check in plan:
        value = (h if in_header else b).get(tag)
        if value is None:
            continue
        if not value:
            return False
        if check is not None:
            fmt, values, multi = check
            if fmt is not None and not fmt(value):
                return False
            if values is not None and value not in values and not (
                    multi and all(v in values for v in value.split(" "))):
                return False
    return True


def _full(msg: Message, md: MessageDef, dd: DataDictionary, check_user_defined: bool) -> None:
    _required(msg.header, dd.header.required, dd.header.groups)
    _required(msg.trailer, dd.trailer.required, {})
    _required(msg.body, md.required, md.groups)
    try:  # fast pass in wire order; on failure redo in tag order so the reported tag is
        # the one QuickFIX reports first
        _iterate(msg.header, dd, None, dd.header.groups, check_user_defined, False)
        _iterate(msg.trailer, dd, None, {}, check_user_defined, False)
        _iterate(msg.body, dd, md.fields, md.groups, check_user_defined, False)
    except RejectError:
        _iterate(msg.header, dd, None, dd.header.groups, check_user_defined, True)
        _iterate(msg.trailer, dd, None, {}, check_user_defined, True)
        _iterate(msg.body, dd, md.fields, md.groups, check_user_defined, True)
        raise


def _required(fm: FieldMap, required: list[int], groups: dict[int, GroupDef]) -> None:
    fields = fm.fields
    for tag in required:
        if tag not in fields:
            raise RejectError(R.REQUIRED_TAG_MISSING, tag)
    for count_tag, entries in fm.groups.items():
        gdef = groups.get(count_tag)
        if gdef is not None:
            for entry in entries:
                _required(entry, gdef.required, gdef.groups)


def _iterate(fm: FieldMap, dd: DataDictionary, allowed: set[int] | frozenset[int] | None,
             groups: dict[int, GroupDef], check_user_defined: bool,
             in_tag_order: bool = True) -> None:
    repeated = fm.repeated
    fields = fm.fields
    known = dd.fields
    checks = _checks(dd)
    # (tag, value) pairs already found valid in this context skip the checks below
    seen: dict[int, set[str]] = dd.validation_cache.setdefault(  # type: ignore[assignment]
        (id(allowed), check_user_defined), {})
    for tag in sorted(fields) if in_tag_order else fields:
        value = fields[tag]
        if repeated and tag in repeated:
            raise RejectError(R.TAG_APPEARS_MORE_THAN_ONCE, tag)
        ok = seen.get(tag)
        if ok is not None and value in ok:
            continue
        if not value:
            raise RejectError(R.TAG_SPECIFIED_WITHOUT_A_VALUE, tag)
        check = checks.get(tag)
        if check is not None:
            fmt, values, multi = check
            if fmt is not None and not fmt(value):
                raise RejectError(R.INCORRECT_DATA_FORMAT, tag)
            if values is not None and value not in values and not (
                    multi and all(v in values for v in value.split(" "))):
                raise RejectError(R.VALUE_IS_INCORRECT, tag)
        if tag < USER_MIN_TAG or check_user_defined:
            if tag not in known:
                raise RejectError(R.INVALID_TAG_NUMBER, tag)
            if allowed is not None and tag not in allowed:
                raise RejectError(R.TAG_NOT_DEFINED_FOR_MESSAGE_TYPE, tag)
            if groups and tag in groups:
                if int(value) != len(fm.groups.get(tag, ())):
                    raise RejectError(R.INCORRECT_NUMINGROUP_COUNT, tag)
                continue  # a count depends on the entries: never remembered
        if ok is None:
            seen[tag] = {value}
        elif len(ok) < _SEEN_PER_TAG:
            ok.add(value)
    if fm.groups:
        for count_tag, entries in fm.groups.items():
            gdef = groups.get(count_tag)
            if gdef is None:
                continue
            for entry in entries:
                _iterate(entry, dd, gdef.members, gdef.groups, check_user_defined,
                         in_tag_order)


_SEEN_PER_TAG = 64


_Check = tuple[Callable[[str], bool] | None, frozenset[str] | None, bool]


def _checks(dd: DataDictionary) -> dict[int, _Check]:
    """Per tag: (format predicate or None, allowed values or None, multi-value flag)."""
    cached = dd.validation_cache.get("checks")
    if cached is not None:
        return cached  # type: ignore[return-value]
    out: dict[int, _Check] = {}
    for tag, f in dd.fields.items():
        fmt = _format_check(f.type)
        if fmt is not None or f.values is not None:
            out[tag] = (fmt, f.values, f.type in MULTI_TYPES)
    dd.validation_cache["checks"] = out
    return out


def _format_check(ftype: str) -> Callable[[str], bool] | None:
    if ftype in INT_TYPES:
        return _is_int
    if ftype in FLOAT_TYPES:
        return _is_float
    if ftype == "CHAR":
        return lambda v: len(v) == 1
    if ftype == "BOOLEAN":
        return lambda v: v == "Y" or v == "N"
    if ftype == "UTCTIMESTAMP":
        return lambda v: parse_utc_timestamp(v) is not None
    if ftype == "UTCTIMEONLY":
        return lambda v: parse_utc_timestamp("19700101-" + v) is not None
    if ftype in ("UTCDATE", "UTCDATEONLY"):
        return lambda v: len(v) == 8 and v.isdigit() and v.isascii()
    return None


def _is_int(value: str) -> bool:
    return value.isascii() and (value.isdigit() or (value[:1] == "-" and value[1:].isdigit()))


def _is_float(value: str) -> bool:
    v = value[1:] if value[:1] == "-" else value
    if not v or v.count(".") > 1:
        return False
    digits = v.replace(".", "")
    return digits.isdigit() and digits.isascii()
