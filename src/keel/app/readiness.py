"""Readiness: can this process do its job right now? (``/ready``, beside ``/health``.)

``/health`` answers "is the process alive and the store reachable"; ``/ready`` adds "is the
schema at the revision this code ships" and any checks of the embedding process (for ``keel run``,
"is the venue session logged on"). Kubernetes routes traffic only to ready pods and restarts pods
that fail liveness, so a pod waiting for its database migration is not ready but stays alive.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from keel.errors import KeelError
from keel.store.db import Store

#: a named check: returns None when fine, else the reason it is not
Check = Callable[[], str | None]


def store_checks(store: Store) -> dict[str, Check]:
    """The store answers, and its schema is at the newest revision this code ships."""

    def reachable() -> str | None:
        try:
            store.ping()
        except KeelError as exc:
            return str(exc)
        return None

    def migrated() -> str | None:
        try:
            current, head = store.current_revision(), store.head_revision()
        except KeelError as exc:
            return str(exc)
        return None if current == head else f"schema at {current}, code needs {head}"

    return {"store": reachable, "migrations": migrated}


def evaluate(checks: Mapping[str, Check]) -> tuple[bool, dict[str, str | None]]:
    """Run ``checks`` in order, stopping at the first failure (later ones then read "skipped").

    Returns ``(ready, {name: None if ok else reason})``; a check that raises counts as failed
    with the exception's type and message.
    """
    out: dict[str, str | None] = {}
    failed = False
    for name, check in checks.items():
        if failed:
            out[name] = "skipped"
            continue
        try:
            reason = check()
        except Exception as exc:  # a broken check must not break the probe
            reason = f"{type(exc).__name__}: {exc}"
        out[name] = reason
        failed = reason is not None
    return not failed, out
