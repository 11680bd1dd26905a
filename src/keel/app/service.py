"""The keel HTTP service: health, Prometheus metrics, REST and the dashboard.

:func:`create_app` builds a FastAPI application over a :class:`~keel.store.db.Store` and owns
no global state, so the trading process can embed it (pass its own
:class:`~keel.app.metrics.KeelMetrics`) and ``keel serve`` can run it standalone over the
configured store (metrics then recounted from the store at scrape time, see
:mod:`keel.app.scrape`).

Read endpoints are open; write endpoints need ``Authorization: Bearer <token>`` (401 without
or with a wrong token, 403 when the service has no token configured). Bad input gets a 4xx
whose JSON body says why (``detail``, and ``field`` / ``symbol`` when known).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, field_validator

from keel.app import control, timeseries, views
from keel.app.attribution_view import AttributionView
from keel.app.auth import require_token
from keel.app.guard import Guard, GuardSettings
from keel.app.metrics import KeelMetrics
from keel.app.readiness import Check, evaluate, store_checks
from keel.app.riskview import RiskView
from keel.app.scrape import StoreCollector
from keel.clock import Clock, WallClock
from keel.config import EngineKind, KeelConfig
from keel.costs.base import CostModel, TradeContext
from keel.data.market import MarketData
from keel.errors import KeelError, StoreError, ValidationError
from keel.fmt import js_config, money_json, qty_json, tick_of, time_json
from keel.risk.limits import RiskLimits
from keel.store.db import Store
from keel.types import OrderStatus, Side, ensure_utc

log = logging.getLogger("keel.app.service")


class CostRequest(BaseModel):
    """A proposed trade: ``qty`` shares of ``symbol`` on ``side``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field(min_length=1, max_length=32)
    qty: float = Field(gt=0, le=1e12, allow_inf_nan=False,
                       description="Shares, > 0, at most 1e12 (more than any issuer has).")
    side: Side
    horizon_days: float = Field(1.0, gt=0, le=60, allow_inf_nan=False,
                                description="Execution horizon, trading days.")


class KillSwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    engaged: bool
    reason: str = Field("", max_length=500)


class EngineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: EngineKind
    reason: str = Field("", max_length=500)

    @field_validator("engine")
    @classmethod
    def _live(cls, v: EngineKind) -> EngineKind:
        if v not in control.LIVE_ENGINES:
            raise ValueError("keel run switches between "
                             + " and ".join(e.value for e in control.LIVE_ENGINES) + " only")
        return v


class RebalanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field("", max_length=500)


def default_cost_model(config: KeelConfig | None = None) -> CostModel:
    """The desk's one cost model (:attr:`keel.app.pipeline.Pipeline.cost_model`)."""
    from keel.app.pipeline import Pipeline

    return Pipeline(config or KeelConfig()).cost_model


_LOC_ROOTS = ("body", "query", "path", "header")


def _static(name: str) -> str:
    return resources.files("keel.app").joinpath("static", name).read_text(encoding="utf-8")


#: the packaged Swagger UI and Redoc files served under /static/docs/ (name -> media type)
_DOC_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
               "redoc.standalone.js": "text/javascript"}
#: no favicon request leaves the machine
_FAVICON = "data:,"


@cache
def _asset(name: str) -> bytes:
    return resources.files("keel.app").joinpath("static", name).read_bytes()


@cache
def _plotly_js() -> bytes:
    """plotly.js as the plotly Python package bundles it: the dashboard works offline."""
    return resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()


def _error_body(exc: KeelError) -> dict[str, Any]:
    body = exc.to_dict()
    body["detail"] = str(exc)
    return body


def create_app(store: Store, *, metrics: KeelMetrics | None = None, token: str | None = None,
               market: Callable[[], MarketData] | None = None, clock: Clock | None = None,
               limits: RiskLimits | None = None, cost_model: CostModel | None = None,
               account: str = "default", confidence: float = 0.95, horizon_days: int = 21,
               default_spread: float | None = None, poll_seconds: float = 3.0,
               readiness: Mapping[str, Check] | None = None,
               guard: GuardSettings | None = None,
               ticks: Mapping[str, Decimal] | None = None) -> FastAPI:
    """The service over ``store``.

    Args:
        store: the database the trading process writes (orders, fills, ledger, audit).
        metrics: the trading process's registry when embedded (the store's families are
            attached to it, plus its own OMS step latency); ``None`` (standalone) serves the
            store's families alone. Both count from the store at every scrape.
        token: bearer token for write endpoints; ``None`` disables writes (403).
        market: returns the current market (risk, sectors, cost estimates); ``None`` turns
            those endpoints into 503 with a reason.
        clock: time of control records (default :class:`~keel.clock.WallClock`).
        limits: risk limits watched on ``/api/risk`` and ``/metrics``.
        cost_model: the cost model of ``POST /api/cost-estimate`` (default
            :func:`default_cost_model`).
        account: the ledger account shown.
        confidence, horizon_days: VaR/CVaR settings.
        default_spread: spread (fraction of mid) used when the market has none.
        poll_seconds: how often the dashboard refreshes.
        readiness: further named checks of ``/ready`` after the store's (``keel run`` adds
            "venue logged on"); each returns None when fine, else the reason.
        guard: host check, body limit and authentication applied before any route parses
            a request (:mod:`keel.app.guard`); ``keel serve`` should always set it.
        ticks: symbol -> price tick of its instrument (JSON prices are quantized to it);
            symbols not in it use a cent, an equity's tick.

    Control requests are control records in the audit log (:mod:`keel.app.control`), which
    ``keel run`` applies every bar; the service never calls into the trading process.
    """
    clk: Clock = clock or WallClock()
    ledger = views.LedgerView(store, clk, account)
    execution = views.ExecutionView(store, ticks)
    risk = RiskView(market, limits, confidence=confidence,
                    horizon_days=horizon_days) if market is not None else None
    costs = cost_model or default_cost_model()
    equity_series = timeseries.EquitySeries(store, account)
    attribution = (AttributionView(store, market, account) if market is not None else None)

    def predict(by_symbol: dict[str, float]) -> dict[str, float]:
        """Predicted cost (currency) of signed notionals per symbol at the current market."""
        mkt = market() if market is not None else None
        if mkt is None:
            return {}
        syms = [s for s in by_symbol if s in mkt.symbols]
        missing = [s for s in by_symbol if s not in mkt.symbols]
        if missing:
            raise ValidationError("symbol not in the market", field="symbol",
                                  symbol=missing[0])
        ctx = TradeContext.from_market(mkt.select(syms), nav=1.0,
                                       default_spread=default_spread)
        est = costs.cost(np.array([by_symbol[s] for s in syms]), ctx)
        return {s: float(v) for s, v in zip(syms, est.currency.to_numpy(), strict=True)}
    write = Depends(require_token(token))

    def book() -> tuple[float, float, dict[str, float]]:
        st = ledger.state()
        eq = float(st.equity)
        return eq, (float(st.gross_exposure) / eq if eq else 0.0), st.weights()

    # One meaning in both modes: every store-derived family comes from the same collector;
    # embedded, the trading process's registry adds only what it alone observes.
    collector = StoreCollector(store, book, risk.evaluate if risk else None)
    registry: CollectorRegistry | None = None
    if metrics is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
    else:
        metrics.attach(collector)

    # /docs and /redoc from the packaged Swagger UI and Redoc (keel/app/static, see
    # THIRD_PARTY_NOTICES there): the pages work offline, no CDN
    app = FastAPI(title="keel", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Portfolio, risk, orders, execution quality and controls of a "
                              "running keel; Prometheus metrics on /metrics. Write endpoints "
                              "need the API token (Authorize: bearerAuth).")
    app.state.store = store

    @app.exception_handler(KeelError)
    async def keel_error(request: Request, exc: KeelError) -> JSONResponse:
        code = (422 if isinstance(exc, ValidationError)
                else 503 if isinstance(exc, StoreError) else 400)
        return JSONResponse(_error_body(exc), status_code=code)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # The detail goes to the log under an id; the caller gets the id only.
        error_id = uuid.uuid4().hex[:12]
        log.error("internal error %s on %s %s", error_id, request.method, request.url.path,
                  exc_info=exc)
        return JSONResponse({"detail": "internal error", "error_id": error_id},
                            status_code=500)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        reasons = []
        for e in errs:
            if e.get("type") == "json_invalid":
                why = (e.get("ctx") or {}).get("error", "")
                reasons.append(f"invalid JSON body: {why} (at character {e['loc'][-1]})")
                continue
            loc = ".".join(str(p) for p in e.get("loc", ()) if p not in _LOC_ROOTS)
            reasons.append(f"{loc or 'body'}: {e.get('msg', 'invalid')}")
        first = errs[0] if errs else {}
        field = None if first.get("type") == "json_invalid" else ".".join(
            str(p) for p in first.get("loc", ()) if p not in _LOC_ROOTS)
        return JSONResponse({"detail": "; ".join(reasons) or "invalid request",
                             "field": field or None,
                             "errors": [{"type": str(e.get("type")),
                                         "loc": [str(p) for p in e.get("loc", ())],
                                         "msg": str(e.get("msg"))} for e in errs]},
                            status_code=422)

    def need_market() -> MarketData:
        if market is None:
            raise HTTPException(503, "no market data configured for this service")
        return market()

    def need_risk() -> RiskView:
        if risk is None:
            raise HTTPException(503, "no market data configured: risk is unavailable")
        return risk

    # ------------------------------------------------------------------ health & metrics

    @app.get("/health", summary="Liveness and store reachability")
    def health() -> JSONResponse:
        try:
            store.ping()
            ok, err = True, None
        except KeelError as exc:
            ok, err = False, str(exc)
        body = {"status": "ok" if ok else "degraded",
                "store": {"reachable": ok, "url": store.url, "error": err},
                "metrics": "embedded" if metrics is not None else "store",
                "market": market is not None, "time": clk.now().isoformat()}
        return JSONResponse(body, status_code=200 if ok else 503)

    ready_checks = {**store_checks(store), **(readiness or {})}

    @app.get("/ready", summary="Readiness: store reachable, schema at head, process checks")
    def ready() -> JSONResponse:
        ok, checks = evaluate(ready_checks)
        return JSONResponse({"ready": ok, "checks": checks, "time": clk.now().isoformat()},
                            status_code=200 if ok else 503)

    @app.get("/metrics", summary="Prometheus text exposition")
    def prometheus() -> Response:
        if metrics is not None:
            data = metrics.render()
        else:
            assert registry is not None
            data = generate_latest(registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ reads

    @app.get("/api/portfolio", summary="Positions, weights, cash and equity")
    def get_portfolio() -> dict[str, Any]:
        mkt = market() if market is not None else None
        return views.clean(views.portfolio(ledger.state(), mkt, ticks))

    @app.get("/api/risk", summary="Risk decomposition, VaR/CVaR and limit breaches")
    def get_risk() -> dict[str, Any]:
        rv = need_risk()
        return views.clean(rv.evaluate(ledger.state().weights()))

    @app.get("/api/attribution",
             summary="Return attribution of the live book: Brinson-Fachler by sector and "
                     "factor groups vs equal weight")
    def get_attribution(since: datetime | None = None) -> dict[str, Any]:
        if attribution is None:
            raise HTTPException(503, "no market data configured: attribution is unavailable")
        if since is not None:
            since = ensure_utc(since, "since")
        return views.clean(attribution.get(since))

    @app.get("/api/orders", summary="Parent orders with their children and fills")
    def get_orders(status: OrderStatus | None = None,
                   symbol: Annotated[str | None, Query(max_length=32)] = None,
                   side: Side | None = None, since: datetime | None = None,
                   open_only: bool = False,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        if since is not None:
            since = ensure_utc(since, "since")
        return views.orders(store, status=status, symbol=symbol, side=side, since=since,
                            open_only=open_only, limit=limit, ticks=ticks)

    @app.get("/api/orders/{client_order_id}", summary="One order with its children and fills")
    def get_order(client_order_id: str) -> dict[str, Any]:
        pid = views.parent_of(store, client_order_id)
        found = (views.orders(store, parent_id=pid, limit=1, ticks=ticks)
                 if pid is not None else None)
        if not found or not found["orders"]:
            raise HTTPException(404, f"unknown order {client_order_id!r}")
        return found["orders"][0]

    @app.get("/api/execution", summary="Execution quality (TCA) per order, symbol, algo")
    def get_execution() -> dict[str, Any]:
        return execution.get()

    @app.get("/api/control", summary="Kill switch and engine requests in force")
    def get_control() -> dict[str, Any]:
        return views.clean(control.read_control(store).to_dict())

    @app.post("/api/cost-estimate", summary="Expected cost of a proposed trade")
    def cost_estimate(req: CostRequest) -> dict[str, Any]:
        mkt = need_market()
        if req.symbol not in mkt.symbols:
            raise ValidationError("unknown symbol: not in the market", field="symbol",
                                  symbol=req.symbol)
        ctx = TradeContext.from_market(mkt.select([req.symbol]), nav=1.0,
                                       default_spread=default_spread,
                                       horizon_days=req.horizon_days)
        price = float(ctx.prices[0])
        notional = req.qty * price
        est = costs.cost(np.array([req.side.sign * notional]), ctx)
        comps = {k: float(v.iloc[0]) for k, v in est.components.items()}
        step = tick_of(req.symbol, ticks)
        return views.clean({
            "symbol": req.symbol, "side": req.side.name, "qty": qty_json(req.qty),
            "price": money_json(price, step), "notional": money_json(notional),
            "horizon_days": req.horizon_days, "as_of": time_json(mkt.now),
            "cost": money_json(float(est.currency.iloc[0])),
            "cost_bps": float(est.bps.iloc[0]),
            "components": {k: money_json(v) for k, v in comps.items()},
            "components_bps": {k: 1e4 * v / notional for k, v in comps.items()},
            "inputs": {"spread": float(ctx.spreads[0]),
                       "daily_volatility": float(ctx.volatility[0]),
                       "adv_notional": float(ctx.adv_notional[0]),
                       "participation": notional / (float(ctx.adv_notional[0])
                                                    * req.horizon_days)},
        })

    # ------------------------------------------------------------------ over time

    trading_view = timeseries.TradingView(store, equity_series,
                                          predict if market is not None else None)

    @app.get("/api/timeseries/equity",
             summary="Equity, cash, exposure, P&L and drawdown after every ledger entry")
    def get_equity_series(max_points: Annotated[int, Query(ge=2, le=20000)] = 2000
                          ) -> dict[str, Any]:
        return equity_series.get(max_points)  # JSON-ready (strings, finite floats), cached

    @app.get("/api/timeseries/trading",
             summary="Per day: notional, turnover, commissions, realised vs predicted cost")
    def get_trading_series() -> dict[str, Any]:
        return views.clean(trading_view.get())

    @app.get("/api/timeseries/breaches", summary="Risk-limit breaches per day and limit")
    def get_breach_series() -> dict[str, Any]:
        return views.clean(timeseries.breaches_by_day(store))

    # ------------------------------------------------------------------ writes (token)

    @app.post("/api/control/kill-switch", dependencies=[write],
              summary="Engage or release the kill switch (token)")
    def kill_switch(req: KillSwitchRequest) -> dict[str, Any]:
        control.write_kill_switch(store, req.engaged, req.reason, clk.now(), actor="api")
        log.warning("kill switch %s via API: %s", "ENGAGED" if req.engaged else "released",
                    req.reason)
        return control.read_control(store).to_dict()

    @app.post("/api/control/engine", dependencies=[write],
              summary="Ask the trading loop to switch engine (token)")
    def switch_engine(req: EngineRequest) -> dict[str, Any]:
        control.request_engine(store, req.engine, req.reason, clk.now(), actor="api")
        return control.read_control(store).to_dict()

    @app.post("/api/control/rebalance", dependencies=[write],
              summary="Ask the trading loop to rebalance at its next bar (token)")
    def rebalance(req: RebalanceRequest) -> dict[str, Any]:
        control.request_rebalance(store, req.reason, clk.now(), actor="api")
        return control.read_control(store).to_dict()

    # ------------------------------------------------------------------ dashboard

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        html = (_static("dashboard.html").replace("{{POLL_MS}}", str(int(poll_seconds * 1000)))
                .replace("{{FMT}}", js_config()))
        return HTMLResponse(html)

    @app.get("/static/dashboard.js", include_in_schema=False)
    def dashboard_js() -> Response:
        return Response(_static("dashboard.js"), media_type="text/javascript")

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> Response:
        return Response(_plotly_js(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    # ------------------------------------------------------------------ API docs, offline

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json",
                                   title="keel - Swagger UI",
                                   swagger_js_url="/static/docs/swagger-ui-bundle.js",
                                   swagger_css_url="/static/docs/swagger-ui.css",
                                   swagger_favicon_url=_FAVICON)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=app.openapi_url or "/openapi.json",
                              title="keel - ReDoc", redoc_js_url="/static/docs/redoc.standalone.js",
                              redoc_favicon_url=_FAVICON, with_google_fonts=False)

    @app.get("/static/docs/{name}", include_in_schema=False)
    def docs_asset(name: str) -> Response:
        media = _DOC_ASSETS.get(name)
        if media is None:
            raise HTTPException(404, "no such asset")
        return Response(_asset(name), media_type=media,
                        headers={"Cache-Control": "public, max-age=86400"})

    if guard is not None:  # hardening lives in keel.app.guard; this is its one hook
        app.add_middleware(Guard, settings=guard)
    return app


def limits_from_config(config: KeelConfig) -> RiskLimits:
    """The risk limits a configuration implies (:meth:`keel.app.pipeline.Pipeline.risk_limits`,
    what ``keel serve`` and ``keel run`` watch)."""
    from keel.app.pipeline import Pipeline

    return Pipeline(config).risk_limits()


def app_from_config(config: KeelConfig, *, token: str | None = None,
                    metrics: KeelMetrics | None = None) -> FastAPI:
    """The service over the configured store, market, limits and cost model (``keel serve``).

    The store is migrated to head first (idempotent), so the service can start before the
    first ``keel run``. The market is built on first use and kept (``[data]``, seed
    ``general.seed``); limits come from ``[optimize] max_weight, sector_cap`` and
    ``[risk] var_confidence, horizon_days``; costs from ``[costs]``.
    """
    from functools import cache

    from keel.app.pipeline import load_market

    store = Store.from_url(config.store.url, echo=config.store.echo)
    store.upgrade()

    @cache
    def market() -> MarketData:
        return load_market(config)

    from keel.app.pipeline import Pipeline

    pipe = Pipeline(config)
    pipe.attach_store(store)  # the estimate prices with the learned multipliers
    return create_app(store, metrics=metrics,
                      token=token if token is not None else config.service.api_token,
                      market=market, limits=pipe.risk_limits(), cost_model=pipe.cost_model,
                      default_spread=pipe.default_spread,
                      confidence=config.risk.var_confidence,
                      horizon_days=config.risk.horizon_days)


# The service runs on the same uvicorn-in-a-thread runner as the exchange's REST front end.
from keel.venues.exchange.server import BackgroundServer  # noqa: E402

__all__ = ["BackgroundServer", "app_from_config", "create_app", "default_cost_model",
           "limits_from_config"]
