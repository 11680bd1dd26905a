"""Message stores: the next sender/target sequence numbers and sent messages by sequence number.

* :class:`MemoryStore` keeps everything in memory (at most ``max_messages`` messages; older
  ones are answered with a gap fill on resend).
* :class:`FileStore` persists to a folder (``<id>.seqnums``, ``<id>.body``, ``<id>.header``) so
  sequence numbers and resendable messages survive a restart; ``fsync`` makes every write
  durable at the cost of latency.
* :class:`SqlStore` persists to the ``fix_sessions`` / ``fix_messages`` tables through
  :class:`keel.store.db.Store` (SQLite or PostgreSQL).
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Protocol, runtime_checkable

from keel.clock import WallClock
from keel.errors import StoreError


@runtime_checkable
class MessageStore(Protocol):
    """What a session needs from its store."""

    next_sender: int
    next_target: int

    def set_next_sender(self, seq: int) -> None: ...

    def set_next_target(self, seq: int) -> None: ...

    def save(self, seq: int, data: bytes) -> None:
        """Keep sent message ``seq`` (wire bytes) for resend requests."""
        ...

    def get(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        """Saved messages with ``begin <= seq <= end``, ascending."""
        ...

    def reset(self) -> None:
        """Forget every message and set both sequence numbers to 1."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    """In-memory store holding at most ``max_messages`` sent messages."""

    def __init__(self, max_messages: int = 100_000) -> None:
        self.next_sender = 1
        self.next_target = 1
        self.max_messages = max_messages
        #: start (POSIX s) of the schedule period the numbers belong to (see Session)
        self.period_start: float | None = None
        self._messages: OrderedDict[int, bytes] = OrderedDict()

    def set_period_start(self, start: float) -> None:
        self.period_start = start

    def set_next_sender(self, seq: int) -> None:
        self.next_sender = seq

    def set_next_target(self, seq: int) -> None:
        self.next_target = seq

    def save(self, seq: int, data: bytes) -> None:
        msgs = self._messages
        msgs[seq] = data
        if len(msgs) > self.max_messages:
            msgs.popitem(last=False)

    def get(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        return [(s, d) for s, d in self._messages.items() if begin <= s <= end]

    def reset(self) -> None:
        self.next_sender = self.next_target = 1
        self._messages.clear()

    def close(self) -> None:
        pass


#: deferred FileStore: index lines written together (the body is written at every flush)
_INDEX_EVERY = 256
_HEAD_RE = re.compile(rb"8=[^\x01]*\x019=(\d+)\x01")
_SEQ_RE = re.compile(rb"\x0134=(\d+)\x01")


def _frames(data: bytes) -> list[tuple[int, int, int]]:
    """(seq, offset, length) of the complete frames stored back to back in ``data`` (framed
    by BodyLength, as written); a torn write (a crash mid-write) is skipped up to the next
    frame."""
    out, pos, n = [], 0, len(data)
    while pos < n:
        m = _HEAD_RE.match(data, pos)
        end = m.end() + int(m.group(1)) + 7 if m is not None else -1  # + "10=nnn<SOH>"
        seq = (_SEQ_RE.search(data, m.end() - 1, end)
               if m is not None and end <= n and data[end - 7:end - 4] == b"10=" else None)
        if seq is None:
            nxt = data.find(b"8=FIX", pos + 1)
            if nxt < 0:
                break
            pos = nxt
            continue
        out.append((int(seq.group(1)), pos, end - pos))
        pos = end
    return out


def _safe_name(session_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", session_id)


class FileStore:
    """File-backed store in ``folder`` for ``session_id``.

    ``<id>.seqnums`` holds ``sender:target`` rewritten in place; ``<id>.body`` the appended
    messages; ``<id>.header`` one ``seq,offset,length`` line per message; ``<id>.session`` the
    start of the schedule period the numbers belong to (POSIX s; like QuickFIX's creation
    time, it lets a restart in a later session period reset them). ``fsync=True`` syncs
    each write to disk before returning (survives power loss, costs a disk flush per message).

    ``deferred`` (default): writes are held in memory until :meth:`flush`, which the session
    calls before it hands its output to the transport (``Session.take_output``): every
    message and sequence number is written (to the OS, and synced with ``fsync``) before any
    byte of it reaches the peer, in one write per file per batch instead of four writes per
    message. A crash can lose only what the peer never saw: messages not yet sent, and the
    inbound sequence number of messages processed since the last output (the peer resends
    them on the next logon, with PossDupFlag=Y). ``deferred=False`` writes every call through.
    """

    def __init__(self, folder: str | os.PathLike[str], session_id: str, *,
                 fsync: bool = False, deferred: bool = True) -> None:
        self.folder = Path(folder)
        self.fsync = fsync
        self.deferred = deferred
        self._pending_body: list[bytes] = []
        self._pending_header: list[str] = []
        self._seqs_dirty = False
        self._pending_offset = 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # Append the suffixes: with_suffix would cut "FIX.4.2:A->B" at its last dot and
            # make FIX.4.2 and FIX.4.4 sessions of the same CompIDs share files.
            name = _safe_name(session_id)
            self._seq_path = self.folder / f"{name}.seqnums"
            self._body_path = self.folder / f"{name}.body"
            self._header_path = self.folder / f"{name}.header"
            self._period_path = self.folder / f"{name}.session"
            self.period_start: float | None = None
            self._index: dict[int, tuple[int, int]] = {}
            self.next_sender = self.next_target = 1
            self._load()
            self._seq_fd = os.open(self._seq_path, os.O_RDWR | os.O_CREAT, 0o644)
            self._body = open(self._body_path, "ab")  # noqa: SIM115 - held for the store's life
            self._header = open(self._header_path, "a")  # noqa: SIM115
        except OSError as exc:
            raise StoreError(f"cannot open FIX file store: {exc}", field="folder",
                             value=str(folder)) from None
        self._write_seqs()

    def _load(self) -> None:
        if self._period_path.exists():
            text = self._period_path.read_text().strip()
            try:
                self.period_start = float(text)
            except ValueError:
                raise StoreError("corrupt FIX session-period file", field="session",
                                 value=str(self._period_path)) from None
        if self._seq_path.exists():
            text = self._seq_path.read_text().strip()
            m = re.fullmatch(r"(\d+)\s*:\s*(\d+)\s*", text)
            if m is None:
                raise StoreError("corrupt FIX seqnums file", field="seqnums",
                                 value=str(self._seq_path))
            self.next_sender, self.next_target = int(m.group(1)), int(m.group(2))
        if self._header_path.exists():
            for line in self._header_path.read_text().splitlines():
                parts = line.split(",")
                if len(parts) == 3 and all(p.isdigit() for p in parts):
                    self._index[int(parts[0])] = (int(parts[1]), int(parts[2]))
        self._recover_index()

    def set_period_start(self, start: float) -> None:
        """Record the schedule period the sequence numbers now belong to (atomic replace)."""
        tmp = self._period_path.with_name(self._period_path.name + ".tmp")
        tmp.write_text(repr(float(start)))
        if self.fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, self._period_path)
        self.period_start = start

    def flush(self) -> None:
        """Write what ``deferred`` holds: the messages and the sequence numbers (two writes).
        The index (``.header``) follows every ``_INDEX_EVERY`` messages and at close: the
        body is the truth, and a restart indexes the messages the index has not caught up
        with from the body itself (:meth:`_recover_index`)."""
        if self._pending_body:
            self._body.write(b"".join(self._pending_body))
            self._body.flush()
            self._pending_body.clear()
            if self.fsync:
                os.fsync(self._body.fileno())
            if len(self._pending_header) >= _INDEX_EVERY:
                self._write_index()
        if self._seqs_dirty:
            self._seqs_dirty = False
            self._write_seqs()

    def _write_index(self) -> None:
        if self._pending_header:
            self._header.write("".join(self._pending_header))
            self._header.flush()
            self._pending_header.clear()
            if self.fsync:
                os.fsync(self._header.fileno())

    def _recover_index(self) -> None:
        """Index the messages the body holds past the last indexed one (deferred writes
        index in batches; a crash can leave the index behind the body, never ahead)."""
        end = max((o + n for o, n in self._index.values()), default=0)
        if not self._body_path.exists() or self._body_path.stat().st_size <= end:
            return
        with open(self._body_path, "rb") as fh:
            fh.seek(end)
            rest = fh.read()
        lines = []
        for seq, off, n in _frames(rest):
            self._index[seq] = (end + off, n)
            lines.append(f"{seq},{end + off},{n}\n")
        if lines:
            with open(self._header_path, "a") as fh:
                fh.write("".join(lines))

    def _write_seqs(self) -> None:
        data = b"%020d : %020d" % (self.next_sender, self.next_target)
        os.pwrite(self._seq_fd, data, 0)
        if self.fsync:
            os.fsync(self._seq_fd)

    def set_next_sender(self, seq: int) -> None:
        self.next_sender = seq
        if self.deferred:
            self._seqs_dirty = True
        else:
            self._write_seqs()

    def set_next_target(self, seq: int) -> None:
        self.next_target = seq
        if self.deferred:
            self._seqs_dirty = True
        else:
            self._write_seqs()

    def save(self, seq: int, data: bytes) -> None:
        if self.deferred:
            if not self._pending_body:
                self._pending_offset = self._body.tell()
            offset = self._pending_offset
            self._pending_offset += len(data)
            self._pending_body.append(data)
            self._pending_header.append(f"{seq},{offset},{len(data)}\n")
            self._index[seq] = (offset, len(data))
            return
        offset = self._body.tell()
        self._body.write(data)
        self._body.flush()
        self._header.write(f"{seq},{offset},{len(data)}\n")
        self._header.flush()
        if self.fsync:
            os.fsync(self._body.fileno())
            os.fsync(self._header.fileno())
        self._index[seq] = (offset, len(data))

    def get(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        self.flush()
        self._write_index()
        out = []
        with open(self._body_path, "rb") as fh:
            for seq in sorted(s for s in self._index if begin <= s <= end):
                offset, length = self._index[seq]
                fh.seek(offset)
                out.append((seq, fh.read(length)))
        return out

    def reset(self) -> None:
        self._pending_body.clear()
        self._pending_header.clear()
        self._seqs_dirty = False
        self._body.close()
        self._header.close()
        self._body = open(self._body_path, "wb")  # noqa: SIM115
        self._header = open(self._header_path, "w")  # noqa: SIM115
        self._index.clear()
        self.next_sender = self.next_target = 1
        self._write_seqs()

    def close(self) -> None:
        if self._seq_fd >= 0 and not self._body.closed:
            self.flush()
            self._write_index()
        for fh in (self._body, self._header):
            if not fh.closed:
                fh.close()
        if self._seq_fd >= 0:
            os.close(self._seq_fd)
            self._seq_fd = -1


class SqlStore:
    """Store on the ``fix_sessions`` / ``fix_messages`` tables (one row per sent message)."""

    def __init__(self, store: object, session_id: str) -> None:
        from keel.store.db import Store
        from keel.store.tables import FixSessionRow

        if not isinstance(store, Store):
            raise StoreError("SqlStore needs a keel.store.db.Store", field="store",
                             value=type(store).__name__)
        self._db = store
        self.session_id = session_id
        with store.session() as s:
            row = s.get(FixSessionRow, session_id)
            if row is None:
                now = WallClock().now()
                row = FixSessionRow(session_id=session_id, next_sender_seq=1, next_target_seq=1,
                                    creation_time=now, updated_at=now)
                s.add(row)
            self.next_sender = int(row.next_sender_seq)
            self.next_target = int(row.next_target_seq)

    def _update(self) -> None:
        from keel.store.tables import FixSessionRow

        with self._db.session() as s:
            row = s.get(FixSessionRow, self.session_id)
            if row is not None:
                row.next_sender_seq = self.next_sender
                row.next_target_seq = self.next_target
                row.updated_at = WallClock().now()

    def set_next_sender(self, seq: int) -> None:
        self.next_sender = seq
        self._update()

    def set_next_target(self, seq: int) -> None:
        self.next_target = seq
        self._update()

    def save(self, seq: int, data: bytes) -> None:
        from keel.store.tables import FixMessageRow

        with self._db.session() as s:
            s.merge(FixMessageRow(session_id=self.session_id, seq=seq, raw=data))

    def get(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        from sqlalchemy import select

        from keel.store.tables import FixMessageRow

        with self._db.session() as s:
            rows = s.execute(select(FixMessageRow.seq, FixMessageRow.raw)
                             .where(FixMessageRow.session_id == self.session_id,
                                    FixMessageRow.seq >= begin, FixMessageRow.seq <= end)
                             .order_by(FixMessageRow.seq)).all()
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def reset(self) -> None:
        from sqlalchemy import delete

        from keel.store.tables import FixMessageRow

        with self._db.session() as s:
            s.execute(delete(FixMessageRow).where(FixMessageRow.session_id == self.session_id))
        self.next_sender = self.next_target = 1
        self._update()

    def close(self) -> None:
        pass
