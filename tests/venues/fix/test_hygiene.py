"""Outbound value hygiene (#16 point 4) and fuzzing of the codec.

A value with SOH would inject a tag, a control character corrupts the peer's parser, and a
character outside Latin-1 used to raise ``UnicodeEncodeError`` inside the broker's loop after
``submit()`` had returned: each is refused with :class:`FieldValueError` naming the field, and
the broker refuses it up front, before anything is registered or sent.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.errors import KeelError, OrderRejected, TransientVenueError
from keel.types import Order, Side
from keel.venues.fix.broker import FixBroker
from keel.venues.fix.codec import (
    FieldValueError,
    FrameSplitter,
    InvalidMessage,
    Message,
    check_value,
    decode,
)
from keel.venues.fix.messages import new_order_single
from keel.venues.fix.session import SessionConfig

# every test here runs on the pure-Python and the compiled codec (see conftest)
pytestmark = pytest.mark.usefixtures("codec")

T = datetime(2025, 11, 21, 8, 30, tzinfo=UTC)
_CTRL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _nos(cl_ord_id: str = "C1", symbol: str = "AAPL") -> Message:
    m = Message("D", {11: cl_ord_id, 21: "1", 38: "100", 40: "1", 54: "1", 55: symbol,
                      60: "20251121-08:30:00.000"})
    m.header.fields.update({8: "FIX.4.2", 34: "7", 49: "KEEL", 52: "20251121-08:30:00.000",
                            56: "VENUE"})
    return m


@pytest.mark.parametrize(("tag", "value", "what"), [
    (11, "inj2\x011=victim", "SOH"),
    (55, "AAPL\x0144=1", "SOH"),
    (55, "AAPL\U0001f4a5", "latin-1"),
    (11, "C\x00", "control"),
    (11, "C\x7f", "control"),
    (58, "line\nbreak", "control"),
    (55, "A\x85", "control"),  # C1 control (NEL), Latin-1-encodable but a control
])
def test_encoder_refuses_bad_values_naming_the_field(tag: int, value: str, what: str) -> None:
    m = _nos()
    m[tag] = value
    with pytest.raises(FieldValueError) as info:
        m.encode()
    err = info.value
    assert isinstance(err, KeelError)
    assert err.field is not None and err.field.startswith(str(tag))
    assert err.value == value
    assert what in err.message or (what == "control" and "control" in err.message)


def test_header_and_group_values_are_checked_too() -> None:
    m = _nos()
    m.header.fields[49] = "KE\x01EL"
    with pytest.raises(FieldValueError, match="SOH") as info:
        m.encode()
    assert info.value.field == "49 (SenderCompID)"
    m = _nos()
    m.body.set_group(78, [{79: "acct\x01x", 80: "10"}])
    with pytest.raises(FieldValueError) as info:
        m.encode()
    assert info.value.field == "79"


def test_data_fields_may_carry_soh_and_controls() -> None:
    m = _nos()
    m[95] = "5"
    m[96] = "a\x01b\x02c"
    data = m.encode()
    assert b"96=a\x01b\x02c\x01" in data


def test_latin1_text_is_accepted() -> None:
    m = _nos(symbol="SOCIÉTÉ")
    assert decode(m.encode())[55] == "SOCIÉTÉ"


def _unchecked_order(cid: str, symbol: str) -> Order:
    """An Order carrying ``cid`` / ``symbol`` even where ``Order`` itself refuses them (the
    encoder and the broker are the last line: they must hold whatever reaches them)."""
    order = Order("placeholder", "AAPL", Side.BUY, Decimal(10), T)
    object.__setattr__(order, "client_order_id", cid)
    object.__setattr__(order, "symbol", symbol)
    return order


def test_broker_refuses_a_bad_order_up_front() -> None:
    """Not started, so a good order is TransientVenueError at the hand-over; a bad one is
    OrderRejected(INVALID_FIELD) before it: the check runs on the caller's thread, first."""
    broker = FixBroker(SessionConfig("FIX.4.2", "KEEL", "VENUE"), "127.0.0.1", 1,
                       spec_dir=None)
    for cid, sym, field in (("inj2\x011=victim", "AAPL", "11 (ClOrdID)"),
                            ("ok1", "AAPL\U0001f4a5", "55 (Symbol)"),
                            ("ok2", "AAPL\x0144=1", "55 (Symbol)")):
        with pytest.raises(OrderRejected) as info:
            broker.submit(_unchecked_order(cid, sym))
        assert info.value.reason_code == "INVALID_FIELD"
        assert info.value.field == field
        assert broker.open_orders() == []
    with pytest.raises(TransientVenueError):
        broker.submit(Order("good", "AAPL", Side.BUY, Decimal(10), T))


# ------------------------------------------------------------------------ fuzzing

_any_text = st.text(st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=400, deadline=None)
@given(value=_any_text, tag=st.sampled_from([11, 55, 58, 1, 49]))
def test_fuzz_a_value_round_trips_exactly_or_is_refused(value: str, tag: int) -> None:
    """No value can add, drop or change any other field: either the decoded message has the
    same fields with the same values, or encode raises naming this tag."""
    m = _nos()
    if tag == 49:
        m.header.fields[49] = value
    else:
        m[tag] = value
    try:
        data = m.encode()
    except FieldValueError as exc:
        assert exc.field is not None and exc.field.split()[0] == str(tag)
        bad = "\x01" in value or _CTRL.search(value) is not None
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            bad = True
        assert bad
        return
    assert "\x01" not in value and _CTRL.search(value) is None
    back = decode(data)
    assert back.body.fields == m.body.fields
    assert {k: back.header.fields[k] for k in (34, 49, 56)} == \
        {k: m.header.fields[k] for k in (34, 49, 56)}


_safe = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                              blacklist_characters="\x7f" + "".join(map(chr, range(0x80, 0xA0)))),
                min_size=1, max_size=10)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.dictionaries(st.integers(5000, 5100), _safe, min_size=1, max_size=8),
       cuts=st.lists(st.integers(0, 400), max_size=6))
def test_fuzz_encode_decode_round_trip_under_any_fragmentation(body: dict[int, str],
                                                               cuts: list[int]) -> None:
    m = Message("D", body)
    m.header.fields.update({8: "FIX.4.2", 34: "1", 49: "A", 56: "B",
                            52: "20251121-08:30:00.000"})
    data = m.encode() * 2
    sp = FrameSplitter()
    frames: list[bytes] = []
    prev = 0
    for c in [*sorted(min(c, len(data)) for c in cuts), len(data)]:
        frames += sp.feed(data[prev:c])
        prev = c
    assert len(frames) == 2 and frames[0] == frames[1] == data[:len(data) // 2]
    assert decode(frames[0]).body.fields == body


@settings(max_examples=300, deadline=None)
@given(junk=st.binary(max_size=200), keep=st.integers(0, 60))
def test_fuzz_garbage_is_skipped_or_invalid_never_a_crash(junk: bytes, keep: int) -> None:
    good = _nos().encode()
    sp = FrameSplitter()
    frames = sp.feed(junk + good[:keep]) + sp.feed(good[keep:] + good)
    for f in frames:
        with contextlib.suppress(InvalidMessage):
            decode(f)
    assert good in frames  # the last good frame always comes through intact


@given(value=_any_text)
def test_check_value_agrees_with_the_encoder(value: str) -> None:
    m = _nos()
    m[58] = value
    try:
        check_value(58, value)
        ok = True
    except FieldValueError:
        ok = False
    try:
        m.encode()
        assert ok
    except FieldValueError:
        assert not ok


def test_new_order_single_from_a_bad_order_is_refused_at_encode() -> None:
    msg = new_order_single(_unchecked_order("x\x01", "AAPL"))
    with pytest.raises(FieldValueError):
        msg.check_values()


# ------------------------------------------------------------- fast paths vs general paths

_tag_values = st.dictionaries(st.sampled_from([1, 6, 11, 14, 17, 31, 32, 37, 38, 39, 44, 54,
                                               55, 58, 60, 150, 151, 5001, 9999]),
                              _safe, min_size=0, max_size=10)


@settings(max_examples=300, deadline=None)
@given(body=_tag_values, mt=st.sampled_from(["8", "D", "0", "j"]),
       extra_header=st.dictionaries(st.sampled_from([43, 97, 115, 128]), _safe, max_size=2))
def test_fast_encode_and_decode_equal_the_general_paths(body: dict[int, str], mt: str,
                                                        extra_header: dict[int, str]) -> None:
    from keel.venues.fix.codec import decode_general

    m = Message(mt, body)
    m.header.fields.update({8: "FIX.4.2", 34: "5", 49: "A", 56: "B",
                            52: "20251121-08:30:00.000", **extra_header})
    data = m.encode()
    assert data == m.encode_general()
    for dd in (None,):  # the dictionary case: the next test
        fast, general = decode(data, dd), decode_general(data, dd)
        assert (fast.header.fields, fast.body.fields, fast.trailer.fields) == (
            general.header.fields, general.body.fields, general.trailer.fields)
        assert fast.out_of_order_tag == general.out_of_order_tag == 0


def test_fast_decode_with_the_dictionary_equals_the_general_path(dd42, dd44) -> None:
    from keel.venues.fix.codec import decode_general

    for dd in (dd42, dd44):
        m = _nos()
        m.header.fields[8] = dd.begin_string
        data = m.encode()
        for _ in range(2):  # first call learns the shape, the second uses it
            fast, general = decode(data, dd), decode_general(data, dd)
            assert (fast.header.fields, fast.body.fields, fast.trailer.fields) == (
                general.header.fields, general.body.fields, general.trailer.fields)
