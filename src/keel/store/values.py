"""Checked values for the store: JSON payloads, bounded strings, query limits.

JSON payloads are made safe exactly and loudly:
``Decimal`` becomes its exact string (never a float), datetimes become ISO-8601 UTC strings
(naive ones are refused), Enums their value, tuples lists, paths strings. Anything else,
a non-string key or a non-finite float (PostgreSQL's JSON has no NaN) raises
``ValidationError`` naming the path of the offending item (``payload.fills[3].qty``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any

from keel.errors import ValidationError
from keel.types import ensure_utc


def jsonable(value: Any, field: str = "payload") -> Any:
    """``value`` converted to plain JSON types (see the module docstring)."""
    if isinstance(value, Enum):
        return jsonable(value.value, field)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError("JSON cannot hold a non-finite number", field=field,
                                  value=value)
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValidationError("JSON cannot hold a non-finite number", field=field,
                                  value=value)
        return str(value)
    if isinstance(value, datetime):
        return ensure_utc(value, field).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = k.value if isinstance(k, Enum) else k
            if not isinstance(key, str):
                raise ValidationError("JSON object keys must be strings", field=f"{field}",
                                      value=k)
            out[key] = jsonable(v, f"{field}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [jsonable(v, f"{field}[{i}]") for i, v in enumerate(value)]
    raise ValidationError(f"cannot store a {type(value).__name__} as JSON", field=field,
                          value=value)


def json_object(value: Any, field: str = "payload") -> dict[str, Any]:
    """Like :func:`jsonable`, for a column that holds a JSON object (``None`` -> ``{}``)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError("expected a dict", field=field, value=value)
    result: dict[str, Any] = jsonable(value, field)
    return result


def text_field(value: Any, field: str, max_len: int, *, allow_empty: bool = False) -> str:
    """A string that fits a ``VARCHAR(max_len)`` column on every backend (SQLite does not check)."""
    if not isinstance(value, str):
        raise ValidationError("expected a string", field=field, value=value)
    if not value and not allow_empty:
        raise ValidationError("must not be empty", field=field, value=value)
    if len(value) > max_len:
        raise ValidationError(f"longer than {max_len} characters", field=field, value=value)
    return value


def check_limit(limit: int | None) -> int | None:
    """``None`` or a non-negative int (a query's row cap), else ``ValidationError``."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 0):
        raise ValidationError("limit must be a non-negative integer", field="limit",
                              value=limit)
    return limit
