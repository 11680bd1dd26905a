"""The account book in the store: models, accounts, holdings and tax lots.

Plain frozen values (:class:`ModelPortfolio`, :class:`Account`) in and out; the repository
(:class:`AccountBook`) validates every value before any write (a bad account leaves the store
as it was) and reads the whole book in four queries (no query per account).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, insert, select

from keel.accounts.tax import TaxLot, lots_by_symbol
from keel.errors import ValidationError
from keel.store.db import Store
from keel.store.tables import (
    AccountBatchRow,
    AccountRow,
    AccountSaleRow,
    HoldingRow,
    ModelWeightRow,
    TaxLotRow,
    exact_decimal,
)
from keel.store.values import json_object, text_field
from keel.types import ZERO

RESTRICTION_KINDS = ("no_buy", "no_hold")
_CHUNK = 5000


@dataclass(frozen=True)
class ModelPortfolio:
    """Target weights (fractions of the invested capital, summing to at most 1)."""

    model_id: str
    weights: Mapping[str, Decimal]

    def __post_init__(self) -> None:
        text_field(self.model_id, "model_id", 64)
        w = {text_field(s, "symbol", 32): exact_decimal(v, "weight")
             for s, v in self.weights.items()}
        for s, v in w.items():
            if v < 0:
                raise ValidationError("model weight must be >= 0", field="weight", symbol=s,
                                      value=v, model=self.model_id)
        total = sum(w.values(), ZERO)
        if total > 1 + Decimal("1e-9"):
            raise ValidationError("model weights sum above 1", field="weights",
                                  value=str(total), model=self.model_id)
        object.__setattr__(self, "weights", w)


@dataclass(frozen=True)
class Account:
    """A separately managed account.

    Attributes:
        account_id, name: identity.
        cash: currency (>= 0).
        model_id: the model it tracks.
        drift_band: absolute weight band around the model (fraction of NAV, > 0).
        holdings: symbol -> shares (> 0).
        restrictions: ``{"no_buy": [...], "no_hold": [...]}``: names it may not buy (it may
            keep or sell them) and names it may not hold (sold out).
        tax_aware: manage with tax lots, the tax cost term and the wash-sale guard.
        lots: tax lots (their shares per symbol equal ``holdings`` when given).
        loss_sales: earlier loss sales ``(symbol, sold, gain < 0)`` from the sales history
            (``account_sales``), so the wash-sale guard sees a buy within 30 days after one.
    """

    account_id: str
    name: str
    cash: Decimal
    model_id: str
    drift_band: Decimal
    holdings: Mapping[str, Decimal] = field(default_factory=dict)
    restrictions: Mapping[str, Sequence[str]] = field(default_factory=dict)
    tax_aware: bool = False
    lots: tuple[TaxLot, ...] = ()
    loss_sales: tuple[tuple[str, date, Decimal], ...] = ()

    def __post_init__(self) -> None:
        aid = text_field(self.account_id, "account_id", 64)
        text_field(self.name, "name", 128)
        text_field(self.model_id, "model_id", 64)
        cash = exact_decimal(self.cash, "cash")
        if cash < 0:
            raise ValidationError("cash must be >= 0", field="cash", value=cash, account=aid)
        band = exact_decimal(self.drift_band, "drift_band")
        if not 0 < band < 1:
            raise ValidationError("drift_band must be in (0, 1)", field="drift_band",
                                  value=band, account=aid)
        h = {}
        for s, q in self.holdings.items():
            d = exact_decimal(q, "qty")
            if d <= 0:
                raise ValidationError("holding qty must be > 0", field="qty", symbol=s,
                                      value=d, account=aid)
            h[text_field(s, "symbol", 32)] = d
        r: dict[str, tuple[str, ...]] = {}
        for kind, names in self.restrictions.items():
            if kind not in RESTRICTION_KINDS:
                raise ValidationError(f"restriction must be one of {RESTRICTION_KINDS}",
                                      field="restrictions", value=kind, account=aid)
            if isinstance(names, str):
                raise ValidationError("restriction names must be a list", field=kind,
                                      value=names, account=aid)
            r[kind] = tuple(sorted(text_field(n, kind, 32) for n in names))
        lots = tuple(self.lots)
        if lots:
            per = lots_by_symbol(lots)
            if per != h:
                bad = sorted(set(per) ^ set(h) or {s for s in h if per.get(s) != h[s]})
                raise ValidationError("tax lots do not add up to the holdings",
                                      field="lots", symbol=bad[0] if bad else None,
                                      account=aid)
            if len({x.lot_id for x in lots}) != len(lots):
                raise ValidationError("duplicate lot id", field="lot_id", account=aid)
        object.__setattr__(self, "cash", cash)
        object.__setattr__(self, "drift_band", band)
        object.__setattr__(self, "holdings", h)
        object.__setattr__(self, "restrictions", r)
        object.__setattr__(self, "lots", lots)
        object.__setattr__(self, "loss_sales", tuple(sorted(self.loss_sales)))

    @property
    def no_buy(self) -> frozenset[str]:
        return frozenset(self.restrictions.get("no_buy", ()))

    @property
    def no_hold(self) -> frozenset[str]:
        return frozenset(self.restrictions.get("no_hold", ()))


class AccountBook:
    """The ``models``, ``accounts``, ``holdings`` and ``tax_lots`` tables."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------ writes

    def put_models(self, models: Iterable[ModelPortfolio]) -> None:
        """Insert or replace models (each model's rows are replaced as a whole)."""
        models = list(models)
        with self.store.session() as s:
            for m in models:
                s.execute(delete(ModelWeightRow).where(ModelWeightRow.model_id == m.model_id))
            rows = [{"model_id": m.model_id, "symbol": sym, "weight": w}
                    for m in models for sym, w in sorted(m.weights.items())]
            for i in range(0, len(rows), _CHUNK):
                s.execute(insert(ModelWeightRow), rows[i:i + _CHUNK])

    def add_accounts(self, accounts: Iterable[Account]) -> int:
        """Insert new accounts with their holdings and lots (one transaction); returns how
        many. Every account is validated (its model must exist) before anything is written."""
        accounts = list(accounts)
        with self.store.session() as s:
            known = set(s.execute(select(ModelWeightRow.model_id).distinct()).scalars())
            for a in accounts:
                if a.model_id not in known:
                    raise ValidationError("unknown model", field="model_id",
                                          value=a.model_id, account=a.account_id)
            acc = [{"id": a.account_id, "name": a.name, "cash": a.cash,
                    "model_id": a.model_id, "drift_band": a.drift_band,
                    "restrictions": json_object(dict(a.restrictions), "restrictions"),
                    "tax_aware": a.tax_aware} for a in accounts]
            hold = [{"account_id": a.account_id, "symbol": sym, "qty": q}
                    for a in accounts for sym, q in sorted(a.holdings.items())]
            lots = [{"account_id": a.account_id, "lot_id": x.lot_id, "symbol": x.symbol,
                     "qty": x.qty, "cost_per_share": x.cost_per_share,
                     "acquired": x.acquired} for a in accounts for x in a.lots]
            for table, rows in ((AccountRow, acc), (HoldingRow, hold), (TaxLotRow, lots)):
                for i in range(0, len(rows), _CHUNK):
                    s.execute(insert(table), rows[i:i + _CHUNK])
        return len(accounts)

    def clear(self) -> None:
        """Delete every account, holding, lot, model, sale and executed batch."""
        with self.store.session() as s:
            for t in (AccountSaleRow, AccountBatchRow, TaxLotRow, HoldingRow, AccountRow,
                      ModelWeightRow):
                s.execute(delete(t))

    # ------------------------------------------------------------------ reads

    def count(self) -> int:
        with self.store.session() as s:
            return int(s.execute(select(func.count()).select_from(AccountRow)).scalar_one())

    def models(self) -> dict[str, ModelPortfolio]:
        with self.store.session() as s:
            rows = s.execute(select(ModelWeightRow.model_id, ModelWeightRow.symbol,
                                    ModelWeightRow.weight)).all()
        out: dict[str, dict[str, Decimal]] = {}
        for mid, sym, w in rows:
            out.setdefault(mid, {})[sym] = w
        return {m: ModelPortfolio(m, w) for m, w in sorted(out.items())}

    def accounts(self, loss_sales_since: date | None = None) -> list[Account]:
        """Every account, sorted by id, with its holdings, lots and its loss sales on or
        after ``loss_sales_since`` (None: every loss sale in the history)."""
        with self.store.session() as s:
            sq = select(AccountSaleRow.account_id, AccountSaleRow.symbol, AccountSaleRow.sold,
                        AccountSaleRow.gain)
            if loss_sales_since is not None:
                sq = sq.where(AccountSaleRow.sold >= loss_sales_since)
            sales = s.execute(sq).all()
            acc = s.execute(select(AccountRow.id, AccountRow.name, AccountRow.cash,
                                   AccountRow.model_id, AccountRow.drift_band,
                                   AccountRow.restrictions, AccountRow.tax_aware)).all()
            hold = s.execute(select(HoldingRow.account_id, HoldingRow.symbol,
                                    HoldingRow.qty)).all()
            lots = s.execute(select(TaxLotRow.account_id, TaxLotRow.lot_id, TaxLotRow.symbol,
                                    TaxLotRow.qty, TaxLotRow.cost_per_share,
                                    TaxLotRow.acquired)).all()
        h: dict[str, dict[str, Decimal]] = {}
        for aid, sym, q in hold:
            h.setdefault(aid, {})[sym] = q
        lt: dict[str, list[TaxLot]] = {}
        for aid, lid, sym, q, c, d in lots:
            lt.setdefault(aid, []).append(TaxLot(lid, sym, q, c, d))
        losses: dict[str, list[tuple[str, date, Decimal]]] = {}
        for aid, sym, sold, gain in sales:
            if gain < 0:
                losses.setdefault(aid, []).append((sym, sold, gain))
        out = []
        for aid, name, cash, mid, band, restr, tax in sorted(acc, key=lambda r: r[0]):
            mine = sorted(lt.get(aid, []), key=lambda x: x.lot_id)
            out.append(Account(aid, name, cash, mid, band, h.get(aid, {}),
                               _restrictions(restr), bool(tax), tuple(mine),
                               tuple(losses.get(aid, ()))))
        return out


def _restrictions(raw: Any) -> dict[str, list[str]]:
    if not isinstance(raw, Mapping):
        raise ValidationError("restrictions must be an object", field="restrictions",
                              value=raw)
    return {str(k): [str(x) for x in v] for k, v in raw.items()}
