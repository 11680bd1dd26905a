"""Desk engines beyond single-period mean-variance: multi-period optimization (``engine =
"mpo"``) and Black-Litterman views from the signals layer (``bl_views``, around any engine).

Both take the same :class:`~keel.app.engines.Step` as every engine and honour the bounds it
gives: every ``[optimize]`` constraint (:func:`~keel.app.engines.constraints_from_config`) and,
when the step carries a per-session tradable mask (``step.tradable``, True = may trade), a
name that may not trade this session keeps its current weight in the period traded now.

Units as in :mod:`keel.app.engines`: weights are fractions of NAV, alpha per session, arrays (N,)
in ``step.symbols`` order; one MPO period is one rebalance period (``policy.frequency``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import cvxpy as cp
import numpy as np
import pandas as pd
from scipy.stats import norm, spearmanr

from keel.app.engines import Carried, Engine, Step, build_engine, constraints_from_config
from keel.config import EngineKind, OptimizeConfig, ViewSource
from keel.costs.base import CostModel
from keel.errors import ValidationError
from keel.optimize import Alpha, HoldingCost, PortfolioInputs, Risk, TransactionCost
from keel.optimize.black_litterman import BlackLitterman, signal_views
from keel.optimize.build import BuildContext
from keel.optimize.constraints import Constraint
from keel.optimize.engine import Solver
from keel.optimize.limits import SolverLimits
from keel.optimize.multi_period import MultiPeriod, MultiPeriodResult

#: ``alpha_forecast(step) -> (H, N)`` per-period alpha (per session), period 1 first
Forecast = Callable[[Step], np.ndarray]
_FREE = 1e3  # a bound that never binds (weights are fractions of NAV)


def tradable_mask(step: Step) -> np.ndarray | None:
    """``step.tradable`` as a bool (N,) array (True: may trade this session), or None."""
    mask = getattr(step, "tradable", None)
    if mask is None:
        return None
    m = np.asarray(mask, dtype=bool)
    if m.shape != (len(step.symbols),):
        raise ValidationError("tradable mask does not match the universe",
                              field="step.tradable", value=m.shape)
    return m


class FrozenNow(Constraint):
    """Names that may not trade this session keep their current weight, in the period traded
    now only (later periods of a plan may trade them). ``mask`` is set before each solve."""

    per_name = True

    def __init__(self) -> None:
        super().__init__("TRADABLE")
        self.mask: np.ndarray | None = None

    def _bounds(self, inputs: PortfolioInputs) -> tuple[np.ndarray, np.ndarray]:
        n = inputs.n
        frozen = np.zeros(n, bool) if self.mask is None or self.mask.shape != (n,) \
            else ~self.mask
        lo = np.where(frozen, inputs.current, -_FREE)
        hi = np.where(frozen, inputs.current, _FREE)
        return lo, hi

    def build(self, ctx: BuildContext, relax: Any = 0.0) -> list[cp.Constraint]:
        if getattr(ctx, "period", 1) != 1:
            return []
        lo = ctx.param(f"frozen_lo_{id(self)}", (ctx.n,), lambda x: self._bounds(x)[0])
        hi = ctx.param(f"frozen_hi_{id(self)}", (ctx.n,), lambda x: self._bounds(x)[1])
        return [ctx.w <= hi + relax, -ctx.w <= -lo + relax]

    def margins(self, w: np.ndarray, inputs: PortfolioInputs) -> np.ndarray:
        lo, hi = self._bounds(inputs)
        return np.concatenate([hi - w, w - lo])


def alpha_profile(o: OptimizeConfig) -> np.ndarray:
    """(H,) multipliers of the alpha forecast per period: ``mpo_alpha_profile`` when given,
    else ``mpo_alpha_decay ** (h - 1)``."""
    if o.mpo_alpha_profile is not None:
        return np.asarray(o.mpo_alpha_profile, dtype=np.float64)
    return o.mpo_alpha_decay ** np.arange(o.mpo_horizon, dtype=np.float64)


class MultiPeriodEngine:
    """Multi-period mean-variance-cost planning (:class:`~keel.optimize.multi_period.
    MultiPeriod`) over ``mpo_horizon`` rebalance periods; the first period is traded.

    Every period has the mean-variance engine's terms (alpha, ``risk_aversion`` x factor risk,
    the optimizer's cost model scaled by ``cost_aversion / period_days``, holding cost when
    shorting) and every ``[optimize]`` constraint; period h's alpha is
    ``alpha * profile[h - 1]`` (a documented decay) unless ``forecast`` gives the (H, N)
    forecasts. ``mpo_horizon = 1`` is the mean-variance engine's problem. Compiled once and
    re-solved with new parameters as the window rolls.
    """

    def __init__(self, name: str, o: OptimizeConfig, *, costs: CostModel,
                 period_days: int = 1, holding: HoldingCost | None = None,
                 forecast: Forecast | None = None) -> None:
        self.name, self.o, self.costs = name, o, costs
        self.period_days = period_days
        self.holding = holding
        self.horizon = o.mpo_horizon
        self.profile = alpha_profile(o)
        self.forecast = forecast
        self.frozen = FrozenNow()
        self.problem: MultiPeriod | None = None
        self._inputs: PortfolioInputs | None = None
        self.codes: tuple[str, ...] = ()
        self.solver = ""
        self.last_result: Any = None
        self.last_plan: MultiPeriodResult | None = None
        self._carried_key: Any = None

    def _build(self, step: Step, carried: Carried | None = None) -> MultiPeriod:
        o = self.o
        cons = constraints_from_config(o, sectors=step.sectors,
                                       betas=step.betas is not None, adv=True, carried=carried)
        scale = o.cost_aversion / self.period_days
        terms: list[Any] = [Alpha(), Risk(o.risk_aversion)]
        if scale > 0:
            terms.append(TransactionCost(self.costs, scale=scale))
        if self.holding is not None and not o.long_only:
            terms.append(self.holding)
        limits = SolverLimits(o.solver_time_limit_s, o.solver_max_iter)
        solvers = (Solver.CLARABEL, Solver.SCS)
        return MultiPeriod(terms, [*cons, self.frozen], horizon=self.horizon, solvers=solvers,
                           solver_options={s.value: limits.options(s.value) for s in solvers})

    def forecasts(self, step: Step) -> np.ndarray:
        """(H, N) alpha per session of each period (period 1 = ``step.alpha``)."""
        if self.forecast is not None:
            f = np.asarray(self.forecast(step), dtype=np.float64)
            if f.shape != (self.horizon, len(step.symbols)) or not np.all(np.isfinite(f)):
                raise ValidationError("forecast must be a finite (H, N) array",
                                      field="forecast", value=f.shape)
            return f
        return self.profile[:, None] * np.asarray(step.alpha, dtype=np.float64)[None, :]

    def target(self, step: Step) -> np.ndarray:
        # as the single-period engine: the problem covers the session's universe; names
        # outside it are pinned (their weight carried by the budget, sector caps, beta band)
        carried = step.carried()
        full = step
        alphas_full = self.forecasts(full)
        mask = tradable_mask(full)
        step = full.sub()
        if self.problem is None or carried.key != self._carried_key:
            self.problem = self._build(step, carried)
            self._carried_key = carried.key
        self.frozen.mask = None
        ctx = step.trade_context
        if self._inputs is None or not self._inputs.symbols.equals(step.symbols):
            self._inputs = PortfolioInputs.build(
                pd.Series(step.alpha, index=step.symbols),
                pd.Series(step.current, index=step.symbols), risk=step.risk,
                trade_context=ctx, sectors=step.sectors,
                betas=None if step.betas is None else pd.Series(step.betas, index=step.symbols),
                nav=ctx.nav)
        else:
            self._inputs = self._inputs.with_(
                alpha=step.alpha, current=step.current, risk=step.risk, trade_context=ctx,
                adv_weight=ctx.adv_notional / ctx.nav, betas=step.betas)
        alphas = alphas_full if mask is None else alphas_full[:, mask]
        plan = [self._inputs.with_(alpha=a) for a in alphas]
        res = self.problem.solve(plan)
        self.last_plan, self.last_result = res, res.first
        first = res.first
        binding = [b if isinstance(b, str) else str(getattr(b, "name", b))
                   for b in (first.binding or [])]
        self.solver = str(first.solver)
        self.codes = (f"MPO_{str(first.status).upper()}", f"MPO_H{self.horizon}",
                      *(f"BINDING_{b}" for b in binding), *full.codes)
        return full.expand_solved(first.weights, step.symbols)


# --------------------------------------------------------------------------- views


class ViewTrack:
    """The score's track record: the rank IC of each rebalance's score against the returns
    realised until the next rebalance (from the steps' own prices: point in time).

    ``confidence()`` is ``2 Phi(t) - 1`` of the IC's t-statistic ``mean / (std / sqrt(n))``,
    clipped to [0.01, 0.99] (an IC indistinguishable from 0 gives views almost no weight; a
    consistently positive one, t >= 2.6, near full weight); ``default`` until ``min_track``
    periods are realised.
    """

    def __init__(self, default: float, min_track: int) -> None:
        self.default, self.min_track = default, min_track
        self.ics: list[float] = []
        self._last: tuple[pd.Series, pd.Series] | None = None

    def observe(self, symbols: pd.Index, score: np.ndarray, prices: np.ndarray) -> None:
        px = pd.Series(np.asarray(prices, dtype=np.float64), index=symbols)
        if self._last is not None:
            s0, p0 = self._last
            common = s0.index.intersection(px.index)
            realised = px.reindex(common) / p0.reindex(common) - 1.0
            s = s0.reindex(common)
            ok = np.isfinite(realised.to_numpy()) & np.isfinite(s.to_numpy())
            if ok.sum() >= 3 and np.ptp(s.to_numpy()[ok]) > 0 \
                    and np.ptp(realised.to_numpy()[ok]) > 0:
                self.ics.append(float(spearmanr(s.to_numpy()[ok],
                                                realised.to_numpy()[ok]).statistic))
        self._last = (pd.Series(np.asarray(score, dtype=np.float64), index=symbols), px)

    def confidence(self) -> float:
        n = len(self.ics)
        if n < self.min_track:
            return self.default
        ic = np.asarray(self.ics)
        sd = float(ic.std(ddof=1))
        t = float(ic.mean()) / (sd / np.sqrt(n)) if sd > 0 else np.sign(ic.mean()) * np.inf
        return float(np.clip(2.0 * norm.cdf(t) - 1.0, 0.01, 0.99))


class ViewsEngine:
    """Black-Litterman around any engine: the signals become views, the posterior returns
    replace ``step.alpha`` and the inner engine constructs from them.

    Prior: the returns implied by the equal-weight benchmark under the engine's own objective
    (``pi = 2 risk_aversion Sigma w_b``, the alpha for which mean-variance holds the
    benchmark); views from :func:`~keel.optimize.black_litterman.signal_views` (absolute per
    name or top-vs-bottom relative, expected returns ``IC x vol x z`` from the signal), with
    the Idzorek confidence from the score's track record (:class:`ViewTrack`). Engines that
    do not read alpha (greedy ranks the score; risk parity, equal weight) are unchanged.
    """

    def __init__(self, inner: Engine, o: OptimizeConfig) -> None:
        self.inner, self.o = inner, o
        self.name = inner.name
        self.track = ViewTrack(o.bl_confidence, o.bl_min_track)
        self.codes: tuple[str, ...] = ()
        self.last_posterior: pd.Series | None = None

    def posterior(self, step: Step) -> pd.Series:
        """Posterior returns over the session's universe (``step.sub()``: the names the risk
        model covers); names outside it are pinned by every engine and keep their alpha."""
        o = self.o
        sub = step.sub()
        symbols = sub.symbols
        n = len(symbols)
        conf = self.track.confidence()
        views = signal_views(pd.Series(sub.score, index=symbols),
                             pd.Series(sub.alpha, index=symbols),
                             kind=o.bl_views.value, quantile=o.bl_quantile, confidence=conf)
        delta = 2.0 * max(o.risk_aversion, 1e-12)
        bl = BlackLitterman(tau=o.bl_tau, risk_aversion=delta)
        bench = pd.Series(np.full(n, 1.0 / n), index=symbols)
        bl.fit(sub.risk, views, market_weights=bench)
        post = bl.posterior_returns_.reindex(symbols)
        if sub is step:
            return post
        out = pd.Series(step.alpha, index=step.symbols, dtype=np.float64)
        out.loc[symbols] = post.to_numpy()
        return out

    def target(self, step: Step) -> np.ndarray:
        conf = self.track.confidence()
        post = self.posterior(step)
        # the track record over the names the trade context prices (the session's universe)
        sub = step.sub()
        self.track.observe(sub.trade_context.symbols,
                           pd.Series(sub.score, index=sub.symbols)
                           .reindex(sub.trade_context.symbols).to_numpy(),
                           sub.trade_context.prices)
        self.last_posterior = post
        w = self.inner.target(replace(step, alpha=post.to_numpy(dtype=np.float64)))
        self.codes = (*self.inner.codes, f"BL_{self.o.bl_views.value.upper()}",
                      f"BL_CONFIDENCE_{conf:.2f}")
        return w

    def __getattr__(self, item: str) -> Any:  # solver, last_result, ... of the inner engine
        return getattr(self.__dict__["inner"], item)


def build_extended(name: str, o: OptimizeConfig, *, costs: CostModel, period_days: int = 1,
                   holding: HoldingCost | None = None) -> Engine:
    """The engine of ``o`` when it is ``mpo`` and/or has ``bl_views`` (called by
    :func:`keel.app.engines.build_engine`)."""
    if str(o.bl_views) != ViewSource.NONE.value:
        inner = build_extended(name, o.model_copy(update={"bl_views": ViewSource.NONE}),
                               costs=costs, period_days=period_days, holding=holding)
        return ViewsEngine(inner, o)
    if str(o.engine) == EngineKind.MPO.value:
        return MultiPeriodEngine(name, o, costs=costs, period_days=period_days,
                                 holding=holding)
    return build_engine(name, o, costs=costs, period_days=period_days, holding=holding)
