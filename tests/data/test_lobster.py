"""LOBSTER loader: real AMZN L1 day and AAPL L10 head, message/book consistency, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.data.lobster import (
    LobsterDay,
    find_lobster_pair,
    load_lobster,
    parse_lobster_name,
    read_lobster_messages,
)
from keel.errors import DataError


def _load(shared_data: Path, folder: str) -> LobsterDay:
    return load_lobster(*find_lobster_pair(shared_data / "lob" / folder))


@pytest.fixture(scope="module")
def amzn(shared_data) -> LobsterDay:
    return _load(shared_data, "lobster_AMZN_2012-06-21_L1")


@pytest.fixture(scope="module")
def aapl(shared_data) -> LobsterDay:
    return _load(shared_data, "lobster_AAPL_2012-06-21_L10_head")


def test_amzn_l1_day_shape_units_and_times(amzn):
    m, b = amzn.messages, amzn.book
    assert (amzn.symbol, amzn.levels) == ("AMZN", 1)
    assert len(m) == b.n_snapshots == 57_515 and b.n_levels == 1
    # First message: 34200.017459617 s after midnight ET = 13:30:00.017459617 UTC (EDT).
    assert m["timestamp"].iloc[0] == pd.Timestamp("2012-06-21 13:30:00.017459617", tz="UTC")
    assert m["timestamp"].iloc[-1] < pd.Timestamp("2012-06-21 20:00", tz="UTC")
    assert m["event"].iloc[0] == 5 and m["price"].iloc[0] == pytest.approx(223.82)
    assert b.ask_px[0, 0] == pytest.approx(223.95) and b.bid_px[0, 0] == pytest.approx(223.18)
    assert b.bid_sz[0, 0] == 100
    assert m["event"].value_counts().to_dict() == {1: 27845, 3: 18235, 4: 8974, 5: 2445, 2: 16}
    assert (b.spread > 0).all()
    assert str(m["event"].dtype) == "int8" and str(m["order_id"].dtype) == "int64"


def _check_rows_match(day: LobsterDay) -> None:
    """Row i of the book is the state after message i."""
    m, b = day.messages, day.book
    ev, p = m["event"].to_numpy(), m["price"].to_numpy()
    d, sz = m["direction"].to_numpy(), m["size"].to_numpy()
    i = np.where(ev == 4)[0]
    i = i[i > 0]
    # A visible execution hits the touch of the previous book...
    touch = np.where(d[i] == -1, b.ask_px[i - 1, 0], b.bid_px[i - 1, 0])
    np.testing.assert_allclose(p[i], touch)
    # ...and takes exactly its size off that level.
    same_ask = np.isclose(b.ask_px[i, 0], b.ask_px[i - 1, 0])
    same_bid = np.isclose(b.bid_px[i, 0], b.bid_px[i - 1, 0])
    left = np.where(d[i] == -1, b.ask_sz[i - 1, 0] - np.where(same_ask, b.ask_sz[i, 0], 0),
                    b.bid_sz[i - 1, 0] - np.where(same_bid, b.bid_sz[i, 0], 0))
    np.testing.assert_array_equal(left, sz[i])
    # A submission (LOBSTER only reports those within the requested levels) shows its price
    # on its side of the next book.
    j = np.where(ev == 1)[0]
    side = np.where(d[j, None] == 1, b.bid_px[j], b.ask_px[j])
    assert np.isclose(side, p[j, None]).any(axis=1).all()


def test_amzn_messages_and_book_match_row_by_row(amzn):
    _check_rows_match(amzn)


def test_aapl_l10_head_matches_row_by_row(aapl):
    assert aapl.book.n_levels == 10 and aapl.book.n_snapshots == len(aapl.messages) == 999
    _check_rows_match(aapl)
    b = aapl.book
    assert (np.diff(b.ask_px, axis=1) > 0).all() and (np.diff(b.bid_px, axis=1) < 0).all()
    # First row, read from the file: ask1 585.94 x 200, bid1 585.33 x 18, bid10 584.27 x 300.
    assert (b.ask_px[0, 0], b.ask_sz[0, 0]) == (585.94, 200)
    assert (b.bid_px[0, 0], b.bid_sz[0, 0]) == (585.33, 18)
    assert (b.bid_px[0, 9], b.bid_sz[0, 9]) == (584.27, 300)
    trades = aapl.trades
    assert set(trades["event"]) <= {4, 5, 6} and set(trades["sign"]) <= {-1, 1}


# ---------------------------------------------------------------- bad input

MSG = "34200.1,1,11,100,1000000,1\n34200.2,1,12,50,1010000,-1\n34200.3,4,11,40,1000000,1\n"
BOOK = ("1010000,50,1000000,100,9999999999,0,-9999999999,0\n"
        "1010000,50,1000000,100,9999999999,0,-9999999999,0\n"
        "1010000,50,1000000,60,9999999999,0,-9999999999,0\n")
M_NAME = "XYZ_2012-06-21_34200000_57600000_message_2.csv"
B_NAME = "XYZ_2012-06-21_34200000_57600000_orderbook_2.csv"


def _pair(tmp_path: Path, msg: str = MSG, book: str = BOOK, m_name: str = M_NAME,
          b_name: str = B_NAME) -> tuple[Path, Path]:
    (tmp_path / m_name).write_text(msg)
    (tmp_path / b_name).write_text(book)
    return tmp_path / m_name, tmp_path / b_name


def test_l50_message_only_file(shared_data):
    f = (shared_data / "lob/lobster_AAPL_2012-06-21_L50_1h_message_only"
         / "AAPL_2012-06-21_34200000_37800000_message_50.csv")
    m = read_lobster_messages(f)
    assert len(m) == 91_997
    assert m["timestamp"].iloc[-1] < pd.Timestamp("2012-06-21 14:30", tz="UTC")
    assert set(m["event"].unique()) <= set(range(1, 8))


def test_halt_messages_carry_no_price(tmp_path):
    msg = MSG + "34200.4,7,0,0,-1,-1\n"
    book = BOOK + BOOK.splitlines()[-1] + "\n"
    day = load_lobster(*_pair(tmp_path, msg, book))
    assert day.messages["event"].iloc[-1] == 7 and np.isnan(day.messages["price"].iloc[-1])
    assert len(day.trades) == 1


def test_small_file_dummy_levels_become_nan(tmp_path):
    day = load_lobster(*_pair(tmp_path))
    b = day.book
    assert b.bid_px[0, 0] == 100.0 and np.isnan(b.bid_px[0, 1]) and b.bid_sz[0, 1] == 0
    assert np.isnan(b.ask_px[2, 1]) and b.ask_sz[2, 1] == 0
    assert day.messages["timestamp"].iloc[0] == pd.Timestamp("2012-06-21 13:30:00.1", tz="UTC")


def _replace_line(text: str, i: int, new: str) -> str:
    lines = text.splitlines()
    lines[i] = new
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("msg, book, field, row, match", [
    (_replace_line(MSG, 1, "34200.2,9,12,50,1010000,-1"), BOOK, "event", 2, "event type"),
    (_replace_line(MSG, 1, "34200.2,1,12,50,1010000,0"), BOOK, "direction", 2, "direction"),
    (_replace_line(MSG, 1, "34200.2,1,12,0,1010000,-1"), BOOK, "size", 2, "non-positive"),
    (_replace_line(MSG, 1, "34200.2,1,12,50,-5,-1"), BOOK, "price", 2, "non-positive"),
    (_replace_line(MSG, 2, "34200.0,4,11,40,1000000,1"), BOOK, "seconds", 3, "not sorted"),
    (_replace_line(MSG, 1, "34200.2,1,12,x,1010000,-1"), BOOK, "size", 2, "non-numeric"),
    (MSG, _replace_line(BOOK, 1, "1010000,50,1000000,-1,9999999999,0,-9999999999,0"),
     "bid_sz1", 2, "negative size"),
    (MSG, _replace_line(BOOK, 2, "1000000,50,1000000,60,9999999999,0,-9999999999,0"),
     "bid_px", 3, "crossed"),
    (MSG, BOOK + BOOK.splitlines()[0] + "\n", "rows", None, "differ in rows"),
    (MSG, "1,2,3\n1,2,3\n1,2,3\n", "columns", None, "4 x levels"),
    (MSG.replace(",1\n", ",1,7\n"), BOOK, "columns", None, "6 columns"),
])
def test_bad_lobster_files(tmp_path, msg, book, field, row, match):
    with pytest.raises(DataError, match=match) as e:
        load_lobster(*_pair(tmp_path, msg, book))
    assert e.value.field == field
    assert "file" in e.value.context
    if row is not None:
        assert e.value.context["row"] == row


def test_file_name_checks(tmp_path):
    with pytest.raises(DataError, match="not a LOBSTER file name") as e:
        parse_lobster_name(tmp_path / "foo.csv")
    assert e.value.field == "file name"
    other = B_NAME.replace("XYZ", "ABC")
    with pytest.raises(DataError, match="do not match"):
        load_lobster(*_pair(tmp_path, b_name=other))
    with pytest.raises(DataError, match="expected a message file"):
        m, b = _pair(tmp_path)
        load_lobster(b, m)
