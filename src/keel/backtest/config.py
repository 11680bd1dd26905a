"""Backtest configuration: frozen pydantic models read from TOML; unknown keys are refused.

Every error names the dotted key (``strategies.0.risk_aversion``) and the file, as
:func:`keel.config.load_config` does for the application config. The config is stored with
every result (``BacktestResult.config``) and in the store's ``runs`` table.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from keel.config import EngineKind as StrategyKind
from keel.config import config_error, read_toml
from keel.errors import ConfigError
from keel.policy.triggers import Frequency


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class DataKind(StrEnum):
    SYNTHETIC = "synthetic"
    CSV = "csv"


class RiskKind(StrEnum):
    STATISTICAL = "statistical"
    FUNDAMENTAL = "fundamental"


class LedgerMode(StrEnum):
    """``fills``: a float book drives the loop and every simulated fill (and holding cost) is
    also booked in a Decimal :class:`~keel.portfolio.ledger.Ledger`, reconciled at the end;
    ``none``: float book only (the fast path for daily runs)."""

    FILLS = "fills"
    NONE = "none"


class DataSection(_Section):
    """Where the prices come from."""

    source: DataKind = DataKind.SYNTHETIC
    path: str | None = Field(None, description="long daily price file (csv/csv.gz)")
    sectors: str | None = Field(None, description="symbol -> sector file")
    n_assets: int = Field(100, ge=5, description="synthetic: number of names")
    n_days: int = Field(756, ge=60, description="synthetic: number of sessions")
    max_assets: int | None = Field(None, ge=5, description="keep the first N symbols")
    on_missing: str = "drop"
    default_spread_bps: float = Field(5.0, ge=0, description="where the market has no spread")
    spread_estimate: bool = Field(True, description="csv: use the Abdi-Ranaldo spread "
                                  "estimate from high/low/close (else default_spread_bps)")


class SignalSection(_Section):
    weights: dict[str, float] = Field(
        default_factory=lambda: {"momentum_12_1": 0.5, "short_term_reversal": 0.25,
                                 "low_volatility": 0.25})
    ic: float = Field(0.05, description="information coefficient for Grinold alpha")


class RiskSection(_Section):
    model: RiskKind = RiskKind.STATISTICAL
    n_factors: int = Field(10, ge=1, description="statistical model: K")
    window: int = Field(252, ge=20, description="returns used per fit, sessions")
    refit_every: int = Field(21, ge=1, description="refit cadence, sessions")


class CostSection(_Section):
    spread_fraction: float = Field(1.0, ge=0, description="fraction of the half-spread paid")
    commission_per_share: float = Field(0.005, ge=0)
    commission_bps: float = Field(0.0, ge=0)
    impact_y: float = Field(1.0, ge=0, description="square-root impact constant (0: off)")
    borrow_bps: float = Field(50.0, ge=0, description="annual borrow fee on shorts, bps")
    cash_rate: float = Field(0.02, description="annual interest on cash (fraction)")
    margin_rate: float = Field(0.04, description="annual interest paid on negative cash")


class ExecutionSection(_Section):
    algos: list[str] = Field(default_factory=lambda: ["twap"],
                             description="close, market, twap, vwap, is")
    n_slices: int = Field(13, ge=1)
    is_urgency: float = Field(1.0, ge=0)


class PolicySection(_Section):
    frequency: Frequency = Frequency.MONTHLY
    drift: float | None = Field(None, gt=0, description="also trade when any |w - target| > drift")


class GovernanceSection(_Section):
    enabled: bool = False
    max_position: float = Field(0.10, gt=0, description="PositionLimit, fraction of NAV")
    max_participation: float = Field(0.10, gt=0, description="LiquidityParticipation, of ADV")
    min_trade_value: float = Field(1.0, ge=0, description="MinTradeValue, currency")


class StrategySection(_Section):
    name: str
    kind: StrategyKind
    risk_aversion: float = Field(5.0, ge=0)
    max_weight: float = Field(0.05, gt=0)
    long_only: bool = True
    max_turnover: float | None = Field(None, gt=0)
    cost_aversion: float = Field(1.0, ge=0, description="scale of the optimizer's cost term")
    impact_aware: bool = Field(False, description="mean-variance: square-root impact in the "
                               "objective too (CVXPY path, recompiled each rebalance)")
    k: int = Field(20, ge=1, description="greedy: names held")
    fail_on: str | None = Field(None, description="testing: ISO date at which to raise")


class BacktestSection(_Section):
    nav: float = Field(1e8, gt=0)
    warmup: int = Field(260, ge=30, description="sessions before the first decision")
    start: str | None = None
    end: str | None = None
    ledger: LedgerMode = LedgerMode.FILLS


class OutputSection(_Section):
    dir: str = "backtest_out"
    report: bool = True
    mlflow: bool = False
    mlflow_uri: str | None = Field(None, description="default: file store under dir/mlruns")
    store_url: str | None = Field(None, description="record the run in this store's runs table")


class SweepSection(_Section):
    grid: dict[str, list[Any]] = Field(default_factory=dict,
                                       description="dotted key -> values")
    workers: int = Field(2, ge=1)


def _default_strategies() -> list[StrategySection]:
    return [StrategySection(name="mean_variance", kind=StrategyKind.MEAN_VARIANCE),
            StrategySection(name="equal_weight", kind=StrategyKind.EQUAL_WEIGHT)]


class BacktestConfig(_Section):
    """The whole backtest (one TOML file)."""

    name: str = "backtest"
    seed: int = 0
    data: DataSection = DataSection()
    signals: SignalSection = SignalSection()
    risk: RiskSection = RiskSection()
    costs: CostSection = CostSection()
    execution: ExecutionSection = ExecutionSection()
    policy: PolicySection = PolicySection()
    governance: GovernanceSection = GovernanceSection()
    strategies: list[StrategySection] = Field(default_factory=_default_strategies)
    backtest: BacktestSection = BacktestSection()
    output: OutputSection = OutputSection()
    sweep: SweepSection = SweepSection()

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (stored with the result)."""
        return self.model_dump(mode="json")


def parse_config(data: dict[str, Any], source: str = "<dict>") -> BacktestConfig:
    """Validate a dict into a :class:`BacktestConfig`.

    Raises:
        ConfigError: unknown key or invalid value; ``field`` is the dotted key.
    """
    try:
        cfg = BacktestConfig(**data)
    except pydantic.ValidationError as exc:
        raise config_error(exc, source) from None
    names = [s.name for s in cfg.strategies]
    if len(set(names)) != len(names):
        raise ConfigError("strategy names must be unique", field="strategies", value=names,
                          file=source)
    if not cfg.strategies:
        raise ConfigError("at least one strategy", field="strategies", file=source)
    return cfg


def load_backtest_config(path: str | Path) -> BacktestConfig:
    """Read a TOML file into a :class:`BacktestConfig` (see :func:`parse_config`)."""
    return parse_config(read_toml(path), str(path))


def with_overrides(cfg: BacktestConfig, overrides: dict[str, Any]) -> BacktestConfig:
    """A copy with dotted keys replaced (``{"risk.n_factors": 5, "strategies.0.k": 10}``)."""
    data = cfg.as_dict()
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
    return parse_config(data, "<sweep>")
