import numpy as np
import pandas as pd

from keel.risk.base import FactorCovariance


def test_matvec_and_diag_equal_the_dense_covariance():
    rng = np.random.default_rng(3)
    n, k = 40, 5
    a = rng.normal(size=(k, k))
    fc = FactorCovariance(pd.Index([f"S{i}" for i in range(n)]), pd.Index(list("abcde")),
                          rng.normal(size=(n, k)), a @ a.T, rng.uniform(0.1, 1, n))
    dense = fc.covariance()
    x, xs = rng.normal(size=n), rng.normal(size=(n, 3))
    np.testing.assert_allclose(fc.matvec(x), dense @ x, rtol=1e-12)
    np.testing.assert_allclose(fc.matvec(xs), dense @ xs, rtol=1e-12)
    np.testing.assert_allclose(fc.diag(), np.diag(dense), rtol=1e-12)
