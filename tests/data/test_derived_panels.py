"""Panels computed once on the root market and sliced by views equal the per-view computation
(issue 15 point 6: a risk refit on ``market.head(n)`` must not recompute the history)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.data.synthetic import synthetic_market
from keel.risk.fundamental import FundamentalFactorModel
from keel.risk.styles import ALL_STYLES, raw_style


@pytest.fixture(scope="module")
def market():
    return synthetic_market(30, 420, seed=4)


def _fresh(m, n: int, caps: bool):
    """The first ``n`` rows as a new root market: nothing shared with ``m``'s caches."""
    return m.__class__(prices=m.prices.iloc[:n], volumes=m.volumes.iloc[:n],
                       sectors=m.sectors,
                       market_caps=m.market_caps.iloc[:n] if caps else None)


@pytest.mark.parametrize("with_caps", [False, True])
def test_raw_styles_of_a_view_equal_a_fresh_computation(market, with_caps: bool) -> None:
    m = market if with_caps else _fresh(market, len(market.prices), False)
    assert (m.market_caps is not None) == with_caps
    for n in (30, 260, 300, 419):
        view, fresh = m.head(n), _fresh(m, n, with_caps)
        for style in ALL_STYLES:
            cached = raw_style(view, style)
            assert len(cached) == n - 1
            # a fresh root computes every panel from scratch (beta and volatility are the
            # market's own derived panels, the others go through _raw_style)
            pd.testing.assert_frame_equal(cached, raw_style(fresh, style),
                                          check_exact=True, check_freq=False)


def test_derived_is_computed_once_and_cut_to_the_view(market) -> None:
    calls = []

    def fn(m):
        calls.append(len(m.prices))
        return m.prices.cumsum()

    a = market.head(100).derived("test:cumsum", fn)
    b = market.head(200).derived("test:cumsum", fn)
    assert calls == [len(market.prices)]  # once, on the root
    assert len(a) == 100 and len(b) == 200
    pd.testing.assert_frame_equal(a, market.prices.iloc[:100].cumsum(), check_exact=True,
                                  check_freq=False)
    assert not a.to_numpy().flags.writeable  # frozen like the other derived panels


def test_fundamental_fit_on_views_is_unchanged(market) -> None:
    """The model fitted on a view equals the one fitted on a fresh copy of the same rows
    (which shares no cache with the root)."""
    view = market.head(380)
    fresh = _fresh(market, 380, True)
    a = FundamentalFactorModel(window=120).fit(view)
    b = FundamentalFactorModel(window=120).fit(fresh)
    np.testing.assert_array_equal(a.exposures_.to_numpy(), b.exposures_.to_numpy())
    np.testing.assert_array_equal(a.factor_covariance_.to_numpy(),
                                  b.factor_covariance_.to_numpy())
    np.testing.assert_array_equal(a.specific_variance_.to_numpy(),
                                  b.specific_variance_.to_numpy())
