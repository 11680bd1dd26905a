"""`keel` commands of the portfolio layer: ``keel rebalance``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from keel.cli.common import (
    Col,
    Kind,
    OutputFormat,
    Report,
    emit,
    format_option,
    friendly_errors,
)


class Mode(StrEnum):
    """The ``--mode`` choices: :class:`keel.portfolio.rebalance.RebalanceMode`, spelled here
    so ``keel --help`` does not import pandas (a test keeps the two equal)."""

    FULL = "full"
    INVEST_CASH = "invest_cash"
    RAISE_CASH = "raise_cash"


def _read_targets(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(weights, prices, sectors) from a CSV with columns symbol, weight[, price][, sector]."""
    import pandas as pd

    from keel.errors import ValidationError

    if not path.is_file():
        raise ValidationError("targets file not found", field="targets", value=str(path))
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several types for unreadable CSV
        raise ValidationError(f"cannot read targets CSV: {exc}", field="targets",
                              value=str(path)) from None
    cols = {c.strip().lower(): c for c in df.columns}
    for need in ("symbol", "weight"):
        if need not in cols:
            raise ValidationError(f"targets file lacks a '{need}' column", field=need,
                                  value=str(path))
    if df[cols["symbol"]].duplicated().any():
        dup = df[cols["symbol"]][df[cols["symbol"]].duplicated()].iloc[0]
        raise ValidationError("duplicated symbol in targets", field="symbol", symbol=dup)
    sym = df[cols["symbol"]].str.strip()
    weights = dict(zip(sym, df[cols["weight"]].str.strip(), strict=True))
    prices = (dict(zip(sym, df[cols["price"]].str.strip(), strict=True))
              if "price" in cols else {})
    sectors = (dict(zip(sym, df[cols["sector"]].str.strip(), strict=True))
               if "sector" in cols else {})
    return weights, {k: v for k, v in prices.items() if v}, sectors


def _read_prices(path: Path) -> dict[str, str]:
    import pandas as pd

    from keel.errors import ValidationError

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        return dict(zip(df["symbol"].str.strip(), df["price"].str.strip(), strict=True))
    except (OSError, KeyError, ValueError) as exc:
        raise ValidationError(f"cannot read prices CSV (symbol, price): {exc}",
                              field="prices", value=str(path)) from None


def register(app: typer.Typer) -> None:
    """Add this layer's commands to ``app``."""

    @app.command("rebalance")
    def rebalance_cmd(
        targets: Path = typer.Option(..., "--targets", help="CSV: symbol, weight (fraction "
                                     "of NAV), optional price and sector columns."),
        db: str = typer.Option(None, "--db", help="Database URL (default: the store url of the "
                               "config)."),
        commit: bool = typer.Option(False, "--commit", help="Book the approved orders as "
                                    "paper fills at the given prices (and the deposit). "
                                    "Without it nothing is written."),
        prices_file: Path = typer.Option(None, "--prices", help="CSV: symbol, price "
                                         "(overrides prices in the targets file)."),
        account: str = typer.Option("default", "--account", help="Ledger account."),
        deposit: str = typer.Option(None, "--deposit", help="Cash to deposit before "
                                    "rebalancing (currency)."),
        mode: Mode = typer.Option(Mode.FULL, "--mode", case_sensitive=False,
                                  help="full, invest_cash or raise_cash."),
        reserve: str = typer.Option("0", "--reserve", help="Cash to set aside / raise "
                                    "(currency), e.g. a pending withdrawal."),
        band: float = typer.Option(0.05, "--band", help="Absolute drift band per name "
                                   "(weight units) that triggers a rebalance."),
        l1: float = typer.Option(0.05, "--l1", help="Portfolio L1 drift threshold."),
        cooldown: int = typer.Option(0, "--cooldown", help="Sessions to wait after the last "
                                     "committed rebalance."),
        force: bool = typer.Option(False, "--force", help="Trade every name whatever the "
                                   "triggers say."),
        max_weight: float = typer.Option(0.25, "--max-weight", help="Governance: largest "
                                         "position, fraction of NAV."),
        sector_cap: float = typer.Option(0.30, "--sector-cap", help="Governance: largest "
                                         "sector, fraction of NAV."),
        min_order: str = typer.Option("1", "--min-order", help="Smallest order value "
                                      "(currency)."),
        cash_buffer: str = typer.Option("0", "--cash-buffer", help="Fraction of NAV kept "
                                        "in cash."),
        fractional: bool = typer.Option(False, "--fractional", help="Trade fractional "
                                        "shares (0.0001)."),
        anytime: bool = typer.Option(False, "--anytime", help="Skip the market-hours rule "
                                     "(after-hours planning)."),
        now: str = typer.Option(None, "--now", help="Decision time, ISO 8601 with a zone "
                                "(default: the wall clock)."),
        output: OutputFormat = format_option(),
    ) -> None:
        """Show the rebalance decision, the governance verdicts and the orders; book them
        only with --commit."""
        with friendly_errors():
            _run(targets=targets, db=db, commit=commit, prices_file=prices_file,
                 account=account, deposit=deposit, mode=mode, reserve=reserve, band=band,
                 l1=l1, cooldown=cooldown, force=force, max_weight=max_weight,
                 sector_cap=sector_cap, min_order=min_order, cash_buffer=cash_buffer,
                 fractional=fractional, anytime=anytime, now=now, output=output)


def _run(**o: Any) -> None:
    from dataclasses import replace
    from datetime import datetime

    import pandas as pd

    from keel.clock import Clock, SimulatedClock, WallClock
    from keel.config import load_config
    from keel.errors import ValidationError
    from keel.policy.governance import (
        GovernanceChain,
        GovernanceContext,
        MarketHours,
        MinTradeValue,
        PositionLimit,
        SectorConcentration,
    )
    from keel.policy.triggers import (
        AbsoluteDrift,
        Cooldown,
        PolicyContext,
        PortfolioDrift,
        RebalancePolicy,
    )
    from keel.portfolio.book import positive_amount
    from keel.portfolio.instruments import InstrumentRegistry
    from keel.portfolio.ledger import Ledger
    from keel.portfolio.rebalance import RebalanceConfig, RebalanceMode, rebalance
    from keel.store.db import Store
    from keel.store.ledger_repo import LedgerRepository
    from keel.types import Fill, to_decimal

    clock: Clock = WallClock()
    if o["now"]:
        try:
            clock = SimulatedClock(datetime.fromisoformat(o["now"]))
        except ValueError:
            raise ValidationError("not an ISO 8601 time", field="now", value=o["now"]) from None
    weights, prices, sectors = _read_targets(o["targets"])
    if o["prices_file"]:
        prices.update(_read_prices(o["prices_file"]))
    mode = RebalanceMode(Mode(o["mode"]).value)
    deposit = positive_amount(o["deposit"], "deposit") if o["deposit"] else None

    url = o["db"] or load_config().store.url
    if o["commit"]:
        store = Store.from_url(url)
        store.upgrade()  # migrations: creates the schema on a new database
    else:
        # a dry run writes nothing: an existing store is read as it is; a SQLite file that
        # does not exist yet is a new, empty ledger in memory (no file or folder is made)
        from keel.errors import StoreError

        try:
            store = Store.from_url(url, create=False)
        except StoreError as exc:
            if exc.context.get("kind") != "missing":
                raise
            store = Store.from_url("sqlite://")
            store.upgrade()
    ledger = Ledger.open(store, clock=clock, account=o["account"], actor="cli.rebalance")
    t = clock.now()
    state = ledger.state
    if deposit is not None:
        state = replace(state, cash=state.cash + deposit)
    symbols = sorted(set(weights) | set(state.holdings))
    registry = InstrumentRegistry.equities(symbols, fractional=o["fractional"],
                                           sectors=sectors)
    cfg = RebalanceConfig(min_order_value=to_decimal(o["min_order"], "min_order"),
                          cash_buffer=to_decimal(o["cash_buffer"], "cash_buffer"))

    # a dry plan of every name first: validates input and gives the current weights
    full = rebalance(weights, prices, state, registry, now=t, config=cfg, mode=mode,
                     reserve=o["reserve"])
    px = {tr.symbol: tr.price for tr in full.trades}
    px.update({s: to_decimal(prices.get(s, h.mark), "price", symbol=s)
               for s, h in state.holdings.items()})
    px.update({s: to_decimal(v, "price", symbol=s) for s, v in prices.items()})
    nav = full.nav
    current = {s: float(h.qty * px[s] / nav) for s, h in state.holdings.items()}
    repo = LedgerRepository(store, o["account"])
    commits = repo.audit_rows("rebalance.commit")
    last = commits[-1].timestamp if commits else None
    policy = RebalancePolicy([AbsoluteDrift(o["band"]), PortfolioDrift(o["l1"]),
                              Cooldown(o["cooldown"])])
    decision = policy.decide(PolicyContext(now=t, weights=pd.Series(current, dtype=float),
                                           targets=pd.Series(weights, dtype=float),
                                           last_rebalance=last))
    trade = decision.trade or o["force"]
    names = None if o["force"] else decision.names
    plan = (rebalance(weights, prices, state, registry, now=t, config=cfg, mode=mode,
                      reserve=o["reserve"], names=names) if trade else None)

    rules: list[Any] = [] if o["anytime"] else [MarketHours()]
    rules += [PositionLimit(o["max_weight"]), SectorConcentration(o["sector_cap"]),
              MinTradeValue(cfg.min_order_value)]
    gctx = GovernanceContext(now=t, nav=nav, prices=px,
                             positions={s: h.qty for s, h in state.holdings.items()},
                             registry=registry)
    verdicts = GovernanceChain(rules).evaluate(list(plan.orders) if plan else [], gctx)

    rep = Report()
    led = rep.fields("ledger", title="ledger")
    led.add("account", o["account"])
    led.add("version", ledger.version, Kind.INT)
    led.add("cash", state.cash, Kind.MONEY, "currency")
    led.add("nav", nav, Kind.MONEY, "currency", "NAV")
    led.add("at", t, Kind.TIME)
    dec = rep.fields("decision", title="decision")
    dec.add("decision", decision.explain())
    dec.add("trade", bool(decision.trade))
    dec.add("forced", bool(o["force"] and not decision.trade))
    checks = rep.section("checks", [Col("rule"), Col("fired"), Col("code"), Col("detail")],
                         title="trigger checks")
    for c in decision.checks:
        checks.add(c.rule, bool(c.fired), c.code.value, c.detail)
    table = rep.section("orders", [
        Col("client_id", title="client id"), Col("symbol"), Col("side"), Col("qty", Kind.QTY),
        Col("price", Kind.PRICE, "currency"), Col("notional", Kind.MONEY, "currency"),
        Col("verdict"), Col("approved_qty", Kind.QTY, title="approved qty"),
        Col("reason_code", title="reason")], title="orders and governance verdicts")
    for v in verdicts:
        o_ = v.order
        table.add(o_.client_order_id, o_.symbol, o_.side.value, o_.qty, px[o_.symbol],
                  o_.qty * px[o_.symbol], v.action.value, v.qty, v.reason_code)
    for v in verdicts:
        if v.action.value != "approve":
            rep.note(f"{v.order.symbol} {v.action.value.upper()} {v.order.qty} -> "
                     f"{v.qty}: {v.reason_code} {v.reason}")
    if plan and plan.skipped:
        sk = rep.section("skipped", [Col("symbol"), Col("reason")], title="skipped")
        for sym, r in sorted(plan.skipped.items()):
            sk.add(sym, r.value)
    if not o["commit"]:
        rep.note("Dry run: nothing booked (use --commit to book).")
        store.dispose()
        emit(rep, o["output"])
        return
    approved = [v for v in verdicts if v.approved]
    with ledger.transaction():
        if deposit is not None:
            ledger.deposit(deposit, memo="keel rebalance --deposit")
        for v in approved:
            ao = v.approved_order
            assert ao is not None
            ledger.apply_fill(Fill(f"{ao.client_order_id}-paper", ao.client_order_id,
                                   ao.symbol, ao.side, ao.qty, px[ao.symbol], t,
                                   venue="paper"))
        ledger.note("rebalance.commit" if approved else "rebalance.decision", {
            "decision": decision.explain(), "reasons": [r.value for r in decision.reasons],
            "verdicts": [{"client_order_id": v.order.client_order_id,
                          "action": v.action.value, "qty": str(v.qty),
                          "reason_code": v.reason_code} for v in verdicts]})
    booked = rep.fields("booked", title="booked")
    booked.add("fills", len(approved), Kind.INT)
    booked.add("ledger_version", ledger.version, Kind.INT, title="ledger version")
    booked.add("cash", ledger.cash, Kind.MONEY, "currency")
    booked.add("equity", ledger.equity, Kind.MONEY, "currency")
    store.dispose()
    emit(rep, o["output"])
