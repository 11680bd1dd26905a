"""Moves reference prices and keeps the liquidity provider quoting around them.

Reference mids follow a seeded geometric random walk in session time (daily volatility spread
over a 6.5-hour session); after each step the liquidity provider requotes, so a strategy
trading against the exchange sees prices move and its own impact eat into the ladder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

import numpy as np

from keel.errors import ValidationError
from keel.venues.exchange.core import LiquidityProvider, SimulatedExchange

SESSION_SECONDS = 6.5 * 3600


class MarketSimulator:
    """Reference-price process plus requoting for a set of symbols.

    Args:
        exchange: the venue.
        mids: starting mid price per symbol, currency.
        daily_vol: daily volatility (fraction) per symbol, or one value for all.
        provider: the liquidity provider (default: a 2 bps half-spread, 5-level ladder).
        seed: random seed or Generator.
    """

    def __init__(self, exchange: SimulatedExchange, mids: Mapping[str, float],
                 daily_vol: Mapping[str, float] | float = 0.02,
                 provider: LiquidityProvider | None = None,
                 seed: int | np.random.Generator = 0) -> None:
        if not mids:
            raise ValidationError("at least one symbol is needed", field="mids")
        self.exchange = exchange
        self.symbols = list(mids)
        self.mids = np.array([float(mids[s]) for s in self.symbols])
        if np.any(~np.isfinite(self.mids) | (self.mids <= 0)):
            raise ValidationError("mids must be positive", field="mids", value=dict(mids))
        vols = (np.full(len(self.symbols), float(daily_vol)) if isinstance(daily_vol, int | float)
                else np.array([float(daily_vol[s]) for s in self.symbols]))
        self.daily_vol = vols
        self.provider = provider or LiquidityProvider(exchange)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def quote_all(self, ts: datetime) -> None:
        """Post fresh ladders around the current mids."""
        for sym, mid in zip(self.symbols, self.mids, strict=True):
            self.provider.quote(sym, float(mid), ts)

    def step(self, ts: datetime, dt_seconds: float) -> dict[str, float]:
        """Advance every mid by ``dt_seconds`` of session time, requote; returns the new mids."""
        if dt_seconds < 0:
            raise ValidationError("dt_seconds must be >= 0", field="dt_seconds",
                                  value=dt_seconds)
        sigma = self.daily_vol * math.sqrt(dt_seconds / SESSION_SECONDS)
        z = self.rng.standard_normal(len(self.symbols))
        self.mids = self.mids * np.exp(sigma * z - 0.5 * sigma**2)
        self.quote_all(ts)
        return dict(zip(self.symbols, self.mids.tolist(), strict=True))
