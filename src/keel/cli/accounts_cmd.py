"""`keel accounts ...`: seed synthetic separately managed accounts, rebalance them in one batch."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from keel.cli.common import console, err_console, friendly_errors, print_wide

if TYPE_CHECKING:
    from keel.config import KeelConfig

_CONFIG_HELP = "TOML configuration file (default: built-in defaults + KEEL_* variables)."
_URL_HELP = "SQLAlchemy URL of the store (default: store.url of the configuration)."
_NAMES_HELP = "Names of the synthetic market (data.n_assets; default: the configuration's)."


def _config(config: Path | None, names: int | None, url: str | None) -> KeelConfig:
    from keel.config import load_config, with_overrides

    cfg = load_config(config)
    over: dict[str, Any] = {}
    if names is not None:
        over["data.n_assets"] = names
    if url:
        over["store.url"] = url
    return with_overrides(cfg, over) if over else cfg


def _prices(market: Any) -> dict[str, Any]:
    from keel.accounts.batch import CENT
    from keel.types import to_price

    return {str(s): to_price(float(p), CENT) for s, p in market.latest("prices").items()
            if p == p and p > 0}


def register(app: typer.Typer) -> None:
    """Add the ``accounts`` command group to ``app``."""
    acc_app = typer.Typer(help="Separately managed accounts: seed, rebalance in one batch.",
                          no_args_is_help=True)

    @acc_app.command("seed")
    def seed(
        n: int = typer.Option(1000, "--n", min=1, help="Accounts to create."),
        names: int | None = typer.Option(None, "--names", min=2, help=_NAMES_HELP),
        models: int = typer.Option(5, "--models", min=1, help="Model portfolios."),
        replace: bool = typer.Option(False, "--replace",
                                     help="Delete every existing account and model first."),
        config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
        url: str | None = typer.Option(None, "--url", help=_URL_HELP),
    ) -> None:
        """Write synthetic models and accounts (holdings, restrictions, tax lots) to the store,
        over the configured market (seeded by general.seed)."""
        import numpy as np

        from keel.accounts.book import AccountBook
        from keel.accounts.synthetic import synthetic_accounts, synthetic_models
        from keel.app.pipeline import load_market
        from keel.store import Store

        with friendly_errors():
            cfg = _config(config, names, url)
            t0 = time.perf_counter()
            market = load_market(cfg)
            px = _prices(market)
            rng = np.random.default_rng(cfg.general.seed)
            mods = synthetic_models(sorted(px), rng, models)
            accs = synthetic_accounts(n, mods, px, market.now.date(), rng)
            store = Store.from_url(cfg.store.url)
            try:
                store.upgrade()
                book = AccountBook(store)
                if replace:
                    book.clear()
                book.put_models(mods)
                book.add_accounts(accs)
                total = book.count()
            finally:
                store.dispose()
            lots = sum(len(a.lots) for a in accs)
            holdings = sum(len(a.holdings) for a in accs)
            console.print(f"{n} accounts ({holdings} holdings, {lots} tax lots) over "
                          f"{len(px)} names, {len(mods)} models -> {store.url} "
                          f"({total} accounts in all) in {time.perf_counter() - t0:.1f} s")

    @acc_app.command("rebalance")
    def rebalance(
        workers: int | None = typer.Option(None, "--workers", "-w", min=1,
                                           help="Worker processes (default accounts.workers)."),
        use_ray: bool = typer.Option(False, "--ray", help="Run on Ray (accounts.ray_address)."),
        chunk_size: int | None = typer.Option(None, "--chunk-size", min=1,
                                              help="Accounts per task (accounts.chunk_size)."),
        names: int | None = typer.Option(None, "--names", min=2, help=_NAMES_HELP),
        fmt: str = typer.Option("table", "--format", help="table or json."),
        orders_out: Path | None = typer.Option(None, "--orders-out",
                                               help="Write every account's orders to a CSV."),
        execute: bool = typer.Option(False, "--execute",
                                     help="Send the blocks to the paper venue at the last "
                                          "close, allocate the fills and book them."),
        batch_id: str | None = typer.Option(None, "--batch-id",
                                            help="Idempotency key of --execute (default: "
                                                 "the batch token: time, prices, models)."),
        config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
        url: str | None = typer.Option(None, "--url", help=_URL_HELP),
    ) -> None:
        """Rebalance every account of the store in one batch: the risk model fitted once,
        one problem per account, orders aggregated into block orders per symbol; with
        --execute, the blocks filled on the paper venue and booked in one transaction."""
        from datetime import timedelta

        from keel.accounts.batch import prepare, run_batch
        from keel.accounts.book import AccountBook
        from keel.accounts.tax import WASH_DAYS
        from keel.app.pipeline import load_market
        from keel.errors import ValidationError
        from keel.store import Store

        with friendly_errors():
            from keel.cli.validate import writable_file

            if fmt not in ("table", "json"):
                raise ValidationError("format must be table or json", field="--format",
                                      value=fmt)
            if batch_id is not None and not execute:
                raise ValidationError("--batch-id names an executed batch: add --execute",
                                      field="--batch-id", value=batch_id)
            writable_file(orders_out, "orders-out")  # before anything is sent or booked
            cfg = _config(config, names, url)
            a = cfg.accounts
            t0 = time.perf_counter()
            market = load_market(cfg)
            t1 = time.perf_counter()
            since = market.now.date() - timedelta(days=WASH_DAYS)
            store = Store.from_url(cfg.store.url, create=False)  # a reader: creates nothing
            try:
                store.check_schema()
                book = AccountBook(store)
                accounts = book.accounts(loss_sales_since=since)
                models = book.models()
            finally:
                if not execute:
                    store.dispose()
            t2 = time.perf_counter()
            shared = prepare(cfg, market, models, market.now.to_pydatetime())
            t3 = time.perf_counter()
            progress = _progress(len(accounts))
            res = run_batch(accounts, shared, workers=workers or a.workers,
                            chunk_size=chunk_size or a.chunk_size,
                            backend="ray" if use_ray else "local", ray_address=a.ray_address,
                            progress=progress)
            summary = res.summary(shared.prices)
            summary["timings"] = {"load_market_s": round(t1 - t0, 3),
                                  "load_book_s": round(t2 - t1, 3),
                                  "fit_risk_s": round(t3 - t2, 3), **summary["timings"]}
            if execute:
                from keel.accounts.execute import execute_from_config

                try:
                    ex = execute_from_config(store, res, shared, accounts, cfg,
                                             batch_id=batch_id)
                finally:
                    store.dispose()
                summary["execution"] = ex.summary()
            if orders_out is not None:
                _write_orders(orders_out, res)
            if fmt == "json":
                sys.stdout.write(json.dumps(summary, indent=2) + "\n")
            else:
                _table(summary)

    app.add_typer(acc_app, name="accounts")


def _progress(total: int) -> Any:
    if total == 0:
        return None

    step = max(total // 10, 1)
    last = [0]

    def report(done: int, total_: int) -> None:
        if done - last[0] >= step or done == total_:
            last[0] = done
            err_console.print(f"{done}/{total_} accounts")

    return report


def _write_orders(path: Path, res: Any) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["account_id", "symbol", "side", "qty"])
        for o in res.orders:
            w.writerow([o.account_id, o.symbol, o.side.value, o.qty])


def _table(summary: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title="keel accounts rebalance", show_header=False)
    for k in ("accounts", "accounts_trading", "errors", "orders", "blocks", "buy_blocks",
              "sell_blocks", "shares", "notional", "realised_short_term",
              "realised_long_term", "backend", "workers", "seconds"):
        if k in summary:
            t.add_row(k, str(summary[k]))
    t.add_row("paths", ", ".join(f"{k}={v}" for k, v in summary["paths"].items()))
    t.add_row("timings", ", ".join(f"{k}={v}" for k, v in summary["timings"].items()))
    t.add_row("reasons", ", ".join(f"{k}={v}" for k, v in summary["reasons"].items()))
    if "execution" in summary:
        ex = summary["execution"]
        t.add_row("execution", ", ".join(f"{k}={v}" for k, v in ex.items() if k != "timings"))
        t.add_row("execution timings",
                  ", ".join(f"{k}={v}" for k, v in ex["timings"].items()))
    print_wide(t)
