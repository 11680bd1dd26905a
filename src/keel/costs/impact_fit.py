"""Fit impact curves ``g(x)`` (currency cost of a market order of x shares) to measured samples.

Families (all convex on x >= 0, so the fitted curves feed the optimal split directly):
``linear`` ``b x``; ``quadratic`` ``a x^2 + b x`` (a, b >= 0, non-negative least squares);
``power`` ``c x^d`` (1 <= d <= 3, bounded non-linear least squares started from a log-log fit).

Validation is by time: the first ``train_frac`` of the samples (sorted by time) fit, the rest
test. Scores: R^2 of the cost (currency), R^2 of the per-share slippage (cost / x, the harder
test: cost grows with x whatever the curve), RMSE and MAE of the cost out of sample.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, nnls

from keel.costs._session import SESSION_MINUTES
from keel.costs.curves import IntervalCosts, PowerCurves, QuadraticCurves, curves_from_dict
from keel.errors import DataError, ValidationError

KINDS = ("linear", "quadratic", "power")


def _r2(y: np.ndarray, yhat: np.ndarray) -> float:
    sst = float(np.sum((y - y.mean()) ** 2))
    return float("nan") if sst <= 0 else 1.0 - float(np.sum((y - yhat) ** 2)) / sst


def fit_curve(size: np.ndarray, cost: np.ndarray, kind: str) -> IntervalCosts:
    """Least-squares fit of one convex curve of family ``kind`` to (size, cost) samples."""
    x = np.asarray(size, dtype=np.float64)
    y = np.asarray(cost, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise DataError("need at least 2 samples of equal-length size and cost", field="samples",
                        value=(x.shape, y.shape))
    if np.any(x <= 0) or not np.all(np.isfinite(x) & np.isfinite(y)):
        raise DataError("sizes must be > 0 and samples finite", field="size")
    scale = float(np.max(x))
    u = x / scale  # fit on a unit scale: x^2 and x differ by orders of magnitude in shares
    if kind == "linear":
        (b,), _ = nnls(u[:, None], y)
        return QuadraticCurves(0.0, b / scale)
    if kind == "quadratic":
        (a, b), _ = nnls(np.column_stack([u**2, u]), y)
        return QuadraticCurves(a / scale**2, b / scale)
    if kind == "power":
        pos = y > 0
        if pos.sum() >= 2 and np.ptp(np.log(u[pos])) > 0:
            d0, logc0 = np.polyfit(np.log(u[pos]), np.log(y[pos]), 1)
        else:
            d0, logc0 = 1.0, np.log(max(float(np.mean(y)), 1e-12))
        d0 = float(np.clip(d0, 1.0, 3.0))
        c0 = max(float(np.exp(logc0)), 1e-12)
        res = least_squares(lambda p: p[0] * u ** p[1] - y, x0=[c0, d0],
                            bounds=([0.0, 1.0], [np.inf, 3.0]), x_scale="jac")
        c, d = res.x
        return PowerCurves(c / scale**d, d)
    raise ValidationError("unknown curve kind", field="kind", value=kind)


@dataclass(frozen=True)
class CurveFit:
    """One fitted curve and its scores (``*_in`` on the training part, ``*_out`` on the test)."""

    kind: str
    curve: IntervalCosts
    r2_in: float
    r2_out: float
    r2_slippage_in: float
    r2_slippage_out: float
    rmse_out: float
    mae_out: float
    n_train: int
    n_test: int

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("kind", "r2_in", "r2_out", "r2_slippage_in",
                                            "r2_slippage_out", "rmse_out", "mae_out",
                                            "n_train", "n_test")}
        return {**d, "curve": self.curve.to_dict()}


def _split(samples: pd.DataFrame, train_frac: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    need = {"time", "size", "cost"}
    if not need <= set(samples.columns):
        raise DataError("samples need columns time, size, cost", field="samples",
                        value=sorted(need - set(samples.columns)))
    if not 0 < train_frac < 1:
        raise ValidationError("train_frac must be in (0, 1)", field="train_frac",
                              value=train_frac)
    s = samples[samples["size"] > 0].sort_values("time", kind="stable")
    n_train = round(train_frac * len(s))
    if n_train < 2 or len(s) - n_train < 2:
        raise DataError("too few samples for a train/test split", field="samples",
                        value=len(s))
    return s.iloc[:n_train], s.iloc[n_train:]


def fit_impact_curves(samples: pd.DataFrame, train_frac: float = 0.7,
                      kinds: tuple[str, ...] = KINDS) -> dict[str, CurveFit]:
    """Fit each family on the first ``train_frac`` of the samples by time; score on the rest.

    ``samples``: columns ``time``, ``size`` (shares > 0), ``cost`` (currency).
    """
    train, test = _split(samples, train_frac)
    out = {}
    for kind in kinds:
        curve = fit_curve(train["size"].to_numpy(), train["cost"].to_numpy(), kind)
        scores = []
        for part in (train, test):
            x, y = part["size"].to_numpy(dtype=np.float64), part["cost"].to_numpy(np.float64)
            yhat = curve.value(x)
            scores.append((_r2(y, yhat), _r2(y / x, yhat / x), y - yhat))
        resid = scores[1][2]
        out[kind] = CurveFit(kind=kind, curve=curve, r2_in=scores[0][0], r2_out=scores[1][0],
                             r2_slippage_in=scores[0][1], r2_slippage_out=scores[1][1],
                             rmse_out=float(np.sqrt(np.mean(resid**2))),
                             mae_out=float(np.mean(np.abs(resid))), n_train=len(train),
                             n_test=len(test))
    return out


@dataclass(frozen=True)
class TimeOfDayFit:
    """Per-bucket curves over the session.

    Attributes:
        edges_min: (B+1,) bucket edges, minutes after the open.
        curves: B curves ``g_t``.
        pooled: (B,) True where a bucket had too few samples and got the all-day fit.
    """

    edges_min: np.ndarray
    curves: IntervalCosts
    pooled: np.ndarray


def fit_time_of_day(samples: pd.DataFrame, n_buckets: int = 13, kind: str = "quadratic",
                    min_samples: int = 20) -> TimeOfDayFit:
    """Per-bucket curves ``g_t`` over the session.

    ``samples`` needs ``minute`` (after the open), ``size`` and ``cost``. Returns (edges (B+1,)
    in minutes, curves with B entries, pooled flags). A bucket with fewer than
    ``min_samples`` samples gets the all-day fit (flagged in ``pooled``).
    """
    if n_buckets < 1:
        raise ValidationError("n_buckets must be >= 1", field="n_buckets", value=n_buckets)
    if "minute" not in samples.columns:
        raise DataError("samples need a minute column", field="samples")
    s = samples[(samples["size"] > 0) & (samples["minute"] >= 0)
                & (samples["minute"] < SESSION_MINUTES)]
    edges = np.linspace(0.0, SESSION_MINUTES, n_buckets + 1)
    bucket = np.clip(np.searchsorted(edges, s["minute"].to_numpy(), side="right") - 1, 0,
                     n_buckets - 1)
    pooled = fit_curve(s["size"].to_numpy(), s["cost"].to_numpy(), kind)
    params: dict[str, list[float]] = {k: [] for k in pooled.params()}
    fallback = []
    for b in range(n_buckets):
        part = s[bucket == b]
        ok = len(part) >= min_samples
        curve = fit_curve(part["size"].to_numpy(), part["cost"].to_numpy(), kind) if ok \
            else pooled
        fallback.append(not ok)
        for k, v in curve.params().items():
            params[k].append(v[0])
    return TimeOfDayFit(edges, curves_from_dict({"kind": pooled.kind, **params}),
                        np.array(fallback))


@dataclass
class ImpactModel:
    """What ``keel impact fit`` writes: the chosen curve, all fits and the time-of-day curves."""

    symbol: str
    source: str
    method: str
    kind: str
    fits: dict[str, CurveFit]
    tod_edges_min: np.ndarray
    tod_curves: IntervalCosts
    volume_by_bucket: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: (smallest, largest) order size in shares among the samples fitted; None when unknown
    #: (a model saved before ranges were recorded). Beyond it a curve is extrapolation.
    size_range: tuple[float, float] | None = None

    @property
    def curve(self) -> IntervalCosts:
        return self.fits[self.kind].curve

    def interval_curves(self, n_intervals: int) -> tuple[IntervalCosts, np.ndarray]:
        """The time-of-day curves on T equal intervals of the session, and each interval's
        share of the day's volume (for participation caps), (T,)."""
        if n_intervals < 1:
            raise ValidationError("intervals must be >= 1", field="intervals",
                                  value=n_intervals)
        mids = (np.arange(n_intervals) + 0.5) * SESSION_MINUTES / n_intervals
        idx = np.clip(np.searchsorted(self.tod_edges_min, mids, side="right") - 1, 0,
                      self.tod_curves.n - 1)
        vol = self.volume_by_bucket
        if vol.size == self.tod_curves.n and vol.sum() > 0:
            width = np.diff(self.tod_edges_min)[idx]
            share = vol[idx] / vol.sum() * (SESSION_MINUTES / n_intervals) / width
        else:
            share = np.full(n_intervals, 1.0 / n_intervals)
        return self.tod_curves.take(idx), share

    def to_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "source": self.source, "method": self.method,
                "kind": self.kind, "fits": {k: f.to_dict() for k, f in self.fits.items()},
                "time_of_day": {"edges_min": self.tod_edges_min.tolist(),
                                "curves": self.tod_curves.to_dict(),
                                "volume": self.volume_by_bucket.tolist()},
                "size_range": None if self.size_range is None else list(self.size_range)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> ImpactModel:
        p = Path(path)
        try:
            d = json.loads(p.read_text())
            fits = {k: CurveFit(curve=curves_from_dict(f.pop("curve")), **f)
                    for k, f in d["fits"].items()}
            tod = d["time_of_day"]
            return cls(symbol=d["symbol"], source=d["source"], method=d["method"],
                       kind=d["kind"], fits=fits, tod_edges_min=np.asarray(tod["edges_min"]),
                       tod_curves=curves_from_dict(tod["curves"]),
                       volume_by_bucket=np.asarray(tod.get("volume", []), dtype=np.float64),
                       size_range=None if d.get("size_range") is None
                       else (float(d["size_range"][0]), float(d["size_range"][1])))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"cannot read impact model: {exc}", field="model",
                            file=str(p)) from None


def fit_impact_model(samples: pd.DataFrame, *, symbol: str = "", source: str = "",
                     method: str = "trades", kind: str = "quadratic", train_frac: float = 0.7,
                     n_buckets: int = 13, min_samples: int = 20) -> ImpactModel:
    """All fits, the time-of-day curves and the volume profile of ``samples`` in one model.

    ``volume_by_bucket`` is the executed size in each bucket when the samples are real market
    orders (``method="trades"``), used for participation caps; zeros otherwise (sizes walked
    through a book are not volume).
    """
    if kind not in KINDS:
        raise ValidationError("unknown curve kind", field="kind", value=kind)
    fits = fit_impact_curves(samples, train_frac)
    tod_fit = fit_time_of_day(samples, n_buckets, kind, min_samples)
    edges, tod = tod_fit.edges_min, tod_fit.curves
    minute = samples["minute"].to_numpy(dtype=np.float64)
    inside = (minute >= 0) & (minute < SESSION_MINUTES)
    bucket = np.clip(np.searchsorted(edges, minute[inside], side="right") - 1, 0, n_buckets - 1)
    volume: np.ndarray = np.zeros(n_buckets)
    if method == "trades":
        volume = np.bincount(bucket, weights=samples["size"].to_numpy(np.float64)[inside],
                             minlength=n_buckets).astype(np.float64)
    sizes = samples["size"].to_numpy(np.float64)
    sizes = sizes[sizes > 0]
    return ImpactModel(symbol=symbol, source=source, method=method, kind=kind, fits=fits,
                       tod_edges_min=edges, tod_curves=tod, volume_by_bucket=volume,
                       size_range=(float(sizes.min()), float(sizes.max())))
