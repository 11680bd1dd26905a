from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.costs.curves import PowerCurves, QuadraticCurves
from keel.costs.impact_fit import ImpactModel, fit_curve, fit_impact_curves, fit_time_of_day
from keel.errors import DataError, ValidationError


def _samples(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(10, 5000, n)
    minute = np.sort(rng.uniform(0, 390, n))
    b = 0.02 + 0.02 * (minute < 60)  # wider at the open
    cost = 2e-6 * x**2 + b * x + rng.normal(0, 0.5, n)
    return pd.DataFrame({"time": pd.Timestamp("2024-01-02 14:30", tz="UTC")
                         + pd.to_timedelta(minute, unit="min"),
                         "minute": minute, "size": x, "cost": cost})


def test_fits_recover_known_curves() -> None:
    x = np.linspace(1, 1000, 200)
    q = fit_curve(x, 3e-5 * x**2 + 0.01 * x, "quadratic")
    assert isinstance(q, QuadraticCurves)
    np.testing.assert_allclose([q.a[0], q.b[0]], [3e-5, 0.01], rtol=1e-8)
    lin = fit_curve(x, 0.02 * x, "linear")
    assert lin.b[0] == pytest.approx(0.02) and lin.a[0] == 0.0
    p = fit_curve(x, 0.003 * x**1.7, "power")
    assert isinstance(p, PowerCurves)
    assert p.d[0] == pytest.approx(1.7, rel=1e-6) and p.c[0] == pytest.approx(0.003, rel=1e-5)
    # convexity is kept: a concave truth gives d = 1, a negative slope gives a, b >= 0
    assert fit_curve(x, 5 * np.sqrt(x), "power").d[0] == pytest.approx(1.0)
    neg = fit_curve(x, -1e-5 * x**2 + 0.05 * x, "quadratic")
    assert neg.a[0] >= 0 and neg.b[0] >= 0


def test_train_test_split_by_time_and_scores() -> None:
    s = _samples()
    fits = fit_impact_curves(s.sample(frac=1.0, random_state=1), train_frac=0.7)
    q = fits["quadratic"]
    assert q.n_train == 1400 and q.n_test == 600
    # independent recomputation of the out-of-sample R^2 on the last 30 % by time
    test = s.sort_values("time").iloc[1400:]
    yhat = q.curve.value(test["size"].to_numpy())
    y = test["cost"].to_numpy()
    assert q.r2_out == pytest.approx(1 - np.sum((y - yhat) ** 2) / np.sum((y - y.mean()) ** 2))
    assert q.r2_in > 0.7 and q.r2_out > 0.5  # one curve cannot see the wider open
    assert fits["quadratic"].rmse_out < fits["linear"].rmse_out


def test_time_of_day_fit_sees_the_open() -> None:
    tod = fit_time_of_day(_samples(4000), n_buckets=13)
    curves = tod.curves
    assert isinstance(curves, QuadraticCurves) and curves.n == 13
    assert curves.b[0] > 1.5 * curves.b[5]
    assert not tod.pooled.any()
    assert fit_time_of_day(_samples(100), n_buckets=13, min_samples=20).pooled.all()


def test_impact_model_roundtrip(tmp_path: Path) -> None:
    s = _samples()
    tod_fit = fit_time_of_day(s, 13)
    edges, tod = tod_fit.edges_min, tod_fit.curves
    m = ImpactModel("X", "test", "book", "quadratic", fit_impact_curves(s), edges, tod,
                    np.arange(1.0, 14.0))
    m.save(tmp_path / "m.json")
    back = ImpactModel.load(tmp_path / "m.json")
    assert back.to_dict() == m.to_dict()
    curves, share = back.interval_curves(390)
    assert curves.n == 390 and share.sum() == pytest.approx(1.0)
    with pytest.raises(DataError) as e:
        ImpactModel.load(tmp_path / "missing.json")
    assert e.value.field == "model"


def test_bad_inputs() -> None:
    with pytest.raises(DataError) as e:
        fit_curve(np.array([0.0, 1.0]), np.array([1.0, 2.0]), "linear")
    assert e.value.field == "size"
    with pytest.raises(ValidationError) as e:
        fit_curve(np.array([1.0, 2.0]), np.array([1.0, 2.0]), "cubic")
    assert e.value.field == "kind"
    with pytest.raises(ValidationError) as e:
        fit_impact_curves(_samples(), train_frac=1.5)
    assert e.value.field == "train_frac"
    with pytest.raises(DataError) as e:
        fit_impact_curves(pd.DataFrame({"size": [1.0]}))
    assert e.value.field == "samples"


def test_synthetic_book_fit_and_split() -> None:
    from keel.costs.allocation import optimal_split
    from keel.costs.impact import book_samples
    from keel.costs.impact_fit import fit_impact_model
    from keel.data.intraday import synthetic_order_book

    book = synthetic_order_book(390, 10, seed=3)
    samples = book_samples(book, np.geomspace(1, 3000, 25))
    model = fit_impact_model(samples, method="book", n_buckets=13)
    q, lin = model.fits["quadratic"], model.fits["linear"]
    assert q.r2_out > 0.8 and q.rmse_out < lin.rmse_out  # deeper levels cost more: convex
    curves, _ = model.interval_curves(13)
    x = np.full(13, 500.0)
    assert curves.value(x)[0] > 1.2 * np.median(curves.value(x))  # thin, wide book at the open
    r = optimal_split(20_000, curves, cap=0.2)
    assert r.improvement_pct > 0 and r.shares[0] < r.shares[6]
