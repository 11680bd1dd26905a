"""LOBSTER depth replay on the simulated exchange (AAPL 2012-06-21, 10-level head)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from keel.errors import ValidationError
from keel.types import EventKind, Order, OrderType, Side
from keel.venues.exchange.core import SimulatedExchange
from keel.venues.exchange.replay import LobsterReplay

FOLDER = "lob/lobster_AAPL_2012-06-21_L10_head"


@pytest.fixture
def replay(shared_data: Path) -> LobsterReplay:
    folder = shared_data / FOLDER
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    return LobsterReplay.from_folder(SimulatedExchange(["AAPL"]), folder)


def depth(ex: SimulatedExchange) -> dict[str, list[tuple[Decimal, Decimal]]]:
    return ex.engine.book("AAPL").depth(10)


def snapshot(r: LobsterReplay, k: int) -> dict[str, list[tuple[Decimal, Decimal]]]:
    b = r.day.book

    def side(px: np.ndarray, sz: np.ndarray) -> list[tuple[Decimal, Decimal]]:
        return [(Decimal(round(float(p) * 10_000)) / 10_000, Decimal(int(s)))
                for p, s in zip(px, sz, strict=True) if s > 0]

    return {"bids": side(b.bid_px[k], b.bid_sz[k]), "asks": side(b.ask_px[k], b.ask_sz[k])}


def test_seed_and_every_step_match_the_historical_book(replay: LobsterReplay) -> None:
    ex = replay.exchange
    replay.seed(0)
    assert depth(ex) == snapshot(replay, 0)
    assert ex.engine.book("AAPL").best_ask() == Decimal("585.94")
    for k in range(1, len(replay)):
        assert replay.step() == k
        assert depth(ex) == snapshot(replay, k), k
    assert replay.step() == len(replay) - 1  # stays at the end


def test_market_order_walks_the_historical_depth(replay: LobsterReplay) -> None:
    ex = replay.exchange
    t = replay.when(300)
    k = replay.seed(t)
    assert k >= 300 and replay.when(k) == t
    b = replay.day.book
    qty = int(b.ask_sz[k, :3].sum()) + 1  # three levels and one share of the fourth
    events = ex.submit("P", Order("m1", "AAPL", Side.BUY, qty, t), t)
    fills = [e.fill for e in events if e.fill is not None]
    take = np.minimum(np.cumsum(b.ask_sz[k]), qty) - np.concatenate(
        [[0], np.minimum(np.cumsum(b.ask_sz[k]), qty)[:-1]])
    expected = float(np.dot(take, b.ask_px[k]))
    assert sum(f.qty for f in fills) == qty
    assert float(sum(f.qty * f.price for f in fills)) == pytest.approx(expected, abs=1e-9)
    assert [f.price for f in fills][-1] == Decimal(str(b.ask_px[k, 3]))
    # the next snapshot restores the depth the history shows
    replay.step()
    assert depth(ex) == snapshot(replay, k + 1)


def test_resting_bid_fills_when_the_historical_ask_comes_down(replay: LobsterReplay) -> None:
    ex = replay.exchange
    t0 = replay.when(0)
    replay.seed(0)
    px = Decimal("585.50")  # inside the opening spread (585.33 / 585.94)
    ev = ex.submit("P", Order("b1", "AAPL", Side.BUY, 100, t0, order_type=OrderType.LIMIT,
                              limit_price=px), t0)
    assert [e.kind for e in ev] == [EventKind.ACK]
    asks = replay.day.book.ask_px[:, 0]
    first = int(np.argmax(asks <= float(px)))
    assert first > 0
    replay.seed(first - 1)
    assert ex.events_since("P", 1) == []
    replay.step()
    fills = [e.fill for _, e in ex.events_since("P", 1) if e.fill is not None]
    assert fills and all(f.price == px for f in fills)  # at the resting order's price
    assert replay.index == first and fills[0].timestamp == replay.when(first)


def test_bad_inputs_name_the_field(replay: LobsterReplay, shared_data: Path) -> None:
    with pytest.raises(ValidationError) as e:
        LobsterReplay(SimulatedExchange(["AAPL"]), replay.day, levels=11)
    assert e.value.field == "levels"
    with pytest.raises(ValidationError) as e:
        LobsterReplay(SimulatedExchange(["MSFT"]), replay.day)
    assert e.value.field == "symbol"
    with pytest.raises(ValidationError) as e:
        replay.seed(replay.when(0).replace(year=2011))
    assert e.value.field == "t"
    with pytest.raises(ValidationError) as e:
        replay.seed(len(replay))
    assert e.value.field == "at"
