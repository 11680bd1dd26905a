"""The desk pipeline, built once from the one configuration.

``signals -> risk model (fallback chain) -> engine (every [optimize] constraint) -> turnover
governor -> policy (triggers, cooldown, windows) -> governance (every rule) -> orders ->
execution (algo, participation cap, limit offset)``, with ONE cost model shared by the
optimizer, the greedy round trip, the schedules, the backtest's charging, TCA and the
service's estimate.

The backtest (:mod:`keel.backtest.engine`), ``keel run`` and ``keel demo``
(:mod:`keel.app.cycle`), ``keel optimize`` and the service's cost estimate all call a
:class:`Pipeline`; only the clock, the market-data source and the broker differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keel.app.engines import Engine, Step, TurnoverGovernor, build_engine
from keel.config import (
    DataSource,
    EngineKind,
    ExecutionAlgo,
    KeelConfig,
    RiskModelKind,
    SignalSource,
    SpreadSource,
    TurnoverFunding,
)
from keel.costs.base import CostModel, TradeContext
from keel.costs.models import Commission, SpreadCost, SquareRootImpact
from keel.errors import ConfigError, DataError, KeelError, ValidationError
from keel.optimize import HoldingCost
from keel.risk.memory import check_fit_budget
from keel.types import to_money, to_price

if TYPE_CHECKING:
    from keel.data.market import MarketData
    from keel.execution.feedback import CostFeedback
    from keel.policy.governance import GovernanceChain
    from keel.policy.triggers import KillSwitch, RebalancePolicy
    from keel.risk.base import FactorCovariance
    from keel.risk.limits import RiskLimits
    from keel.store.db import Store

TRADING_DAYS = 252
PERIOD_DAYS = {"daily": 1, "weekly": 5, "monthly": 21, "quarterly": 63}


def load_market(config: KeelConfig) -> MarketData:
    """The market ``[data]`` names (synthetic from ``general.seed``, or a long price file),
    with spreads chosen by ``costs.spread_source`` / ``spread_fallback`` and a caveat on the
    market (``market.caveats``) whenever spreads are not all quotes."""
    d = config.data
    if d.source is DataSource.SYNTHETIC:
        from keel.data.synthetic import generate_market

        market = generate_market(seed=config.general.seed, n_assets=d.n_assets,
                                 n_days=d.n_days, start=d.start, calendar=d.calendar).market
        if config.costs.spread_source is SpreadSource.ESTIMATE:
            raise ConfigError("the synthetic market has quoted spreads but no high/low to "
                              "estimate from; use quotes or fixed",
                              field="costs.spread_source", value="estimate")
        if config.costs.spread_source is SpreadSource.FIXED:
            market = _with_caveats(market, (_fixed_caveat(config),))
    else:
        from keel.data.prices import load_sectors, read_ohlcv_long, read_wide

        if d.prices_path is None:
            raise ConfigError("data.prices_path is required for a file source",
                              field="data.prices_path", value=d.source.value)
        for key, what, path in (("data.prices_path", "price", d.prices_path),
                                ("data.sectors_path", "sector", d.sectors_path),
                                ("data.spreads_path", "spreads", d.spreads_path)):
            if path is not None and not Path(path).exists():
                raise ConfigError(f"{what} file not found", field=key, value=str(path))
        ohlcv = read_ohlcv_long(d.prices_path, calendar=d.calendar, on_missing=d.on_missing)
        quotes = (None if d.spreads_path is None
                  else read_wide(d.spreads_path, name="spreads", calendar=d.calendar))
        spreads, caveat = file_spreads(config, ohlcv.close, ohlcv.high, ohlcv.low, quotes)
        sectors = None if d.sectors_path is None else load_sectors(d.sectors_path)
        market = ohlcv.to_market(sectors, on_missing=d.on_missing, spreads=spreads,
                                 caveats=(caveat,) if caveat else ())
    if d.max_assets is not None and d.max_assets < market.n_assets:
        market = market.select(market.symbols[: d.max_assets])
    return market


def _fixed_caveat(config: KeelConfig) -> str:
    return (f"spreads: a fixed {config.costs.default_spread_bps:g} bps for every name "
            "(costs.spread_source = fixed), not quotes")


def _with_caveats(market: MarketData, caveats: tuple[str, ...]) -> MarketData:
    from keel.data.market import MarketData

    return MarketData(market.prices, market.volumes, sectors=market.sectors,
                      spreads=market.spreads, market_caps=market.market_caps,
                      benchmark_returns=market.benchmark_returns, on_missing=market.on_missing,
                      adv_window=market.adv_window, vol_window=market.vol_window,
                      beta_window=market.beta_window, min_history=market.min_history,
                      source=market.source, caveats=market.caveats + caveats)


def file_spreads(config: KeelConfig, close: pd.DataFrame, high: pd.DataFrame,
                 low: pd.DataFrame, quotes: pd.DataFrame | None
                 ) -> tuple[pd.DataFrame | None, str]:
    """Spreads (dates x symbols, fraction of mid) of a file market and the caveat to print.

    ``fixed`` gives no panel (the cost model's ``default_spread_bps`` stands in everywhere);
    ``estimate`` the Abdi-Ranaldo estimate for every name; ``quotes`` the quoted spreads
    (``data.spreads_path``) with ``costs.spread_fallback`` for names without a quote, or,
    with ``none``, a ``DataError`` naming the first name and date with a price but no quote.
    """
    from keel.data.spreads import SpreadFallback, select_spreads

    c = config.costs
    if c.spread_source is SpreadSource.FIXED:
        return None, _fixed_caveat(config)
    ohlc = {"high": high, "low": low, "close": close}
    if c.spread_source is SpreadSource.ESTIMATE:
        p = select_spreads("estimate", index=close.index, symbols=close.columns, **ohlc)
        return p.values, f"spreads: {p.caveat}"
    if c.spread_fallback is SpreadFallback.NONE:
        q = (pd.DataFrame(np.nan, index=close.index, columns=close.columns) if quotes is None
             else quotes.reindex(index=close.index, columns=close.columns))
        hole = q.isna().to_numpy() & close.notna().to_numpy()
        if hole.any():
            r, k = (int(x[0]) for x in np.nonzero(hole))
            raise DataError("a price without a quoted spread (costs.spread_fallback = none); "
                            "give data.spreads_path or choose a fallback", field="spreads",
                            symbol=str(close.columns[k]), value=str(close.index[r]))
        return q, ""
    p = select_spreads("quotes", index=close.index, symbols=close.columns, quotes=quotes,
                       default_spread_bps=(c.default_spread_bps
                                           if c.spread_fallback is SpreadFallback.FIXED
                                           else None),
                       **(ohlc if c.spread_fallback is SpreadFallback.ESTIMATE else {}))
    return p.values, (f"spreads: {p.caveat}" if p.caveat else "")


# --------------------------------------------------------------------------- pieces


@dataclass
class RiskFit:
    """A fitted risk model and which model of the chain produced it.

    Attributes:
        model: factored covariance per session.
        used: the model kind that fitted.
        failed: (kind, reason) of each model tried before it.
        groups: factor groups (fundamental model) or None.
        excluded: names of the view left out of the fit (no complete returns over the
            window the model reads, or no close at the view's last row).
    """

    model: FactorCovariance
    used: RiskModelKind
    failed: tuple[tuple[str, str], ...] = ()
    groups: pd.Series | None = None
    excluded: tuple[str, ...] = ()

    @property
    def symbols(self) -> pd.Index:
        """The names the model covers."""
        return self.model.symbols

    @property
    def codes(self) -> tuple[str, ...]:
        fb = tuple(f"RISK_FALLBACK_{k.upper()}" for k, _ in self.failed)
        return ("RISK_FITTED", f"RISK_{self.used.name}", *fb)


# --------------------------------------------------------------------------- the pipeline


class Pipeline:
    """Every stage of the desk, built once from ``config``.

    Args:
        config: the one configuration (a backtest book passes its effective config).
        live: build the intraday parts (trading windows, minute cooldown, market hours);
            the backtest decides at session closes and executes in the next session.
        kill_switch: the live kill switch shared with the control records.
    """

    def __init__(self, config: KeelConfig, *, live: bool = True,
                 kill_switch: KillSwitch | None = None) -> None:
        from keel.policy.triggers import KillSwitch

        self.config = config
        self.live = live
        c = config.costs
        self.spread = SpreadCost(fraction=c.spread_fraction)
        self.impact = (SquareRootImpact(y=c.impact_coefficient)
                       if c.impact_coefficient > 0 else None)
        self.commission = Commission(per_share=c.commission_per_share, bps=c.commission_bps)
        #: the configured model (spread + impact + commission)
        self.base_cost_model: CostModel = (self.spread + self.impact + self.commission
                                           if self.impact is not None
                                           else self.spread + self.commission)
        #: the closed feedback loop (None: costs.feedback = false)
        self.feedback: CostFeedback | None = None
        #: THE cost model: the configured one, with its learned multipliers when
        #: ``costs.feedback`` (updated in place by every observation)
        self.cost_model: CostModel = self.base_cost_model
        if c.feedback:
            self.attach_store(None)
        self.period_days = PERIOD_DAYS[config.policy.frequency.value]
        self.holding = HoldingCost(
            borrow_fee=c.borrow_bps * 1e-4 / TRADING_DAYS * self.period_days)
        self.kill_switch = kill_switch or KillSwitch()
        self.policy = self.build_policy()
        self.governance = self.build_governance()
        self._signal_model: Any = None
        #: (risk model, symbols, symbols.isin(risk.symbols)) of the last :meth:`universe`:
        #: the risk model changes at refits only (holds both objects, so never stale)
        self._risk_cover: tuple[FactorCovariance, pd.Index, np.ndarray] | None = None

    # ------------------------------------------------------------------ costs

    def attach_store(self, store: Store | None) -> None:
        """Restore the learned cost multipliers from ``store`` (and persist them there from
        now on); call before the first cycle (engines hold the model built here)."""
        if not self.config.costs.feedback:
            return
        from keel.execution.feedback import CostFeedback

        self.feedback = CostFeedback.open(self.base_cost_model, store)
        self.cost_model = self.feedback.model

    @property
    def default_spread(self) -> float:
        """Full spread (fraction of mid) where none is known."""
        return self.config.costs.default_spread_bps * 1e-4

    def trade_context(self, view: MarketData, nav: float = 1.0, *, symbols: Any = None,
                      **kwargs: Any) -> TradeContext:
        """Prices, ADV, volatility and spreads (by ``costs.spread_source``) of ``view``
        (``symbols``: of those names only, e.g. :meth:`universe`)."""
        ctx = TradeContext.from_market(view, nav, default_spread=self.default_spread,
                                       symbols=symbols, **kwargs)
        if self.config.costs.spread_source is SpreadSource.FIXED:
            return TradeContext(ctx.symbols, ctx.prices, ctx.adv_notional, ctx.volatility,
                                np.full(len(ctx.symbols), self.default_spread), nav=ctx.nav,
                                horizon_days=ctx.horizon_days, time_of_day=ctx.time_of_day,
                                extra=ctx.extra)
        return ctx

    def optimizer_costs(self) -> CostModel:
        """What the optimizer's cost term prices: the linear part (spread + commission, the
        same objects) of the one cost model, which keeps the problem on the direct QP path;
        the square-root impact is charged by execution and shown by TCA. (The learned
        multipliers reach the greedy round trip, schedules' TCA and the service estimate; the
        QP's linear term does not take them yet.)"""
        return self.spread + self.commission

    def risk_limits(self) -> RiskLimits:
        """The limits watched on the book (``keel run`` audits breaches, ``keel serve``
        shows them): ``governance.max_position, sector_cap`` and the ``[risk]`` limits."""
        from keel.risk.limits import RiskLimits

        g, r = self.config.governance, self.config.risk
        return RiskLimits(max_position=g.max_position, max_sector_weight=g.sector_cap,
                          max_pairwise_correlation=r.max_pairwise_correlation,
                          var_budget=r.var_budget, vol_target=r.max_volatility,
                          var_confidence=r.var_confidence, var_horizon=r.horizon_days)

    # ------------------------------------------------------------------ signals

    def signal_model(self) -> Any:
        """The ``[signals]`` model (:mod:`keel.signals`): the built-in blend, or external
        scores from ``signals.path`` (point in time: usable from the session close of their
        date on ``data.calendar``)."""
        if self._signal_model is None:
            s = self.config.signals
            if s.source is SignalSource.FILE:
                from keel.signals import ExternalSignal, read_signal_table

                assert s.path is not None
                table = read_signal_table(Path(s.path), calendar=self.config.data.calendar)
                self._signal_model = ExternalSignal(table, ic=s.ic)
            else:
                from keel.signals import BlendSignal

                self._signal_model = BlendSignal(weights=dict(s.weights), ic=s.ic)
        return self._signal_model

    def signals(self, view: MarketData) -> tuple[pd.Series, pd.Series]:
        """(score, expected return per session) per symbol of ``view``."""
        snap = self.signal_model().evaluate(view)
        return snap.score, snap.alpha

    # ------------------------------------------------------------------ risk

    def risk_window(self, kind: RiskModelKind) -> int:
        """Return rows a fit of ``kind`` reads: ``risk.lookback_days``, plus the style
        look-back (a year of returns for momentum) for the fundamental model."""
        from keel.risk.styles import YEAR

        r = self.config.risk
        return r.lookback_days + (YEAR if kind is RiskModelKind.FUNDAMENTAL else 0)

    def risk_names(self, view: MarketData, kind: RiskModelKind) -> pd.Index:
        """The names a fit of ``kind`` may use at ``view.now``: a close at the last row and
        complete returns (and volumes) over the last :meth:`risk_window` rows (all rows of a
        shorter view).
        Never a filled return: a name with a hole in the window is left out (not yet listed
        long enough, a gap, a delisting)."""
        rets = view.returns.to_numpy()
        w = min(self.risk_window(kind), len(rets))
        ok = np.isfinite(rets[len(rets) - w:]).all(axis=0)
        # and the volumes of those rows (the fundamental model's size and liquidity styles
        # and its regression weights read traded value)
        ok &= np.isfinite(view.volumes.to_numpy()[-(w + 1):]).all(axis=0)
        ok &= np.isfinite(view.prices.to_numpy()[-1])
        return view.symbols[ok]

    def _fit_one(self, kind: RiskModelKind, view: MarketData, names: pd.Index | None = None
                 ) -> tuple[FactorCovariance, pd.Series | None]:
        from keel.risk import covariance as cov
        from keel.risk.factor_model import StatisticalFactorModel
        from keel.risk.fundamental import FundamentalFactorModel

        r = self.config.risk
        if names is None:
            names = self.risk_names(view, kind)
        if len(names) < 2:
            raise DataError("fewer than 2 names with complete returns over the risk window",
                            field="risk.lookback_days", value=self.risk_window(kind))
        rets = view.returns.iloc[-r.lookback_days:]
        if len(names) < len(view.symbols):
            rets = rets[names]
        check_fit_budget(kind.value, len(names), len(rets), r.n_pca_factors,
                         r.memory_budget_mb)
        if kind is RiskModelKind.FUNDAMENTAL:
            sub = view if len(names) == len(view.symbols) else view.select(names)
            model = FundamentalFactorModel(window=r.lookback_days).fit(sub)
            return model.factored(), model.factor_groups_
        if kind is RiskModelKind.PCA:
            return StatisticalFactorModel(n_factors=r.n_pca_factors).fit(rets).factored(), None
        if kind is RiskModelKind.EWMA:
            est: Any = cov.EWMACovariance(lambda_=r.ewma_lambda)
        elif kind is RiskModelKind.SAMPLE:
            est = cov.SampleCovariance()
        else:
            est = cov.LedoitWolf()
        return est.fit(rets).factored(rank=r.n_pca_factors), None

    def fit_risk(self, view: MarketData) -> RiskFit:
        """The configured model, else the next of ``risk.fallback`` that fits, on the names
        with complete returns over the window it reads (:meth:`risk_names`); the others are
        outside the model (``RiskFit.excluded``) and so outside the engines' universe."""
        r = self.config.risk
        chain = [r.model, *[k for k in r.fallback if k is not r.model]]
        failed: list[tuple[str, str]] = []
        for kind in chain:
            try:
                names = self.risk_names(view, kind)
                model, groups = self._fit_one(kind, view, names)
                model = model.reindex(names)
                if not np.all(np.isfinite(model.diag())):
                    raise ValidationError("non-finite variances", field="risk.model",
                                          value=kind.value)
                excluded = tuple(map(str, view.symbols.difference(names, sort=False)))
                return RiskFit(model, kind, tuple(failed), groups, excluded)
            except (KeelError, ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
                failed.append((kind.value, f"{type(exc).__name__}: {exc}"))
        raise ValidationError("every risk model of the chain failed: "
                              + "; ".join(f"{k}: {m}" for k, m in failed),
                              field="risk.fallback")

    # ------------------------------------------------------------------ construction

    def engine(self, name: str | None = None, kind: EngineKind | None = None) -> Engine:
        """A fresh engine (it keeps its compiled problem / holding ages between steps)."""
        o = self.config.optimize
        if kind is not None and kind is not o.engine:
            o = o.model_copy(update={"engine": kind})
        costs = (self.cost_model if o.engine is EngineKind.GREEDY
                 else self.optimizer_costs())
        return build_engine(name or o.engine.value, o, costs=costs,
                            period_days=self.period_days, holding=self.holding)

    def turnover_governor(self) -> TurnoverGovernor:
        o = self.config.optimize
        return TurnoverGovernor(o.max_turnover, o.annual_turnover,
                                o.turnover_funding is TurnoverFunding.EXEMPT,
                                budget=1.0 - o.cash_buffer)

    def universe(self, view: MarketData, risk: FactorCovariance) -> np.ndarray:
        """(N,) bool over ``view.symbols``: the names the engines may trade at ``view.now``:
        tradable by the point-in-time mask (:attr:`MarketData.tradable`: close and volume
        known over the last ``min_history`` sessions), covered by the fitted risk model, with
        a close, volatility and ADV at the last row. Every other name is pinned."""
        m = view.tradable.to_numpy()[-1].copy()
        m &= self.risk_cover(view.symbols, risk)
        for panel in ("prices", "volatility", "adv_notional"):
            m &= np.isfinite(getattr(view, panel).to_numpy()[-1])
        return np.asarray(m, dtype=bool)

    def risk_cover(self, symbols: pd.Index, risk: FactorCovariance) -> np.ndarray:
        """(N,) bool: ``symbols.isin(risk.symbols)``, computed once per risk model (an
        arrow-string ``isin`` costs ~5 ms at 468 names; the model changes at refits)."""
        c = self._risk_cover
        if c is None or c[0] is not risk or not (c[1] is symbols or c[1].equals(symbols)):
            cover = np.array(symbols.isin(risk.symbols), dtype=bool)
            cover.flags.writeable = False  # shared: read-only
            c = (risk, symbols, cover)
            self._risk_cover = c
        return c[2]

    def step(self, view: MarketData, now: pd.Timestamp, scores: pd.Series, alpha: pd.Series,
             current: np.ndarray, risk: FactorCovariance, ctx: TradeContext) -> Step:
        """The engines' input at ``now`` (everything from the one point-in-time ``view``).

        The step's ``tradable`` mask is :meth:`universe`, narrowed where a configured input
        is missing: without a beta under ``optimize.beta_min/beta_max`` (``NO_BETA``),
        without complete scenario returns for ``mean_cvar`` (``NO_SCENARIOS``); the engines'
        codes count them (``EXCLUDED_NO_BETA:<n>``). A tradable name no signal can score has
        zero alpha and a zero score (no view), counted as ``NO_SCORE_ZERO_ALPHA:<n>``.
        Nothing else is filled: names outside the mask are pinned by every engine. ``ctx``
        covers at least the universe (:meth:`trade_context` with ``symbols``)."""
        symbols = view.symbols
        o = self.config.optimize
        mask = self.universe(view, risk)
        excluded: dict[str, tuple[str, ...]] = {}

        def _drop(reason: str, ok: np.ndarray) -> None:
            out = mask & ~ok
            if out.any():
                excluded[f"EXCLUDED_{reason}"] = tuple(map(str, symbols[out]))
                mask[out] = False

        betas = None
        if o.beta_min is not None or o.beta_max is not None:
            betas = view.latest("betas").reindex(symbols).to_numpy(dtype=np.float64)
            _drop("NO_BETA", np.isfinite(betas))
        scen = None
        if o.engine is EngineKind.MEAN_CVAR:
            scen = view.returns.iloc[-self.config.risk.lookback_days:].to_numpy()
            _drop("NO_SCENARIOS", np.isfinite(scen).all(axis=0))
        a = alpha.reindex(symbols).to_numpy(dtype=np.float64)
        z = scores.reindex(symbols).to_numpy(dtype=np.float64)
        unscored = mask & ~(np.isfinite(a) & np.isfinite(z))
        if unscored.any():
            excluded["NO_SCORE_ZERO_ALPHA"] = tuple(map(str, symbols[unscored]))
        # no view on a tradable name no signal scores: alpha 0, score 0 (labelled above)
        a = np.where(mask & ~np.isfinite(a), 0.0, a)
        z = np.where(mask & ~np.isfinite(z), 0.0, z)
        return Step(now, symbols, a, z, np.asarray(current, dtype=np.float64), risk, ctx,
                    sectors=view.sectors, betas=betas, scenarios=scen, tradable=mask,
                    excluded=excluded)

    # ------------------------------------------------------------------ policy

    def build_policy(self) -> RebalancePolicy:
        """Triggers, gates and filters of ``[policy]`` (windows and the minute cooldown only
        live), plus the kill switch."""
        from keel.policy import triggers as tr

        p = self.config.policy
        cal = self.config.data.calendar
        rules: list[Any] = [tr.CalendarSchedule(tr.Frequency(p.frequency.value), calendar=cal)]
        if p.drift_band is not None:
            rules.append(tr.AbsoluteDrift(p.drift_band))
        if p.portfolio_drift is not None:
            rules.append(tr.PortfolioDrift(p.portfolio_drift))
        days = p.cooldown_sessions or None
        minutes = p.cooldown_minutes if self.live and p.cooldown_minutes > 0 else None
        if days is not None or minutes is not None:
            rules.append(tr.Cooldown(days=days, minutes=minutes, calendar=cal))
        if self.live and p.windows:
            rules.append(tr.TradingWindows(tuple(p.windows), width=p.window_minutes,
                                           calendar=cal))
        if p.vol_spike_ratio is not None:
            rules.append(tr.VolatilitySpike(p.vol_spike_ratio))
        if p.spread_blowout_ratio is not None:
            rules.append(tr.SpreadBlowout(p.spread_blowout_ratio))
        rules.append(self.kill_switch)
        return tr.RebalancePolicy(rules)

    def build_governance(self) -> GovernanceChain | None:
        """The ``[governance]`` chain (None when disabled). The participation cap of
        ``[execution]`` is applied to every parent order by :meth:`cap_participation`."""
        from keel.policy import rules as ru
        from keel.policy.governance import GovernanceChain

        g = self.config.governance
        if not g.enabled:
            return None
        chain: list[Any] = []
        if self.live and g.market_hours:
            chain.append(ru.MarketHours(self.config.data.calendar))
        if self.live:  # the cycle stamps each price; one older than 15 minutes is refused
            chain.append(ru.PriceFreshness())
        if g.regime_sizing:
            chain.append(ru.RegimeSizing())
        if g.vol_target is not None:
            chain.append(ru.VolatilityRegime(g.vol_target, g.vol_halt))
        chain.append(ru.Drawdown(g.drawdown_soft, g.drawdown_hard))
        chain.append(ru.PositionLimit(g.max_position))
        if g.sector_cap is not None:
            chain.append(ru.SectorConcentration(g.sector_cap))
        if g.cluster_cap is not None:
            chain.append(ru.CorrelationCluster(g.cluster_threshold, g.cluster_cap))
        chain.append(ru.MinTradeValue(to_money(g.min_trade_value)))
        return GovernanceChain(chain)

    # ------------------------------------------------------------------ execution

    def horizon_fraction(self) -> float:
        """Fraction of a session the schedule's horizon spans (1: to the close)."""
        h = self.config.execution.horizon_minutes
        return 1.0 if h is None else min(h / 390.0, 1.0)

    def cap_participation(self, trade_shares: np.ndarray, adv_shares: np.ndarray
                          ) -> tuple[np.ndarray, int]:
        """Trades clipped to ``execution.max_participation`` of the volume expected over the
        horizon; returns (clipped, how many were clipped). A name without ADV is not
        traded (no silent guess at its liquidity)."""
        cap = self.config.execution.max_participation * self.horizon_fraction() * np.nan_to_num(
            np.asarray(adv_shares, dtype=np.float64), nan=0.0)
        t = np.asarray(trade_shares, dtype=np.float64)
        out = np.sign(t) * np.minimum(np.abs(t), cap)
        return out, int(np.sum(np.abs(out) < np.abs(t) - 1e-9))

    def algo_for(self, participation: float) -> ExecutionAlgo:
        """The schedule of a parent taking ``participation`` of ADV."""
        e = self.config.execution
        if e.is_above_adv is not None and np.isfinite(participation) \
                and participation > e.is_above_adv:
            return ExecutionAlgo.IS
        return e.algo

    def schedule_config(self) -> Any:
        from keel.execution.schedule import ScheduleConfig

        e = self.config.execution
        horizon = None if e.horizon_minutes is None else timedelta(minutes=e.horizon_minutes)
        return ScheduleConfig(n_slices=e.slices, horizon=horizon)

    def limit_price(self, side_sign: int, price: float) -> Decimal | None:
        """A child's limit price ``limit_offset_bps`` through the mid (None: market)."""
        off = self.config.execution.limit_offset_bps
        if off is None:
            return None
        return to_price(price * (1.0 + side_sign * off * 1e-4))


def drawdown(equity: np.ndarray | list[float]) -> float:
    """Current drawdown from the peak of an equity history (fraction in [0, 1])."""
    e = np.asarray(equity, dtype=np.float64)
    e = e[np.isfinite(e)]
    if e.size == 0:
        return 0.0
    peak = float(e.max())
    return float(min(max(1.0 - e[-1] / peak, 0.0), 1.0)) if peak > 0 else 0.0

