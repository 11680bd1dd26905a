"""HRP and HERC: closed forms on small cases, the factored path against the dense one, invariants
(hypothesis), and the peers on real S&P 500 returns (PyPortfolioOpt's HRP, skfolio's HERC)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.errors import ValidationError
from keel.optimize.hierarchical import (
    Distance,
    Linkage,
    cap_weights,
    condensed_correlation,
    herc,
    hrp,
)
from keel.risk.base import FactorCovariance

PRICES = Path("daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz")


def _factor_model(n: int = 25, k: int = 3, seed: int = 0) -> FactorCovariance:
    rng = np.random.default_rng(seed)
    b = rng.normal(0, 1, (n, k))
    f = np.diag(rng.uniform(1e-5, 4e-5, k))
    d = rng.uniform(5e-5, 2e-4, n)
    return FactorCovariance(pd.Index([f"S{i}" for i in range(n)]),
                            pd.Index([f"F{j}" for j in range(k)]), b, f, d)


def _dense(fc: FactorCovariance) -> pd.DataFrame:
    m = fc.exposures @ fc.factor_covariance @ fc.exposures.T + np.diag(fc.specific_variance)
    return pd.DataFrame(m, index=fc.symbols, columns=fc.symbols)


@pytest.fixture(scope="module")
def sp500_returns(shared_data: Path) -> pd.DataFrame:
    raw = pd.read_csv(shared_data / PRICES, usecols=["date", "Name", "close"])
    close = raw.pivot(index="date", columns="Name", values="close")
    close = close.loc[:, close.notna().all()].iloc[:, :60]
    return close.pct_change().iloc[1:]


def test_two_assets_get_inverse_variance_weights() -> None:
    cov = np.array([[0.04, 0.006], [0.006, 0.01]])
    w = hrp(cov, symbols=pd.Index(["A", "B"]))
    inv = np.array([1 / 0.04, 1 / 0.01])
    np.testing.assert_allclose(w.to_numpy(), inv / inv.sum(), rtol=1e-12)


def test_two_uncorrelated_blocks_closed_form() -> None:
    # blocks {0,1} and {2,3}, correlated inside, independent across
    cov = np.zeros((4, 4))
    cov[:2, :2] = [[0.04, 0.018], [0.018, 0.09]]
    cov[2:, 2:] = [[0.01, 0.002], [0.002, 0.0025]]
    w = hrp(cov).to_numpy()
    herc_w = herc(cov, n_clusters=2).to_numpy()

    def ivp(c: np.ndarray) -> tuple[np.ndarray, float]:
        v = 1 / np.diag(c)
        v /= v.sum()
        return v, float(v @ c @ v)

    (w1, v1), (w2, v2) = ivp(cov[:2, :2]), ivp(cov[2:, 2:])
    a = 1 - v1 / (v1 + v2)
    expect = np.concatenate([a * w1, (1 - a) * w2])
    np.testing.assert_allclose(np.sort(w), np.sort(expect), rtol=1e-12)  # blocks in any order
    np.testing.assert_allclose(herc_w, expect, rtol=1e-12)


@pytest.mark.parametrize("distance", list(Distance))
@pytest.mark.parametrize("linkage", list(Linkage))
def test_factored_equals_dense(linkage: Linkage, distance: Distance) -> None:
    fc = _factor_model(seed=3)
    dense = _dense(fc)
    np.testing.assert_allclose(condensed_correlation(fc), condensed_correlation(dense),
                               atol=1e-12)
    a = hrp(fc, linkage=linkage, distance=distance)
    b = hrp(dense, linkage=linkage, distance=distance)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-9)
    c = herc(fc, n_clusters=4, linkage=linkage, distance=distance)
    d = herc(dense, n_clusters=4, linkage=linkage, distance=distance)
    np.testing.assert_allclose(c.to_numpy(), d.to_numpy(), rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 30), st.integers(1, 6),
       st.sampled_from(list(Linkage)))
def test_weights_are_a_long_only_budget(seed: int, n: int, k: int, linkage: Linkage) -> None:
    fc = _factor_model(n=n, k=2, seed=seed)
    for w in (hrp(fc, linkage=linkage), herc(fc, n_clusters=min(k, n), linkage=linkage)):
        assert np.all(w.to_numpy() > 0)
        assert w.sum() == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1e-3, 1.0), min_size=2, max_size=40), st.floats(0.0, 1.0))
def test_cap_weights_invariants(raw: list[float], t: float) -> None:
    w = np.array(raw) / sum(raw)
    cap = 1 / len(w) + t * (1 - 1 / len(w))
    out = cap_weights(w, cap)
    assert out.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(out <= cap + 1e-12) and np.all(out >= 0)
    if w.max() <= cap:
        np.testing.assert_allclose(out, w)          # caps that do not bind change nothing
    free = out < cap - 1e-12
    if free.sum() > 1:                              # uncapped names keep their proportions
        np.testing.assert_allclose(out[free] / out[free].sum(), w[free] / w[free].sum(),
                                   rtol=1e-9)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValidationError, match="max_weight"):
        hrp(_factor_model(n=10), max_weight=0.05)
    with pytest.raises(ValidationError, match="n_clusters"):
        herc(_factor_model(n=10), n_clusters=0)
    with pytest.raises(ValidationError, match="variance"):
        hrp(np.diag([0.01, 0.0, 0.02]))


def test_hrp_matches_pyportfolioopt_on_sp500(sp500_returns: pd.DataFrame) -> None:
    pypfopt = pytest.importorskip("pypfopt", reason="PyPortfolioOpt not installed (peer check)")
    cov = sp500_returns.cov()
    ours = hrp(cov, linkage="single")
    peer = pypfopt.HRPOpt(returns=sp500_returns, cov_matrix=cov)
    theirs = pd.Series(peer.optimize(linkage_method="single"))
    np.testing.assert_allclose(ours.to_numpy(), theirs.reindex(ours.index).to_numpy(),
                               rtol=1e-9)


def test_herc_matches_skfolio_on_sp500(sp500_returns: pd.DataFrame) -> None:
    skfolio = pytest.importorskip("skfolio", reason="skfolio not installed (peer check)")
    from skfolio.cluster import HierarchicalClustering, LinkageMethod
    from skfolio.optimization import HierarchicalEqualRiskContribution

    peer = HierarchicalEqualRiskContribution(
        risk_measure=skfolio.RiskMeasure.VARIANCE,
        hierarchical_clustering_estimator=HierarchicalClustering(
            max_clusters=6, linkage_method=LinkageMethod.WARD)).fit(sp500_returns)
    ours = herc(sp500_returns.cov(), n_clusters=6, linkage="ward")
    np.testing.assert_allclose(ours.to_numpy(), peer.weights_, rtol=1e-6, atol=1e-9)
