"""Application configuration: frozen pydantic-settings models read from TOML, ``KEEL_*`` overrides.

Precedence (highest first): environment variables ``KEEL_<SECTION>__<KEY>`` (for example
``KEEL_STORE__URL``), then the TOML file, then the defaults below. Unknown keys anywhere are
refused with a :class:`~keel.errors.ConfigError` that names the key and the file. Every section
is documented in ``docs/configuration.md``.

Components keep their own small frozen configs (constructor arguments of estimators, cost
models, rules); this module only holds what the application wires together.
"""

from __future__ import annotations

import tomllib
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from keel.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


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


class GeneralConfig(_Section):
    """Run-wide settings."""

    seed: int = Field(7, description="Seed of every random generator in a run.")
    out_dir: Path = Field(Path("keel-out"), description="Where runs write their outputs.")
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
    prices_path: Path | None = Field(None, description="Price file (csv/parquet sources).")
    sectors_path: Path | None = Field(None, description="Symbol -> sector file.")
    n_assets: int = Field(100, gt=0, description="Synthetic market: number of assets.")
    n_days: int = Field(756, gt=1, description="Synthetic market: number of sessions.")
    start: str = Field("2021-01-04", description="Synthetic market: first session (ISO date).")
    calendar: str = Field("XNYS", description="Exchange calendar name.")
    on_missing: MissingPolicy = Field(MissingPolicy.RAISE, description="raise, drop or ffill.")


class StoreConfig(_Section):
    """The database that persists orders, fills, ledger and FIX state."""

    url: str = Field("sqlite:///keel-out/keel.db",
                     description="SQLAlchemy URL: SQLite file by default, PostgreSQL by URL.")
    echo: bool = Field(False, description="Log every SQL statement.")


class RiskModelKind(StrEnum):
    FUNDAMENTAL = "fundamental"
    PCA = "pca"
    LEDOIT_WOLF = "lw"
    SAMPLE = "sample"
    EWMA = "ewma"


class RiskConfig(_Section):
    """Risk model used by the pipeline."""

    model: RiskModelKind = Field(RiskModelKind.FUNDAMENTAL, description="Risk model kind.")
    lookback_days: int = Field(504, gt=20, description="History used to fit the model.")
    n_pca_factors: int = Field(10, gt=0, description="Factors of the PCA model.")
    var_confidence: float = Field(0.95, gt=0.5, lt=1.0, description="VaR/CVaR confidence.")
    horizon_days: int = Field(21, gt=0, description="VaR/CVaR horizon in trading days.")


class EngineKind(StrEnum):
    MEAN_VARIANCE = "mean_variance"
    GREEDY = "greedy"
    RISK_PARITY = "risk_parity"
    EQUAL_WEIGHT = "equal_weight"


class OptimizeConfig(_Section):
    """Portfolio construction."""

    engine: EngineKind = Field(EngineKind.MEAN_VARIANCE, description="Construction engine.")
    risk_aversion: float = Field(5.0, ge=0, description="Weight of variance in the objective.")
    max_weight: float = Field(0.05, gt=0, le=1, description="Per-name cap, fraction of NAV.")
    long_only: bool = Field(True, description="Forbid short positions.")
    max_turnover: float | None = Field(None, gt=0, description="One-way turnover cap per cycle.")
    sector_cap: float | None = Field(0.30, gt=0, le=1, description="Per-sector weight cap.")


class CostsConfig(_Section):
    """Transaction cost model charged by optimizer, backtest and TCA."""

    commission_bps: float = Field(0.5, ge=0, description="Commission, bps of notional.")
    commission_per_share: float = Field(0.0, ge=0, description="Commission, currency/share.")
    impact_coefficient: float = Field(1.0, ge=0, description="Y in Y*sigma*sqrt(Q/ADV).")


class ExecutionAlgo(StrEnum):
    TWAP = "twap"
    VWAP = "vwap"
    IS = "is"
    POV = "pov"
    MARKET = "market"


class ExecutionConfig(_Section):
    """How parent orders are worked."""

    algo: ExecutionAlgo = Field(ExecutionAlgo.VWAP, description="Default schedule.")
    slices: int = Field(13, gt=0, description="Child slices per parent order.")
    max_order_notional: float = Field(5_000_000.0, gt=0, description="Pre-trade cap, currency.")
    max_participation: float = Field(0.05, gt=0, le=1, description="Fraction of volume.")


class VenueKind(StrEnum):
    PAPER = "paper"
    FIX = "fix"
    REST = "rest"


class VenuesConfig(_Section):
    """Where orders go."""

    broker: VenueKind = Field(VenueKind.FIX, description="paper, fix or rest.")
    fix_host: str = Field("127.0.0.1", description="FIX acceptor host.")
    fix_port: int = Field(9878, gt=0, lt=65536, description="FIX acceptor port.")
    sender_comp_id: str = Field("KEEL", description="Our FIX SenderCompID.")
    target_comp_id: str = Field("KEELX", description="The venue's FIX CompID.")
    rest_url: str = Field("http://127.0.0.1:9880", description="REST fallback base URL.")


class ServiceConfig(_Section):
    """The HTTP service (`keel serve`)."""

    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(8000, gt=0, lt=65536, description="Bind port.")
    api_token: str | None = Field(None, description="Bearer token for write endpoints.")


class KeelConfig(BaseSettings):
    """The whole application configuration (one TOML file, one section per table)."""

    model_config = SettingsConfigDict(env_prefix="KEEL_", env_nested_delimiter="__",
                                      extra="forbid", frozen=True)

    general: GeneralConfig = GeneralConfig()
    data: DataConfig = DataConfig()
    store: StoreConfig = StoreConfig()
    risk: RiskConfig = RiskConfig()
    optimize: OptimizeConfig = OptimizeConfig()
    costs: CostsConfig = CostsConfig()
    execution: ExecutionConfig = ExecutionConfig()
    venues: VenuesConfig = VenuesConfig()
    service: ServiceConfig = ServiceConfig()

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
    if err["type"] == "extra_forbidden":
        return ConfigError("unknown configuration key", field=key, file=source)
    return ConfigError(f"invalid configuration value: {err['msg']}", field=key,
                       value=err.get("input"), file=source)


def load_config(path: str | Path | None = None, **overrides: Any) -> KeelConfig:
    """Read ``path`` (TOML) into a :class:`KeelConfig`, with ``KEEL_*`` variables on top.

    Args:
        path: TOML file; ``None`` gives the defaults (plus environment overrides).
        **overrides: section dicts merged over the file (lower precedence than the environment).

    Raises:
        ConfigError: unreadable file, bad TOML, unknown key or invalid value (names key and file).
    """
    source = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = read_toml(path) if path is not None else {}
    for section, values in overrides.items():
        merged = dict(data.get(section, {}))
        merged.update(values)
        data[section] = merged
    try:
        return KeelConfig(**data)
    except pydantic.ValidationError as exc:
        raise config_error(exc, source) from None


def config_as_dict(config: KeelConfig) -> dict[str, Any]:
    """JSON-friendly dict of a config (stored with every run and backtest result)."""
    return config.model_dump(mode="json")


def describe_config() -> list[tuple[str, str, str, str, str]]:
    """(section, key, type, default, description) for every key of :class:`KeelConfig`."""
    rows: list[tuple[str, str, str, str, str]] = []
    for section, finfo in KeelConfig.model_fields.items():
        model = finfo.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        for key, f in model.model_fields.items():
            ann = f.annotation
            if isinstance(ann, type) and issubclass(ann, Enum):
                tname = " | ".join(str(m.value) for m in ann)
            elif isinstance(ann, type):
                tname = ann.__name__
            else:
                tname = str(ann).replace("typing.", "").replace("pathlib.", "")
            default = f.default
            if isinstance(default, Enum):
                default = default.value
            elif isinstance(default, Path):
                default = str(default)
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
