"""The keel error hierarchy: one class per failure a caller can act on.

Every error carries the context needed to act on it without reading a traceback: the
``field`` (or config key, or column), the ``symbol`` and the offending ``value`` where they
apply, plus free-form context (``file``, ``row``, ...). ``str(err)`` renders all of it::

    DataError: non-positive price [file=prices.csv, column=close, row=17, symbol=AAPL, value=-1.0]
"""

from __future__ import annotations

from typing import Any


class KeelError(Exception):
    """Base class of every error keel raises on purpose.

    Args:
        message: what went wrong, in plain words.
        field: the field, column or config key at fault.
        symbol: the instrument at fault, if any.
        value: the offending value, if any.
        **context: further named context (file, row, order id, ...), kept in ``self.context``.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        symbol: str | None = None,
        value: Any = None,
        **context: Any,
    ) -> None:
        self.message = message
        self.field = field
        self.symbol = symbol
        self.value = value
        self.context: dict[str, Any] = dict(context)
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [f"{k}={v}" for k, v in self.context.items() if v is not None]
        if self.field is not None:
            parts.append(f"field={self.field}")
        if self.symbol is not None:
            parts.append(f"symbol={self.symbol}")
        if self.value is not None:
            parts.append(f"value={self.value!r}")
        return f"{self.message} [{', '.join(parts)}]" if parts else self.message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (for APIs, logs and stored audit rows)."""
        out: dict[str, Any] = {"error": type(self).__name__, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.symbol is not None:
            out["symbol"] = self.symbol
        if self.value is not None:
            out["value"] = repr(self.value)
        out.update({k: (v if isinstance(v, int | float | str | bool) else repr(v))
                    for k, v in self.context.items() if v is not None})
        return out


class DataError(KeelError):
    """Market or reference data is missing, malformed or inconsistent (names file/column/row)."""


class CalendarError(DataError):
    """An unknown exchange calendar, or a time outside the calendar's range."""


class AmbiguousTimeError(DataError):
    """A daily bar's timestamp says neither which session it is nor when it became known
    (not a date, not the session close; or a naive time of day): names the column and row."""


class ConfigError(KeelError):
    """A configuration file or value is invalid (names the key and the file)."""


class ValidationError(KeelError):
    """An argument or a domain object is invalid (names the field and the value)."""


class NonConvexError(ValidationError):
    """An optimisation problem was built that is not convex (DCP); refused at build time."""


class InfeasibleError(KeelError):
    """An optimisation problem has no feasible point.

    ``culprits`` maps each constraint that must give to the amount by which it must be relaxed.
    """

    def __init__(self, message: str, *, culprits: dict[str, float] | None = None,
                 **kwargs: Any) -> None:
        self.culprits: dict[str, float] = dict(culprits or {})
        super().__init__(message, **kwargs)

    def _render(self) -> str:
        base = super()._render()
        if not self.culprits:
            return base
        names = ", ".join(f"{k} (by {v:.6g})" for k, v in self.culprits.items())
        return f"{base}; conflicting constraints: {names}"


class SolverError(KeelError):
    """Every solver in the fallback chain failed (the trail is in ``context['trail']``)."""


class RiskLimitError(KeelError):
    """A risk limit is breached and the action is refused."""


class LedgerError(KeelError):
    """A booking would break the ledger (unknown symbol, overspend where forbidden, ...)."""


class ConcurrencyError(LedgerError):
    """An optimistic-lock version check failed: somebody else wrote first."""


class OrderRejected(KeelError):
    """An order was refused, by a pre-trade check or by the venue.

    ``reason_code`` is a stable machine-readable code (e.g. ``MAX_NOTIONAL``, ``RESTRICTED``).
    """

    def __init__(self, message: str, *, reason_code: str = "REJECTED", **kwargs: Any) -> None:
        self.reason_code = reason_code
        super().__init__(message, **kwargs)

    def _render(self) -> str:
        return f"{self.reason_code}: {super()._render()}"


class IllegalTransitionError(KeelError):
    """An order state change that the order state machine does not allow."""


class VenueError(KeelError):
    """A venue (broker, exchange) failed to do what was asked."""


class TransientVenueError(VenueError):
    """A venue failure worth retrying (timeout, connection reset, rate limit)."""


class SessionError(KeelError):
    """A FIX (or other) session-level failure: logon refused, sequence problems, disconnects."""


class ProtocolError(SessionError):
    """Bytes that do not form a valid message (bad checksum, body length, garbled field)."""


class StoreError(KeelError):
    """The persistent store failed (connection, migration, integrity)."""


class LeaseHeldError(StoreError):
    """Another process holds the store's single-writer lease (``holder``, ``expires_at``)."""


class DuplicateFillError(StoreError):
    """The store refused a batch because some of its fills are already booked (their
    ``exec_ids``); nothing of the batch was written."""

    def __init__(self, message: str, *, exec_ids: tuple[str, ...] = (), **kwargs: Any) -> None:
        self.exec_ids = tuple(exec_ids)
        super().__init__(message, **kwargs)
