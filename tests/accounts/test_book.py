"""The account book in the store (SQLite and PostgreSQL): exact round trip, validation first."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from keel.accounts.book import Account, AccountBook, ModelPortfolio
from keel.accounts.tax import TaxLot
from keel.errors import ValidationError


def _acc(i: int, **kw) -> Account:
    base = dict(account_id=f"A{i}", name=f"acc {i}", cash=Decimal("1234.56789012"),
                model_id="M", drift_band=Decimal("0.03"),
                holdings={"X": Decimal(10), "Y": Decimal(5)}, restrictions={"no_buy": ["Z"]},
                tax_aware=True,
                lots=(TaxLot("x1", "X", Decimal(4), Decimal("10.5"), date(2024, 1, 2)),
                      TaxLot("x2", "X", Decimal(6), Decimal("11.25"), date(2025, 3, 4)),
                      TaxLot("y1", "Y", Decimal(5), Decimal("99.999999"), date(2026, 11, 30))))
    base.update(kw)
    return Account(**base)


def test_round_trip_is_exact(store):
    book = AccountBook(store)
    book.put_models([ModelPortfolio("M", {"X": Decimal("0.6"), "Y": Decimal("0.4")})])
    book.add_accounts([_acc(1), _acc(2, tax_aware=False, lots=(), restrictions={})])
    assert book.count() == 2
    got = book.accounts()
    assert got[0] == _acc(1)
    assert got[1] == _acc(2, tax_aware=False, lots=(), restrictions={})
    assert book.models()["M"].weights == {"X": Decimal("0.6"), "Y": Decimal("0.4")}
    book.put_models([ModelPortfolio("M", {"X": Decimal(1)})])
    assert book.models()["M"].weights == {"X": Decimal(1)}
    book.clear()
    assert book.count() == 0


def test_a_bad_account_writes_nothing(store):
    book = AccountBook(store)
    book.put_models([ModelPortfolio("M", {"X": Decimal(1)})])
    with pytest.raises(ValidationError) as e:
        book.add_accounts([_acc(1), _acc(2, model_id="nope")])
    assert e.value.field == "model_id"
    assert book.count() == 0


def test_account_validation():
    with pytest.raises(ValidationError, match="do not add up"):
        _acc(1, holdings={"X": Decimal(11), "Y": Decimal(5)})
    with pytest.raises(ValidationError) as e:
        _acc(1, cash=Decimal(-1))
    assert e.value.field == "cash"
    with pytest.raises(ValidationError):
        _acc(1, drift_band=Decimal(0))
    with pytest.raises(ValidationError):
        _acc(1, restrictions={"no_sell": ["X"]})
    with pytest.raises(ValidationError):
        _acc(1, cash=Decimal("0.0000000000001"))  # NUMERIC(38, 12) would round it
    with pytest.raises(ValidationError):
        ModelPortfolio("M", {"X": Decimal("0.7"), "Y": Decimal("0.4")})
