"""Control records: how the service asks a running ``keel run`` loop to change course.

The service never talks to the trading process directly. A write endpoint appends one row to
the append-only ``audit_log`` table; the trading loop reads the newest row of each action at the
top of every cycle with :func:`read_control`. The audit log keeps the whole history (who, when,
why) for free, and both processes only need the store they already share.

Rows (``entity="control"``, ``entity_id="live"``):

=======================  ===============================================================
action                   payload
=======================  ===============================================================
``control.kill_switch``  ``{"engaged": true|false, "reason": "..."}``: stop sending orders
                         (engaged) or resume (released)
``control.engine``       ``{"engine": "greedy"|"mean_variance", "reason": "..."}``:
                         the construction engine to use from the next cycle on
``control.rebalance``    ``{"reason": "..."}``: rebalance at the next bar whatever the
                         triggers say
=======================  ===============================================================

>>> write_kill_switch(store, True, "manual halt", clock.now(), actor="api")
>>> read_control(store).kill_switch
True

**The control file of ``keel run``.** ``keel run`` also re-reads a JSON file every bar
(``--control``, default ``<out_dir>/control.json``; keys ``engine``, ``force``, ``stop``, read
when the file's mtime changes). When the service is given that path it also merges each
request into the file (:func:`update_control_file`): an engine request sets ``engine``, the
kill switch sets ``stop`` (engaged: the loop stops and drains, cancelling working orders), a
rebalance request sets ``force``. ``force`` is reset to ``false`` by every other write, so a
later change does not force a second rebalance.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from keel.config import EngineKind
from keel.store.audit import AuditLog, AuditRecord
from keel.store.db import Store

ENTITY = "control"
ENTITY_ID = "live"
KILL_SWITCH = "control.kill_switch"
ENGINE = "control.engine"
REBALANCE = "control.rebalance"

#: the engines ``keel run`` can switch between while running
LIVE_ENGINES = (EngineKind.MEAN_VARIANCE, EngineKind.GREEDY)


@dataclass(frozen=True)
class ControlState:
    """What the latest control records ask for (``None``: never set, use the config)."""

    kill_switch: bool = False
    kill_switch_reason: str = ""
    kill_switch_at: datetime | None = None
    kill_switch_by: str = ""
    engine: EngineKind | None = None
    engine_at: datetime | None = None
    engine_by: str = ""
    rebalance_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kill_switch": {"engaged": self.kill_switch, "reason": self.kill_switch_reason,
                            "at": _iso(self.kill_switch_at), "by": self.kill_switch_by},
            "engine": {"requested": self.engine.value if self.engine else None,
                       "at": _iso(self.engine_at), "by": self.engine_by},
            "rebalance": {"requested_at": _iso(self.rebalance_at)},
        }


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _latest(audit: AuditLog, action: str) -> AuditRecord | None:
    rows = audit.query(action=action, entity=ENTITY, entity_id=ENTITY_ID, limit=1,
                       newest_first=True)
    return rows[0] if rows else None


def read_control(store: Store) -> ControlState:
    """The control state the newest records ask for (one small query per action)."""
    audit = AuditLog(store)
    kill = _latest(audit, KILL_SWITCH)
    eng = _latest(audit, ENGINE)
    reb = _latest(audit, REBALANCE)
    engine = None
    if eng is not None:
        try:
            engine = EngineKind(str(eng.payload.get("engine")))
        except ValueError:
            engine = None  # a record from a newer keel: ignore rather than crash the loop
    return ControlState(
        kill_switch=bool(kill.payload.get("engaged")) if kill else False,
        kill_switch_reason=str(kill.payload.get("reason", "")) if kill else "",
        kill_switch_at=kill.timestamp if kill else None,
        kill_switch_by=kill.actor if kill else "",
        engine=engine, engine_at=eng.timestamp if eng else None,
        engine_by=eng.actor if eng else "",
        rebalance_at=reb.timestamp if reb else None)


def write_kill_switch(store: Store, engaged: bool, reason: str, now: datetime, *,
                      actor: str = "api") -> AuditRecord:
    """Engage (``True``) or release the kill switch."""
    return AuditLog(store).append(actor, KILL_SWITCH, ENTITY, ENTITY_ID,
                                  {"engaged": bool(engaged), "reason": reason}, now)


def request_engine(store: Store, engine: EngineKind, reason: str, now: datetime, *,
                   actor: str = "api") -> AuditRecord:
    """Ask the trading loop to switch its construction engine from the next cycle."""
    return AuditLog(store).append(actor, ENGINE, ENTITY, ENTITY_ID,
                                  {"engine": EngineKind(engine).value, "reason": reason},
                                  now)


def request_rebalance(store: Store, reason: str, now: datetime, *,
                      actor: str = "api") -> AuditRecord:
    """Ask the trading loop to rebalance at its next bar whatever its triggers say."""
    return AuditLog(store).append(actor, REBALANCE, ENTITY, ENTITY_ID, {"reason": reason}, now)


def update_control_file(path: str | Path, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into the JSON control file at ``path`` atomically; returns its content.

    The file is rewritten through a temporary file and ``os.replace`` so the reader never sees
    half a file; ``force`` is reset to false unless given. An unreadable file is replaced.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = json.loads(p.read_text() or "{}") if p.exists() else {}
    except (OSError, json.JSONDecodeError):
        current = {}
    if not isinstance(current, dict):
        current = {}
    data = {**current, "force": False, **changes}
    fd, tmp = tempfile.mkstemp(prefix=".control-", suffix=".json", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return data
