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


def test_missing_volatility_or_adv_is_refused_or_flagged_never_zero():
    from keel.costs.almgren_chriss import ACParams, AlmgrenChriss
    from keel.costs.models import SpreadCost, SquareRootImpact
    from keel.errors import DataError

    m = synthetic_market(4, 80, seed=3)
    young = m.head(2)  # one return: no volatility yet (two are needed)
    with pytest.raises(DataError) as exc:
        TradeContext.from_market(young)
    assert exc.value.field == "volatility" and exc.value.symbol == str(m.symbols[0])
    ctx = TradeContext.from_market(young, on_missing="flag")
    assert ctx.missing_symbols == [str(s) for s in m.symbols]
    trade = np.zeros(4)
    trade[2] = 1e5
    with pytest.raises(DataError) as exc:
        SquareRootImpact().cost(trade, ctx)
    assert exc.value.symbol == str(m.symbols[2])
    assert SquareRootImpact().cost(np.zeros(4), ctx).total == 0.0  # nothing traded: fine
    assert SpreadCost().cost(trade, ctx).total > 0  # the spread needs neither input
    with pytest.raises(DataError):
        AlmgrenChriss(ACParams(eta=1e-6)).cost(trade, ctx)
    import cvxpy as cp

    with pytest.raises(DataError):
        SquareRootImpact().expr(cp.Variable(4), ctx)
    assert ctx.subset(np.array([1, 2])).missing_symbols == [str(s) for s in m.symbols[1:3]]
    # with history, no flag at all
    assert TradeContext.from_market(m).missing_symbols == []
    with pytest.raises(ValidationError):
        TradeContext.from_market(m, on_missing="zero")
