"""How keel writes numbers for people and for JSON: one helper for the CLI, the reports, the
dashboard and the service.

Human text (tables, reports) uses thousands separators and fixed decimals, and puts the unit in
the column header rather than in every cell (:func:`header`). JSON (the service) carries money
as exact decimal strings quantized to the instrument's tick, enums by name and ISO-8601 times
with their UTC offset (:func:`to_json`).

No third-party imports: the CLI imports this without pulling in FastAPI or pandas.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import Enum
from typing import Any

#: the default money step (cents) when no instrument tick is known
CENT = Decimal("0.01")
#: the dash shown for a missing or undefined number
MISSING = "–"
#: fixed decimals per kind of number, shared with the dashboard (``window.KEEL_FMT``)
DECIMALS = {"money": 2, "price": 2, "bps": 1, "pct": 2, "qty_max": 6}

# ------------------------------------------------------------------ human text


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError, InvalidOperation):
        return None
    return v if math.isfinite(v) else None


def number(x: Any, decimals: int = 0, *, sign: bool = False) -> str:
    """``1234567.891`` -> ``"1,234,567.89"`` (``decimals=2``); None/NaN -> ``"–"``.

    Decimals are formatted exactly (no float round trip); ``sign`` adds ``+`` to positives.
    """
    if isinstance(x, Decimal):
        if not x.is_finite():
            return MISSING
        q = x.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
        if q.is_zero():
            q = abs(q)  # no "-0.00"
        s = f"{q:,.{decimals}f}"
        return ("+" + s) if sign and q > 0 else s
    v = _finite(x)
    if v is None:
        return MISSING
    s = f"{v:,.{decimals}f}"
    if s.lstrip("-").strip("0.,") == "":
        s = s.lstrip("-")  # no "-0.00"
    return ("+" + s) if sign and v > 0 and s.strip("0.,") else s


def money(x: Any, decimals: int = DECIMALS["money"], *, sign: bool = False) -> str:
    """Currency amount with thousands separators: ``10000000`` -> ``"10,000,000.00"``.

    The currency goes in the column header (``"equity (USD)"``), not in the cell.
    """
    return number(x, decimals, sign=sign)


def qty(x: Any) -> str:
    """Share quantity: whole shares without decimals (``"2,000"``), fractional ones with as
    many decimals as they carry (up to 6)."""
    if isinstance(x, Decimal) and x.is_finite():
        d = x.normalize()
        places = max(0, -int(d.as_tuple().exponent))  # type: ignore[arg-type]
        return number(x, min(places, DECIMALS["qty_max"]))
    v = _finite(x)
    if v is None:
        return MISSING
    if float(v).is_integer():
        return number(v, 0)
    return number(v, DECIMALS["qty_max"]).rstrip("0").rstrip(".")


def bps(x: Any, decimals: int = DECIMALS["bps"], *, sign: bool = False) -> str:
    """A value already in basis points: ``3.456`` -> ``"3.5"`` (header says ``(bps)``)."""
    return number(x, decimals, sign=sign)


def pct(fraction: Any, decimals: int = DECIMALS["pct"], *, sign: bool = False) -> str:
    """A fraction shown as a percentage: ``0.0123`` -> ``"1.23%"``."""
    v = _finite(fraction)
    return MISSING if v is None else number(100.0 * v, decimals, sign=sign) + "%"


def price(x: Any, decimals: int = DECIMALS["price"]) -> str:
    """A price per share: ``48.75`` -> ``"48.75"``, ``1234.5`` -> ``"1,234.50"``."""
    return number(x, decimals)


def js_config() -> str:
    """The decimals and the missing-value mark as a JSON object for the dashboard's script,
    so the page formats exactly as :func:`money`, :func:`pct`, :func:`bps`, :func:`qty`."""
    import json

    return json.dumps({**DECIMALS, "missing": MISSING})


def header(name: str, unit: str | None = None) -> str:
    """A column header with its unit: ``header("equity", "USD")`` -> ``"equity (USD)"``."""
    return f"{name} ({unit})" if unit else name


# ------------------------------------------------------------------ JSON


def tick_of(symbol: str | None, ticks: Mapping[str, Decimal] | None) -> Decimal:
    """The price/money step of ``symbol`` (its instrument's tick), else a cent."""
    if ticks and symbol is not None and symbol in ticks:
        return ticks[symbol]
    return CENT


def money_json(x: Decimal | float | int | str | None,
               step: Decimal = CENT) -> str | None:
    """Money as an exact decimal string on ``step`` (half-even): ``"6503.96"``; None stays
    None. Floats go through ``repr`` so ``0.1`` is ``"0.10"``, not its binary expansion."""
    if x is None:
        return None
    d = x if isinstance(x, Decimal) else Decimal(repr(x) if isinstance(x, float) else str(x))
    if not d.is_finite():
        return None
    # a multiple of the step (a tick of 0.05 is not just two decimals), written with the
    # step's decimals
    n = (d / step).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return str((n * step).quantize(step))


def qty_json(x: Decimal | float | int | str | None) -> str | None:
    """A quantity as an exact decimal string without trailing zeros: ``"2000"``, ``"0.5"``."""
    if x is None:
        return None
    d = x if isinstance(x, Decimal) else Decimal(repr(x) if isinstance(x, float) else str(x))
    if not d.is_finite():
        return None
    n = d.normalize()
    return f"{n:f}"


def time_json(t: datetime | date | None) -> str | None:
    """ISO-8601 with an explicit offset (``2026-01-02T15:30:00+00:00``); naive times are
    taken as UTC (the store keeps UTC)."""
    if t is None:
        return None
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.isoformat()
    return t.isoformat()


def to_json(obj: Any) -> Any:
    """``obj`` as JSON-ready values: enums by name, times ISO-8601 with offset, Decimals as
    exact strings (already quantized by the view), non-finite floats as ``null``, dataclasses
    and mappings recursively. Anything else unknown becomes its ``str``.
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, Enum):
        return obj.name
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Decimal):
        return f"{obj:f}" if obj.is_finite() else None
    if isinstance(obj, datetime | date):
        return time_json(obj)
    if isinstance(obj, Mapping):
        return {str(to_json(k)) if isinstance(k, Enum) else str(k): to_json(v)
                for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_json(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_json({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        return to_json(item())
    isoformat = getattr(obj, "isoformat", None)  # pandas Timestamp
    if callable(isoformat):
        return str(isoformat())
    return str(obj)
