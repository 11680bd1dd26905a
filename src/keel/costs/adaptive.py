"""`AdaptiveCost`: a cost model whose per-component multipliers learn from realised fills.

The wrapped model's parts (each model of a :class:`CompositeCost`, or the single model) get a
multiplier ``k_i``; the prediction is ``sum_i k_i cost_i``. Each realised fill updates ``k`` by
recursive least squares with forgetting, on a scale-free regression (features and target
divided by the unit-multiplier prediction, so a $1M trade and a $1k trade weigh alike).
Guards against a few bad fills: each observed ratio realised / predicted is clipped to
``ratio_clip`` before it is used, and the multipliers are kept inside ``bounds``. Multipliers
stay > 0, so the convex expression ``sum_i k_i expr_i`` stays convex.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keel.costs._validate import check_scalar
from keel.costs.base import (
    CompositeCost,
    CostModel,
    SeparableForm,
    TradeContext,
    to_notional_trades,
)
from keel.errors import DataError, ValidationError
from keel.types import Side

if TYPE_CHECKING:
    import cvxpy as cp

    from keel.types import Fill


class AdaptiveCost(CostModel):
    """Wrap ``base`` and recalibrate its components from realised costs.

    Args:
        base: the model to calibrate (a composite contributes one multiplier per model).
        forgetting: RLS forgetting factor in (0, 1]; 0.98 remembers about 50 observations.
        bounds: (low, high) limits of every multiplier, low > 0.
        ratio_clip: (low, high) limits of one observation's realised / predicted ratio.
        prior_strength: weight of the prior multipliers (1.0), in observations.

    Learned state: ``multipliers_`` (C,), ``precision_inv_`` (C, C), ``n_obs_``.
    """

    name = "adaptive"

    def __init__(self, base: CostModel, *, forgetting: float = 0.98,
                 bounds: tuple[float, float] = (0.2, 5.0),
                 ratio_clip: tuple[float, float] = (0.0, 10.0),
                 prior_strength: float = 5.0) -> None:
        self.base = base
        self.parts: tuple[CostModel, ...] = (base.models if isinstance(base, CompositeCost)
                                             else (base,))
        self.forgetting = check_scalar(forgetting, "forgetting", positive=True, upper=1.0)
        lo, hi = (check_scalar(b, "bounds") for b in bounds)
        if not 0 < lo <= 1.0 <= hi:
            raise ValidationError("bounds must satisfy 0 < low <= 1 <= high", field="bounds",
                                  value=bounds)
        self.bounds = (lo, hi)
        rlo, rhi = (check_scalar(b, "ratio_clip") for b in ratio_clip)
        if rlo >= rhi:
            raise ValidationError("ratio_clip must satisfy low < high", field="ratio_clip",
                                  value=ratio_clip)
        self.ratio_clip = (rlo, rhi)
        self.prior_strength = check_scalar(prior_strength, "prior_strength", positive=True)
        c = len(self.parts)
        self.multipliers_ = np.ones(c)
        self.precision_inv_ = np.eye(c) / self.prior_strength
        self.n_obs_ = 0

    # ------------------------------------------------------------------ cost views

    def _features(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        """(N, C) currency cost of each part at unit multipliers."""
        return np.stack([m.cost_array(trades_notional, ctx) for m in self.parts], axis=1)

    def cost_array(self, trades_notional: np.ndarray, ctx: TradeContext) -> np.ndarray:
        return self._features(trades_notional, ctx) @ self.multipliers_

    def components(self, trades_notional: np.ndarray, ctx: TradeContext
                   ) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for k, m in zip(self.multipliers_, self.parts, strict=True):
            v = k * m.cost_array(trades_notional, ctx)
            out[m.name] = out[m.name] + v if m.name in out else v
        return out

    def separable_form(self, ctx: TradeContext) -> SeparableForm | None:
        """Each part's declared form times its multiplier (None if a part declares none)."""
        total: SeparableForm | None = None
        for k, m in zip(self.multipliers_, self.parts, strict=True):
            f = m.separable_form(ctx)
            if f is None:
                return None
            total = f.scaled(float(k)) if total is None else total + f.scaled(float(k))
            if total is None:
                return None
        return total

    def expr(self, trade_weights: cp.Expression, ctx: TradeContext) -> cp.Expression:
        terms = [float(k) * m.expr(trade_weights, ctx)
                 for k, m in zip(self.multipliers_, self.parts, strict=True)]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total

    # ------------------------------------------------------------------ learning

    def observe(self, trades: pd.Series | np.ndarray, ctx: TradeContext,
                realised_cost: pd.Series | np.ndarray) -> AdaptiveCost:
        """Update the multipliers from realised per-name costs (currency) of ``trades``.

        Names with no trade or a zero prediction carry no information and are skipped.

        Raises:
            ValidationError: shapes differ or a realised cost is not finite (names it).
        """
        notional = to_notional_trades(trades, ctx)
        if isinstance(realised_cost, pd.Series):
            realised = realised_cost.reindex(ctx.symbols).to_numpy(dtype=np.float64)
        else:
            realised = np.asarray(realised_cost, dtype=np.float64)
        if realised.shape != notional.shape:
            raise ValidationError("realised_cost must align with trades",
                                  field="realised_cost", value=realised.shape)
        feats = self._features(notional, ctx)
        pred = feats.sum(axis=1)
        use = (np.abs(notional) > 0) & (pred > 0)
        bad = use & ~np.isfinite(realised)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValidationError("realised cost must be finite", field="realised_cost",
                                  symbol=str(ctx.symbols[i]), value=float(realised[i]))
        lo, hi = self.bounds
        for f_row, p, y in zip(feats[use], pred[use], realised[use], strict=True):
            f = f_row / p
            ratio = float(np.clip(y / p, *self.ratio_clip))
            pf = self.precision_inv_ @ f
            gain = pf / (self.forgetting + f @ pf)
            self.multipliers_ = np.clip(self.multipliers_ + gain * (ratio - f @ self.multipliers_),
                                        lo, hi)
            self.precision_inv_ = (self.precision_inv_ - np.outer(gain, pf)) / self.forgetting
            self.n_obs_ += 1
        return self

    def observe_fills(self, fills: Sequence[Fill], arrival_prices: pd.Series,
                      ctx: TradeContext) -> AdaptiveCost:
        """Update from fills, measuring cost against each symbol's arrival price.

        Realised cost of a symbol = ``sum side * (fill price - arrival) * qty + commission``
        (currency); its trade is the signed filled notional at the arrival price.

        Raises:
            DataError: a fill's symbol has no arrival price.
        """
        cost: dict[str, float] = {}
        traded: dict[str, float] = {}
        for f in fills:
            if f.symbol not in arrival_prices.index:
                raise DataError("no arrival price for a filled symbol", field="arrival_prices",
                                symbol=f.symbol)
            arr = float(arrival_prices[f.symbol])
            sign = float(Side(f.side).sign)
            q = float(f.qty)
            cost[f.symbol] = cost.get(f.symbol, 0.0) + (sign * (float(f.price) - arr) * q
                                                        + float(f.commission))
            traded[f.symbol] = traded.get(f.symbol, 0.0) + sign * q * arr
        return self.observe(pd.Series(traded, dtype=np.float64), ctx,
                            pd.Series(cost, dtype=np.float64).reindex(ctx.symbols))

    # ------------------------------------------------------------------ persistence

    def state(self) -> dict[str, Any]:
        """JSON-friendly learned state and settings."""
        return {"parts": [repr(m) for m in self.parts],
                "multipliers": self.multipliers_.tolist(),
                "precision_inv": self.precision_inv_.tolist(), "n_obs": self.n_obs_,
                "forgetting": self.forgetting, "bounds": list(self.bounds),
                "ratio_clip": list(self.ratio_clip), "prior_strength": self.prior_strength}

    def save(self, path: str | Path) -> None:
        """Write the learned state as JSON (atomic replace)."""
        p = Path(path)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(json.dumps(self.state(), indent=2))
        tmp.replace(p)

    @classmethod
    def load(cls, path: str | Path, base: CostModel) -> AdaptiveCost:
        """Restore a saved state onto ``base`` (which must have the same parts)."""
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read adaptive cost state: {exc}", file=str(p)) from None
        model = cls(base, forgetting=d["forgetting"], bounds=tuple(d["bounds"]),
                    ratio_clip=tuple(d["ratio_clip"]), prior_strength=d["prior_strength"])
        mult = np.asarray(d["multipliers"], dtype=np.float64)
        if mult.shape != model.multipliers_.shape:
            raise DataError("saved state has a different number of parts than base",
                            field="multipliers", value=mult.shape, file=str(p))
        model.multipliers_ = np.clip(mult, *model.bounds)
        model.precision_inv_ = np.asarray(d["precision_inv"], dtype=np.float64)
        model.n_obs_ = int(d["n_obs"])
        return model

    def __repr__(self) -> str:
        ks = ", ".join(f"{k:.3g}" for k in self.multipliers_)
        return f"AdaptiveCost({self.base!r}, multipliers=[{ks}], n_obs={self.n_obs_})"
