"""`keel optimize --config FILE`: one rebalance of the desk pipeline, explained.

Reads the one keel configuration: the market from ``[data]``, scores from ``[signals]``
(built-in, or ``source = "file"``), the risk model (and its fallback chain) from ``[risk]``,
the engine and every constraint from ``[optimize]``, the cost model from ``[costs]`` - the
same :class:`~keel.app.pipeline.Pipeline` the backtest and ``keel run`` call.
"""

from __future__ import annotations

from pathlib import Path

import typer

from keel.cli.common import (
    Col,
    Kind,
    OutputFormat,
    Report,
    configure_logging,
    emit,
    format_option,
    friendly_errors,
)


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""

    @app.command("optimize")
    def optimize(
        config: Path | None = typer.Option(None, "--config", "-c", dir_okay=False,
                                           help="The keel TOML configuration (default: "
                                                "built-in)."),
        holdings: Path | None = typer.Option(None, "--holdings", dir_okay=False,
                                             help="CSV symbol,weight of the current book "
                                                  "(default: all cash)."),
        nav: float = typer.Option(1e6, "--nav", help="NAV in currency (cost and ADV "
                                  "scaling)."),
        out: Path = typer.Option(Path("keel-out/optimize"), "--out", "-o",
                                 help="Folder for weights.csv and explanation.json."),
        top: int = typer.Option(20, "--top", help="Rows of the printed weight table (all "
                                "of them are in weights.csv)."),
        output: OutputFormat = format_option(),
    ) -> None:
        """Target weights for today from the configured pipeline, plus the explanation."""
        with friendly_errors():
            emit(_run(config, holdings, nav, out, top), output)


def _holdings(path: Path, symbols: object) -> object:
    import pandas as pd

    from keel.errors import DataError

    df = pd.read_csv(path)
    if df.shape[1] < 2:
        raise DataError("holdings need two columns (symbol, weight)", file=str(path))
    w = pd.Series(pd.to_numeric(df.iloc[:, 1], errors="raise").to_numpy(),
                  index=df.iloc[:, 0].astype(str))
    unknown = w.index.difference(symbols)  # type: ignore[arg-type]
    if len(unknown):
        raise DataError("a held name is not in the market", field="holdings",
                        symbol=str(unknown[0]), file=str(path))
    return w


def _run(config: Path | None, holdings: Path | None, nav: float, out: Path,
         top: int) -> Report:
    import json

    import numpy as np
    import pandas as pd

    from keel.app.pipeline import Pipeline, load_market
    from keel.config import load_config

    cfg = load_config(config)
    configure_logging(cfg.general.log_level)
    pipe = Pipeline(cfg, live=False)
    market = load_market(cfg)
    view = market
    fit = pipe.fit_risk(view)
    scores, alpha = pipe.signals(view)
    symbols = view.symbols
    current = np.zeros(len(symbols))
    if holdings is not None:
        current = _holdings(holdings, symbols).reindex(symbols).fillna(0.0).to_numpy()  # type: ignore[attr-defined]
    engine = pipe.engine()
    ctx = pipe.trade_context(view, nav)
    now = pd.Timestamp(view.now)
    target = engine.target(pipe.step(view, now, scores, alpha, current, fit.model, ctx))
    governed, tcodes = pipe.turnover_governor().apply(now, current, target)
    table = pd.DataFrame({"current": current, "target": governed,
                          "trade": governed - current}, index=symbols)
    table = table[(table["current"].abs() > 1e-9) | (table["target"].abs() > 1e-9)]
    table = table.sort_values("target", ascending=False)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "weights.csv", index_label="symbol")
    explain: dict[str, object] = {"engine": cfg.optimize.engine.value,
                                  "codes": [*engine.codes, *tcodes],
                                  "risk_model": fit.used.value,
                                  "risk_fallbacks": [list(f) for f in fit.failed],
                                  "as_of": str(view.now)}
    last = getattr(engine, "last_result", None)
    if last is not None:
        explain.update(last.explain())
    (out / "explanation.json").write_text(json.dumps(explain, indent=2, default=str))
    rep = Report()
    f = rep.fields("decision", title="optimize")
    f.add("engine", cfg.optimize.engine.value)
    f.add("risk_model", fit.used.value, title="risk model")
    f.add("as_of", view.now, Kind.TIME)
    f.add("nav", nav, Kind.MONEY, "currency", "NAV")
    f.add("codes", ", ".join(map(str, explain["codes"])))  # type: ignore[call-overload]
    f.add("names", len(table), Kind.INT, title="names held or targeted")
    w = rep.section("weights", [Col("symbol"), Col("current", Kind.PCT, "of NAV"),
                                Col("target", Kind.PCT, "of NAV"),
                                Col("trade", Kind.PCT, "of NAV")],
                    title=f"target weights, top {min(top, len(table))} of {len(table)}")
    for sym, row in table.head(top).iterrows():
        w.add(str(sym), float(row["current"]), float(row["target"]), float(row["trade"]))
    if last is not None:
        obj = rep.section("objective", [Col("term"), Col("value", Kind.NUM)],
                          title="objective split")
        for k, v in last.objective_split.items():
            obj.add(str(k), float(v))
        b = rep.section("binding", [Col("constraint"), Col("dual", Kind.NUM),
                                    Col("rows", Kind.INT)], title="binding constraints")
        for c in last.binding:
            b.add(c.name, float(c.dual), int(c.n_binding))
    rep.note(f"wrote {out / 'weights.csv'} and {out / 'explanation.json'}")
    return rep
