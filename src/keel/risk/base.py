"""The factored covariance that factor models produce and optimizers consume.

``Cov = B F B' + diag(d)`` with ``B`` (N x K) exposures, ``F`` (K x K) factor covariance and
``d`` (N,) specific variances, all in the same return units (daily unless stated). Nothing here
forms the N x N matrix unless :meth:`FactorCovariance.covariance` is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from keel.errors import ValidationError


@dataclass(frozen=True, eq=False)
class FactorCovariance:
    """``B F B' + D`` in factored form.

    Attributes:
        symbols: (N,) asset names, the row order of ``exposures``.
        factors: (K,) factor names, the column order of ``exposures``.
        exposures: (N, K) float64.
        factor_covariance: (K, K) float64, symmetric PSD.
        specific_variance: (N,) float64, >= 0.
        periods_per_year: periods in a year of the return units (252 for daily).
    """

    symbols: pd.Index
    factors: pd.Index
    exposures: np.ndarray
    factor_covariance: np.ndarray
    specific_variance: np.ndarray
    periods_per_year: float = 252.0

    def __post_init__(self) -> None:
        n, k = len(self.symbols), len(self.factors)
        b = np.asarray(self.exposures, dtype=np.float64)
        f = np.asarray(self.factor_covariance, dtype=np.float64)
        d = np.asarray(self.specific_variance, dtype=np.float64)
        if b.shape != (n, k):
            raise ValidationError(f"exposures must be ({n}, {k})", field="exposures",
                                  value=b.shape)
        if f.shape != (k, k):
            raise ValidationError(f"factor_covariance must be ({k}, {k})",
                                  field="factor_covariance", value=f.shape)
        if d.shape != (n,) or np.any(d < 0) or not np.all(np.isfinite(d)):
            raise ValidationError("specific_variance must be (N,), finite and >= 0",
                                  field="specific_variance")
        object.__setattr__(self, "exposures", b)
        object.__setattr__(self, "factor_covariance", f)
        object.__setattr__(self, "specific_variance", d)

    @property
    def n_assets(self) -> int:
        return len(self.symbols)

    @property
    def n_factors(self) -> int:
        return len(self.factors)

    def factor_sqrt(self) -> np.ndarray:
        """(K, K) matrix ``L`` with ``L L' = F`` (Cholesky, or eigen for semidefinite F)."""
        try:
            return np.linalg.cholesky(self.factor_covariance)
        except np.linalg.LinAlgError:
            vals, vecs = np.linalg.eigh(self.factor_covariance)
            return vecs * np.sqrt(np.clip(vals, 0.0, None))

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """``Cov @ x`` for x (N,) or (N, M), in O(NK) per column (never N x N)."""
        b = self.exposures
        d = self.specific_variance if x.ndim == 1 else self.specific_variance[:, None]
        return b @ (self.factor_covariance @ (b.T @ x)) + d * x

    def diag(self) -> np.ndarray:
        """(N,) variances: the diagonal of ``B F B' + D`` in O(NK^2)."""
        b = self.exposures
        return np.einsum("ij,jk,ik->i", b, self.factor_covariance, b) + self.specific_variance

    def portfolio_variance(self, weights: np.ndarray) -> float:
        """``w' (B F B' + D) w`` in O(NK + K^2)."""
        w = np.asarray(weights, dtype=np.float64)
        x = self.exposures.T @ w
        return float(x @ self.factor_covariance @ x + np.sum(self.specific_variance * w * w))

    def covariance(self) -> np.ndarray:
        """The dense (N, N) covariance. O(N^2) memory: call only when N is small."""
        b = self.exposures
        return b @ self.factor_covariance @ b.T + np.diag(self.specific_variance)

    def covariance_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.covariance(), index=self.symbols, columns=self.symbols)

    def subset(self, idx: np.ndarray) -> FactorCovariance:
        """Restricted to asset positions ``idx``."""
        return FactorCovariance(self.symbols[idx], self.factors, self.exposures[idx],
                                self.factor_covariance, self.specific_variance[idx],
                                self.periods_per_year)

    def reindex(self, symbols: pd.Index) -> FactorCovariance:
        """Reordered to ``symbols`` (all must be known)."""
        pos = self.symbols.get_indexer(symbols)
        if np.any(pos < 0):
            missing = symbols[pos < 0][0]
            raise ValidationError("symbol not in the risk model", field="symbols",
                                  symbol=str(missing))
        return self.subset(pos)


@runtime_checkable
class CovarianceEstimator(Protocol):
    """Anything with ``fit(returns) -> self`` and a dense ``covariance_`` (N x N)."""

    covariance_: np.ndarray

    def fit(self, returns: pd.DataFrame) -> CovarianceEstimator: ...


@runtime_checkable
class FactorRiskModel(Protocol):
    """A fitted factor model: exposes its factored form and the learned pieces."""

    exposures_: pd.DataFrame
    factor_covariance_: pd.DataFrame
    specific_variance_: pd.Series

    def factored(self) -> FactorCovariance: ...
