import numpy as np
import pytest

from keel.costs.base import TradeContext
from keel.data.market import MarketData
from keel.data.synthetic import synthetic_market
from keel.errors import ValidationError


def test_from_market_fills_missing_spreads_only_with_a_default():
    m = synthetic_market(5, 80, seed=2)
    spreads = m.spreads.copy()
    spreads.iloc[-1, 1] = np.nan
    m2 = MarketData(m.prices, m.volumes, sectors=m.sectors, spreads=spreads,
                    on_missing="raise")
    with pytest.raises(ValidationError) as exc:
        TradeContext.from_market(m2)
    assert exc.value.symbol == str(m.symbols[1]) and exc.value.field == "spreads"
    ctx = TradeContext.from_market(m2, default_spread=0.001)
    assert ctx.spreads[1] == 0.001
    np.testing.assert_array_equal(np.delete(ctx.spreads, 1),
                                  np.delete(m.spreads.iloc[-1].to_numpy(), 1))
    bare = MarketData(m.prices, m.volumes)
    assert np.all(TradeContext.from_market(bare, default_spread=0.0005).spreads == 0.0005)
    with pytest.raises(ValidationError):
        TradeContext.from_market(bare)
