"""Covariance estimators with scikit-learn conventions.

Each estimator's constructor only stores hyper-parameters; ``fit(returns)`` validates a
(T, N) returns panel (dates x symbols DataFrame or array), learns and returns ``self``.
Learned attributes end in ``_``:

- ``covariance_`` (N, N) float64, symmetric PSD, in the *units of the input* (daily returns
  in -> daily covariance out). Annualise explicitly: :meth:`annualized_covariance` multiplies
  by ``periods_per_year``.
- ``location_`` (N,) the mean that was removed (zeros when ``assume_centered``).
- ``symbols_``, ``n_observations_``, ``missing_report_`` (what the missing-data policy did).
- ``psd_repaired_`` (bool) and ``min_eigenvalue_`` (the smallest eigenvalue *before* repair, or
  ``None`` when no eigendecomposition was needed: a Cholesky factorisation proved the matrix
  positive definite, or the estimator is PSD by construction: a Gram matrix or a convex
  combination of one with ``mu I``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from keel.config import MissingPolicy
from keel.errors import ValidationError
from keel.risk._input import ParamsMixin, as_returns
from keel.risk.base import FactorCovariance

#: Relative tolerance below which a negative eigenvalue is rounding, not indefiniteness.
PSD_RTOL = 1e-12


def make_psd(cov: np.ndarray, rtol: float = PSD_RTOL) -> tuple[np.ndarray, bool, float | None]:
    """Symmetrise ``cov`` and project it on the PSD cone if it is indefinite.

    Returns ``(matrix, repaired, min_eigenvalue)``. A successful Cholesky proves positive
    definiteness cheaply (``min_eigenvalue`` is then ``None``); otherwise eigenvalues below
    ``-rtol * max|eigenvalue|`` are clipped to zero (the Frobenius-nearest PSD matrix).
    """
    c = 0.5 * (cov + cov.T)
    try:
        np.linalg.cholesky(c)
        return c, False, None
    except np.linalg.LinAlgError:
        pass
    vals, vecs = np.linalg.eigh(c)
    lo = float(vals[0])
    scale = max(float(np.max(np.abs(vals))), np.finfo(float).tiny)
    if lo >= -rtol * scale:
        return c, False, lo
    vals = np.clip(vals, 0.0, None)
    fixed = (vecs * vals) @ vecs.T
    return 0.5 * (fixed + fixed.T), True, lo


def ewma_weights(n: int, lambda_: float) -> np.ndarray:
    """(n,) weights ``lambda_**(n-1-t)`` normalised to sum to one (newest last)."""
    w = lambda_ ** np.arange(n - 1, -1, -1, dtype=np.float64)
    return w / w.sum()


def halflife_to_lambda(halflife: float) -> float:
    """Decay ``lambda`` whose weight halves every ``halflife`` periods."""
    return float(0.5 ** (1.0 / halflife))


def ewma_covariance(x: np.ndarray, lambda_: float, *, assume_centered: bool = True
                    ) -> tuple[np.ndarray, np.ndarray]:
    """EWMA covariance of (T, N) ``x``: ``sum_t w_t (x_t - m)(x_t - m)'`` with normalised weights.

    Returns ``(covariance (N, N), location (N,))``; ``m`` is the EWMA mean unless centred.
    """
    w = ewma_weights(x.shape[0], lambda_)
    loc = np.zeros(x.shape[1]) if assume_centered else w @ x
    xs = (x - loc) * np.sqrt(w)[:, None]
    return xs.T @ xs, loc


def _center(x: np.ndarray, assume_centered: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(x - mean, mean)``, or ``(x, 0)`` when the data are taken as centred."""
    loc = np.zeros(x.shape[1]) if assume_centered else x.mean(axis=0)
    return x - loc, loc


class _Estimator(ParamsMixin):
    """Shared fit/validate/repair logic; subclasses implement :meth:`_estimate`."""

    _min_obs = 2
    covariance_: np.ndarray
    location_: np.ndarray
    symbols_: pd.Index
    n_observations_: int
    psd_repaired_: bool
    min_eigenvalue_: float | None

    def __init__(self, *, assume_centered: bool = False,
                 on_missing: MissingPolicy | str = MissingPolicy.RAISE,
                 periods_per_year: float = 252.0) -> None:
        self.assume_centered = assume_centered
        self.on_missing = on_missing
        self.periods_per_year = periods_per_year

    def _check_params(self) -> None:
        if not float(self.periods_per_year) > 0:
            raise ValidationError("periods_per_year must be > 0", field="periods_per_year",
                                  value=self.periods_per_year)

    def _estimate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _psd_by_construction(self) -> bool:
        """True when the estimate is a (weighted) Gram matrix ``A'A``, or a convex combination
        of one with ``mu I``: PSD in exact arithmetic and exactly symmetric (NumPy computes
        ``A.T @ A`` with BLAS ``syrk`` and mirrors the triangle), so it is not eigen-checked:
        an O(N^3) eigendecomposition would dominate the fit when T < N."""
        return True

    def fit(self, returns: Any, y: Any = None) -> Any:
        """Learn the covariance of a (T, N) returns panel; returns ``self``.

        Raises:
            DataError: too few observations, a constant column, NaN (under ``raise``).
            ValidationError: an invalid hyper-parameter.
        """
        self._check_params()
        r = as_returns(returns, min_obs=self._min_obs, on_missing=self.on_missing)
        cov, loc = self._estimate(r.values)
        if self._psd_by_construction():
            repaired, lo = False, None
        else:
            cov, repaired, lo = make_psd(cov)
        self.covariance_ = cov
        self.location_ = loc
        self.symbols_ = r.symbols
        self.n_observations_ = r.values.shape[0]
        self.missing_report_ = r.report
        self.psd_repaired_ = repaired
        self.min_eigenvalue_ = lo
        return self

    def factored(self, rank: int | None = None) -> FactorCovariance:
        """``covariance_`` as the :class:`FactorCovariance` optimisers consume.

        ``rank=None``: exact, ``B = V sqrt(L)`` over the positive eigenvalues, ``F = I``,
        ``D = 0``. ``rank=K``: the K leading eigenpairs as factors and the rest of the
        diagonal as specific variance (``D = diag(S - B B') >= 0``), so the diagonal (the
        asset variances) is kept exactly.
        """
        vals, vecs = np.linalg.eigh(self.covariance_)
        vals, vecs = vals[::-1], vecs[:, ::-1]
        keep = int(np.sum(vals > PSD_RTOL * max(float(vals[0]), 0.0)))
        if rank is not None:
            if int(rank) < 1:
                raise ValidationError("rank must be >= 1", field="rank", value=rank)
            keep = min(keep, int(rank))
        b = vecs[:, :keep] * np.sqrt(vals[:keep])
        spec = np.zeros(len(vals))
        if rank is not None:
            spec = np.clip(np.diag(self.covariance_) - np.sum(b * b, axis=1), 0.0, None)
        names = pd.Index([f"E{i + 1}" for i in range(keep)], name="factor")
        return FactorCovariance(self.symbols_, names, b, np.eye(keep), spec,
                                float(self.periods_per_year))

    def annualized_covariance(self) -> np.ndarray:
        """``covariance_ * periods_per_year`` (N, N)."""
        return self.covariance_ * float(self.periods_per_year)

    def covariance_frame(self, annualize: bool = False) -> pd.DataFrame:
        """``covariance_`` (or its annualised value) labelled symbols x symbols."""
        c = self.annualized_covariance() if annualize else self.covariance_
        return pd.DataFrame(c, index=self.symbols_, columns=self.symbols_)


class SampleCovariance(_Estimator):
    """The sample covariance ``X_c' X_c / (T - ddof)`` (``ddof=1``: unbiased, as ``np.cov``)."""

    def __init__(self, *, ddof: int = 1, assume_centered: bool = False,
                 on_missing: MissingPolicy | str = MissingPolicy.RAISE,
                 periods_per_year: float = 252.0) -> None:
        super().__init__(assume_centered=assume_centered, on_missing=on_missing,
                         periods_per_year=periods_per_year)
        self.ddof = ddof

    def _estimate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.ddof not in (0, 1):
            raise ValidationError("ddof must be 0 or 1", field="ddof", value=self.ddof)
        xc, loc = _center(x, self.assume_centered)
        return xc.T @ xc / (x.shape[0] - self.ddof), loc


class EWMACovariance(_Estimator):
    """Exponentially weighted covariance (RiskMetrics), weights ``lambda_**age`` normalised.

    Give the decay as ``lambda_`` (0.94 by default, the RiskMetrics daily value) or as a
    ``halflife`` in periods (then ``lambda_ = 0.5**(1/halflife)``), not both. Returns are taken
    as zero-mean by default (``assume_centered=True``), as RiskMetrics does; with
    ``assume_centered=False`` the EWMA mean is removed (this equals pandas
    ``ewm(alpha=1-lambda_).cov(bias=True)`` on the last row).
    """

    def __init__(self, *, lambda_: float | None = None, halflife: float | None = None,
                 assume_centered: bool = True,
                 on_missing: MissingPolicy | str = MissingPolicy.RAISE,
                 periods_per_year: float = 252.0) -> None:
        super().__init__(assume_centered=assume_centered, on_missing=on_missing,
                         periods_per_year=periods_per_year)
        self.lambda_ = lambda_
        self.halflife = halflife

    def decay(self) -> float:
        """The effective ``lambda`` (validated)."""
        if self.lambda_ is not None and self.halflife is not None:
            raise ValidationError("give lambda_ or halflife, not both", field="halflife",
                                  value=self.halflife)
        if self.halflife is not None:
            if not float(self.halflife) > 0:
                raise ValidationError("halflife must be > 0", field="halflife",
                                      value=self.halflife)
            return halflife_to_lambda(float(self.halflife))
        lam = 0.94 if self.lambda_ is None else float(self.lambda_)
        if not 0.0 < lam < 1.0:
            raise ValidationError("lambda_ must be in (0, 1)", field="lambda_", value=lam)
        return lam

    def _check_params(self) -> None:
        super()._check_params()
        self.decay()

    def _estimate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ewma_covariance(x, self.decay(), assume_centered=self.assume_centered)


class ShrinkageTarget(StrEnum):
    """Ledoit-Wolf shrinkage targets."""

    IDENTITY = "identity"  #: ``mu I`` with ``mu = trace(S)/N`` (LW 2004, as scikit-learn)
    CONSTANT_CORRELATION = "constant_correlation"  #: sample variances, average correlation


def lw_identity_shrinkage(xc: np.ndarray, s: np.ndarray | None = None) -> float:
    """Ledoit-Wolf (2004) intensity toward ``mu I`` for centred (T, N) ``xc``.

    Same estimator as :func:`sklearn.covariance.ledoit_wolf_shrinkage` (``S = X'X/T``, pass
    it as ``s`` if already computed).
    """
    t, n = xc.shape
    if n == 1:
        return 0.0
    x2 = xc * xc
    trace_terms = x2.sum(axis=0) / t
    mu = trace_terms.sum() / n
    s_sq = np.sum((xc.T @ xc if s is None else s * t) ** 2) / t**2
    beta = (np.sum(x2.T @ x2) / t - s_sq) / (n * t)
    delta = (s_sq - 2.0 * mu * trace_terms.sum() + n * mu**2) / n
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def lw_constant_correlation(xc: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf (2004, "Honey, I shrunk...") toward the constant-correlation target.

    Returns ``(shrunk covariance, intensity)`` for centred (T, N) ``xc`` with ``S = X'X/T``.
    """
    t, n = xc.shape
    s = xc.T @ xc / t
    var = np.diag(s).copy()
    sd = np.sqrt(var)
    if n == 1:
        return s, 0.0
    corr = s / np.outer(sd, sd)
    rbar = (corr.sum() - n) / (n * (n - 1))
    target = rbar * np.outer(sd, sd)
    np.fill_diagonal(target, var)
    x2 = xc * xc
    pi_mat = x2.T @ x2 / t - s * s
    pi_hat = pi_mat.sum()
    theta = (x2 * xc).T @ xc / t - var[:, None] * s
    ratio = sd[None, :] / sd[:, None]
    off = ratio * theta
    rho_hat = np.trace(pi_mat) + rbar * (off.sum() - np.trace(off))
    gamma = np.sum((target - s) ** 2)
    kappa = (pi_hat - rho_hat) / gamma if gamma > 0 else 0.0
    delta = float(max(0.0, min(1.0, kappa / t)))
    return delta * target + (1.0 - delta) * s, delta


class LedoitWolf(_Estimator):
    """Ledoit-Wolf shrinkage of the (biased, ``/T``) sample covariance.

    ``target="identity"`` shrinks toward ``mu I`` exactly as ``sklearn.covariance.LedoitWolf``
    (same centring, ``/T`` normalisation and intensity); ``"constant_correlation"`` toward the
    matrix with the sample variances and the average sample correlation (Ledoit-Wolf 2004).
    Learned ``shrinkage_`` in [0, 1].
    """

    def __init__(self, *, target: ShrinkageTarget | str = ShrinkageTarget.IDENTITY,
                 assume_centered: bool = False,
                 on_missing: MissingPolicy | str = MissingPolicy.RAISE,
                 periods_per_year: float = 252.0) -> None:
        super().__init__(assume_centered=assume_centered, on_missing=on_missing,
                         periods_per_year=periods_per_year)
        self.target = target

    def _check_params(self) -> None:
        super()._check_params()
        try:
            ShrinkageTarget(self.target)
        except ValueError:
            raise ValidationError("unknown shrinkage target", field="target",
                                  value=self.target) from None

    def _psd_by_construction(self) -> bool:
        # a negative average correlation can make the constant-correlation target indefinite
        return ShrinkageTarget(self.target) is ShrinkageTarget.IDENTITY

    def _estimate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xc, loc = _center(x, self.assume_centered)
        if ShrinkageTarget(self.target) is ShrinkageTarget.CONSTANT_CORRELATION:
            cov, self.shrinkage_ = lw_constant_correlation(xc)
            return cov, loc
        s = xc.T @ xc / x.shape[0]
        delta = lw_identity_shrinkage(xc, s)
        mu = np.trace(s) / s.shape[0]
        cov = (1.0 - delta) * s
        cov.flat[:: s.shape[0] + 1] += delta * mu
        self.shrinkage_ = delta
        return cov, loc


class OAS(_Estimator):
    """Oracle Approximating Shrinkage toward ``mu I`` (Chen et al. 2010), as scikit-learn.

    Learned ``shrinkage_`` in [0, 1].
    """

    def _estimate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xc, loc = _center(x, self.assume_centered)
        t, n = xc.shape
        s = xc.T @ xc / t
        if n == 1:
            self.shrinkage_ = 0.0
            return s, loc
        alpha = np.mean(s**2)
        mu = np.trace(s) / n
        num = alpha + mu**2
        den = (t + 1) * (alpha - mu**2 / n)
        delta = 1.0 if den == 0 else float(min(num / den, 1.0))
        cov = (1.0 - delta) * s
        cov.flat[:: n + 1] += delta * mu
        self.shrinkage_ = delta
        return cov, loc
