"""Accounts fixtures: a small synthetic market, its prices and the batch's shared inputs."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from keel.accounts.batch import CENT, prepare
from keel.accounts.book import ModelPortfolio
from keel.accounts.solve import Shared
from keel.config import KeelConfig, parse_config
from keel.data.synthetic import synthetic_market
from keel.store import Store
from keel.types import to_price

SMALL = {"data": {"n_assets": 30, "n_days": 300},
         "risk": {"lookback_days": 200, "n_pca_factors": 3},
         "execution": {"min_order_value": 100.0}}


@pytest.fixture(scope="session")
def config() -> KeelConfig:
    return parse_config({k: dict(v) for k, v in SMALL.items()})


@pytest.fixture(scope="session")
def market(config):
    return synthetic_market(30, 300, seed=3)


@pytest.fixture(scope="session")
def prices(market) -> dict[str, Decimal]:
    return {str(s): to_price(float(p), CENT) for s, p in market.latest("prices").items()}


@pytest.fixture(scope="session")
def model(prices) -> ModelPortfolio:
    names = sorted(prices)[:10]
    return ModelPortfolio("M", {s: Decimal("0.1") for s in names})


@pytest.fixture(scope="session")
def shared(config, market, model) -> Shared:
    return prepare(config, market, {"M": model}, market.now.to_pydatetime())


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.from_url(db_url)
    s.upgrade()
    try:
        yield s
    finally:
        s.dispose()
