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
``control.engine``       ``{"engine": "greedy"|"mean_variance"|..., "reason": "..."}``:
                         the construction engine to use from the next cycle on
=======================  ===============================================================

>>> write_kill_switch(store, True, "manual halt", clock.now(), actor="api")
>>> read_control(store).kill_switch
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keel.config import EngineKind
from keel.store.audit import AuditLog, AuditRecord
from keel.store.db import Store

ENTITY = "control"
ENTITY_ID = "live"
KILL_SWITCH = "control.kill_switch"
ENGINE = "control.engine"


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "kill_switch": {"engaged": self.kill_switch, "reason": self.kill_switch_reason,
                            "at": _iso(self.kill_switch_at), "by": self.kill_switch_by},
            "engine": {"requested": self.engine.value if self.engine else None,
                       "at": _iso(self.engine_at), "by": self.engine_by},
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
        engine_by=eng.actor if eng else "")


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
