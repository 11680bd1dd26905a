"""Synthetic models and accounts over a market's names (``keel accounts seed``).

Deterministic from the seed: models of 40-80 names with Dirichlet weights; accounts of
$50k-$5M NAV whose holdings drift from their model (lognormal noise), some legacy names
outside the model, some idle cash; a share of accounts with restrictions (names they may
not hold or buy) and a share managed tax-aware with 1-3 lots per holding bought over the
last four years (some within the last 30 days, gains and losses both).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from keel.accounts.book import Account, ModelPortfolio
from keel.accounts.tax import TaxLot
from keel.errors import ValidationError

_W = Decimal("0.000001")
BANDS = (Decimal("0.02"), Decimal("0.03"), Decimal("0.05"))


def synthetic_models(symbols: list[str], rng: np.random.Generator, n_models: int = 5
                     ) -> list[ModelPortfolio]:
    out = []
    for j in range(n_models):
        k = int(rng.integers(40, 81)) if len(symbols) >= 80 else max(1, len(symbols) // 2)
        names = sorted(rng.choice(symbols, size=k, replace=False).tolist())
        raw = rng.dirichlet(np.full(k, 2.0))
        w = [Decimal(repr(float(x))).quantize(_W) for x in raw]
        w[-1] = Decimal(1) - sum(w[:-1], Decimal(0))
        if w[-1] < 0:  # pragma: no cover - quantize drift is far below any weight
            raise ValidationError("synthetic model weights do not sum to 1", field="weights")
        out.append(ModelPortfolio(f"M{j:02d}", dict(zip(names, w, strict=True))))
    return out


def synthetic_accounts(n: int, models: list[ModelPortfolio], prices: dict[str, Decimal],
                       today: date, rng: np.random.Generator, *, tax_share: float = 0.25,
                       restricted_share: float = 0.10) -> list[Account]:
    """``n`` accounts over ``models`` priced at ``prices`` (see the module docstring)."""
    if n < 0:
        raise ValidationError("n must be >= 0", field="n", value=n)
    symbols = sorted(prices)
    out = []
    for i in range(n):
        m = models[int(rng.integers(len(models)))]
        nav = float(np.exp(rng.uniform(np.log(5e4), np.log(5e6))))
        names = list(m.weights)
        w = np.array([float(m.weights[s]) for s in names])
        w = w * np.exp(rng.normal(0.0, 0.4, len(w)))
        legacy: list[str] = []
        if rng.random() < 0.2:
            legacy = [s for s in rng.choice(symbols, size=int(rng.integers(1, 4)),
                                            replace=False).tolist() if s not in m.weights]
        invested = 0.99 if rng.random() < 0.85 else float(rng.uniform(0.6, 0.9))
        w = w / w.sum() * invested
        holdings: dict[str, Decimal] = {}
        spent = Decimal(0)
        for s, x in [*zip(names, w, strict=True), *((s, 0.01) for s in legacy)]:
            q = int(x * nav / float(prices[s]))
            if q > 0:
                holdings[s] = Decimal(q)
                spent += q * prices[s]
        cash = max(Decimal(repr(round(nav, 2))) - spent, Decimal(0)).quantize(Decimal("0.01"))
        restr: dict[str, list[str]] = {}
        if rng.random() < restricted_share:
            pool = names if rng.random() < 0.5 else symbols
            kind = "no_hold" if rng.random() < 0.7 else "no_buy"
            restr[kind] = sorted(set(rng.choice(pool, size=int(rng.integers(1, 4)),
                                                replace=False).tolist()))
        tax = bool(rng.random() < tax_share)
        lots: list[TaxLot] = []
        if tax:
            for s, held in holdings.items():
                k = min(int(rng.integers(1, 4)), int(held))
                cuts = sorted(rng.choice(np.arange(1, int(held)), size=k - 1, replace=False)
                              .tolist()) if k > 1 else []
                sizes = np.diff([0, *cuts, int(held)])
                for j, size in enumerate(sizes):
                    days = int(rng.integers(1, 30)) if rng.random() < 0.05 else \
                        int(rng.integers(30, 4 * 365))
                    cost = Decimal(repr(round(float(prices[s]) * float(
                        np.exp(rng.normal(-0.1, 0.3))), 2)))
                    lots.append(TaxLot(f"{s}-{j}", s, Decimal(int(size)), cost,
                                       today - timedelta(days=days)))
        out.append(Account(f"A{i:06d}", f"Account {i}", cash, m.model_id,
                           BANDS[int(rng.integers(len(BANDS)))], holdings, restr, tax,
                           tuple(lots)))
    return out
