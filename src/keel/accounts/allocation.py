"""Block orders per symbol and the fair allocation of their fills back to accounts.

**Gross blocks.** Accounts' orders are aggregated per (symbol, side): one BUY block and one
SELL block per symbol, never netted. Netting would cross one client's sale against another's
purchase inside the desk (an agency cross needing each client's consent), would give an
account a fill price it did not trade at, and would hide a sale (and its realised gain or
wash sale) from the account that made it. Gross blocks keep every account's trade real.

**Pro rata, largest remainder.** A block of ``Q`` requested shares filled ``F`` (integer,
``0 <= F <= Q``) gives account ``a`` (requested ``q_a``) ``floor(F q_a / Q)`` shares, then one
more share to each of the ``F - sum floor`` accounts with the largest remainders
``F q_a mod Q`` (exact integer arithmetic). Ties break by the larger requested quantity, then
by the account id (ascending): deterministic, independent of input order. Every account gets
at most what it asked for, and the allocations sum to ``F`` exactly. Every account of a block
gets the block's average fill price.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from keel.errors import ValidationError
from keel.types import Side


@dataclass(frozen=True)
class AccountOrder:
    """One account's order: integer shares of ``symbol`` on ``side``."""

    account_id: str
    symbol: str
    side: Side
    qty: int


@dataclass(frozen=True)
class BlockOrder:
    """All accounts' orders of one (symbol, side); ``legs`` maps account id -> shares."""

    symbol: str
    side: Side
    legs: tuple[tuple[str, int], ...]

    @property
    def qty(self) -> int:
        return sum(q for _, q in self.legs)

    @property
    def key(self) -> str:
        return f"{self.symbol}:{self.side.value}"


def _whole(value: object, field: str, account: str | None = None) -> int:
    if isinstance(value, bool):
        raise ValidationError("expected whole shares", field=field, value=value,
                              account=account)
    if isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise ValidationError("expected whole shares", field=field, value=value,
                                  account=account)
        return int(value)
    if isinstance(value, int):
        return value
    raise ValidationError("expected whole shares", field=field, value=value, account=account)


def build_blocks(orders: Iterable[AccountOrder]) -> list[BlockOrder]:
    """Gross blocks, sorted by (symbol, side); an account appearing twice in one block has its
    shares added."""
    acc: dict[tuple[str, Side], dict[str, int]] = {}
    for o in orders:
        q = _whole(o.qty, "qty", o.account_id)
        if q <= 0:
            raise ValidationError("order qty must be > 0", field="qty", value=q,
                                  account=o.account_id, symbol=o.symbol)
        legs = acc.setdefault((o.symbol, Side(o.side)), {})
        legs[o.account_id] = legs.get(o.account_id, 0) + q
    return [BlockOrder(sym, side, tuple(sorted(legs.items())))
            for (sym, side), legs in sorted(acc.items(), key=lambda kv: (kv[0][0],
                                                                        kv[0][1].value))]


def allocate(requested: Mapping[str, int], filled: int) -> dict[str, int]:
    """Split ``filled`` shares over accounts pro rata to ``requested`` (largest remainder).

    Raises:
        ValidationError: a non-integer or negative quantity, or ``filled`` above the total
            requested.
    """
    req = {a: _whole(q, "requested", a) for a, q in requested.items()}
    f = _whole(filled, "filled")
    if any(q < 0 for q in req.values()):
        bad = next(a for a, q in req.items() if q < 0)
        raise ValidationError("requested qty must be >= 0", field="requested",
                              value=req[bad], account=bad)
    total = sum(req.values())
    if f < 0 or f > total:
        raise ValidationError("fill must be between 0 and the block qty", field="filled",
                              value=f, block_qty=total)
    if total == 0:
        return dict.fromkeys(req, 0)
    out = {a: f * q // total for a, q in req.items()}
    left = f - sum(out.values())
    order = sorted(req, key=lambda a: (-(f * req[a] % total), -req[a], a))
    for a in order[:left]:
        out[a] += 1
    return out


@dataclass(frozen=True)
class Allocation:
    """A block's fill split over its accounts, at the block's average price."""

    block: BlockOrder
    filled: int
    avg_price: Decimal
    shares: dict[str, int]


def allocate_block(block: BlockOrder, filled: int, avg_price: Decimal) -> Allocation:
    """:func:`allocate` for one block."""
    return Allocation(block, filled, avg_price, allocate(dict(block.legs), filled))
