"""Look-ahead through the whole desk (issue 14, point 3): every panel after a cut is perturbed
(prices, volumes and the derived spreads, volatility and ADV; external signals; dates written
as tz-aware midnights; gaps, a delisting and a new listing) and every decision, NAV, trade,
order and event up to the cut must be unchanged, in the backtest and in the live cycle that
``keel run`` repeats bar by bar.

Both markets already hold what a point-in-time universe must trade through before the cut
(``on_missing = "mask"``): a name listed after the data start that enters the universe during
the backtest, and a held name whose data has a gap (liquidated at its last close, an event)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.app.cycle import DecisionCycle
from keel.app.pipeline import load_market
from keel.backtest.engine import Backtester
from keel.clock import SimulatedClock
from keel.config import DataConfig, KeelConfig, parse_config
from keel.data.market import MarketData
from keel.data.source import load_market as synthetic
from keel.portfolio.ledger import Ledger

N_DAYS, CUT = 330, 300          # decisions up to session CUT must not see anything after it
LATE, LIST_AT = 3, 150          # listed at session 150 (enters once its risk window is full)
GAP, GAP_AT = 5, (270, 273)     # no data on sessions 270-272 (before the cut, in both)
DELIST, DELIST_AT = 7, CUT + 3  # after the cut: data stops for good
GAP2, GAP2_AT = 9, (CUT + 2, CUT + 6)
NEW = "ZNEW"                    # after the cut: a new listing


@pytest.fixture(scope="module")
def base_market() -> MarketData:
    return synthetic(DataConfig(n_assets=20, n_days=N_DAYS), seed=5)


def _long_csv(m: MarketData, path: Path, *, perturb: bool) -> None:
    """The market as a long OHLCV file with ``YYYY-MM-DDT00:00:00Z`` dates (tz-aware
    midnights that keel stamps at the session close)."""
    px, vol = m.prices.copy(), m.volumes.copy()
    px.iloc[:LIST_AT, LATE] = np.nan
    px.iloc[GAP_AT[0]:GAP_AT[1], GAP] = np.nan
    if perturb:
        rng = np.random.default_rng(1)
        after = px.index[CUT + 1:]
        px.loc[after] *= np.exp(rng.normal(0, 0.08, px.loc[after].shape))
        vol.loc[after] *= 3.0
        px.iloc[DELIST_AT:, DELIST] = np.nan
        px.iloc[GAP2_AT[0]:GAP2_AT[1], GAP2] = np.nan
        px[NEW] = np.where(np.arange(len(px)) > CUT, px.iloc[:, 0] * 1.1, np.nan)
        vol[NEW] = vol.iloc[:, 0]
    dates = [f"{d.tz_convert('America/New_York').date()}T00:00:00Z" for d in px.index]
    frame = px.set_axis(dates).stack(future_stack=True).rename("close").to_frame()
    frame["volume"] = vol.set_axis(dates).stack(future_stack=True)
    frame = frame.dropna().reset_index()  # a hole is a missing row, as in real files
    frame.columns = ["date", "Name", "close", "volume"]
    for col in ("open", "high", "low"):
        frame[col] = frame["close"]
    frame.to_csv(path, index=False)


def _signals(m: MarketData, path: Path, *, perturb: bool) -> None:
    rng = np.random.default_rng(2)
    rows = []
    for i, d in enumerate(m.dates):
        score = rng.normal(0, 1, m.n_assets)
        if perturb and i > CUT:
            score = -score * 5
        day = str(d.tz_convert("America/New_York").date())
        rows += [{"date": day, "symbol": str(s), "score": float(v)}
                 for s, v in zip(m.symbols, score, strict=True)]
        if perturb and i > CUT:
            rows.append({"date": day, "symbol": NEW, "score": 3.0})
    pd.DataFrame(rows).to_csv(path, index=False)


def _config(folder: Path, m: MarketData, *, perturb: bool) -> KeelConfig:
    folder.mkdir(parents=True, exist_ok=True)
    _long_csv(m, folder / "prices.csv", perturb=perturb)
    _signals(m, folder / "signals.csv", perturb=perturb)
    sectors = m.sectors.rename("Sector").rename_axis("Symbol")
    if perturb:
        sectors = pd.concat([sectors, pd.Series({NEW: sectors.iloc[0]}, name="Sector")])
    sectors.rename_axis("Symbol").to_csv(folder / "sectors.csv")
    return parse_config({
        "data": {"source": "csv", "prices_path": str(folder / "prices.csv"),
                 "sectors_path": str(folder / "sectors.csv"), "on_missing": "mask"},
        "signals": {"source": "file", "path": str(folder / "signals.csv")},
        "costs": {"spread_source": "fixed"},
        "risk": {"model": "pca", "n_pca_factors": 4, "lookback_days": 120, "refit_every": 10},
        "policy": {"frequency": "weekly"},
        # 20 names, some outside the universe at times: 5% caps could not hold 100%
        "optimize": {"max_weight": 0.1},
        "backtest": {"warmup": 260, "ledger": "none",
                     "books": [{"name": "mv"},
                               {"name": "greedy", "optimize": {"engine": "greedy",
                                                               "greedy_k": 6}},
                               {"name": "ew", "optimize": {"engine": "equal_weight"}}]}})


@pytest.fixture(scope="module")
def configs(base_market, tmp_path_factory) -> tuple[KeelConfig, KeelConfig]:
    root = tmp_path_factory.mktemp("lookahead")
    return (_config(root / "base", base_market, perturb=False),
            _config(root / "shocked", base_market, perturb=True))


def test_backtest_decisions_navs_and_trades_ignore_the_future(configs) -> None:
    base_cfg, shocked_cfg = configs
    base_m, shocked_m = load_market(base_cfg), load_market(shocked_cfg)
    cut = base_m.dates[CUT]
    assert shocked_m.dates[CUT] == cut and cut.tz_convert("America/New_York").hour == 16
    # the perturbation is real: the markets differ after the cut, not before
    pd.testing.assert_frame_equal(base_m.prices.loc[:cut],
                                  shocked_m.prices[base_m.symbols].loc[:cut])
    assert shocked_m.prices[NEW].loc[:cut].isna().all()
    assert not base_m.prices.loc[cut:].iloc[1:].equals(shocked_m.prices.loc[cut:].iloc[1:])
    assert NEW in shocked_m.symbols and NEW not in base_m.symbols
    base = Backtester(base_cfg).run(base_m)
    alt = Backtester(shocked_cfg).run(shocked_m)
    assert not base.failures and not alt.failures
    pd.testing.assert_series_equal(base.universe.loc[:cut], alt.universe.loc[:cut])
    pd.testing.assert_series_equal(base.tradable.loc[:cut], alt.tradable.loc[:cut])
    late, gap, gone = (str(base_m.symbols[j]) for j in (LATE, GAP, DELIST))
    for name in base.books:
        a, b = base.books[name], alt.books[name]
        assert a.rebalances > 0
        # every decision up to the cut: same codes, same targets name by name
        da = [d for d in a.decisions if pd.Timestamp(d["date"]) <= cut]
        db = [d for d in b.decisions if pd.Timestamp(d["date"]) <= cut]
        assert len(da) == len(db) > 0
        for x, y in zip(da, db, strict=True):
            assert {k: v for k, v in x.items() if k != "target"} == \
                {k: v for k, v in y.items() if k != "target"}
            tx = {s: w for s, w in zip(base_m.symbols, x["target"], strict=True) if w}
            ty = {s: w for s, w in zip(shocked_m.symbols, y["target"], strict=True) if w}
            assert tx == ty
        # events (liquidations, unfilled trades) up to the cut
        assert [e for e in a.events if pd.Timestamp(e["date"]) <= cut] == \
            [e for e in b.events if pd.Timestamp(e["date"]) <= cut]
        pd.testing.assert_series_equal(a.nav.loc[:cut], b.nav.loc[:cut])
        pd.testing.assert_series_equal(a.turnover.loc[:cut], b.turnover.loc[:cut])
        pd.testing.assert_series_equal(a.traded.loc[:cut], b.traded.loc[:cut])
        pd.testing.assert_frame_equal(a.costs.loc[:cut], b.costs.loc[:cut])
        pd.testing.assert_frame_equal(a.risk.loc[:cut], b.risk.loc[:cut])
        # and the future does matter afterwards (the test could fail)
        assert not a.nav.loc[cut:].iloc[2:].equals(b.nav.loc[cut:].iloc[2:])
        assert np.all(np.isfinite(a.nav)) and np.all(np.isfinite(b.nav))
    # the equal-weight book holds the whole universe: it trades through every hole
    ew_a, ew_b = base.books["ew"], alt.books["ew"]
    j_late = list(base_m.symbols).index(late)
    first = base_m.dates[LIST_AT]
    entered = [pd.Timestamp(d["date"]) for d in ew_a.decisions if d["target"][j_late] > 0]
    assert entered and min(entered) > first + pd.Timedelta(days=120)  # after its history
    # at the start the late listing is in the mask but not yet in the risk window (120 rows)
    assert base.universe.iloc[0] == base.tradable.iloc[0] - 1 == 19
    assert base.tradable.min() == 19 < base.tradable.max()  # the gap name left the mask
    liq = [e for e in ew_a.events if e["event"] == "DATA_STOPPED_LIQUIDATED"]
    assert [e["symbol"] for e in liq] == [gap]
    assert pd.Timestamp(liq[0]["date"]) == base_m.dates[GAP_AT[0]]
    assert liq[0]["price"] == pytest.approx(base_m.prices[gap].iloc[GAP_AT[0] - 1])
    after = [e for e in ew_b.events if pd.Timestamp(e["date"]) > cut
             and e["event"] == "DATA_STOPPED_LIQUIDATED"]
    assert gone in {e["symbol"] for e in after}  # the delisting after the cut was seen


def test_live_cycle_bar_by_bar_ignores_the_future(configs) -> None:
    base_cfg, shocked_cfg = configs
    base_m, shocked_m = load_market(base_cfg), load_market(shocked_cfg)
    cut = base_m.dates[CUT]
    # the session after the cut, from the open to a minute before its close, every 30 min
    nxt = base_m.dates[CUT + 1]
    open_ = nxt - timedelta(hours=6, minutes=30)
    bars = [open_ + timedelta(minutes=5 + 30 * i) for i in range(13)]
    assert all(cut < b < nxt for b in bars)
    prices = {s: Decimal(str(round(p, 2))) for s, p in base_m.as_of(cut).latest("prices").items()}
    results = []
    for cfg, m in ((base_cfg, base_m), (shocked_cfg, shocked_m)):
        cycle = DecisionCycle(cfg)
        clock = SimulatedClock(bars[0])
        ledger = Ledger(clock=clock)
        ledger.deposit(Decimal(1_000_000))
        out = []
        for b in bars:
            clock.set(b)
            r = cycle.run(m, now=b, state=ledger.state, prices=prices, clock=clock, force=True)
            # a dry run (no order manager): the decision up to the schedules, every stage's codes
            out.append((r.targets.round(12).to_dict(),
                        {st: r.codes(st) for st in ("optimize", "triggers", "rebalance",
                                                    "governance", "schedule")},
                        sorted(r.algos.values()), sorted(r.children.values())))
        results.append(out)
    assert results[0] == results[1]
    assert all("ORDERS" in codes["rebalance"] for _, codes, *_ in results[0])  # it traded
