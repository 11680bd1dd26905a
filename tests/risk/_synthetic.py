"""Private helper: a synthetic market with a known factor structure (tests and benchmarks).

Returns follow ``r_it = beta_i m_t + g_{s(i),t} + e_it`` with a market factor ``m``, one
factor per sector ``g`` and idiosyncratic noise of known volatility. Volumes and market caps
are log-normal, with traded value rising with capitalisation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from keel.data.market import MarketData
from keel.data.synthetic import synthetic_sessions


def synthetic_market(n_days: int = 400, n_assets: int = 60, n_sectors: int = 4,
                     seed: int = 0, with_caps: bool = True) -> tuple[MarketData, dict]:
    rng = np.random.default_rng(seed)
    idx = synthetic_sessions("2020-01-02", n_days).rename(None)
    syms = [f"S{i:04d}" for i in range(n_assets)]
    codes = np.arange(n_assets) % n_sectors
    beta = rng.uniform(0.6, 1.4, n_assets)
    m = rng.normal(0.0003, 0.01, n_days)
    g = rng.normal(0.0, 0.006, (n_days, n_sectors))
    spec_vol = rng.uniform(0.008, 0.025, n_assets)
    e = rng.normal(size=(n_days, n_assets)) * spec_vol
    r = m[:, None] * beta + g[:, codes] + e
    r[0] = 0.0
    px = 50.0 * np.exp(np.cumsum(np.log1p(r), axis=0))
    shares = np.exp(rng.normal(18, 1.0, n_assets))
    caps = px * shares
    vol = shares * np.exp(rng.normal(-5, 0.3, (n_days, n_assets)))
    sectors = pd.Series([f"Sec{c}" for c in codes], index=syms)
    market = MarketData(
        prices=pd.DataFrame(px, index=idx, columns=syms),
        volumes=pd.DataFrame(vol, index=idx, columns=syms),
        sectors=sectors,
        market_caps=pd.DataFrame(caps, index=idx, columns=syms) if with_caps else None)
    truth = {"beta": beta, "market": m, "sector": g, "spec_vol": spec_vol, "codes": codes}
    return market, truth
