"""Every key of the one configuration is read: changing it changes what the desk does.

The test walks every leaf of :class:`keel.config.KeelConfig`, changes it, and compares a
behaviour fingerprint (market loaded, signals, risk fit, engine targets, turnover governor,
policy decisions, governance verdicts, cost model, schedules, a tiny backtest) with the
default's. Keys consumed by the process around the pipeline (store, service, venues, output
folders, logging, tracking, the order manager's notional cap, file-data paths) are checked to
be read by the code that owns them.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.app.pipeline import Pipeline, load_market
from keel.config import (
    EngineKind,
    KeelConfig,
    RiskModelKind,
    iter_leaves,
    parse_config,
    with_overrides,
)
from keel.data.market import MarketData
from keel.data.synthetic import synthetic_market
from keel.policy.triggers import PolicyContext
from keel.policy.verdicts import GovernanceContext
from keel.types import Order, Side, utc

SRC = Path(__file__).resolve().parents[2] / "src" / "keel"

#: keys read by the process around the pipeline: (section, key) -> where they are read
BY_REFERENCE = {
    **{("general", k): "cli" for k in ("name", "out_dir", "log_level")},
    **{("store", k): "store" for k in ("url", "echo")},
    **{("service", k): "service" for k in ("host", "port", "api_token", "token_file",
                                            "allowed_hosts")},
    ("optimize", "solver_time_limit_s"): "solver limits (tests/optimize/test_limits.py)",
    ("optimize", "solver_max_iter"): "solver limits (tests/optimize/test_limits.py)",
    ("risk", "memory_budget_mb"): "risk fit (tests/app/test_production_limits.py)",
    **{("venues", k): "venue" for k in ("broker", "fix_host", "fix_port", "sender_comp_id",
                                         "target_comp_id", "rest_url")},
    **{("tracking", k): "tracking" for k in ("record_runs", "mlflow", "mlflow_uri")},
    ("data", "source"): "file data", ("data", "prices_path"): "file data",
    ("data", "sectors_path"): "file data", ("data", "on_missing"): "file data",
    ("data", "spreads_path"): "file data (tests/app/test_spread_wiring.py)",
    ("costs", "spread_fallback"): "file data (tests/app/test_spread_wiring.py)",
    ("execution", "max_order_notional"): "order manager",
    ("execution", "min_order_value"): "rebalance plan", ("backtest", "report"): "report",
    ("governance", "alert_after_failures"): "live loop (tests/app/test_desk.py)",
    ("governance", "kill_after_failures"): "live loop (tests/app/test_desk.py)",
    ("backtest", "sweep"): "keel sweep", ("general", "seed"): "synthetic",
    **{("accounts", k): "keel accounts rebalance (tests/accounts)"
       for k in ("workers", "chunk_size", "ray_address", "tracking_aversion", "short_term_rate",
                 "long_term_rate", "lot_method", "wash_sale")},
    **{("optimize", k): "mpo / views engines (tests/app/test_engines_mpo.py)"
       for k in ("mpo_horizon", "mpo_alpha_decay", "mpo_alpha_profile", "bl_views",
                 "bl_quantile", "bl_tau", "bl_confidence", "bl_min_track")},
}

#: changed values for keys whose default cannot simply be bumped
CHANGES = {
    ("data", "start"): "2020-06-01", ("data", "calendar"): "XLON", ("data", "max_assets"): 10,
    ("signals", "source"): None, ("signals", "path"): None,
    ("signals", "weights"): {"momentum_12_1": 1.0},
    ("risk", "model"): "pca", ("risk", "fallback"): ["lw"], ("risk", "var_budget"): 0.05,
    ("risk", "max_volatility"): 0.1, ("risk", "max_pairwise_correlation"): 0.5,
    ("risk", "ewma_lambda"): 0.9, ("risk", "var_confidence"): 0.99,
    ("optimize", "cvar_beta"): 0.9, ("optimize", "risk_aversion"): 50.0,
    ("optimize", "cost_aversion"): 200.0,
    ("optimize", "engine"): "greedy", ("optimize", "max_turnover"): 0.1,
    ("optimize", "annual_turnover"): 0.5, ("optimize", "beta_min"): 0.95,
    ("optimize", "beta_max"): 0.9, ("optimize", "max_trade_adv"): 0.02,
    ("optimize", "greedy_k_buy"): 2, ("optimize", "greedy_k_sell"): 40,
    ("optimize", "sector_cap"): 0.12, ("optimize", "cash_buffer"): 0.1,
    ("optimize", "turnover_funding"): "exempt", ("optimize", "long_only"): False,
    ("optimize", "max_weight"): 0.1,
    ("costs", "spread_source"): "fixed", ("costs", "default_spread_bps"): 50.0,
    ("policy", "frequency"): "weekly", ("policy", "drift_band"): None,
    ("policy", "portfolio_drift"): 0.05, ("policy", "cooldown_sessions"): 3,
    ("policy", "cooldown_minutes"): 30.0, ("policy", "windows"): [],
    ("policy", "vol_spike_ratio"): 2.0, ("policy", "spread_blowout_ratio"): 2.0,
    ("governance", "cluster_cap"): 0.05, ("governance", "cluster_threshold"): 0.01,
    ("governance", "vol_target"): 0.1, ("governance", "vol_halt"): 0.06,
    ("governance", "min_trade_value"): 1e6, ("governance", "sector_cap"): 0.01,
    ("governance", "max_position"): 0.001, ("governance", "drawdown_soft"): 0.01,
    ("governance", "drawdown_hard"): 0.12,
    ("execution", "algo"): "twap", ("execution", "horizon_minutes"): 30.0,
    ("execution", "is_above_adv"): None, ("execution", "limit_offset_bps"): 5.0,
    ("execution", "max_participation"): 1e-4,
    ("backtest", "start"): "2022-02-01", ("backtest", "end"): "2022-02-01",
    ("backtest", "ledger"): "none", ("backtest", "execution_lag"): "same_close",
    ("backtest", "books"): [{"name": "ew", "optimize": {"engine": "equal_weight"}}],
    ("backtest", "warmup"): 270,
}

BASE = {"data": {"n_assets": 20, "n_days": 280},
        "risk": {"lookback_days": 120, "n_pca_factors": 3, "refit_every": 5},
        "backtest": {"warmup": 260, "nav": 1e7},
        "optimize": {"greedy_k": 5, "max_weight": 0.2},
        "execution": {"max_participation": 1.0},
        "governance": {"enabled": False, "cluster_cap": 0.3, "vol_target": 0.05}}


@pytest.fixture(scope="module")
def view():
    return synthetic_market(20, 300, seed=2)


def _bare(m):
    """The market without quotes (spreads): the default spread stands in."""
    return MarketData(m.prices, m.volumes, sectors=m.sectors)


def _bump(default, field):
    if isinstance(default, bool):
        return not default
    if isinstance(default, Enum):
        return next(m for m in type(default) if m is not default).value
    if isinstance(default, int):
        return default + 1
    if isinstance(default, float):
        return default * 0.5 if default > 0 else 0.01
    raise AssertionError(f"give a change for {field}")


def _value(section, key, field, base):
    if (section, key) in CHANGES:
        return CHANGES[(section, key)]
    return _bump(getattr(getattr(base, section), key), f"{section}.{key}")


def _round(x, nd=8):
    return np.round(np.asarray(x, dtype=np.float64), nd).tolist()


def behaviour(cfg: KeelConfig, view) -> dict:
    """What the desk does with ``cfg`` (cheap probes of every stage)."""
    out: dict = {}
    m = load_market(cfg)
    out["market"] = (m.n_assets, len(m.dates), str(m.dates[0]), _round(m.prices.iloc[-1].sum()))
    pipe, pb = Pipeline(cfg), Pipeline(cfg, live=False)
    score, alpha = pipe.signals(view)
    out["signals"] = _round([score.sum(), (score ** 2).sum(), alpha.abs().sum()])
    fit = pipe.fit_risk(view)
    short = pipe.fit_risk(view.head(30))  # too short for the first models: the chain
    out["risk"] = (fit.used.value, _round(fit.model.diag().sum(), 12), short.used.value,
                   [_round(pipe._fit_one(k, view)[0].diag().sum(), 12) for k in RiskModelKind])
    out["limits"] = repr(pipe.risk_limits())
    ctx = pipe.trade_context(view, 1e7)
    trades = np.linspace(-2e5, 3e5, view.n_assets)
    bare = pipe.trade_context(_bare(view), 1e7)
    learned = None
    if pipe.feedback is not None:  # fills costing 3x the prediction teach the model
        realised = 3.0 * pipe.cost_model.cost_array(trades, ctx)
        for _ in range(5):
            pipe.feedback.observe_trades(trades, ctx, realised, view.now.to_pydatetime())
        learned = _round(pipe.cost_model.cost_array(trades, ctx).sum(), 6)
    out["feedback"] = learned
    out["costs"] = (_round(pipe.cost_model.cost_array(trades, ctx).sum(), 6),
                    _round(pipe.cost_model.cost_array(trades, bare).sum(), 6),
                    _round(pipe.holding.borrow_fee, 12))
    cur = np.zeros(view.n_assets)
    cur[:8] = 0.1
    cur[8] = -0.05 if not cfg.optimize.long_only else 0.05
    step = pipe.step(view, pd.Timestamp(view.now), score, alpha, cur, fit.model, ctx)
    eng = pipe.engine()
    tgt = eng.target(step)
    out["engine"] = (_round(tgt, 5), eng.codes)
    for kind in (EngineKind.GREEDY, EngineKind.MEAN_CVAR):
        if kind is not cfg.optimize.engine:
            other = pipe.engine(kind=kind)
            st = pipe.step(view, pd.Timestamp(view.now), score, alpha, cur, fit.model, ctx)
            if kind is EngineKind.MEAN_CVAR:
                st = replace(st, scenarios=view.returns.iloc[-120:].fillna(0.0).to_numpy())
            out[kind.value] = (_round(other.target(st), 5), other.codes)
    gov = pipe.turnover_governor()
    d0 = pd.Timestamp(view.now)
    w1, c1 = gov.apply(d0, np.zeros(view.n_assets), tgt)
    w2, c2 = gov.apply(d0 + pd.Timedelta(days=30), w1, np.roll(tgt, 3))
    out["governor"] = (_round(w1, 6), _round(w2, 6), c1, c2)
    out["policy"] = _policy(pipe, view) + _policy(pb, view)
    out["governance"] = (pipe.governance is None,
                         _governance(Pipeline(with_overrides(cfg, {"governance.enabled": True})),
                                     view))
    ex = pipe
    out["execution"] = (repr(ex.schedule_config()), ex.algo_for(0.001).value,
                        ex.algo_for(0.01).value,
                        _round(ex.cap_participation(np.array([5e5, -1e4]),
                                                    np.array([1e6, 1e6]))[0]),
                        str(ex.limit_price(1, 100.0)), _schedule(pipe, view))
    out["backtest"] = _backtest(cfg)
    return out


def _policy(pipe, view):
    syms = view.symbols[:3]
    w = pd.Series([0.3, 0.3, 0.3], index=syms)
    out = []
    for now, last, drift, vol, spread in [
        (utc(2022, 3, 14, 13, 36), utc(2022, 3, 11, 21), 0.0, None, None),
        (utc(2022, 3, 14, 15, 0), utc(2022, 3, 14, 14, 50), 0.06, None, None),
        (utc(2022, 3, 15, 14, 31), utc(2022, 3, 14, 14, 0), 0.02, 3.0, None),
        (utc(2022, 3, 21, 13, 36), utc(2022, 3, 14, 14, 0), 0.06, None, 2.5),
        (utc(2022, 3, 22, 13, 40, 30), utc(2022, 3, 14, 14, 0), 0.06, None, None),
        (utc(2022, 4, 4, 13, 36), utc(2022, 3, 14, 14, 0), 0.0, None, None),
    ]:
        t = w.copy()
        t.iloc[0] += drift
        t.iloc[1] -= drift / 2
        sr = None if spread is None else pd.Series([spread, 1.0, 1.0], index=syms)
        d = pipe.policy.decide(PolicyContext(now, w, t, last, vol_ratio=vol, spread_ratio=sr))
        out.append((d.trade, tuple(r.value for r in d.reasons), d.names))
    return out


def _governance(pipe, view):
    if pipe.governance is None:
        return None
    syms = [str(s) for s in view.symbols]
    px = {s: Decimal(str(round(float(p), 2))) for s, p in view.latest("prices").items()}
    out = []
    for now, dd in ((utc(2022, 3, 14, 15), 0.0), (utc(2022, 3, 14, 15), 0.15),
                    (utc(2022, 3, 14, 23), 0.0)):
        ctx = GovernanceContext.from_market(now=now, nav=Decimal(1_000_000), prices=px,
                                            positions={syms[0]: Decimal(1000)}, market=view,
                                            drawdown=dd)
        orders = [Order(f"o{i}", s, Side.BUY, Decimal(2000 + 500 * i), now)
                  for i, s in enumerate(syms[:8])]
        out.append([(v.reason_code, str(v.qty)) for v in pipe.governance.evaluate(orders, ctx)])
    return out


def _schedule(pipe, view):
    from keel.clock import SimulatedClock
    from keel.execution.schedule import ExecutionContext, make_scheduler

    e = pipe.config.execution
    sched = make_scheduler(pipe.algo_for(0.0).value, pipe.schedule_config(),
                           urgency=e.is_urgency, participation=e.max_participation)
    order = Order("p", "S0000", Side.BUY, Decimal(50_000), utc(2022, 3, 14, 14, 0))
    ctx = ExecutionContext(price=50.0, adv_shares=1e6, daily_volatility=0.02, spread_bps=5.0)
    kids = sched.schedule(order, ctx, SimulatedClock(utc(2022, 3, 14, 14, 0)))
    kids_is = make_scheduler("is", pipe.schedule_config(), urgency=e.is_urgency).schedule(
        order, ctx, SimulatedClock(utc(2022, 3, 14, 14, 0)))
    return [str(k.qty) for k in kids] + [str(k.qty) for k in kids_is]


def _backtest(cfg):
    from keel.backtest.engine import Backtester

    res = Backtester(cfg).run(load_market(cfg))
    return {k: (_round(b.nav.to_numpy(), 2), b.rebalances, _round(b.risk.to_numpy(), 10),
                sorted(b.ledger)) for k, b in res.books.items()}


def _leaves():
    return [(s, k) for s, k, _ in iter_leaves()]


@pytest.fixture(scope="module")
def base():
    return parse_config({k: dict(v) for k, v in BASE.items()})


@pytest.fixture(scope="module")
def base_behaviour(base, view):
    return behaviour(base, view)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("section,key", [lk for lk in _leaves() if lk not in BY_REFERENCE])
def test_changing_a_key_changes_behaviour(section, key, base, base_behaviour, view, tmp_path):
    if (section, key) in (("signals", "source"), ("signals", "path")):
        f = tmp_path / "scores.csv"
        pd.DataFrame({"date": [str(view.dates[0].date())] * 3,
                      "symbol": [str(s) for s in view.symbols[:3]],
                      "score": [1.0, -1.0, 0.5]}).to_csv(f, index=False)
        cfg = with_overrides(base, {"signals.source": "file", "signals.path": str(f)})
    else:
        field = type(getattr(base, section)).model_fields[key]
        cfg = with_overrides(base, {f"{section}.{key}": _value(section, key, field, base)})
    assert behaviour(cfg, view) != base_behaviour, f"{section}.{key} changes nothing"


def test_every_key_is_covered_or_read_by_reference():
    leaves = set(_leaves())
    assert set(BY_REFERENCE) <= leaves  # no stale entry
    code = "\n".join(p.read_text() for p in SRC.rglob("*.py") if p.name != "config.py")
    for section, key in BY_REFERENCE:
        # read as cfg.<section>.<key>, or through the section object (d.<key> after
        # d = cfg.<section>; the section must then be taken somewhere)
        direct = re.search(rf"\.{section}\.{key}\b", code)
        via = (re.search(rf"\.{section}\b", code)
               and re.search(rf"\b[a-z_]+\.{key}\b", code))
        assert direct or via, f"{section}.{key} is read nowhere"


def test_a_change_is_detected_in_its_own_stage(base, base_behaviour, view):
    """The fingerprint is not trivially different: an identical config gives the same."""
    again = parse_config({k: dict(v) for k, v in BASE.items()})
    assert behaviour(again, view) == base_behaviour
