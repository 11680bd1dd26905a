"""Codec: golden bytes, parsing, groups, data fields, and the frame splitter under any split."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.venues.fix.codec import (
    FrameSplitter,
    InvalidMessage,
    Message,
    checksum,
    decode,
    format_utc,
    parse_fields,
    parse_utc_timestamp,
)

# every test here runs on the pure-Python and the compiled codec (see conftest)
pytestmark = pytest.mark.usefixtures("codec")

GOLDEN_HB = (b"8=FIX.4.2\x019=61\x0135=0\x0134=2\x0149=ISLD\x0152=20261121-08:30:00.123"
             b"\x0156=TW42\x01112=HELLO\x0110=069\x01")


def _heartbeat() -> Message:
    m = Message("0", {112: "HELLO"})
    m.header.fields.update({8: "FIX.4.2", 56: "TW42", 34: "2", 49: "ISLD",
                            52: "20261121-08:30:00.123"})
    return m


def test_encode_golden_bytes() -> None:
    data = _heartbeat().encode()
    assert data == GOLDEN_HB
    # independent recomputation of BodyLength and CheckSum
    body = data[data.index(b"35="):data.index(b"10=")]
    assert len(body) == 61
    total = 0
    for byte in data[:data.index(b"10=")]:
        total += byte
    assert data.endswith(b"10=%03d\x01" % (total % 256))


def test_decode_golden_bytes(dd42) -> None:
    msg = decode(GOLDEN_HB, dd42)
    assert msg.msg_type == "0"
    assert msg.seq_num == 2
    assert msg.header[49] == "ISLD"
    assert msg.get(112) == "HELLO"
    assert msg.trailer[10] == "069"
    assert msg.encode() == GOLDEN_HB


def test_header_order_and_sorted_body() -> None:
    m = Message("D", {55: "MSFT", 11: "id", 54: "1"})
    m.header.fields.update({8: "FIX.4.2", 56: "B", 52: "20200101-00:00:00.000", 49: "A",
                            34: "7", 97: "Y"})
    text = m.encode().decode().replace("\x01", "|")
    assert text.startswith("8=FIX.4.2|9=")
    assert "|35=D|34=7|49=A|52=20200101-00:00:00.000|56=B|97=Y|11=id|54=1|55=MSFT|10=" in text


def test_wrong_checksum_and_body_length_are_invalid(dd42, fx) -> None:
    good = fx("8=FIX.4.2|35=0|34=2|49=TW42|52=20200101-00:00:00|56=ISLD|")
    decode(good, dd42)
    with pytest.raises(InvalidMessage, match="CheckSum"):
        decode(good[:-4] + b"000\x01" if not good.endswith(b"=000\x01") else
               good[:-4] + b"001\x01", dd42)
    bad_len = good.replace(b"9=47", b"9=46")
    assert bad_len != good
    with pytest.raises(InvalidMessage, match="BodyLength"):
        decode(bad_len, dd42)
    with pytest.raises(InvalidMessage, match="out of order"):
        decode(fx("8=FIX.4.2|34=3|35=0|49=TW42|52=20200101-00:00:00|56=ISLD|"), dd42)


def test_non_numeric_tag_is_invalid() -> None:
    with pytest.raises(InvalidMessage):
        parse_fields("8=FIX.4.2\x014garbled9=TW\x01")
    with pytest.raises(InvalidMessage):
        parse_fields("8=FIX.4.2\x0149TW\x01")
    with pytest.raises(InvalidMessage):
        parse_fields("8=FIX.4.2\x0149=TW")
    assert parse_fields("-1=HI\x010=x\x01") == [(-1, "HI"), (0, "x")]


def test_data_field_may_contain_soh(dd42, fx) -> None:
    raw = fx("8=FIX.4.2|35=B|34=2|49=TW42|52=20200101-00:00:00|56=ISLD|95=7|"
             "96=ab\x01cd=e|148=news|")
    msg = decode(raw, dd42)
    assert msg.get(96) == "ab\x01cd=e"
    assert msg.encode() == raw


def test_repeating_groups_round_trip(dd42, dd44, fx) -> None:
    raw = fx("8=FIX.4.2|35=D|34=2|49=TW42|52=20200101-00:00:00|56=ISLD|11=ID|21=1|38=200|"
             "40=1|54=1|55=INTC|60=20200101-00:00:00|386=2|336=PRE|336=POST|")
    msg = decode(raw, dd42)
    assert [e[336] for e in msg.body.groups[386]] == ["PRE", "POST"]
    assert msg.encode() == raw
    # FIX 4.4: nested group inside a component (Parties / PartySubIDs)
    raw44 = fx("8=FIX.4.4|35=D|34=2|49=TW44|52=20200101-00:00:00|56=ISLD|11=ID|"
               "38=200|40=1|54=1|55=INTC|60=20200101-00:00:00|453=2|448=P1|447=D|452=1|"
               "802=1|523=S1|803=1|448=P2|447=D|452=3|")
    msg44 = decode(raw44, dd44)
    parties = msg44.body.groups[453]
    assert [p[448] for p in parties] == ["P1", "P2"]
    assert parties[0].groups[802][0][523] == "S1"
    assert msg44.encode() == raw44


def test_group_built_by_application_is_encoded_inline() -> None:
    m = Message("D", {11: "a", 60: "t"})
    m.body.set_group(386, [{336: "X"}, {336: "Y"}])
    m.header.fields.update({8: "FIX.4.2"})
    text = m.encode().decode().replace("\x01", "|")
    assert "|11=a|60=t|386=2|336=X|336=Y|10=" in text


def _stream(fx) -> tuple[bytes, list[bytes]]:
    frames = [fx(f"8=FIX.4.2|35=1|34={i}|49=TW42|52=20200101-00:00:00|56=ISLD|112=T{i}|")
              for i in range(1, 4)]
    stream = b"garbage\x01" + frames[0] + b"\x01\x01junk" + frames[1] + frames[2]
    return stream, frames


def test_splitter_every_split_point(fx) -> None:
    stream, frames = _stream(fx)
    for i in range(len(stream) + 1):
        sp = FrameSplitter()
        assert sp.feed(stream[:i]) + sp.feed(stream[i:]) == frames, i
        assert sp.buffered == 0


def test_splitter_byte_by_byte(fx) -> None:
    stream, frames = _stream(fx)
    sp = FrameSplitter()
    out = []
    for b in stream:
        out += sp.feed(bytes([b]))
    assert out == frames


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_splitter_any_chunking(cuts: list[int]) -> None:
    from tests.venues.fix.conftest import fixify

    stream, frames = _stream(fixify)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    sp = FrameSplitter()
    out, prev = [], 0
    for p in [*points, len(stream)]:
        out += sp.feed(stream[prev:p])
        prev = p
    assert out == frames


def test_splitter_non_numeric_body_length_is_skipped(fx) -> None:
    good = fx("8=FIX.4.2|35=0|34=2|49=TW42|52=20200101-00:00:00|56=ISLD|")
    sp = FrameSplitter()
    assert sp.feed(b"8=FIX.4.2\x019=abc\x0135=0\x01" + good) == [good]
    assert sp.garbled == 1


def test_splitter_oversized_is_flagged_and_bounded() -> None:
    sp = FrameSplitter(max_message_size=1000)
    assert sp.feed(b"8=FIX.4.2\x019=999999\x0135=0\x01" + b"x" * 500) == []
    assert sp.oversized
    sp2 = FrameSplitter(max_message_size=1000)
    sp2.feed(b"8=FIX.4.2\x019=")
    for _ in range(50):  # a BodyLength that never ends
        sp2.feed(b"1" * 100)
    assert sp2.oversized
    assert sp2.buffered < 2000
    sp4 = FrameSplitter(max_message_size=1000)
    for _ in range(50):  # "8=" that never opens a frame
        assert sp4.feed(b"8=FIX.4.2\x01" + b"y" * 100) == []
    assert sp4.buffered < 200 and sp4.garbled == 0
    sp3 = FrameSplitter(max_message_size=1000)
    for _ in range(100):  # pure garbage without "8="
        assert sp3.feed(b"z" * 1000) == []
    assert sp3.buffered <= 1


def test_splitter_wrong_body_length_still_finds_checksum(fx) -> None:
    # QuickFIX frames to the first "<SOH>10=" after BodyLength - 1 bytes: a short
    # BodyLength still yields the whole frame (which then fails decode).
    raw = fx("8=FIX.4.2|9=30|35=D|34=2|49=TW42|52=20200101-00:00:00|56=ISLD|11=ID|10=000|")
    sp = FrameSplitter()
    assert sp.feed(raw) == [raw]


def test_time_format_round_trip() -> None:
    t = 1_763_713_800.123
    text = format_utc(t)
    assert text == "20251121-08:30:00.123"
    assert parse_utc_timestamp(text) == pytest.approx(t, abs=1e-6)
    assert format_utc(t, millis=False) == "20251121-08:30:00"
    for bad in ("2025112108:30:00", "20251321-08:30:00", "20251121-08:30:00.", "x" * 17):
        assert parse_utc_timestamp(bad) is None


def test_checksum_known_value() -> None:
    assert checksum(b"") == 0
    assert checksum(bytes([255, 1])) == 0
    assert checksum(b"8=FIX.4.2\x01") == sum(b"8=FIX.4.2\x01") % 256


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000))
def test_checksum_equals_byte_sum(data: bytes) -> None:
    assert checksum(data) == sum(data) % 256


def test_codec_choice_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    from keel.errors import ConfigError
    from keel.venues.fix import codec as codec_mod

    before = codec_mod.codec_name()
    with pytest.raises(ConfigError, match="unknown FIX codec"):
        codec_mod.use_codec("rust")
    monkeypatch.setattr(codec_mod, "_NATIVE_MODULE", None)
    assert codec_mod.available_codecs() == ["python"]
    with pytest.raises(ConfigError, match="not installed"):
        codec_mod.use_codec("native")
    codec_mod.use_codec("auto")  # without the module: the pure-Python codec
    assert codec_mod.codec_name() == "python"
    monkeypatch.undo()
    codec_mod.use_codec(before)


def test_native_frames_with_an_equal_sign_in_a_value_match_the_general_path(dd42) -> None:
    from keel.venues.fix.codec import decode_general

    m = Message("0", {112: "a=b=c"})
    m.header.fields.update({8: "FIX.4.2", 56: "T", 34: "2", 49: "S",
                            52: "20261121-08:30:00.123"})
    data = m.encode()
    assert data == m.encode_general()
    fast, general = decode(data, dd42), decode_general(data, dd42)
    assert fast.header.fields == general.header.fields
    assert fast.body.fields == general.body.fields == {112: "a=b=c"}
