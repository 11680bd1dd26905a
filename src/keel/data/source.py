"""Build the configured ``MarketData`` from a :class:`keel.config.DataConfig`."""

from __future__ import annotations

import numpy as np

from keel.config import DataConfig, DataSource
from keel.data.market import MarketData
from keel.errors import ConfigError


def load_market(config: DataConfig | None = None, *,
                seed: int | np.random.Generator | None = 7) -> MarketData:
    """The market a run uses: synthetic by default, else the long price file configured.

    ``csv``/``parquet`` sources read ``prices_path`` as a *long* file (date, open, high, low,
    close, volume, Name) with ``sectors_path`` as the sector map; ``seed`` drives the
    synthetic market (pass the run's ``general.seed``).
    """
    from keel.data.prices import load_prices_long
    from keel.data.synthetic import generate_market

    cfg = config or DataConfig()
    if cfg.source is DataSource.SYNTHETIC:
        return generate_market(seed=seed, n_assets=cfg.n_assets, n_days=cfg.n_days,
                               start=cfg.start, calendar=cfg.calendar).market
    if cfg.prices_path is None:
        raise ConfigError("data.prices_path is required for a file source",
                          field="data.prices_path", value=cfg.source.value)
    return load_prices_long(cfg.prices_path, sectors=cfg.sectors_path,
                            on_missing=cfg.on_missing, calendar=cfg.calendar)
