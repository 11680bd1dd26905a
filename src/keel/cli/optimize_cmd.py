"""`keel` commands of the optimize layer: ``keel optimize --config FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from keel.cli.common import console, friendly_errors

if TYPE_CHECKING:
    import pandas as pd

    from keel.data.market import MarketData

EXAMPLE = """\
[inputs]
alpha = "alpha.csv"        # symbol,alpha (expected return per period, fraction)
holdings = "holdings.csv"  # optional: symbol,weight (fraction of NAV)
prices = "prices.csv"      # long (date,close,volume,Name) or wide (date x symbols) closes
volumes = "volumes.csv"    # wide volumes (needed with wide prices)
sectors = "sectors.csv"    # optional: Symbol,Sector
lookback = 252             # rows of history for the risk model and scenarios
on_missing = "raise"       # or "drop": leave out alpha names without full history (listed)
nav = 1e6                  # currency; ADV is converted to NAV units with it

[risk]
model = "pca"              # pca (statistical factors), ledoit_wolf or sample (dense)
n_factors = 15

[optimizer]
kind = "mean_variance"     # mean_variance, mean_cvar or min_cvar
risk_aversion = 5.0

[costs]                    # optional: keel.costs models of the trades
spread = true              # SpreadCost on the market's spread estimate (or default_spread)
default_spread = 0.001     # full spread as a fraction of mid when no estimate exists
commission_bps = 0.5       # Commission(bps=...)
impact_y = 0.0             # SquareRootImpact(y=...) when > 0 (solved through CVXPY)

[[constraints]]
type = "Budget"
[[constraints]]
type = "LongOnly"
[[constraints]]
type = "WeightBounds"
upper = 0.05
"""


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""

    @app.command("optimize")
    def optimize(
        config: Path = typer.Option(..., "--config", "-c", exists=True, dir_okay=False,
                                    help="TOML file with inputs, risk, optimizer, costs and "
                                         "constraints tables (see docs/optimize.md)."),
        out: Path = typer.Option(Path("keel-out/optimize"), "--out", "-o",
                                 help="Folder for weights.csv and explanation.json."),
        top: int = typer.Option(20, "--top", help="Rows of the printed weight table."),
    ) -> None:
        """Optimize a portfolio from a TOML config: target weights plus the explanation."""
        with friendly_errors():
            _run(config, out, top)


def _run(config: Path, out: Path, top: int) -> None:
    import json

    from rich.table import Table

    from keel.config import read_toml
    from keel.errors import ConfigError
    from keel.optimize.spec import build_constraints, build_optimizer

    cfg = read_toml(config)
    for key in cfg:
        if key not in ("inputs", "risk", "optimizer", "constraints", "costs"):
            raise ConfigError("unknown section", field=key, file=str(config))
    base = config.parent
    inputs = _inputs(cfg.get("inputs", {}), cfg.get("risk", {}), cfg.get("costs"), base,
                     str(config))
    cons = build_constraints(cfg.get("constraints", []))
    opt = build_optimizer(cfg.get("optimizer", {}), cons, _costs(cfg.get("costs")))
    result = opt.solve(inputs)
    out.mkdir(parents=True, exist_ok=True)
    table = result.table()
    table.to_csv(out / "weights.csv", index_label="symbol")
    (out / "explanation.json").write_text(json.dumps(result.explain(), indent=2))
    t = Table(title=f"target weights ({result.status.value}, {result.solver})")
    for col in ("symbol", "current", "target", "trade"):
        t.add_column(col, justify="left" if col == "symbol" else "right")
    for sym, row in table.head(top).iterrows():
        t.add_row(str(sym), f"{row['current']:.4f}", f"{row['target']:.4f}",
                  f"{row['trade']:+.4f}")
    console.print(t)
    split = ", ".join(f"{k}={v:.6g}" for k, v in result.objective_split.items())
    console.print(f"objective: {split}")
    for b in result.binding:
        console.print(f"binding: {b.name} (dual {b.dual:.3g}, {b.n_binding} rows)")
    for m in result.messages:
        console.print(f"note: {m}", markup=False)
    console.print(f"wrote {out / 'weights.csv'} and {out / 'explanation.json'}")


def _path(table: dict[str, Any], key: str, base: Path, required: bool = True) -> Path | None:
    from keel.errors import ConfigError

    if key not in table:
        if required:
            raise ConfigError("missing key", field=f"inputs.{key}")
        return None
    p = Path(table[key])
    p = p if p.is_absolute() else base / p
    if not p.exists():
        raise ConfigError("file not found", field=f"inputs.{key}", file=str(p))
    return p


def _two_col(path: Path, name: str) -> pd.Series:
    import pandas as pd

    from keel.errors import DataError

    df = pd.read_csv(path)
    if df.shape[1] < 2:
        raise DataError(f"{name} needs two columns (symbol, value)", file=str(path))
    return pd.Series(pd.to_numeric(df.iloc[:, 1], errors="raise").to_numpy(),
                     index=df.iloc[:, 0].astype(str), name=name)


def _market(table: dict[str, Any], base: Path) -> MarketData:
    """Long (date, ..., close, volume, Name) or wide (dates x symbols + volumes) files."""
    import pandas as pd

    from keel.config import MissingPolicy
    from keel.data.prices import load_prices_long, load_prices_wide

    prices_path = _path(table, "prices", base)
    assert prices_path is not None
    sectors = _path(table, "sectors", base, required=False)
    policy = MissingPolicy(table.get("on_missing", "raise"))
    header = {c.lower() for c in pd.read_csv(prices_path, nrows=0).columns}
    if {"date", "close", "name"} <= header:
        return load_prices_long(prices_path, sectors=sectors, on_missing=policy,
                                spreads=False)
    volumes = _path(table, "volumes", base)
    assert volumes is not None
    return load_prices_wide(prices_path, volumes, sectors=sectors, on_missing=policy)


def _costs(cfg: dict[str, Any] | None) -> list[Any]:
    """keel.costs models from the ``[costs]`` table (empty when absent)."""
    from keel.costs import Commission, SpreadCost, SquareRootImpact
    from keel.errors import ConfigError

    if not cfg:
        return []
    for key in cfg:
        if key not in ("spread", "default_spread", "commission_bps", "impact_y"):
            raise ConfigError("unknown key", field=f"costs.{key}")
    models: list[Any] = []
    if cfg.get("spread", True):
        models.append(SpreadCost())
    if float(cfg.get("commission_bps", 0.0)) > 0:
        models.append(Commission(bps=float(cfg["commission_bps"])))
    if float(cfg.get("impact_y", 0.0)) > 0:
        models.append(SquareRootImpact(y=float(cfg["impact_y"])))
    return models


def _inputs(table: dict[str, Any], risk_cfg: dict[str, Any], costs_cfg: dict[str, Any] | None,
            base: Path, src: str) -> Any:

    from keel.errors import ConfigError, DataError
    from keel.optimize.inputs import PortfolioInputs

    for key in table:
        if key not in ("alpha", "holdings", "prices", "volumes", "sectors", "lookback", "nav",
                       "on_missing"):
            raise ConfigError("unknown key", field=f"inputs.{key}", file=src)
    alpha_path = _path(table, "alpha", base)
    assert alpha_path is not None
    alpha = _two_col(alpha_path, "alpha")
    hpath = _path(table, "holdings", base, required=False)
    holdings = _two_col(hpath, "weight") if hpath is not None else None
    nav = float(table.get("nav", 1.0))
    lookback = int(table.get("lookback", 252))
    market = _market(table, base)
    missing = alpha.index.difference(market.symbols)
    if len(missing) and table.get("on_missing", "raise") == "drop":
        console.print(f"note: dropped {len(missing)} alpha names without full history: "
                      f"{', '.join(map(str, missing[:10]))}{' ...' if len(missing) > 10 else ''}",
                      markup=False)
        alpha = alpha.drop(missing)
        if holdings is not None and len(holdings.index.intersection(missing)):
            raise DataError("a held name has no usable prices", field="holdings",
                            symbol=str(holdings.index.intersection(missing)[0]))
    elif len(missing):
        raise DataError("alpha names a symbol without full price history", field="alpha",
                        symbol=str(missing[0]))
    market = market.select(alpha.index)
    rets = market.returns.iloc[-lookback:]
    if rets.isna().any().any():
        bad = rets.columns[rets.isna().any().to_numpy()][0]
        raise DataError("missing returns in the lookback window", field="prices",
                        symbol=str(bad))
    risk = _risk(rets, risk_cfg)
    betas = market.latest("betas").fillna(1.0)
    sectors = market.sectors if market.sectors is not None else None
    ctx = None
    if costs_cfg:
        from keel.costs import TradeContext

        ctx = TradeContext.from_market(market, nav,
                                       default_spread=float(costs_cfg.get("default_spread",
                                                                          0.001)))
    return PortfolioInputs.build(
        alpha, holdings, risk=risk, betas=betas, sectors=sectors, trade_context=ctx,
        adv_notional=market.latest("adv_notional"), nav=nav, scenarios=rets)


def _risk(rets: pd.DataFrame, cfg: dict[str, Any]) -> Any:
    """The risk model of the ``[risk]`` table, fitted with ``keel.risk`` estimators."""
    import pandas as pd

    from keel.errors import ConfigError
    from keel.risk.covariance import LedoitWolf, SampleCovariance
    from keel.risk.factor_model import StatisticalFactorModel

    for key in cfg:
        if key not in ("model", "n_factors"):
            raise ConfigError("unknown key", field=f"risk.{key}")
    model = cfg.get("model", "pca")
    if model == "pca":
        return StatisticalFactorModel(n_factors=int(cfg.get("n_factors", 15))).fit(
            rets).factored()
    estimators = {"sample": SampleCovariance, "ledoit_wolf": LedoitWolf}
    if model not in estimators:
        raise ConfigError("unknown risk model", field="risk.model", value=model,
                          known="pca, ledoit_wolf, sample")
    cov = estimators[model]().fit(rets).covariance_
    return pd.DataFrame(cov, index=rets.columns, columns=rets.columns)
