"""What every factor model shares, and the statistical (PCA) factor model.

A fitted factor model exposes, in daily return units unless stated:

- ``exposures_``: (N x K) DataFrame, symbols x factors;
- ``factor_covariance_``: (K x K) DataFrame;
- ``specific_variance_``: (N,) Series;
- ``factor_returns_``: (T x K) DataFrame, dates x factors;
- ``factor_groups_``: factor -> group (``market``, ``sector``, ``style`` or ``statistical``);

and :meth:`factored` returns the :class:`~keel.risk.base.FactorCovariance` ``B F B' + D`` that
optimisers consume without the N x N matrix, which :meth:`covariance` forms only on request.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from keel.config import MissingPolicy
from keel.errors import ValidationError
from keel.risk._input import ParamsMixin, as_returns, as_weights
from keel.risk.base import FactorCovariance
from keel.risk.covariance import ewma_weights, halflife_to_lambda, make_psd


def ewma_factor_covariance(f: np.ndarray, halflife: float, newey_west_lags: int = 0
                           ) -> tuple[np.ndarray, bool]:
    """EWMA covariance of (T, K) factor returns, with optional Newey-West correction.

    Zero-mean EWMA (weights halve every ``halflife`` days). With ``L = newey_west_lags > 0``
    the lag-``l`` EWMA autocovariances ``G_l`` are added with Bartlett weights:
    ``F = G_0 + sum_l (1 - l/(L+1)) (G_l + G_l')``, the daily covariance that accounts for
    serial correlation when scaled to longer horizons. Returns ``(F, psd_repaired)``.
    """
    t = f.shape[0]
    lam = halflife_to_lambda(halflife)
    w = ewma_weights(t, lam)
    cov = (f * w[:, None]).T @ f
    for lag in range(1, int(newey_west_lags) + 1):
        if lag >= t:
            break
        wl = w[lag:] / w[lag:].sum()
        g = (f[lag:] * wl[:, None]).T @ f[:-lag]
        cov = cov + (1.0 - lag / (newey_west_lags + 1.0)) * (g + g.T)
    cov, repaired, _ = make_psd(cov)
    return cov, repaired


def _top_eigen(xc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues of ``xc' xc`` (descending) and unit eigenvectors (N, k).

    Works on the smaller Gram matrix (T x T when T < N) and asks LAPACK for the top ``k``
    pairs only, so N = 3,000 costs one matrix product, not a full SVD. Signs are fixed so
    that the largest loading of each vector is positive.
    """
    from scipy.linalg import eigh

    t, n = xc.shape
    m = min(t, n)
    gram = xc @ xc.T if t < n else xc.T @ xc
    vals, vecs = eigh(gram, subset_by_index=[m - k, m - 1])
    vals, vecs = np.clip(vals[::-1], 0.0, None), vecs[:, ::-1]
    if t < n:
        vecs = xc.T @ vecs / np.sqrt(np.where(vals > 0, vals, 1.0))
        vecs /= np.linalg.norm(vecs, axis=0)
    pos = np.argmax(np.abs(vecs), axis=0)
    vecs = vecs * np.sign(vecs[pos, np.arange(vecs.shape[1])])
    return vals, vecs


class FactorModelMixin:
    """Accessors shared by fitted factor models (see the module docstring)."""

    exposures_: pd.DataFrame
    factor_covariance_: pd.DataFrame
    specific_variance_: pd.Series
    factor_returns_: pd.DataFrame
    factor_groups_: pd.Series
    periods_per_year: float

    def _check_fitted(self) -> None:
        if not hasattr(self, "exposures_"):
            raise ValidationError(f"{type(self).__name__} is not fitted: call fit() first",
                                  field="fit")

    def factored(self) -> FactorCovariance:
        """The fitted model as ``B F B' + D`` (never forms N x N)."""
        self._check_fitted()
        return FactorCovariance(
            symbols=self.exposures_.index, factors=self.exposures_.columns,
            exposures=self.exposures_.to_numpy(),
            factor_covariance=self.factor_covariance_.to_numpy(),
            specific_variance=self.specific_variance_.to_numpy(),
            periods_per_year=float(self.periods_per_year))

    def covariance(self, annualize: bool = False) -> pd.DataFrame:
        """The dense N x N covariance, labelled. O(N^2) memory: only when asked."""
        fc = self.factored()
        c = fc.covariance() * (fc.periods_per_year if annualize else 1.0)
        return pd.DataFrame(c, index=fc.symbols, columns=fc.symbols)

    def predict_volatility(self, weights: Any, annualize: bool = False) -> float:
        """Predicted volatility of ``weights`` (Series by symbol, or (N,) array)."""
        fc = self.factored()
        w = as_weights(weights, fc.symbols)
        v = fc.portfolio_variance(w) * (fc.periods_per_year if annualize else 1.0)
        return float(np.sqrt(v))


class StatisticalFactorModel(FactorModelMixin, ParamsMixin):
    """PCA factor model of a (T, N) returns panel.

    The factors are the leading principal components of the sample covariance ``S``
    (``ddof=1``). ``n_factors`` fixes K; otherwise K is the smallest number whose cumulative
    explained-variance ratio reaches ``explained_variance`` (bounded by ``max_factors``).

    Learned: exposures ``B`` = the K unit-norm eigenvectors (N x K), factor returns
    ``X_c B`` (T x K), ``F = diag(eigenvalues)``, specific variances = sample variance of the
    residuals ``X_c - X_c B B'`` (= ``diag(S - B F B')``), floored at ``specific_floor`` times
    the mean variance; ``explained_variance_ratio_`` (K,), ``n_factors_``.
    """

    def __init__(self, *, n_factors: int | None = None, explained_variance: float = 0.5,
                 max_factors: int = 50, specific_floor: float = 1e-4,
                 on_missing: MissingPolicy | str = MissingPolicy.RAISE,
                 periods_per_year: float = 252.0) -> None:
        self.n_factors = n_factors
        self.explained_variance = explained_variance
        self.max_factors = max_factors
        self.specific_floor = specific_floor
        self.on_missing = on_missing
        self.periods_per_year = periods_per_year

    def fit(self, returns: Any, y: Any = None) -> StatisticalFactorModel:
        """Fit on a dates x symbols returns panel; returns ``self``.

        Raises:
            DataError: too few observations, constant column, NaN (under ``raise``).
            ValidationError: ``n_factors`` outside ``[1, min(T-1, N)]``, or an
                ``explained_variance`` outside (0, 1].
        """
        r = as_returns(returns, min_obs=3, on_missing=self.on_missing)
        x = r.values
        t, n = x.shape
        xc = x - x.mean(axis=0)
        total = float(np.sum(xc * xc) / (t - 1))
        kmax = min(t - 1, n, int(self.max_factors))
        if self.n_factors is not None:
            k = int(self.n_factors)
            if not 1 <= k <= min(t - 1, n):
                raise ValidationError(f"n_factors must be in [1, {min(t - 1, n)}]",
                                      field="n_factors", value=self.n_factors)
            kmax = k
        else:
            ev = float(self.explained_variance)
            if not 0.0 < ev <= 1.0:
                raise ValidationError("explained_variance must be in (0, 1]",
                                      field="explained_variance", value=ev)
        eig, b_all = _top_eigen(xc, kmax)
        eig = eig / (t - 1)
        ratio = eig / total
        if self.n_factors is None:
            k = int(np.searchsorted(np.cumsum(ratio), ev - 1e-12) + 1)
            k = max(1, min(k, kmax))
        b = b_all[:, :k]
        f = xc @ b
        resid = xc - f @ b.T
        spec = np.sum(resid * resid, axis=0) / (t - 1)
        spec = np.maximum(spec, float(self.specific_floor) * total / n)
        names = pd.Index([f"PC{i + 1}" for i in range(k)], name="factor")
        self.exposures_ = pd.DataFrame(b, index=r.symbols, columns=names)
        self.factor_covariance_ = pd.DataFrame(np.diag(eig[:k]), index=names, columns=names)
        self.specific_variance_ = pd.Series(spec, index=r.symbols, name="specific_variance")
        self.factor_returns_ = pd.DataFrame(f, index=r.dates, columns=names)
        self.factor_groups_ = pd.Series("statistical", index=names, name="group")
        self.explained_variance_ratio_ = ratio[:k]
        self.n_factors_ = k
        self.missing_report_ = r.report
        return self
