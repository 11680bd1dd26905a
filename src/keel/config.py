"""The one keel configuration: a frozen, typed schema read from TOML, ``KEEL_*`` overrides.

One file drives ``keel backtest``, ``keel demo``, ``keel run``, ``keel optimize`` and
``keel serve``; the desk pipeline (:mod:`keel.app.pipeline`) is built from it once.

Precedence (highest first): environment variables ``KEEL_<SECTION>__<KEY>`` (for example
``KEEL_OPTIMIZE__MAX_TURNOVER``), then the TOML file, then the defaults below. Unknown keys
anywhere are refused with a :class:`~keel.errors.ConfigError` naming the dotted key and the
file; a key of an older schema is refused with the name of the key that replaced it
(:data:`RENAMED`). Every key is documented in ``docs/configuration.md`` (generated from the
models by :func:`config_markdown`).

Side-by-side backtest books are ``[[backtest.books]]`` entries: a name plus ``optimize`` and
``execution`` tables overriding those sections of this one config (:func:`book_configs`).
"""

from __future__ import annotations

import math
import tomllib
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from keel.data.spreads import SpreadFallback, SpreadSource
from keel.errors import ConfigError
from keel.policy.triggers import Frequency


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


# --------------------------------------------------------------------------- choices


class MissingPolicy(StrEnum):
    """What to do with missing values in loaded data."""

    RAISE = "raise"
    DROP = "drop"
    FFILL = "ffill"
    #: keep holes as NaN; ``MarketData.tradable`` says per date which names can trade.
    MASK = "mask"


class DataSource(StrEnum):
    SYNTHETIC = "synthetic"
    CSV = "csv"
    PARQUET = "parquet"


class SignalSource(StrEnum):
    BUILTIN = "builtin"
    FILE = "file"


class RiskModelKind(StrEnum):
    FUNDAMENTAL = "fundamental"
    PCA = "pca"
    LEDOIT_WOLF = "lw"
    SAMPLE = "sample"
    EWMA = "ewma"


class EngineKind(StrEnum):
    MEAN_VARIANCE = "mean_variance"
    MEAN_CVAR = "mean_cvar"
    GREEDY = "greedy"
    RISK_PARITY = "risk_parity"
    EQUAL_WEIGHT = "equal_weight"
    MPO = "mpo"


class ViewSource(StrEnum):
    """Black-Litterman views from the signals layer (``docs/construction.md``)."""

    #: no views: the engines take the signals' alpha as it is
    NONE = "none"
    #: one absolute view per name in the top and bottom ``bl_quantile`` of the score
    ABSOLUTE = "absolute"
    #: one relative view: the top ``bl_quantile`` outperforms the bottom one
    RELATIVE = "relative"


class TurnoverFunding(StrEnum):
    """How a turnover cap treats money coming in from cash (``docs/configuration.md``)."""

    #: buying with idle cash (up to the budget) is not turnover: only rotation is capped
    EXEMPT = "exempt"
    #: every trade counts: a book starting from cash is funded over several rebalances
    SPREAD = "spread"


class ExecutionAlgo(StrEnum):
    TWAP = "twap"
    VWAP = "vwap"
    IS = "is"
    POV = "pov"
    MARKET = "market"


class VenueKind(StrEnum):
    LOCAL = "local"
    FIX = "fix"
    REST = "rest"


class LedgerMode(StrEnum):
    """``fills``: every simulated fill is also booked in a Decimal ledger, reconciled at the
    end; ``none``: float book only (the fast path)."""

    FILLS = "fills"
    NONE = "none"


class ExecutionLag(StrEnum):
    """When a backtest decision made on data up to close t is executed."""

    #: from the next session (its open, or the algorithm's slices through that session)
    NEXT_SESSION = "next_session"
    #: at the decision close itself (opt-in; labelled in the report)
    SAME_CLOSE = "same_close"


# --------------------------------------------------------------------------- sections


class LotMethod(StrEnum):
    """Which tax lots a sale relieves first (:mod:`keel.accounts.tax`)."""

    FIFO = "fifo"
    HIFO = "hifo"
    SPECIFIC = "specific"


class WashSalePolicy(StrEnum):
    """What a loss sale inside a wash-sale window does: ``block`` (not made) or ``flag``."""

    BLOCK = "block"
    FLAG = "flag"


class GeneralConfig(_Section):
    """Run-wide settings."""

    name: str = Field("keel", min_length=1, description="Name of the run (reports, store).")
    seed: int = Field(7, description="Seed of every random generator in a run.")
    out_dir: Path = Field(Path("keel-out"), description="Where runs write their outputs "
                          "(backtests under out_dir/backtest).")
    log_level: str = Field("INFO", description="Python logging level.")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"):
            raise ValueError("must be CRITICAL, ERROR, WARNING, INFO or DEBUG")
        return level


class DataConfig(_Section):
    """Where market data comes from."""

    source: DataSource = Field(DataSource.SYNTHETIC, description="synthetic, csv or parquet.")
    prices_path: Path | None = Field(None, description="Long daily price file (date, open, "
                                     "high, low, close, volume, Name); relative paths from "
                                     "the working directory, else the config's folder.")
    sectors_path: Path | None = Field(None, description="Symbol -> sector file.")
    spreads_path: Path | None = Field(None, description="Quoted spreads of a file source: a "
                                      "wide file (date, then one column per symbol; full "
                                      "bid-ask spread as a fraction of mid, NaN where "
                                      "unknown), read when costs.spread_source = quotes.")
    n_assets: int = Field(100, gt=0, description="Synthetic market: number of assets.")
    n_days: int = Field(756, gt=1, description="Synthetic market: number of sessions.")
    start: str = Field("2021-01-04", description="Synthetic market: first session (ISO date).")
    calendar: str = Field("XNYS", description="Exchange calendar name.")
    on_missing: MissingPolicy = Field(MissingPolicy.RAISE, description="raise, drop, ffill or "
                                      "mask (keep every name; the per-date tradable mask "
                                      "decides).")
    max_assets: int | None = Field(None, gt=0, description="Keep the first N symbols only.")


class SignalsConfig(_Section):
    """Scores and expected returns (the built-in blend, or a file of scores)."""

    source: SignalSource = Field(SignalSource.BUILTIN, description="builtin (momentum / "
                                 "reversal / low-volatility blend) or file.")
    path: Path | None = Field(None, description="Score file (date, symbol, score) when "
                              "source = file.")
    weights: dict[str, float] = Field(
        default_factory=lambda: {"momentum_12_1": 0.5, "short_term_reversal": 0.25,
                                 "low_volatility": 0.25},
        description="Blend weights of the built-in signals.")
    ic: float = Field(0.05, ge=0, le=1, description="Information coefficient turning "
                      "scores into expected returns (Grinold: alpha = ic x vol x z).")

    @model_validator(mode="after")
    def _file_needs_path(self) -> SignalsConfig:
        if self.source is SignalSource.FILE and self.path is None:
            raise ValueError("signals.path is required when source = 'file'")
        return self


class RiskConfig(_Section):
    """Risk model (with its fallback chain) and the risk limits watched on the book."""

    model: RiskModelKind = Field(RiskModelKind.FUNDAMENTAL, description="Risk model kind.")
    fallback: list[RiskModelKind] = Field(
        default_factory=lambda: [RiskModelKind.PCA, RiskModelKind.LEDOIT_WOLF],
        description="Models tried in order when a fit fails (the one used is named in "
                    "the result).")
    lookback_days: int = Field(504, gt=20, description="Sessions of history used per fit.")
    n_pca_factors: int = Field(10, gt=0, description="Factors of the PCA model (and the rank "
                               "dense models are factored to).")
    ewma_lambda: float = Field(0.94, gt=0, lt=1, description="Decay of the ewma model.")
    refit_every: int = Field(21, ge=1, description="Refit cadence, sessions.")
    var_confidence: float = Field(0.95, gt=0.5, lt=1.0, description="VaR/CVaR confidence.")
    horizon_days: int = Field(21, gt=0, description="VaR/CVaR horizon in trading days.")
    var_budget: float | None = Field(None, gt=0, description="Limit: parametric VaR at "
                                     "var_confidence over horizon_days (loss fraction).")
    max_volatility: float | None = Field(None, gt=0, description="Limit: annualised "
                                         "predicted volatility of the book.")
    max_pairwise_correlation: float | None = Field(None, gt=0, le=1, description="Limit: "
                                                   "model correlation of two held names.")
    memory_budget_mb: float | None = Field(
        1024.0, gt=0, description="Estimated peak memory one model fit may take, MiB; a "
        "model above it is refused and the next of the fallback chain is tried (None: no cap).")


class OptimizeConfig(_Section):
    """Portfolio construction: engine, objective weights and every constraint."""

    engine: EngineKind = Field(EngineKind.MEAN_VARIANCE, description="Construction engine.")
    risk_aversion: float = Field(5.0, ge=0, description="Weight of variance (mean_variance) "
                                 "or CVaR (mean_cvar) in the objective.")
    cost_aversion: float = Field(1.0, ge=0, description="Weight of the transaction cost "
                                 "term (amortised over the rebalance period).")
    max_weight: float = Field(0.05, gt=0, le=1, description="Per-name cap, fraction of NAV.")
    long_only: bool = Field(True, description="Forbid short positions.")
    max_turnover: float | None = Field(None, gt=0, description="One-way turnover cap per "
                                       "rebalance, sum |trade| / NAV.")
    annual_turnover: float | None = Field(None, gt=0, description="Turnover budget per year "
                                          "(sum |trade| / NAV over 252 sessions), enforced "
                                          "across rebalances.")
    turnover_funding: TurnoverFunding = Field(
        TurnoverFunding.SPREAD, description="exempt: buying with idle cash is not capped; "
        "spread: every trade counts (a book from cash is funded over several rebalances).")
    sector_cap: float | None = Field(0.30, gt=0, le=1, description="Per-sector long weight "
                                     "cap.")
    beta_min: float | None = Field(None, description="Lower bound of the book's beta.")
    beta_max: float | None = Field(None, description="Upper bound of the book's beta.")
    max_trade_adv: float | None = Field(None, gt=0, description="Liquidity: a trade at most "
                                        "this fraction of the name's ADV.")
    cash_buffer: float = Field(0.0, ge=0, lt=1, description="Fraction of NAV kept in cash.")
    greedy_k: int = Field(20, ge=1, description="greedy: names held.")
    greedy_k_buy: int | None = Field(None, ge=1, description="greedy: buy inside the top "
                                     "k_buy (default 0.9 k).")
    greedy_k_sell: int | None = Field(None, ge=1, description="greedy: sell outside the top "
                                      "k_sell (default 1.2 k).")
    cvar_beta: float = Field(0.95, gt=0.5, lt=1, description="mean_cvar: CVaR level.")
    mpo_horizon: int = Field(5, ge=1, le=60, description="mpo: rebalance periods planned "
                             "(the first is traded; 1 equals mean_variance).")
    mpo_alpha_decay: float = Field(0.5, gt=0, le=1, description="mpo: alpha forecast of "
                                   "period h is alpha * decay^(h-1) (the signal's decay per "
                                   "rebalance period).")
    mpo_alpha_profile: list[float] | None = Field(
        None, description="mpo: the forecast multiplier of each period (length mpo_horizon, "
        "replaces the decay), e.g. [1, 0.8, 0.5].")
    bl_views: ViewSource = Field(ViewSource.NONE, description="Black-Litterman views from "
                                 "the signals (none, absolute, relative); the posterior "
                                 "returns replace the alpha of any engine.")
    bl_quantile: float = Field(0.2, gt=0, le=0.5, description="Black-Litterman: fraction of "
                               "names in the top (and bottom) view baskets.")
    bl_tau: float = Field(0.05, gt=0, description="Black-Litterman: uncertainty of the prior "
                          "mean relative to returns.")
    bl_confidence: float = Field(0.5, gt=0, le=1, description="Black-Litterman: view "
                                 "confidence (Idzorek) until the signal has a track record.")
    bl_min_track: int = Field(6, ge=2, description="Black-Litterman: realised rebalance "
                              "periods of the score's IC before the confidence comes from its "
                              "track record.")
    solver_time_limit_s: float | None = Field(
        10.0, gt=0, description="Wall seconds one solver attempt may take; a capped attempt "
        "moves to the next solver, then the book holds (None: the solver's default).")
    solver_max_iter: int | None = Field(
        None, ge=1, description="Iteration cap of one solver attempt (None: the solver's "
        "default).")

    @model_validator(mode="after")
    def _consistent(self) -> OptimizeConfig:
        if (self.beta_min is not None and self.beta_max is not None
                and self.beta_min > self.beta_max):
            raise ValueError("beta_min must be <= beta_max")
        k, kb, ks = self.greedy_k, self.greedy_k_buy, self.greedy_k_sell
        if kb is not None and kb > k:
            raise ValueError("greedy_k_buy must be <= greedy_k")
        if ks is not None and ks < k:
            raise ValueError("greedy_k_sell must be >= greedy_k")
        prof = self.mpo_alpha_profile
        if prof is not None:
            if len(prof) != self.mpo_horizon:
                raise ValueError("mpo_alpha_profile must have mpo_horizon entries")
            if not all(math.isfinite(x) and x >= 0 for x in prof):
                raise ValueError("mpo_alpha_profile entries must be finite and >= 0")
        return self


class CostsConfig(_Section):
    """The one cost model (optimizer, policy sizing, schedules, backtest, TCA, service)."""

    spread_source: SpreadSource = Field(
        SpreadSource.QUOTES, description="quotes (the data's quoted spreads: the synthetic "
        "market's, or data.spreads_path for a file; names without a quote take "
        "spread_fallback, labelled), estimate (the price-based Abdi-Ranaldo estimator for "
        "every name, labelled), or fixed (default_spread_bps everywhere).")
    spread_fallback: SpreadFallback = Field(
        SpreadFallback.FIXED, description="Under quotes, what stands in for a name without a "
        "quote: fixed (default_spread_bps), estimate (Abdi-Ranaldo from high/low/close: "
        "biased high for liquid names) or none (refused: every name needs a quote). The "
        "result, report and CLI say how many names use it.")
    default_spread_bps: float = Field(5.0, ge=0, description="Full spread, bps, where no "
                                      "spread is known (and everywhere when fixed).")
    spread_fraction: float = Field(1.0, ge=0, description="Fraction of the half-spread paid.")
    commission_bps: float = Field(0.5, ge=0, description="Commission, bps of notional.")
    commission_per_share: float = Field(0.0, ge=0, description="Commission, currency/share.")
    impact_coefficient: float = Field(1.0, ge=0, description="Y in Y*sigma*sqrt(Q/ADV) "
                                      "(0: no impact).")
    feedback: bool = Field(True, description="Learn the cost model's multipliers from fills "
                           "(TCA -> AdaptiveCost; persisted in the store, used from the next "
                           "cycle; the backtest learns from its simulated fills).")
    borrow_bps: float = Field(50.0, ge=0, description="Annual borrow fee on shorts, bps.")
    cash_rate: float = Field(0.02, description="Annual interest on cash (fraction).")
    margin_rate: float = Field(0.04, description="Annual interest paid on negative cash.")


class PolicyConfig(_Section):
    """When to trade: triggers, gates and filters."""

    frequency: Frequency = Field(Frequency.MONTHLY, description="Calendar rebalance.")
    drift_band: float | None = Field(0.05, gt=0, description="Also trade names whose "
                                     "|weight - target| >= band.")
    portfolio_drift: float | None = Field(None, gt=0, description="Also trade when "
                                          "sum |weight - target| >= this.")
    cooldown_sessions: int = Field(0, ge=0, description="Sessions to wait after a "
                                   "rebalance.")
    cooldown_minutes: float = Field(0.0, ge=0, description="Minutes to wait after a "
                                    "rebalance (intraday).")
    windows: list[str] = Field(default_factory=lambda: ["09:35", "10:30", "12:00", "14:30",
                                                        "15:50"],
                               description="Local HH:MM times (New York) when live trading "
                               "may start; empty: any time (the backtest decides at closes).")
    window_minutes: int = Field(5, gt=0, description="Minutes each window stays open.")
    vol_spike_ratio: float | None = Field(None, gt=1, description="Override: trade now when "
                                          "market vol / its usual level >= ratio.")
    spread_blowout_ratio: float | None = Field(None, gt=1, description="Filter: a name whose "
                                               "spread is ratio x its usual does not trade.")

    @field_validator("windows")
    @classmethod
    def _hhmm(cls, value: list[str]) -> list[str]:
        from datetime import time

        for v in value:
            try:
                time.fromisoformat(v)
            except ValueError:
                raise ValueError(f"window {v!r} is not HH:MM") from None
        return value


class GovernanceConfig(_Section):
    """Pre-trade governance rules on parent orders, and how cycle failures escalate."""

    enabled: bool = Field(True, description="Apply the governance chain.")
    market_hours: bool = Field(True, description="Reject orders while the exchange is "
                               "closed (live only; the backtest trades in session).")
    regime_sizing: bool = Field(False, description="Size risk-increasing orders by the "
                                "market regime (may upsize up to the position limit).")
    max_position: float = Field(0.10, gt=0, le=1, description="Position cap, fraction of "
                                "NAV.")
    sector_cap: float | None = Field(0.30, gt=0, le=1, description="Gross sector cap, "
                                     "fraction of NAV.")
    cluster_threshold: float = Field(0.7, gt=0, le=1, description="Correlation that forms a "
                                     "cluster.")
    cluster_cap: float | None = Field(None, gt=0, le=1, description="Gross cap per "
                                      "correlation cluster (None: off).")
    min_trade_value: float = Field(1.0, ge=0, description="Smallest order, currency.")
    drawdown_soft: float = Field(0.10, gt=0, lt=1, description="Drawdown where gross "
                                 "starts being cut.")
    drawdown_hard: float = Field(0.20, gt=0, lt=1, description="Drawdown where risk-"
                                 "increasing orders are refused.")
    vol_target: float | None = Field(None, gt=0, description="Scale risk-increasing orders "
                                     "when market vol exceeds this (annualised).")
    vol_halt: float = Field(0.60, gt=0, description="Refuse risk-increasing orders at this "
                            "market vol (with vol_target).")
    alert_after_failures: int = Field(1, ge=1, description="Consecutive failed cycles that "
                                      "raise an alert.")
    kill_after_failures: int | None = Field(3, ge=1, description="Consecutive failed cycles "
                                            "that engage the kill switch (None: never).")

    @model_validator(mode="after")
    def _ordered(self) -> GovernanceConfig:
        if self.drawdown_soft >= self.drawdown_hard:
            raise ValueError("drawdown_soft must be < drawdown_hard")
        return self


class ExecutionConfig(_Section):
    """How parent orders are worked."""

    algo: ExecutionAlgo = Field(ExecutionAlgo.VWAP, description="Default schedule.")
    slices: int = Field(13, gt=0, description="Child slices per parent order.")
    horizon_minutes: float | None = Field(None, gt=0, description="Schedule horizon (None: "
                                          "to the close).")
    is_above_adv: float | None = Field(0.002, gt=0, description="Parents above this "
                                       "fraction of ADV are worked with IS (None: never).")
    is_urgency: float = Field(1.0, ge=0, description="IS urgency (risk aversion knob).")
    max_participation: float = Field(0.05, gt=0, le=1, description="Largest fraction of the "
                                     "expected volume over the horizon a parent may take.")
    limit_offset_bps: float | None = Field(None, ge=0, description="Children as limit orders "
                                           "this far through the mid (None: market).")
    max_order_notional: float = Field(5_000_000.0, gt=0, description="Pre-trade cap, "
                                      "currency.")
    min_order_value: float = Field(1000.0, ge=0, description="Smallest parent order the "
                                   "rebalance sends, currency.")


class VenuesConfig(_Section):
    """Where orders go."""

    broker: VenueKind = Field(VenueKind.LOCAL, description="local (exchange in the "
                              "process), fix (a running keel exchange, REST fallback) or "
                              "rest.")
    fix_host: str = Field("127.0.0.1", description="FIX acceptor host.")
    fix_port: int = Field(9878, gt=0, lt=65536, description="FIX acceptor port.")
    sender_comp_id: str = Field("KEEL", description="Our FIX SenderCompID.")
    target_comp_id: str = Field("KEELX", description="The venue's FIX CompID.")
    rest_url: str = Field("http://127.0.0.1:9880", description="REST venue base URL.")


class StoreConfig(_Section):
    """The database that persists orders, fills, ledger and FIX state."""

    url: str = Field("sqlite:///keel-out/keel.db",
                     description="SQLAlchemy URL: SQLite file by default, PostgreSQL by URL.")
    echo: bool = Field(False, description="Log every SQL statement.")


class ServiceConfig(_Section):
    """The HTTP service (`keel serve`)."""

    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(8000, gt=0, lt=65536, description="Bind port.")
    api_token: str | None = Field(None, description="Bearer token for write endpoints "
                                  "(and reads when bound beyond localhost); prefer "
                                  "token_file or the environment.")
    token_file: Path | None = Field(None, description="File holding the API token (first "
                                    "line; must not be readable by group or others).")
    allowed_hosts: list[str] | None = Field(
        None, description="Host headers served; None: the loopback names and the bind "
        "address; [\"*\"]: any (behind a proxy or a Kubernetes Service).")


class BookConfig(_Section):
    """One side-by-side backtest book: overrides of ``[optimize]`` and ``[execution]``."""

    name: str = Field(min_length=1, description="Book name.")
    optimize: dict[str, Any] = Field(default_factory=dict,
                                     description="[optimize] keys this book overrides.")
    execution: dict[str, Any] = Field(default_factory=dict,
                                      description="[execution] keys this book overrides.")


class SweepConfig(_Section):
    """A grid of backtests (``keel sweep``)."""

    grid: dict[str, list[Any]] = Field(default_factory=dict, description="Dotted key -> "
                                       "values (e.g. optimize.risk_aversion).")
    workers: int = Field(2, ge=1, description="Parallel workers.")


class BacktestConfig(_Section):
    """The multi-period simulation (`keel backtest`, `keel sweep`)."""

    nav: float = Field(1e8, gt=0, description="Starting NAV, currency.")
    warmup: int = Field(260, ge=30, description="Sessions before the first decision.")
    start: str | None = Field(None, description="First decision date (ISO).")
    end: str | None = Field(None, description="Last date (ISO).")
    ledger: LedgerMode = Field(LedgerMode.FILLS, description="fills or none.")
    execution_lag: ExecutionLag = Field(
        ExecutionLag.NEXT_SESSION, description="next_session (decide at close t, trade "
        "through session t+1) or same_close (opt-in, labelled in the report).")
    report: bool = Field(True, description="Write report.html.")
    books: list[BookConfig] = Field(default_factory=list, description="Books side by side "
                                    "([[backtest.books]]); none: one book from the config.")
    sweep: SweepConfig = Field(default_factory=SweepConfig, description="[backtest.sweep].")

    @model_validator(mode="after")
    def _unique_books(self) -> BacktestConfig:
        names = [b.name for b in self.books]
        if len(set(names)) != len(names):
            raise ValueError(f"book names must be unique: {names}")
        return self


class TrackingConfig(_Section):
    """Where runs are recorded besides their output folder."""

    record_runs: bool = Field(True, description="Record backtests in the store's runs table "
                              "(store.url).")
    mlflow: bool = Field(False, description="Log backtests to MLflow.")
    mlflow_uri: str | None = Field(None, description="MLflow tracking URI (default: a file "
                                   "store under the output folder).")


class AccountsConfig(_Section):
    """Separately managed accounts (`keel accounts`): the batch rebalance and its tax rules."""

    workers: int = Field(2, ge=1, description="Local worker processes of the batch "
                         "rebalance (1: in this process).")
    chunk_size: int = Field(250, ge=1, description="Accounts per task sent to a worker.")
    ray_address: str | None = Field(None, description="Ray cluster address for "
                                    "`--ray` (ray.init(address=...); None: a local Ray).")
    tracking_aversion: float = Field(100.0, gt=0, description="Weight of the annualised "
                                     "tracking variance against the model, versus the tax "
                                     "cost (fractions of NAV).")
    short_term_rate: float = Field(0.37, ge=0, le=1, description="Tax rate on short-term "
                                   "gains (held one year or less).")
    long_term_rate: float = Field(0.20, ge=0, le=1, description="Tax rate on long-term "
                                  "gains (held more than one year).")
    lot_method: LotMethod = Field(LotMethod.HIFO, description="Lots a sale relieves first.")
    wash_sale: WashSalePolicy = Field(WashSalePolicy.BLOCK, description="A loss sale with "
                                      "a buy of the symbol within 30 days: block or flag.")


SECTIONS: dict[str, type[_Section]] = {
    "general": GeneralConfig, "data": DataConfig, "signals": SignalsConfig,
    "risk": RiskConfig, "optimize": OptimizeConfig, "costs": CostsConfig,
    "policy": PolicyConfig, "governance": GovernanceConfig, "execution": ExecutionConfig,
    "venues": VenuesConfig, "store": StoreConfig, "service": ServiceConfig,
    "backtest": BacktestConfig, "tracking": TrackingConfig, "accounts": AccountsConfig,
}


class KeelConfig(BaseSettings):
    """The whole configuration (one TOML file, one section per table)."""

    model_config = SettingsConfigDict(env_prefix="KEEL_", env_nested_delimiter="__",
                                      extra="forbid", frozen=True)

    general: GeneralConfig = GeneralConfig()
    data: DataConfig = DataConfig()
    signals: SignalsConfig = SignalsConfig()
    risk: RiskConfig = RiskConfig()
    optimize: OptimizeConfig = OptimizeConfig()
    costs: CostsConfig = CostsConfig()
    policy: PolicyConfig = PolicyConfig()
    governance: GovernanceConfig = GovernanceConfig()
    execution: ExecutionConfig = ExecutionConfig()
    venues: VenuesConfig = VenuesConfig()
    store: StoreConfig = StoreConfig()
    service: ServiceConfig = ServiceConfig()
    backtest: BacktestConfig = BacktestConfig()
    tracking: TrackingConfig = TrackingConfig()
    accounts: AccountsConfig = AccountsConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file contents (passed as init kwargs by load_config).
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _books_valid(self) -> KeelConfig:
        for i, b in enumerate(self.backtest.books):
            for sec in ("optimize", "execution"):
                over = getattr(b, sec)
                model = SECTIONS[sec]
                try:
                    model.model_validate({**getattr(self, sec).model_dump(), **over})
                except pydantic.ValidationError as exc:
                    err = exc.errors()[0]
                    key = ".".join(str(p) for p in err["loc"])
                    raise ValueError(f"backtest.books.{i}.{sec}.{key}: {err['msg']}") from None
        return self


# --------------------------------------------------------------------------- migration

#: keys of the older schemas (the backtest TOML, the optimize CLI's TOML and old app keys)
#: -> the key that replaced them
RENAMED: dict[str, str] = {
    "name": "general.name", "seed": "general.seed",
    "strategies": "backtest.books", "output": "backtest / tracking",
    "output.dir": "general.out_dir", "output.report": "backtest.report",
    "output.mlflow": "tracking.mlflow", "output.mlflow_uri": "tracking.mlflow_uri",
    "output.store_url": "tracking.record_runs (with store.url)",
    "sweep": "backtest.sweep", "inputs": "data / signals (keel optimize reads the one config)",
    "inputs.alpha": "signals.path (source = 'file')", "inputs.prices": "data.prices_path",
    "inputs.holdings": "keel optimize --holdings", "inputs.lookback": "risk.lookback_days",
    "optimizer": "optimize", "optimizer.kind": "optimize.engine",
    "constraints": "optimize (max_weight, long_only, sector_cap, max_turnover, beta_min, "
                   "beta_max, max_trade_adv, cash_buffer)",
    "data.path": "data.prices_path", "data.sectors": "data.sectors_path",
    "data.spread_estimate": "costs.spread_source", "data.default_spread_bps":
        "costs.default_spread_bps",
    "risk.window": "risk.lookback_days", "risk.n_factors": "risk.n_pca_factors",
    "risk.lookback": "risk.lookback_days",
    "costs.impact_y": "costs.impact_coefficient", "costs.spread": "costs.spread_source",
    "costs.default_spread": "costs.default_spread_bps",
    "execution.algos": "execution.algo (one per [[backtest.books]] entry)",
    "execution.n_slices": "execution.slices",
    "policy.drift": "policy.drift_band",
    "governance.max_participation": "execution.max_participation",
    "optimize.sector_caps": "optimize.sector_cap",
}

#: values of the older schemas -> the value that replaced them, per dotted key
RENAMED_VALUES: dict[tuple[str, str], str] = {
    ("risk.model", "statistical"): "pca", ("risk.model", "ledoit_wolf"): "lw",
    ("data.on_missing", "none"): "raise",
}


def _legacy_key(data: dict[str, Any]) -> tuple[str, str] | None:
    """The most specific (old key, new key) found in ``data``, else None."""
    for key, new in sorted(RENAMED.items(), key=lambda kv: -kv[0].count(".")):
        node: Any = data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            return key, new
    for (key, old), new in RENAMED_VALUES.items():
        sec, k = key.split(".")
        if isinstance(data.get(sec), dict) and data[sec].get(k) == old:
            return f"{key} = {old!r}", f"{key} = {new!r}"
    return None


# --------------------------------------------------------------------------- reading


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; ``ConfigError`` naming the file if missing, unreadable or bad TOML."""
    source = str(path)
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("config file not found", file=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc}", file=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=source) from None


def config_error(exc: pydantic.ValidationError, source: str) -> ConfigError:
    """The ``ConfigError`` for a pydantic validation failure: the dotted key, value and file."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"])
    if msg.startswith("Value error, backtest.books."):  # a book override: its own dotted key
        key, _, msg = msg.removeprefix("Value error, ").partition(": ")
    if err["type"] == "extra_forbidden":
        return ConfigError("unknown configuration key", field=key, file=source)
    return ConfigError(f"invalid configuration value: {msg}", field=key,
                       value=err.get("input"), file=source)


def _resolve_paths(data: dict[str, Any], base: Path | None) -> None:
    """Relative file paths: as given when they exist from the working directory, else from
    the config file's folder (so an example runs from the repo root or its own folder)."""
    if base is None:
        return
    for sec, key in (("data", "prices_path"), ("data", "sectors_path"), ("signals", "path")):
        table = data.get(sec)
        if isinstance(table, dict) and isinstance(table.get(key), str):
            p = Path(table[key])
            if not p.is_absolute() and not p.exists() and (base / p).exists():
                table[key] = str(base / p)


def parse_config(data: dict[str, Any], source: str = "<dict>",
                 base: Path | None = None) -> KeelConfig:
    """Validate a dict (the TOML tables) into a :class:`KeelConfig` (environment on top).

    Raises:
        ConfigError: a key of an older schema (naming the new key), an unknown key or an
            invalid value (naming the dotted key and ``source``).
    """
    legacy = _legacy_key(data)
    if legacy is not None:
        raise ConfigError(f"{legacy[0]} is an old key: use {legacy[1]} "
                          "(see docs/configuration.md)", field=legacy[0], file=source)
    _resolve_paths(data, base)
    try:
        return KeelConfig(**data)
    except pydantic.ValidationError as exc:
        raise config_error(exc, source) from None


def load_config(path: str | Path | None = None, **overrides: Any) -> KeelConfig:
    """Read ``path`` (TOML) into a :class:`KeelConfig`, with ``KEEL_*`` variables on top.

    Args:
        path: TOML file; ``None`` gives the defaults (plus environment overrides).
        **overrides: section dicts merged over the file (lower precedence than the environment).

    Raises:
        ConfigError: unreadable file, bad TOML, old or unknown key, invalid value (names the
            key and the file).
    """
    source = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = read_toml(path) if path is not None else {}
    for section, values in overrides.items():
        merged = dict(data.get(section, {}))
        merged.update(values)
        data[section] = merged
    base = Path(path).resolve().parent if path is not None else None
    return parse_config(data, source, base)


def config_as_dict(config: KeelConfig) -> dict[str, Any]:
    """JSON-friendly dict of a config (stored with every run and backtest result)."""
    return config.model_dump(mode="json")


def with_overrides(config: KeelConfig, overrides: dict[str, Any]) -> KeelConfig:
    """A copy with dotted keys replaced (``{"optimize.risk_aversion": 2.0,
    "backtest.books.0.optimize.greedy_k": 10}``); validated like a file."""
    data = config_as_dict(config)
    for key, value in overrides.items():
        node: Any = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return _validated(data, "<overrides>")


def _validated(data: dict[str, Any], source: str) -> KeelConfig:
    """Validate without the environment (the data already holds the effective values)."""
    try:
        return KeelConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        raise config_error(exc, source) from None


def book_configs(config: KeelConfig) -> list[tuple[str, KeelConfig]]:
    """(name, effective config) of each backtest book: ``[[backtest.books]]`` entries with
    their overrides applied, or one book named after the engine."""
    if not config.backtest.books:
        return [(config.optimize.engine.value, config)]
    out = []
    for b in config.backtest.books:
        update = {sec: getattr(config, sec).model_validate(
            {**getattr(config, sec).model_dump(), **getattr(b, sec)})
            for sec in ("optimize", "execution")}
        out.append((b.name, config.model_copy(update=update)))
    return out


# --------------------------------------------------------------------------- reference


def iter_leaves() -> list[tuple[str, str, Any]]:
    """(section, key, pydantic FieldInfo) of every key of :class:`KeelConfig`."""
    rows = []
    for section, finfo in KeelConfig.model_fields.items():
        model = finfo.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        for key, f in model.model_fields.items():
            rows.append((section, key, f))
    return rows


def describe_config() -> list[tuple[str, str, str, str, str]]:
    """(section, key, type, default, description) for every key of :class:`KeelConfig`."""
    rows: list[tuple[str, str, str, str, str]] = []
    for section, key, f in iter_leaves():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, Enum):
            tname = " | ".join(str(m.value) for m in ann)
        elif isinstance(ann, type):
            tname = ann.__name__
        else:
            tname = (str(ann).replace("typing.", "").replace("pathlib.", "")
                     .replace("keel.config.", ""))
        if f.default_factory is not None:
            default: Any = f.default_factory()  # type: ignore[call-arg]
        else:
            default = f.default
        if isinstance(default, Enum):
            default = default.value
        elif isinstance(default, Path):
            default = str(default)
        elif isinstance(default, list):
            default = [d.value if isinstance(d, Enum) else d for d in default]
        elif isinstance(default, BaseModel):
            default = default.model_dump(mode="json")
        rows.append((section, key, tname.replace("|", "\\|"), repr(default),
                     f.description or ""))
    return rows


def config_markdown() -> str:
    """The reference part of ``docs/configuration.md``, generated from the models."""
    lines: list[str] = []
    current = None
    for section, key, tname, default, desc in describe_config():
        if section != current:
            doc = (KeelConfig.model_fields[section].annotation.__doc__ or "").strip()
            lines += ["", f"### `[{section}]`", "", doc, "",
                      "| key | type | default | meaning |", "|---|---|---|---|"]
            current = section
        env = f"KEEL_{section.upper()}__{key.upper()}"
        lines.append(f"| `{key}` | {tname} | `{default}` | {desc} (env `{env}`) |")
    return "\n".join(lines).lstrip("\n") + "\n"
