"""`AdaptiveCost`: a cost model whose per-component multipliers learn from realised fills.

Model. The wrapped model's parts (each model of a :class:`CompositeCost`, or the single model)
have unit-multiplier costs ``f_i = (f_i1, ..., f_iC)`` (currency) for order ``i``; the realised
cost (currency, vs the arrival price) is

    ``c_i = sum_c k_c f_ic + e_i``,   ``e_i`` symmetric, heavy-tailed,

where ``e_i`` is mostly the market moving while the order works: in bps of the traded notional
its scale is ~ ``sigma_i sqrt(T)`` whatever the order's size. So the regression is written in
noise-normalised units, ``y_i = c_i / (|n_i| sigma_i)`` on ``x_i = f_i / (|n_i| sigma_i)``
(``n_i`` the traded notional, ``sigma_i`` the daily volatility), where the noise scale ``s``
is the same for every order: a large order whose predicted cost stands out of the noise
weighs more than a small one whose realised cost is all noise.

Estimator: exponentially weighted (``forgetting``) Huber regression, shrunk toward the prior
``k = 1`` with the weight of ``prior_strength`` average observations::

    k = argmin  sum_i lambda^age_i w_i (y_i - x_i.k)^2 + rho (k - 1)' D (k - 1)

with Huber weights ``w_i = min(1, c s / |r_i|)`` (``r_i`` the residual at the current ``k``,
``c = huber_c``, ``s`` a robust running residual scale) and ``D`` the average information
per observation. The influence of one fill on ``k`` is bounded (``w_i |r_i| <= c s``), the
noise is down-weighted symmetrically (no upward bias from clipping one side, which is what the
former ratio-clip estimator did: it learned multipliers 1.5-7x too high from noisy fills), and
under pure noise ``k`` stays near 1. The learned state is sufficient statistics in information
form (``info_``, ``moment_``, ``wsum_``, ``scale_``); ``multipliers_`` is their solve,
clipped to ``bounds`` (> 0, so ``sum_c k_c expr_c`` stays convex).
"""

from __future__ import annotations

import json
import math
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


_TINY = 1e-12


def _clipped_abs_mean(c: float) -> float:
    """``E[min(|Z|, c)]`` for ``Z ~ N(0, 1)``: turns a mean clipped |residual| into a scale."""
    phi0, phic = 1.0 / math.sqrt(2 * math.pi), math.exp(-0.5 * c * c) / math.sqrt(2 * math.pi)
    tail = 1.0 - 0.5 * (1.0 + math.erf(c / math.sqrt(2)))
    return 2.0 * (phi0 - phic) + 2.0 * c * tail


class AdaptiveCost(CostModel):
    """Wrap ``base`` and recalibrate its components from realised costs (model: module doc).

    Args:
        base: the model to calibrate (a composite contributes one multiplier per model).
        forgetting: weight decay per observation in (0, 1]; 0.998 remembers ~500 orders.
        bounds: (low, high) limits of every multiplier, 0 < low <= 1 <= high.
        huber_c: Huber threshold in robust residual scales (smaller: more robust, less
            efficient; 1.345 is 95% efficient under Gaussian noise).
        prior_strength: weight of the prior ``k = 1``, in average observations (>= 0).

    Learned state: ``info_`` (C, C), ``moment_`` (C,), ``wsum_``, ``scale_`` (NaN before the
    first observation), ``n_obs_``; ``multipliers_`` (C,) follows from them.
    """

    name = "adaptive"

    def __init__(self, base: CostModel, *, forgetting: float = 0.998,
                 bounds: tuple[float, float] = (0.2, 5.0), huber_c: float = 1.345,
                 prior_strength: float = 0.1) -> None:
        self.base = base
        self.parts: tuple[CostModel, ...] = (base.models if isinstance(base, CompositeCost)
                                             else (base,))
        self.forgetting = check_scalar(forgetting, "forgetting", positive=True, upper=1.0)
        lo, hi = (check_scalar(b, "bounds") for b in bounds)
        if not 0 < lo <= 1.0 <= hi:
            raise ValidationError("bounds must satisfy 0 < low <= 1 <= high", field="bounds",
                                  value=bounds)
        self.bounds = (lo, hi)
        self.huber_c = check_scalar(huber_c, "huber_c", positive=True)
        self.prior_strength = check_scalar(prior_strength, "prior_strength")
        c = len(self.parts)
        self.info_ = np.zeros((c, c))
        self.moment_ = np.zeros(c)
        self.wsum_ = 0.0
        self.scale_ = float("nan")
        self.n_obs_ = 0
        self.multipliers_ = np.ones(c)

    @property
    def part_names(self) -> list[str]:
        """One label per multiplier (``spread``, ``impact``, ...; repeated names numbered)."""
        names = [m.name for m in self.parts]
        return [n if names.count(n) == 1 else f"{n}#{names[:i].count(n)}"
                for i, n in enumerate(names)]

    def _solve(self) -> np.ndarray:
        c = len(self.parts)
        if self.wsum_ <= 0:
            return np.ones(c)
        d = np.diag(np.diag(self.info_) / self.wsum_) * self.prior_strength
        a = self.info_ + d
        b = self.moment_ + d @ np.ones(c)
        k, *_ = np.linalg.lstsq(a, b, rcond=None)
        k = np.where(np.diag(a) > 0, k, 1.0)  # a part never exercised keeps its prior
        return np.clip(k, *self.bounds)

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

        Names with no trade, a zero prediction or a zero volatility carry no information and
        are skipped. ``trades``: (N,) signed notional (currency) or a Series by symbol.

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
        norm = np.abs(notional) * ctx.volatility
        use = (np.abs(notional) > 0) & (pred > 0) & (norm > 0)
        bad = use & ~np.isfinite(realised)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValidationError("realised cost must be finite", field="realised_cost",
                                  symbol=str(ctx.symbols[i]), value=float(realised[i]))
        if not use.any():
            return self
        x = feats[use] / norm[use, None]
        y = realised[use] / norm[use]
        r = y - x @ self.multipliers_
        if not np.isfinite(self.scale_):
            self.scale_ = float(1.4826 * np.median(np.abs(r)))
        thr = self.huber_c * max(self.scale_, _TINY * float(np.abs(y).max()))
        absr = np.abs(r)
        w = np.where(absr <= thr, 1.0, thr / np.maximum(absr, _TINY))
        n = len(y)
        decay = self.forgetting ** np.arange(n - 1, -1, -1)  # the newest row weighs 1
        wd = w * decay
        lam_n = self.forgetting ** n
        self.info_ = lam_n * self.info_ + (x * wd[:, None]).T @ x
        self.moment_ = lam_n * self.moment_ + (x * wd[:, None]).T @ y
        self.wsum_ = lam_n * self.wsum_ + float(wd.sum())
        # robust scale: running mean of the Huber-clipped |r|, made consistent for N(0, s^2)
        m = float(np.minimum(absr, thr).mean()) / _clipped_abs_mean(self.huber_c)
        rate = min(1.0, max(n * (1.0 - self.forgetting), n / (self.n_obs_ + n)))
        self.scale_ = self.scale_ + rate * (m - self.scale_) if self.n_obs_ else m
        self.n_obs_ += n
        self.multipliers_ = self._solve()
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

    def settings(self) -> dict[str, Any]:
        """The hyper-parameters (JSON-friendly)."""
        return {"forgetting": self.forgetting, "bounds": list(self.bounds),
                "huber_c": self.huber_c, "prior_strength": self.prior_strength}

    def state(self) -> dict[str, Any]:
        """JSON-friendly learned state, settings and the parts it was learned on.

        Floats survive JSON exactly (shortest round-trip repr), so :meth:`from_state` of
        this dict rebuilds an identical model.
        """
        return {"parts": self.part_names, "base": repr(self.base),
                "multipliers": self.multipliers_.tolist(), "info": self.info_.tolist(),
                "moment": self.moment_.tolist(), "wsum": self.wsum_,
                "scale": None if not np.isfinite(self.scale_) else self.scale_,
                "n_obs": self.n_obs_, "settings": self.settings()}

    @classmethod
    def from_state(cls, state: dict[str, Any], base: CostModel, *,
                   source: str | None = None) -> AdaptiveCost:
        """Rebuild a model from :meth:`state` onto ``base`` (which must have the same parts).

        Raises:
            DataError: the state is malformed or its parts differ from ``base``'s.
        """
        try:
            model = cls(base, **state["settings"])
            parts = list(state["parts"])
            info = np.asarray(state["info"], dtype=np.float64)
            moment = np.asarray(state["moment"], dtype=np.float64)
            wsum, scale = float(state["wsum"]), state["scale"]
            n_obs = int(state["n_obs"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed adaptive cost state: {exc}", field="state",
                            file=source) from None
        if parts != model.part_names:
            raise DataError("saved state has different parts than base", field="multipliers",
                            value=(parts, model.part_names), file=source)
        c = len(parts)
        if info.shape != (c, c) or moment.shape != (c,):
            raise DataError("saved state has the wrong shape", field="info",
                            value=info.shape, file=source)
        model.info_, model.moment_, model.wsum_ = info, moment, wsum
        model.scale_ = float("nan") if scale is None else float(scale)
        model.n_obs_ = n_obs
        model.multipliers_ = model._solve()
        return model

    def save(self, path: str | Path) -> None:
        """Write :meth:`state` as JSON (atomic replace). The store is the desk's home for it
        (``keel.store.cost_state_repo``); a file serves research."""
        p = Path(path)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(json.dumps(self.state(), indent=2))
        tmp.replace(p)

    @classmethod
    def load(cls, path: str | Path, base: CostModel) -> AdaptiveCost:
        """Restore a :meth:`save` file onto ``base`` (which must have the same parts)."""
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read adaptive cost state: {exc}", file=str(p)) from None
        return cls.from_state(d, base, source=str(p))

    def __repr__(self) -> str:
        ks = ", ".join(f"{k:.3g}" for k in self.multipliers_)
        return f"AdaptiveCost({self.base!r}, multipliers=[{ks}], n_obs={self.n_obs_})"
