"""Small argument checks shared by the cost models (typed errors naming the field)."""

from __future__ import annotations

from typing import Any

import numpy as np

from keel.errors import ValidationError


def check_scalar(value: Any, name: str, *, positive: bool = False, allow_zero: bool = True,
                 upper: float | None = None) -> float:
    """A finite float, >= 0 (or > 0 when ``positive`` / not ``allow_zero``), <= ``upper``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a number", field=name, value=value) from None
    if not np.isfinite(v):
        raise ValidationError(f"{name} must be finite", field=name, value=v)
    if (positive or not allow_zero) and v <= 0:
        raise ValidationError(f"{name} must be > 0", field=name, value=v)
    if v < 0:
        raise ValidationError(f"{name} must be >= 0", field=name, value=v)
    if upper is not None and v > upper:
        raise ValidationError(f"{name} must be <= {upper}", field=name, value=v)
    return v


def check_array(value: Any, name: str, n: int | None = None, *, positive: bool = False,
                symbols: Any = None) -> np.ndarray:
    """A finite float64 (n,) array (a scalar broadcasts), >= 0 (> 0 when ``positive``)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0 and n is not None:
        arr = np.full(n, float(arr))
    if arr.ndim != 1 or (n is not None and arr.shape != (n,)):
        raise ValidationError(f"{name} must have shape ({n},)", field=name, value=arr.shape)
    bad = ~np.isfinite(arr) | ((arr <= 0) if positive else (arr < 0))
    if bad.any():
        i = int(np.argmax(bad))
        sym = None if symbols is None else str(symbols[i])
        what = "> 0" if positive else ">= 0"
        raise ValidationError(f"{name} must be finite and {what}", field=name, symbol=sym,
                              value=float(arr[i]), index=i if sym is None else None)
    return arr
