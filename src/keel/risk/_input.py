"""Input checks shared by the risk layer: returns panels, weights, confidence levels.

Every check raises a typed :class:`~keel.errors.KeelError` naming the field and, where it
applies, the symbol and value at fault.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from keel.config import MissingPolicy
from keel.data.market import MissingReport
from keel.errors import DataError, ValidationError


@dataclass(frozen=True)
class Returns:
    """A validated (T, N) float64 returns matrix with its labels."""

    values: np.ndarray
    symbols: pd.Index
    dates: pd.Index
    report: MissingReport


def as_returns(returns: Any, *, name: str = "returns", min_obs: int = 2,
               on_missing: MissingPolicy | str = MissingPolicy.RAISE,
               allow_constant: bool = False) -> Returns:
    """Validate a returns panel (dates x symbols DataFrame, or a (T, N) array).

    Missing values follow the ``keel.data`` policies: ``raise`` (default) names the first
    symbol and row with a NaN; ``drop`` removes every symbol with a NaN; ``ffill`` treats a
    missing return as 0 (the price carried forward) and drops symbols still unlisted at the
    start. What was done is in the returned ``report``.

    Raises:
        DataError: not 2-D, non-numeric, infinite values, NaN under ``raise``, fewer than
            ``min_obs`` rows, no symbol left, a constant column (zero variance).
    """
    policy = MissingPolicy(on_missing)
    if isinstance(returns, pd.Series):
        returns = returns.to_frame()
    if isinstance(returns, pd.DataFrame):
        symbols = pd.Index(returns.columns.astype(str))
        dates = returns.index
        try:
            x = returns.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{name} has non-numeric values", field=name) from None
    else:
        try:
            x = np.asarray(returns, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{name} has non-numeric values", field=name) from None
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise DataError(f"{name} must be 2-D (dates x symbols)", field=name,
                            value=x.shape)
        symbols = pd.Index([str(i) for i in range(x.shape[1])])
        dates = pd.RangeIndex(x.shape[0])
    if x.ndim != 2 or x.shape[1] == 0:
        raise DataError(f"{name} has no symbols", field=name, value=x.shape)
    if np.isinf(x).any():
        r, c = np.argwhere(np.isinf(x))[0]
        raise DataError(f"{name} has infinite values", field=name, symbol=str(symbols[c]),
                        row=str(dates[r]))
    nan = np.isnan(x)
    report = MissingReport(policy)
    if nan.any():
        if policy is MissingPolicy.RAISE:
            r, c = np.argwhere(nan)[0]
            raise DataError(f"{name} has missing values (NaN); choose on_missing='drop' or "
                            "'ffill'", field=name, symbol=str(symbols[c]), row=str(dates[r]))
        if policy is MissingPolicy.DROP:
            bad = nan.any(axis=0)
            report = MissingReport(policy, dropped_symbols=tuple(symbols[bad]))
        else:
            # Leading NaNs: not yet listed, dropped; interior NaNs: price carried forward.
            bad = nan[0]
            counts = nan.sum(axis=0)
            report = MissingReport(
                policy, dropped_symbols=tuple(symbols[bad]),
                filled_cells={str(s): int(k) for s, k, b in zip(symbols, counts, bad,
                                                                strict=True) if k and not b})
            x = np.where(nan, 0.0, x)
        keep = ~bad
        x, symbols = x[:, keep], symbols[keep]
        if x.shape[1] == 0:
            raise DataError(f"no symbols left in {name} after the missing-data policy",
                            field=name, value=report.summary())
    if x.shape[0] < min_obs:
        raise DataError(f"{name} has too few observations: need at least {min_obs}",
                        field=name, value=x.shape[0])
    if not allow_constant:
        const = np.ptp(x, axis=0) == 0.0
        if const.any():
            raise DataError(f"{name} has a constant column (zero variance)", field=name,
                            symbol=str(symbols[int(np.argmax(const))]))
    return Returns(np.ascontiguousarray(x), symbols, dates, report)


def as_weights(weights: Any, symbols: pd.Index | None = None,
               name: str = "weights") -> np.ndarray:
    """Weights as a float64 (N,) array, aligned to ``symbols`` when given a Series.

    Raises:
        ValidationError: not 1-D, non-finite, wrong length, or a symbol unknown / missing.
    """
    if isinstance(weights, pd.Series) and symbols is not None:
        idx = pd.Index(weights.index.astype(str))
        unknown = idx.difference(symbols)
        if len(unknown):
            raise ValidationError(f"{name} has a symbol the risk model does not know",
                                  field=name, symbol=str(unknown[0]))
        w = weights.set_axis(idx).reindex(symbols).fillna(0.0).to_numpy(dtype=np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1:
        raise ValidationError(f"{name} must be 1-D", field=name, value=w.shape)
    if symbols is not None and len(w) != len(symbols):
        raise ValidationError(f"{name} must have {len(symbols)} entries", field=name,
                              value=len(w))
    if not np.all(np.isfinite(w)):
        i = int(np.argmax(~np.isfinite(w)))
        raise ValidationError(f"{name} must be finite", field=name,
                              symbol=None if symbols is None else str(symbols[i]),
                              value=float(w[i]))
    return w


def check_confidence(confidence: float, name: str = "confidence") -> float:
    """A confidence level strictly inside (0, 1), e.g. 0.95 or 0.99."""
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValidationError(f"{name} must be in (0, 1)", field=name, value=confidence)
    return c


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValidationError(f"{name} must be a positive integer", field=name, value=value)
    return int(value)


class ParamsMixin:
    """``get_params`` / ``set_params`` / ``repr`` from the constructor signature.

    Enough for :func:`sklearn.base.clone` and grid searches without inheriting sklearn.
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self._param_names()}

    def set_params(self, **params: Any) -> Any:
        names = self._param_names()
        for k, v in params.items():
            if k not in names:
                raise ValidationError("unknown parameter", field=k, value=v)
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
