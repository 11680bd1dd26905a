"""Message stores: sequence numbers and sent messages survive a restart (file and SQL)."""

from __future__ import annotations

import pytest
from tests.venues.fix.conftest import fixify

from keel.errors import StoreError
from keel.store.db import Store
from keel.venues.fix.codec import Message, decode
from keel.venues.fix.session import Session, SessionConfig
from keel.venues.fix.store import FileStore, MemoryStore, MessageStore, SqlStore

T0 = 1_763_713_800.0
CFG = SessionConfig("FIX.4.2", "ISLD", "TW42")


def _exercise(store: MessageStore) -> None:
    store.save(1, b"one")
    store.save(2, b"two")
    store.save(3, b"three")
    store.set_next_sender(4)
    store.set_next_target(7)


def _check(store: MessageStore) -> None:
    assert (store.next_sender, store.next_target) == (4, 7)
    assert store.get(2, 3) == [(2, b"two"), (3, b"three")]
    assert store.get(5, 9) == []


@pytest.mark.parametrize("deferred", [True, False])
@pytest.mark.parametrize("fsync", [False, True])
def test_file_store_survives_reopen(tmp_path, fsync: bool, deferred: bool) -> None:
    s = FileStore(tmp_path, CFG.session_id, fsync=fsync, deferred=deferred)
    assert isinstance(s, MessageStore)
    _exercise(s)
    s.close()
    again = FileStore(tmp_path, CFG.session_id, fsync=fsync)
    _check(again)
    again.reset()
    assert (again.next_sender, again.next_target) == (1, 1) and again.get(1, 10) == []
    again.close()
    third = FileStore(tmp_path, CFG.session_id)
    assert (third.next_sender, third.next_target) == (1, 1)
    third.close()


def test_file_store_rejects_corrupt_seqnums(tmp_path) -> None:
    s = FileStore(tmp_path, "x")
    s.close()
    (tmp_path / "x.seqnums").write_text("garbage")
    with pytest.raises(StoreError) as info:
        FileStore(tmp_path, "x")
    assert info.value.field == "seqnums"


def test_sql_store_survives_reopen(db_url: str) -> None:
    db = Store.from_url(db_url)
    db.create_all()
    s = SqlStore(db, CFG.session_id)
    _exercise(s)
    s.save(3, b"three")  # saving the same seq twice (a resend) keeps one row
    again = SqlStore(Store.from_url(db_url), CFG.session_id)
    _check(again)
    again.reset()
    assert SqlStore(db, CFG.session_id).next_sender == 1


def test_sql_store_needs_a_store() -> None:
    with pytest.raises(StoreError) as info:
        SqlStore("sqlite://", "x")
    assert info.value.field == "store"


def test_memory_store_is_bounded_and_evicted_messages_are_gap_filled(dd42) -> None:
    store = MemoryStore(max_messages=2)
    s = Session(CFG, dd42, store)
    s.on_connect(T0)
    s.on_frame(fixify("8=FIX.4.2|35=A|34=1|49=TW42|52=20251121-08:30:00|56=ISLD|98=0|108=30|"),
               T0)
    for i in range(5):
        s.send(Message("8", {37: str(i)}), T0)
    assert len(store.get(1, 100)) == 2
    s.take_output()
    s.on_frame(fixify("8=FIX.4.2|35=2|34=2|49=TW42|52=20251121-08:30:00|56=ISLD|7=1|16=0|"),
               T0)
    out = [decode(f, dd42) for f in s.take_output()]
    assert [(m.msg_type, m.seq_num) for m in out] == [("4", 1), ("8", 5), ("8", 6)]
    assert out[0][36] == "5"


def test_session_sequence_numbers_survive_a_restart(tmp_path, dd42) -> None:
    logon = "8=FIX.4.2|35=A|34=1|49=TW42|52=20251121-08:30:00|56=ISLD|98=0|108=30|"
    s = Session(CFG, dd42, FileStore(tmp_path, CFG.session_id))
    s.on_connect(T0)
    s.on_frame(fixify(logon), T0)
    s.send(Message("8", {37: "A"}), T0)
    s.send(Message("8", {37: "B"}), T0)
    s.take_output()
    s.store.close()  # the process dies
    restarted = Session(CFG, dd42, FileStore(tmp_path, CFG.session_id))
    assert (restarted.next_sender, restarted.next_target) == (4, 2)
    restarted.on_connect(T0 + 10)
    restarted.on_frame(fixify(logon.replace("34=1", "34=2")), T0 + 10)
    restarted.on_frame(
        fixify("8=FIX.4.2|35=2|34=3|49=TW42|52=20251121-08:30:10|56=ISLD|7=2|16=0|"), T0 + 10)
    out = [decode(f, dd42) for f in restarted.take_output()]
    assert [(m.msg_type, m.seq_num) for m in out] == [("A", 4), ("8", 2), ("8", 3), ("4", 4)]
    assert [m.get(37) for m in out[1:3]] == ["A", "B"]
    assert all(m.header[43] == "Y" for m in out[1:])
    restarted.store.close()


def test_file_stores_of_42_and_44_sessions_with_same_compids_do_not_share_files(tmp_path):
    from keel.venues.fix.store import FileStore

    a = FileStore(tmp_path, "FIX.4.2:ISLD->TW")
    b = FileStore(tmp_path, "FIX.4.4:ISLD->TW")
    a.set_next_sender(7)
    a.flush()  # deferred (the default): the session flushes before each output
    assert len({p.name for p in tmp_path.iterdir()}) == 6
    assert b.next_sender == 1
    assert FileStore(tmp_path, "FIX.4.2:ISLD->TW").next_sender == 7


def test_deferred_file_store_writes_before_the_peer_sees_anything(tmp_path, dd42) -> None:
    """Deferred writes reach the files when the session hands its output over, never later:
    what the transport can send is always in the store."""
    from tests.venues.fix.test_session import T0, Echo, Peer

    from keel.venues.fix.session import Session, SessionConfig

    store = FileStore(tmp_path, "FIX.4.2:ISLD->TW42")
    assert store.deferred
    s = Session(SessionConfig("FIX.4.2", "ISLD", "TW42"), dd42, store, Echo())
    s.on_connect(T0)
    p = Peer(s)
    p.logon()
    p.send("35=D|11=C1|21=1|38=100|40=1|54=1|55=AAPL|60=20251121-08:30:00", T0)
    (seqs,) = tmp_path.glob("*.seqnums")
    assert store.next_sender == 3 and "00000000000000000001" in seqs.read_text()  # held
    frames = s.take_output()  # the logon reply and the echoed order
    assert len(frames) == 2
    reopened = FileStore(tmp_path, "FIX.4.2:ISLD->TW42")
    assert (reopened.next_sender, reopened.next_target) == (3, 3)
    assert [d for _, d in reopened.get(1, 2)] == frames
    reopened.close()
    store.close()


def test_write_through_file_store_is_the_old_behaviour(tmp_path) -> None:
    store = FileStore(tmp_path, "S", deferred=False)
    store.save(1, b"8=FIX.4.2\x01")
    store.set_next_sender(2)
    reopened = FileStore(tmp_path, "S")
    assert reopened.next_sender == 2 and reopened.get(1, 1) == [(1, b"8=FIX.4.2\x01")]
    reopened.close()
    store.close()


def test_deferred_index_is_recovered_from_the_body_after_a_crash(tmp_path) -> None:
    """The index is written in batches; a store reopened after a crash (no close) indexes
    the flushed messages from the body itself, and a torn last write is ignored."""
    from keel.venues.fix.codec import Message

    store = FileStore(tmp_path, "S")
    frames = []
    for seq in (1, 2, 3):
        m = Message("D", {11: f"C{seq}", 55: "AAPL"})
        m.header.fields.update({8: "FIX.4.2", 49: "A", 56: "B", 34: str(seq),
                                52: "20261121-08:30:00.000"})
        frames.append(m.encode())
        store.save(seq, frames[-1])
        store.set_next_sender(seq + 1)
    store.flush()  # what the session does before output; no close: the process "dies"
    (body,) = tmp_path.glob("*.body")
    with open(body, "ab") as fh:
        fh.write(frames[0][:20])  # a torn write after the crash point
    again = FileStore(tmp_path, "S")
    assert again.next_sender == 4
    assert again.get(1, 3) == list(zip((1, 2, 3), frames, strict=True))
    again.save(4, frames[0].replace(b"34=1", b"34=4"))  # appended after the torn bytes
    again.flush()
    third = FileStore(tmp_path, "S")  # "crashed" again before the index caught up
    assert [s for s, _ in third.get(1, 9)] == [1, 2, 3, 4]
    third.close()
