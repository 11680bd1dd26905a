"""Barra-style fundamental factor model.

Factors: one ``market`` factor (every name has exposure 1), one dummy per sector, and the
standardised style exposures of :mod:`keel.risk.styles`. For each day ``t`` the returns
``y_t`` (N,) are regressed on the exposures known at the previous close ``X_{t-1}`` by
weighted least squares (weights ``sqrt(ADV)`` or ``sqrt(cap)``, the Barra choice: residual
variance falls roughly with size). The market column equals the sum of the sector columns,
so the problem is identified by the constraint ``sum_s c_s f_s = 0`` with ``c_s`` the
capitalisation of sector ``s`` (its traded value when ``market_caps`` is absent): the
market factor is then close to the return of the cap-weighted universe and the sector
factors are returns relative to it. Each day is solved as
a (K+1) x (K+1) KKT system; all days are assembled and solved in batches of ``batch_days``
(normal matrices built block-wise from sector sums, never an N x K design per day).

Factor covariance: EWMA of factor returns (``factor_halflife`` days) with optional
Newey-West lags. Specific variance: EWMA of squared residuals (``specific_halflife``),
specific volatility shrunk toward its sector's cap-weighted mean by ``specific_shrinkage``.
All outputs are daily; ``Cov = B F B' + D``.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from keel.data.market import MarketData
from keel.errors import DataError, ValidationError
from keel.risk._input import ParamsMixin
from keel.risk.covariance import ewma_weights, halflife_to_lambda
from keel.risk.factor_model import FactorModelMixin, ewma_factor_covariance
from keel.risk.styles import ALL_STYLES, Style, raw_style, standardize

MARKET = "market"


def _clean_weights(w: np.ndarray) -> np.ndarray:
    """Non-finite or non-positive -> 0; a day with no positive weight -> equal weights."""
    out = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    out[out.sum(axis=1) == 0] = 1.0
    return out


class RegressionWeight(StrEnum):
    """Weights of the daily cross-sectional regressions."""

    SQRT_ADV = "sqrt_adv"  #: square root of the average daily traded value
    SQRT_CAP = "sqrt_cap"  #: square root of market capitalisation (needs ``market_caps``)


def solve_constrained_wls(v: np.ndarray, y: np.ndarray, z: np.ndarray, codes: np.ndarray,
                          n_sectors: int, c: np.ndarray) -> np.ndarray:
    """Batched WLS of ``y`` on ``[1, sector dummies, z]`` with ``sum_s c_s f_s = 0``.

    Args:
        v: (C, N) regression weights (0 excludes a name that day).
        y: (C, N) returns (any finite value where ``v == 0``).
        z: (C, N, P) style exposures (0 where ``v == 0``).
        codes: (N,) sector index of each name in ``[0, n_sectors)``.
        n_sectors: S.
        c: (C, S) constraint weights of the sectors.

    Returns:
        (C, 1 + S + P) factor returns ``[market, sectors..., styles...]``.
    """
    cdays, _, p = z.shape
    s = n_sectors
    k = 1 + s + p
    onehot = np.zeros((len(codes), s))
    onehot[np.arange(len(codes)), codes] = 1.0
    vz = v[:, :, None] * z
    vy = v * y
    g = np.zeros((cdays, k + 1, k + 1))
    sec_v = v @ onehot
    g[:, 0, 0] = v.sum(axis=1)
    g[:, 0, 1:1 + s] = sec_v
    g[:, 1:1 + s, 0] = sec_v
    idx = np.arange(1, 1 + s)
    g[:, idx, idx] = sec_v
    zsum = vz.sum(axis=1)
    g[:, 0, 1 + s:k] = zsum
    g[:, 1 + s:k, 0] = zsum
    dz = np.einsum("ns,cnp->csp", onehot, vz, optimize=True)
    g[:, 1:1 + s, 1 + s:k] = dz
    g[:, 1 + s:k, 1:1 + s] = dz.transpose(0, 2, 1)
    g[:, 1 + s:k, 1 + s:k] = vz.transpose(0, 2, 1) @ z
    g[:, 1:1 + s, k] = c
    g[:, k, 1:1 + s] = c
    rhs = np.zeros((cdays, k + 1))
    rhs[:, 0] = vy.sum(axis=1)
    rhs[:, 1:1 + s] = vy @ onehot
    rhs[:, 1 + s:k] = np.einsum("cnp,cn->cp", z, vy, optimize=True)
    try:
        sol = np.linalg.solve(g, rhs[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        raise DataError("a cross-sectional regression is singular (collinear exposures or "
                        "too few names)", field="exposures") from None
    return sol[:, :k]


class FundamentalFactorModel(FactorModelMixin, ParamsMixin):
    """Barra-style model fitted on a :class:`~keel.data.market.MarketData`.

    Args:
        styles: which :class:`~keel.risk.styles.Style` factors to use (all six by default).
        weighting: regression weights, ``sqrt_adv`` (default) or ``sqrt_cap``.
        window: use only the last ``window`` regression days (None: all available).
        factor_halflife: EWMA half-life of the factor covariance, days.
        newey_west_lags: Newey-West lags for the factor covariance (0: none).
        specific_halflife: EWMA half-life of specific variances, days.
        specific_shrinkage: weight in [0, 1] of the sector mean in specific volatility.
        clip: style z-scores are clipped at ``+-clip``.
        batch_days: days solved per batch (memory ~ batch_days x N x styles).
        periods_per_year: for annualisation (252 for daily).

    Learned (besides the common factor-model attributes): ``specific_returns_`` (T x N
    residuals, NaN where a name was excluded), ``r2_`` (T,) weighted cross-sectional R^2 per
    day, ``mean_r2_``, ``regression_dates_``, ``psd_repaired_``.
    """

    def __init__(self, *, styles: Iterable[Style | str] = ALL_STYLES,
                 weighting: RegressionWeight | str = RegressionWeight.SQRT_ADV,
                 window: int | None = None, factor_halflife: float = 90.0,
                 newey_west_lags: int = 0, specific_halflife: float = 45.0,
                 specific_shrinkage: float = 0.3, clip: float = 3.0, batch_days: int = 64,
                 periods_per_year: float = 252.0) -> None:
        self.styles = styles
        self.weighting = weighting
        self.window = window
        self.factor_halflife = factor_halflife
        self.newey_west_lags = newey_west_lags
        self.specific_halflife = specific_halflife
        self.specific_shrinkage = specific_shrinkage
        self.clip = clip
        self.batch_days = batch_days
        self.periods_per_year = periods_per_year

    def _params(self) -> tuple[tuple[Style, ...], RegressionWeight]:
        try:
            styles = tuple(dict.fromkeys(Style(s) for s in self.styles))
        except ValueError as exc:
            raise ValidationError(f"unknown style ({exc})", field="styles",
                                  value=self.styles) from None
        try:
            weighting = RegressionWeight(self.weighting)
        except ValueError:
            raise ValidationError("unknown weighting", field="weighting",
                                  value=self.weighting) from None
        for name in ("factor_halflife", "specific_halflife", "clip"):
            if not float(getattr(self, name)) > 0:
                raise ValidationError(f"{name} must be > 0", field=name,
                                      value=getattr(self, name))
        if not 0.0 <= float(self.specific_shrinkage) <= 1.0:
            raise ValidationError("specific_shrinkage must be in [0, 1]",
                                  field="specific_shrinkage", value=self.specific_shrinkage)
        if int(self.newey_west_lags) < 0:
            raise ValidationError("newey_west_lags must be >= 0", field="newey_west_lags",
                                  value=self.newey_west_lags)
        return styles, weighting

    def fit(self, market: MarketData, y: Any = None) -> FundamentalFactorModel:
        """Estimate exposures, factor returns, factor and specific covariance; returns ``self``.

        Raises:
            ValidationError: ``market`` is not a MarketData, or a bad hyper-parameter.
            DataError: a constant return series, too few days once the look-back windows
                are full, or a singular regression.
        """
        if not isinstance(market, MarketData):
            raise ValidationError("FundamentalFactorModel.fit needs a MarketData",
                                  field="market", value=type(market).__name__)
        styles, weighting = self._params()
        r = market.returns
        rv = r.to_numpy()
        symbols = r.columns
        const = np.ptp(rv, axis=0) == 0
        if const.any():
            raise DataError("constant return series (zero variance)", field="returns",
                            symbol=str(symbols[int(np.argmax(const))]))
        # regression weights and the capitalisation-like weights for means and constraints
        # capitalisation (or, without caps, traded value): style means, the sector constraint
        # and the specific-risk sector means; regression weights: sqrt of ADV or of cap
        adv = _clean_weights(market.adv_notional.iloc[1:].to_numpy())
        caps = (None if market.market_caps is None
                else _clean_weights(market.market_caps.iloc[1:].to_numpy()))
        if weighting is RegressionWeight.SQRT_CAP and caps is None:
            raise ValidationError("sqrt_cap weighting needs market_caps",
                                  field="weighting", value=weighting.value)
        capw = adv if caps is None else caps
        regw = np.sqrt(capw if weighting is RegressionWeight.SQRT_CAP else adv)
        z = np.stack([standardize(raw_style(market, s).to_numpy(), capw, float(self.clip))
                      for s in styles], axis=2) if styles else np.zeros((*rv.shape, 0))
        # returns of day t on exposures at t-1
        y_all, z_lag, v_lag, c_lag = rv[1:], z[:-1], regw[:-1], capw[:-1]
        ok = np.all(np.isfinite(z_lag), axis=2) & (v_lag > 0)
        full = np.flatnonzero(ok.all(axis=1))
        if len(full) == 0:
            raise DataError("no day with every exposure known: too few observations for the "
                            "style look-back windows", field="returns", value=len(rv))
        start = int(full[0])
        if self.window is not None:
            start = max(start, len(y_all) - int(self.window))
        n_days = len(y_all) - start
        k_styles = len(styles)
        sectors = pd.Series(market.sectors).reindex(symbols).astype(str)
        sector_names = pd.Index(sorted(sectors.unique()))
        codes = sector_names.get_indexer(sectors)
        n_sec = len(sector_names)
        if n_days < max(20, 2 + n_sec + k_styles):
            raise DataError("too few observations once the look-back windows are full",
                            field="returns", value=n_days)
        latest = z[-1]
        if not np.all(np.isfinite(latest)):
            i, j = np.argwhere(~np.isfinite(latest))[0]
            raise DataError("latest style exposure unknown", field=styles[j].value,
                            symbol=str(symbols[i]))
        onehot = np.zeros((len(symbols), n_sec))
        onehot[np.arange(len(symbols)), codes] = 1.0
        k = 1 + n_sec + k_styles
        fr = np.empty((n_days, k))
        resid = np.empty((n_days, len(symbols)))
        r2 = np.empty(n_days)
        step = max(1, int(self.batch_days))
        for a in range(start, len(y_all), step):
            b = min(a + step, len(y_all))
            okb = ok[a:b]
            v = np.where(okb, v_lag[a:b], 0.0)
            zb = np.where(okb[:, :, None], z_lag[a:b], 0.0)
            yb = y_all[a:b]
            cw = np.where(okb, c_lag[a:b], 0.0) @ onehot
            f = solve_constrained_wls(v, yb, zb, codes, n_sec, cw)
            fit = f[:, [0]] + f[:, 1 + codes] + np.einsum("cnp,cp->cn", zb, f[:, 1 + n_sec:])
            e = yb - fit
            ybar = np.sum(v * yb, axis=1, keepdims=True) / v.sum(axis=1, keepdims=True)
            r2[a - start:b - start] = 1.0 - (np.sum(v * e * e, axis=1)
                                             / np.sum(v * (yb - ybar) ** 2, axis=1))
            fr[a - start:b - start] = f
            resid[a - start:b - start] = np.where(okb, e, np.nan)
        names = pd.Index([MARKET, *[f"sector:{s}" for s in sector_names],
                          *[s.value for s in styles]], name="factor")
        groups = ["market"] + ["sector"] * n_sec + ["style"] * k_styles
        fcov, repaired = ewma_factor_covariance(fr, float(self.factor_halflife),
                                                int(self.newey_west_lags))
        spec = self._specific_variance(resid, codes, n_sec, capw[-1])
        expo = np.hstack([np.ones((len(symbols), 1)), onehot, latest])
        dates = r.index[1 + start:]
        self.exposures_ = pd.DataFrame(expo, index=symbols, columns=names)
        self.factor_covariance_ = pd.DataFrame(fcov, index=names, columns=names)
        self.specific_variance_ = pd.Series(spec, index=symbols, name="specific_variance")
        self.factor_returns_ = pd.DataFrame(fr, index=dates, columns=names)
        self.factor_groups_ = pd.Series(groups, index=names, name="group")
        self.specific_returns_ = pd.DataFrame(resid, index=dates, columns=symbols)
        self.r2_ = pd.Series(r2, index=dates, name="r2")
        self.mean_r2_ = float(np.mean(r2))
        self.regression_dates_ = dates
        self.sectors_ = sectors
        self.styles_ = styles
        self.psd_repaired_ = repaired
        return self

    def _specific_variance(self, resid: np.ndarray, codes: np.ndarray, n_sec: int,
                           capw: np.ndarray) -> np.ndarray:
        w = ewma_weights(resid.shape[0], halflife_to_lambda(float(self.specific_halflife)))
        seen = np.isfinite(resid)
        num = w @ np.where(seen, resid * resid, 0.0)
        den = w @ seen
        with np.errstate(invalid="ignore", divide="ignore"):
            vol = np.sqrt(num / den)
        known = np.isfinite(vol)
        cw = np.where(known, capw, 0.0)
        sec_cap = np.bincount(codes, weights=cw, minlength=n_sec)
        sec_vol = np.bincount(codes, weights=np.where(known, vol, 0.0) * cw, minlength=n_sec)
        with np.errstate(invalid="ignore", divide="ignore"):
            sec_mean = sec_vol / sec_cap
        target = sec_mean[codes]
        if np.any(~known & ~np.isfinite(target)):
            raise DataError("no specific return observed for a name nor its sector",
                            field="specific_variance")
        alpha = float(self.specific_shrinkage)
        vol = np.where(known, (1.0 - alpha) * vol + alpha * np.nan_to_num(target, nan=0.0),
                       target)
        return np.asarray(vol * vol)
