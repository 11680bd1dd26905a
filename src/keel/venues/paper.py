"""`PaperBroker`: a simulated venue filling orders against recorded market data.

Everything is injected: the clock (the broker only ever acts up to ``clock.now()``), the fill
model (minute bars or order-book snapshots, :mod:`keel.venues.fills`), an optional cost model
adding impact on top of the crossed spread, and a latency model (orders and cancels take
effect ``latency`` seconds after they are sent). Given the same inputs it produces the same
events: execution ids and latencies are derived from the order id and the seed.

With ``journal`` set, every request (submit, cancel, replace) is appended to a JSON-lines file
(fsync'd) before it is accepted. A new broker on the same journal replays the requests and so
rebuilds the venue's state after a crash of the process; the events it emits again carry the
same execution ids, so an order manager booking them twice is impossible.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from keel.clock import Clock
from keel.costs.base import CostModel, TradeContext
from keel.errors import OrderRejected, ValidationError
from keel.types import (
    ZERO,
    EventKind,
    Fill,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    to_decimal,
    to_price,
)
from keel.venues.base import Account, OpenOrder
from keel.venues.fills import FillModel

_PX_TICK = Decimal("0.000001")  # fill prices: modelled floats rounded to 1e-6


class LatencyModel(Protocol):
    def delay(self, key: str) -> float:
        """Seconds between sending ``key`` and the venue acting on it."""
        ...


@dataclass(frozen=True)
class ConstantLatency:
    seconds: float = 0.0

    def delay(self, key: str) -> float:
        return self.seconds


@dataclass(frozen=True)
class RandomLatency:
    """``mean`` +/- uniform ``jitter`` seconds, a fixed draw per request key and seed."""

    mean: float = 0.05
    jitter: float = 0.02
    seed: int = 0

    def delay(self, key: str) -> float:
        rng = np.random.default_rng([self.seed, zlib.crc32(key.encode())])
        return max(0.0, self.mean + float(rng.uniform(-self.jitter, self.jitter)))


@dataclass
class _Working:
    order: Order
    arrival_ns: int
    seq: int
    venue_order_id: str
    cum_qty: Decimal = ZERO
    notional: Decimal = ZERO
    acked: bool = False
    status: OrderStatus = OrderStatus.PENDING
    last_i: int = -1
    cancel_ns: int | None = None
    n_fills: int = 0
    replaced_by: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _ns(ts: datetime) -> int:
    return int(pd.Timestamp(ts).value)


def _dt(ns: int) -> datetime:
    """UTC datetime of ``ns`` floored to the microsecond (datetime's resolution)."""
    return pd.Timestamp(ns - ns % 1000, tz=UTC).to_pydatetime()


class PaperBroker:
    """A paper venue implementing :class:`~keel.venues.base.Broker`.

    Args:
        clock: time source; events are produced up to ``clock.now()`` when polled.
        fill_model: market data and the rule that turns it into fills.
        cost_model: optional extra cost (impact) on top of the crossed spread, priced with a
            one-symbol :class:`~keel.costs.base.TradeContext` (``adv_shares`` and
            ``daily_volatility`` give its ADV and volatility) on the account's recent flow
            (see ``_impact_per_share``); the fill price moves against the order by it.
        impact_decay_minutes: e-folding time of that flow (None: it never decays).
        latency: latency model (default: none).
        commission_per_share: fee charged on each fill, currency/share.
        cash: starting cash, currency.
        journal: path of the request journal (crash recovery), or None.
    """

    def __init__(self, clock: Clock, fill_model: FillModel, *, cost_model: CostModel | None = None,
                 latency: LatencyModel | None = None, commission_per_share: Decimal | float = 0,
                 cash: Decimal | float = 1_000_000, adv_shares: dict[str, float] | None = None,
                 daily_volatility: dict[str, float] | None = None,
                 impact_decay_minutes: float | None = 30.0,
                 journal: Path | str | None = None, name: str = "paper") -> None:
        self.name = name
        self.clock, self.fill_model, self.cost_model = clock, fill_model, cost_model
        self.latency = latency or ConstantLatency(0.0)
        self.commission_per_share = to_decimal(commission_per_share, "commission_per_share")
        self.cash0 = to_decimal(cash, "cash")
        self.adv_shares = adv_shares or {}
        self.daily_volatility = daily_volatility or {}
        self.impact_decay_minutes = impact_decay_minutes
        self._flow: dict[str, tuple[float, int]] = {}
        self._orders: dict[str, _Working] = {}
        self._events: list[tuple[int, int, OrderEvent]] = []
        self._fills: list[Fill] = []
        self._seq = 0
        self._done_ns = -(2**62)
        self._journal_path = Path(journal) if journal is not None else None
        self._journal_fh = None
        if self._journal_path is not None:
            self._replay_journal()
            self._journal_fh = self._journal_path.open("a", encoding="utf-8")

    # ------------------------------------------------------------------ journal

    def _replay_journal(self) -> None:
        assert self._journal_path is not None
        if not self._journal_path.exists():
            return
        for line in self._journal_path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break  # a torn last line from a crash: that request was never accepted
            ts = pd.Timestamp(rec["ts"]).to_pydatetime()
            if rec["op"] == "submit":
                self._accept(_order_from_json(rec["order"]), ts)
            elif rec["op"] == "cancel":
                self._request_cancel(rec["id"], ts)

    def _log(self, op: str, ts: datetime, **payload: object) -> None:
        if self._journal_fh is None:
            return
        self._journal_fh.write(json.dumps({"op": op, "ts": ts.isoformat(), **payload}) + "\n")
        self._journal_fh.flush()
        os.fsync(self._journal_fh.fileno())

    def close(self) -> None:
        if self._journal_fh is not None:
            self._journal_fh.close()
            self._journal_fh = None

    # ------------------------------------------------------------------ Broker API

    def submit(self, order: Order) -> None:
        """Accept ``order``; it works from ``now + latency``. Refuses a known id
        (``DUPLICATE_ID``) and a symbol without market data (``NO_MARKET_DATA``)."""
        if order.client_order_id in self._orders:
            raise OrderRejected("duplicate client order id", reason_code="DUPLICATE_ID",
                                field="client_order_id", value=order.client_order_id)
        if order.symbol not in self.fill_model.symbols():
            raise OrderRejected("no market data for symbol", reason_code="NO_MARKET_DATA",
                                field="symbol", symbol=order.symbol)
        if order.order_type not in (OrderType.MARKET, OrderType.LIMIT):
            raise OrderRejected("paper broker takes MARKET and LIMIT orders",
                                reason_code="UNSUPPORTED", field="order_type",
                                value=order.order_type.value, symbol=order.symbol)
        now = self.clock.now()
        self._log("submit", now, order=_order_to_json(order))
        self._accept(order, now)

    def _accept(self, order: Order, ts: datetime) -> None:
        self._seq += 1
        arrival = _ns(ts) + round(self.latency.delay(order.client_order_id) * 1e6) * 1000
        self._orders[order.client_order_id] = _Working(order, arrival, self._seq,
                                                       f"P{self._seq}")

    def cancel(self, client_order_id: str) -> None:
        if client_order_id not in self._orders:
            raise OrderRejected("unknown order", reason_code="UNKNOWN_ORDER",
                                field="client_order_id", value=client_order_id)
        now = self.clock.now()
        self._log("cancel", now, id=client_order_id)
        self._request_cancel(client_order_id, now)

    def _request_cancel(self, coid: str, ts: datetime) -> None:
        w = self._orders[coid]
        eff = _ns(ts) + round(self.latency.delay(coid + "#cancel") * 1e6) * 1000
        w.cancel_ns = eff if w.cancel_ns is None else min(w.cancel_ns, eff)

    def replace(self, client_order_id: str, new_order: Order) -> None:
        """Cancel ``client_order_id`` and submit ``new_order`` (a new id)."""
        self.cancel(client_order_id)
        self.submit(new_order)

    def open_orders(self) -> list[OpenOrder]:
        self._advance()
        return [OpenOrder(c, w.order.symbol, w.status, w.order.qty, w.cum_qty, w.venue_order_id)
                for c, w in self._orders.items() if w.status.is_open]

    def positions(self) -> dict[str, Decimal]:
        self._advance()
        out: dict[str, Decimal] = {}
        for f in self._fills:
            out[f.symbol] = out.get(f.symbol, ZERO) + f.signed_qty
        return out

    def account(self) -> Account:
        self._advance()
        cash = self.cash0 + sum((f.cash_delta for f in self._fills), ZERO)
        now = _ns(self.clock.now())
        value = ZERO
        for sym, qty in self.positions().items():
            t = self.fill_model.event_times(sym)
            i = int(np.searchsorted(t, now, side="right")) - 1
            if i >= 0 and qty != 0:
                value += qty * to_price(self.fill_model.quote(sym, i)[0], symbol=sym)
        return Account(cash=cash, equity=cash + value, buying_power=cash)

    def poll_events(self) -> list[OrderEvent]:
        self._advance()
        out = [e for _, _, e in sorted(self._events, key=lambda x: (x[0], x[1]))]
        self._events.clear()
        return out

    @property
    def fills(self) -> list[Fill]:
        """Every fill so far, in venue order."""
        return list(self._fills)

    # ------------------------------------------------------------------ matching

    def _emit(self, ns: int, ev: OrderEvent) -> None:
        self._seq += 1
        self._events.append((ns, self._seq, ev))

    def _advance(self) -> None:
        now = _ns(self.clock.now())
        live = [w for w in sorted(self._orders.values(), key=lambda w: w.seq)
                if w.status.is_open and w.arrival_ns <= now]
        queue: list[tuple[int, int, int, _Working]] = []
        for w in live:
            coid = w.order.client_order_id
            if not w.acked:
                w.acked, w.status = True, OrderStatus.ACKNOWLEDGED
                self._emit(w.arrival_ns, OrderEvent(EventKind.ACK, coid, _dt(w.arrival_ns),
                                                    leaves_qty=w.order.qty,
                                                    venue_order_id=w.venue_order_id))
            t = self.fill_model.event_times(w.order.symbol)
            stop = now if w.cancel_ns is None else min(now, w.cancel_ns)
            lo = max(w.last_i + 1, int(np.searchsorted(t, w.arrival_ns, side="right")))
            hi = int(np.searchsorted(t, stop, side="right"))
            if w.order.tif in (TimeInForce.IOC, TimeInForce.FOK):
                hi = min(hi, int(np.searchsorted(t, w.arrival_ns, side="right")) + 1)
            queue.extend((int(t[i]), w.seq, i, w) for i in range(lo, hi))
        # across orders in venue time, so our own flow's impact evolves causally
        for t_ns, _, i, w in sorted(queue, key=lambda x: (x[0], x[1], x[2])):
            w.last_i = max(w.last_i, i)
            if w.status.is_open:
                self._fill_at(w, i, t_ns)
        for w in live:
            coid = w.order.client_order_id
            t = self.fill_model.event_times(w.order.symbol)
            if w.status.is_open and w.order.tif in (TimeInForce.IOC, TimeInForce.FOK):
                first = int(np.searchsorted(t, w.arrival_ns, side="right"))
                if first < len(t) and t[first] <= now:
                    w.cancel_ns = int(t[first]) if w.cancel_ns is None else w.cancel_ns
            if w.status.is_open and w.cancel_ns is not None and w.cancel_ns <= now:
                w.status = OrderStatus.CANCELLED
                at = max(w.cancel_ns, w.arrival_ns)
                self._emit(at, OrderEvent(EventKind.CANCELLED, coid, _dt(at), cum_qty=w.cum_qty,
                                          leaves_qty=ZERO, reason="cancelled",
                                          venue_order_id=w.venue_order_id))
            elif (not w.status.is_open and w.cancel_ns is not None and w.cancel_ns <= now
                  and "cancel_answered" not in w.extra):
                w.extra["cancel_answered"] = "1"
                self._emit(w.cancel_ns, OrderEvent(EventKind.CANCEL_REJECTED, coid,
                                                   _dt(w.cancel_ns), cum_qty=w.cum_qty,
                                                   reason="too late to cancel"))

    def _fill_at(self, w: _Working, i: int, t_ns: int) -> None:
        o = w.order
        got = self.fill_model.fill(o.symbol, o.side, o.qty - w.cum_qty, o.limit_price, i)
        if got is None:
            return
        qty, px = got
        px += o.side.sign * self._impact_per_share(o, qty, i, t_ns)
        w.n_fills += 1
        w.cum_qty += qty
        fill = Fill(exec_id=f"{self.name}-{o.client_order_id}-{w.n_fills}",
                    client_order_id=o.client_order_id, symbol=o.symbol, side=o.side,
                    qty=qty, price=to_price(px, _PX_TICK, symbol=o.symbol), timestamp=_dt(t_ns),
                    commission=qty * self.commission_per_share, venue=self.name)
        self._fills.append(fill)
        w.status = OrderStatus.FILLED if w.cum_qty == o.qty else OrderStatus.PARTIALLY_FILLED
        self._emit(t_ns, OrderEvent(EventKind.FILL, o.client_order_id, fill.timestamp,
                                    fill=fill, cum_qty=w.cum_qty, leaves_qty=o.qty - w.cum_qty,
                                    venue_order_id=w.venue_order_id))

    def _impact_per_share(self, o: Order, qty: Decimal, i: int, t_ns: int) -> float:
        """Marginal cost (currency/share) of this fill on top of our decaying recent flow.

        The cost model prices the account's recent signed flow in the symbol, ``x``, as one
        trade; a fill of ``q`` pays ``C(|x + q|) - C(|x|)``, and ``x`` decays with
        ``impact_decay_minutes``. Fast trading therefore pays more than the same shares
        spread over the day.
        """
        if self.cost_model is None:
            return 0.0
        mid, rel_spread = self.fill_model.quote(o.symbol, i)
        adv = self.adv_shares.get(o.symbol)
        if adv is None:
            raise ValidationError("cost model needs the symbol's ADV", field="adv_shares",
                                  symbol=o.symbol)
        ctx = TradeContext(symbols=pd.Index([o.symbol]), prices=np.array([mid]),
                           adv_notional=np.array([adv * mid]),
                           volatility=np.array([self.daily_volatility.get(o.symbol, 0.02)]),
                           spreads=np.array([rel_spread]), horizon_days=1.0)
        x, last = self._flow.get(o.symbol, (0.0, t_ns))
        if self.impact_decay_minutes is not None:
            x *= float(np.exp(-(t_ns - last) / 6e10 / self.impact_decay_minutes))
        q = float(qty) * o.side.sign
        before = float(self.cost_model.cost_array(np.array([abs(x) * mid]), ctx)[0])
        after = float(self.cost_model.cost_array(np.array([abs(x + q) * mid]), ctx)[0])
        self._flow[o.symbol] = (x + q, t_ns)
        return (after - before) / float(qty)


def _order_to_json(o: Order) -> dict[str, str | None]:
    return {"id": o.client_order_id, "symbol": o.symbol, "side": o.side.value,
            "qty": str(o.qty), "type": o.order_type.value, "tif": o.tif.value,
            "limit": None if o.limit_price is None else str(o.limit_price),
            "created_at": o.created_at.isoformat(), "strategy": o.strategy}


def _order_from_json(d: dict[str, str | None]) -> Order:
    return Order(client_order_id=str(d["id"]), symbol=str(d["symbol"]), side=Side(str(d["side"])),
                 qty=Decimal(str(d["qty"])), order_type=OrderType(str(d["type"])),
                 tif=TimeInForce(str(d["tif"])),
                 limit_price=None if d["limit"] is None else Decimal(d["limit"]),
                 created_at=datetime.fromisoformat(str(d["created_at"])),
                 strategy=d["strategy"])

