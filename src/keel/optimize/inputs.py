"""`PortfolioInputs`: one period's data for a portfolio problem, aligned to one symbol order.

Everything is in NAV units (weights are fractions of NAV) and per-period return units: ``alpha``
is the expected return over the rebalancing period, the risk model's variance is per period
(daily for a daily model), costs are fractions of NAV. Public constructors take labelled pandas
objects, validate them and store aligned float64 arrays; optimizers read only the arrays.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from keel.costs.base import TradeContext
from keel.errors import ValidationError
from keel.risk.base import FactorCovariance

RiskInput = FactorCovariance | np.ndarray


def fingerprint(*arrays: Any) -> str:
    """A short content hash of arrays (O(N)); used to decide when a problem must recompile."""
    h = hashlib.blake2b(digest_size=12)
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        arr = np.ascontiguousarray(a)
        h.update(str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(arr.tobytes() if arr.dtype != object else repr(arr.tolist()).encode())
    return h.hexdigest()


def _finite(arr: np.ndarray, name: str, symbols: pd.Index) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad.reshape(len(symbols), -1).any(axis=1))) if arr.ndim else 0
        raise ValidationError(f"{name} must be finite", field=name, symbol=str(symbols[i]),
                              value=float(arr.reshape(len(symbols), -1)[i][0]))
    return arr


def align_series(values: pd.Series | float | np.ndarray | None, symbols: pd.Index, name: str,
                 *, fill: float | None = None) -> np.ndarray | None:
    """A per-symbol input as an (N,) float64 array in ``symbols`` order.

    A scalar is broadcast. A Series must cover every symbol unless ``fill`` is given; a Series
    naming a symbol outside ``symbols`` is refused (never silently dropped).
    """
    if values is None:
        return None
    n = len(symbols)
    if isinstance(values, pd.Series):
        unknown = values.index.astype(str).difference(symbols)
        if len(unknown):
            raise ValidationError(f"{name} names a symbol outside the universe", field=name,
                                  symbol=str(unknown[0]))
        s = values.copy()
        s.index = s.index.astype(str)
        s = s.reindex(symbols)
        if fill is not None:
            s = s.fillna(fill)
        elif s.isna().any():
            raise ValidationError(f"{name} is missing a symbol", field=name,
                                  symbol=str(s.index[s.isna().to_numpy()][0]))
        return _finite(s.to_numpy(dtype=np.float64), name, symbols)
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n, float(arr)) if np.isfinite(arr) else _finite(np.full(n, arr), name,
                                                                        symbols)
    if arr.shape != (n,):
        raise ValidationError(f"{name} must have shape ({n},)", field=name, value=arr.shape)
    return _finite(arr, name, symbols)


@dataclass(frozen=True, eq=False)
class PortfolioInputs:
    """One period's inputs, aligned to ``symbols``.

    Attributes:
        symbols: (N,) names; every array below follows this order.
        alpha: (N,) expected return per period of each name (fraction).
        current: (N,) current weights (fraction of NAV; cash is ``1 - sum``).
        risk: a :class:`FactorCovariance` (kept factored) or a dense (N, N) covariance, per
            period, or None.
        trade_context: per-name market inputs for cost models (prices, ADV, vol, spreads, nav).
        betas: (N,) market betas.
        sectors: (N,) sector labels (object array).
        adv_weight: (N,) average daily traded value in NAV units (ADV notional / NAV).
        benchmark: (N,) benchmark weights (tracking error).
        scenarios: (T, N) scenario returns per period (mean-CVaR).
    """

    symbols: pd.Index
    alpha: np.ndarray
    current: np.ndarray
    risk: RiskInput | None = None
    trade_context: TradeContext | None = None
    betas: np.ndarray | None = None
    sectors: np.ndarray | None = None
    adv_weight: np.ndarray | None = None
    benchmark: np.ndarray | None = None
    scenarios: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.symbols)

    @classmethod
    def build(
        cls,
        alpha: pd.Series,
        current: pd.Series | None = None,
        *,
        risk: RiskInput | pd.DataFrame | None = None,
        trade_context: TradeContext | None = None,
        betas: pd.Series | None = None,
        sectors: pd.Series | None = None,
        adv_notional: pd.Series | None = None,
        nav: float = 1.0,
        benchmark: pd.Series | None = None,
        scenarios: pd.DataFrame | np.ndarray | None = None,
    ) -> PortfolioInputs:
        """Validate and align labelled inputs; the universe is ``alpha.index``.

        ``current`` may omit names (held at 0) but may not name a symbol outside the
        universe. ``adv_notional`` is in currency and converted to NAV units with ``nav``.
        A factor ``risk`` is reordered to the universe; a dense one must be (N, N) in universe
        order (or a DataFrame labelled by symbol).
        """
        if not isinstance(alpha, pd.Series):
            raise ValidationError("alpha must be a pd.Series indexed by symbol", field="alpha",
                                  value=type(alpha).__name__)
        symbols = pd.Index(alpha.index.astype(str), name="symbol")
        if symbols.has_duplicates:
            raise ValidationError("alpha has duplicated symbols", field="alpha",
                                  symbol=str(symbols[symbols.duplicated()][0]))
        if len(symbols) == 0:
            raise ValidationError("empty universe", field="alpha")
        a = align_series(pd.Series(alpha.to_numpy(), index=symbols), symbols, "alpha")
        cur = align_series(current if current is not None else 0.0, symbols, "current",
                           fill=0.0)
        if not (nav > 0 and np.isfinite(nav)):
            raise ValidationError("nav must be > 0", field="nav", value=nav)
        adv = align_series(adv_notional, symbols, "adv_notional")
        if adv is not None:
            if np.any(adv < 0):
                i = int(np.argmax(adv < 0))
                raise ValidationError("adv_notional must be >= 0", field="adv_notional",
                                      symbol=str(symbols[i]), value=float(adv[i]))
            adv = adv / nav
        elif trade_context is not None:
            adv = trade_context.adv_notional / trade_context.nav
        if trade_context is not None and not trade_context.symbols.equals(symbols):
            trade_context = trade_context.subset(_positions(trade_context.symbols, symbols,
                                                            "trade_context"))
        sec = None
        if sectors is not None:
            s = pd.Series(sectors).astype(object)
            s.index = s.index.astype(str)
            s = s.reindex(symbols)
            if s.isna().any():
                raise ValidationError("sectors is missing a symbol", field="sectors",
                                      symbol=str(s.index[s.isna().to_numpy()][0]))
            sec = s.astype(str).to_numpy(dtype=object)
        scen = None
        if scenarios is not None:
            if isinstance(scenarios, pd.DataFrame):
                cols = scenarios.columns.astype(str)
                scen_df = pd.DataFrame(scenarios.to_numpy(), columns=cols)
                missing = symbols.difference(cols)
                if len(missing):
                    raise ValidationError("scenarios lack a symbol", field="scenarios",
                                          symbol=str(missing[0]))
                scen = scen_df[symbols].to_numpy(dtype=np.float64)
            else:
                scen = np.asarray(scenarios, dtype=np.float64)
            if scen.ndim != 2 or scen.shape[1] != len(symbols) or not np.isfinite(scen).all():
                raise ValidationError("scenarios must be a finite (T, N) array",
                                      field="scenarios", value=scen.shape)
        return cls(
            symbols=symbols, alpha=a, current=cur, risk=_align_risk(risk, symbols),  # type: ignore[arg-type]
            trade_context=trade_context, betas=align_series(betas, symbols, "betas"),
            sectors=sec, adv_weight=adv, benchmark=align_series(benchmark, symbols,
                                                                "benchmark", fill=0.0),
            scenarios=scen,
        )

    def with_(self, **changes: Any) -> PortfolioInputs:
        """A copy with some arrays replaced (new alpha, holdings, ... for a re-solve)."""
        for key in ("alpha", "current", "betas", "adv_weight", "benchmark"):
            if key in changes and changes[key] is not None:
                changes[key] = align_series(changes[key], self.symbols, key,
                                            fill=0.0 if key == "current" else None)
        return replace(self, **changes)

    def variance(self, w: np.ndarray) -> float:
        """Portfolio variance per period of weights ``w`` (never forms N x N when factored)."""
        if self.risk is None:
            raise ValidationError("no risk model in the inputs", field="risk")
        if isinstance(self.risk, FactorCovariance):
            return self.risk.portfolio_variance(w)
        return float(w @ self.risk @ w)


def _positions(have: pd.Index, want: pd.Index, name: str) -> np.ndarray:
    pos = have.get_indexer(want)
    if np.any(pos < 0):
        raise ValidationError(f"{name} lacks a symbol of the universe", field=name,
                              symbol=str(want[pos < 0][0]))
    return np.asarray(pos)


def _align_risk(risk: Any, symbols: pd.Index) -> RiskInput | None:
    if risk is None:
        return None
    if isinstance(risk, FactorCovariance):
        if risk.symbols.equals(symbols):
            return risk
        return risk.subset(_positions(pd.Index(risk.symbols.astype(str)), symbols, "risk"))
    if isinstance(risk, pd.DataFrame):
        idx = pd.Index(risk.index.astype(str))
        pos = _positions(idx, symbols, "risk")
        cols = _positions(pd.Index(risk.columns.astype(str)), symbols, "risk")
        risk = risk.to_numpy(dtype=np.float64)[np.ix_(pos, cols)]
    cov = np.asarray(risk, dtype=np.float64)
    n = len(symbols)
    if cov.shape != (n, n):
        raise ValidationError(f"dense risk must be ({n}, {n})", field="risk", value=cov.shape)
    if not np.isfinite(cov).all():
        raise ValidationError("dense risk must be finite", field="risk")
    return 0.5 * (cov + cov.T)
