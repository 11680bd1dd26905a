"""Data-level look-ahead test (issue 14 point 3).

Real S&P 500 rows (names with gaps, late listings, a half day) are written with timezone-aware
dates (``2015-11-25T00:00:00Z``: the notation that used to be kept at midnight UTC). Every panel
(prices, volumes, spreads, market caps, sectors) is then perturbed from a cut session on: values
rescaled, new gaps, rows deleted, two names delisted, sectors relabelled. A market loaded from the
perturbed files must give, as of any time before the cut session's close, exactly the same view
(every value of every panel and of every derived panel: returns, volatility, ADV, betas, market
returns, spreads, the tradable mask and the universe) as the market loaded from the originals.

Two guards show the test has teeth: the whole-sample ``drop`` policy and the old stamping (a
tz-aware midnight kept as an instant) both make it fail.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.data.market import MarketData
from keel.data.prices import load_prices_long, load_prices_wide, read_wide
from keel.data.stamps import stamp_daily
from keel.errors import DataError

SP500 = "daily/sp500_all_stocks_5yr/all_stocks_5yr.csv.gz"
NY = "America/New_York"
FIELDS = ("open", "high", "low", "close", "volume")
#: every panel a view exposes, given or derived.
PANELS = ("prices", "volumes", "spreads", "market_caps", "sector_history", "returns",
          "log_returns", "dollar_volumes", "adv_shares", "adv_notional", "volatility",
          "market_returns", "betas", "tradable", "universe_size")
START, END = "2015-03-02", "2016-03-31"
# Names with interior gaps (DHR, ES, O: 10-16 sessions), a missing open/high/low (REGN, VRTX),
# late listings inside the window, and plain names.
NAMES = ("DHR", "ES", "O", "REGN", "VRTX", "KHC", "PYPL", "HPE", "AAPL", "MSFT", "JPM", "XOM",
         "GE", "PFE", "KO", "WMT", "INTC", "CSCO", "BA", "MMM")
SECTORS = ("Tech", "Health", "Energy", "Financials")
WINDOWS = {"min_history": 21, "vol_window": 21, "beta_window": 63, "adv_window": 10}


@pytest.fixture(scope="module")
def raw(shared_data: Path) -> pd.DataFrame:
    df = pd.read_csv(shared_data / SP500)
    df = df[df["Name"].isin(NAMES) & (df["date"] >= START) & (df["date"] <= END)]
    return df.reset_index(drop=True)


def _wide(raw: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Spreads, caps and sector labels (dates as written in the files x symbols)."""
    close = raw.pivot(index="date", columns="Name", values="close")
    rng = np.random.default_rng(seed)
    spreads = pd.DataFrame(rng.uniform(1e-4, 2e-3, close.shape), index=close.index,
                           columns=close.columns).where(close.notna())
    caps = close * rng.uniform(1e8, 1e9, close.shape[1])
    labels = rng.choice(SECTORS, close.shape[1])
    sectors = pd.DataFrame(np.tile(labels, (len(close), 1)), index=close.index,
                           columns=close.columns)
    return spreads, caps, sectors


def _perturb(raw: pd.DataFrame, spreads: pd.DataFrame, caps: pd.DataFrame,
             sectors: pd.DataFrame, cut: str, seed: int
             ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Change everything dated ``>= cut`` (file dates): values, gaps, deletions, labels."""
    rng = np.random.default_rng(seed)
    raw = raw.copy()
    late = (raw["date"] >= cut).to_numpy()
    n = int(late.sum())
    f = rng.uniform(0.5, 1.5, n)
    for c in ("open", "high", "low", "close"):
        raw.loc[late, c] = raw.loc[late, c] * f
    raw.loc[late, "volume"] = np.round(raw.loc[late, "volume"] * rng.uniform(0, 3, n))
    gap = late.copy()
    gap[late] = rng.random(n) < 0.05
    raw.loc[gap, "close"] = np.nan
    drop = late.copy()
    drop[late] = rng.random(n) < 0.05
    drop |= late & raw["Name"].isin(["JPM", "KO"]).to_numpy()  # delisted after the cut
    raw = raw.loc[~drop].reset_index(drop=True)
    after = spreads.index >= cut
    spreads, caps, sectors = spreads.copy(), caps.copy(), sectors.copy()
    spreads.loc[after] = spreads.loc[after] * rng.uniform(0.1, 10, (int(after.sum()), 1))
    caps.loc[after] = caps.loc[after] * rng.uniform(0.5, 2.0, (int(after.sum()), 1))
    spreads.loc[after, "PFE"] = np.nan
    sectors.loc[after] = rng.choice(SECTORS, sectors.loc[after].shape)
    return raw, spreads, caps, sectors


def _tz_notation(dates: pd.Index | pd.Series) -> list[str]:
    return [f"{d}T00:00:00Z" for d in dates]


def _write(tmp: Path, raw: pd.DataFrame, spreads: pd.DataFrame, caps: pd.DataFrame
           ) -> dict[str, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    long = raw.assign(date=_tz_notation(raw["date"]))[["date", *FIELDS, "Name"]]
    paths = {"long": tmp / "long.csv", "spreads": tmp / "spreads.csv", "caps": tmp / "caps.csv",
             "prices": tmp / "prices.csv", "volumes": tmp / "volumes.csv"}
    long.to_csv(paths["long"], index=False)
    wide = {"spreads": spreads, "caps": caps,
            "prices": raw.pivot(index="date", columns="Name", values="close"),
            "volumes": raw.pivot(index="date", columns="Name", values="volume")}
    for name, df in wide.items():
        df = df.reindex(spreads.index)
        df.index = pd.Index(_tz_notation(df.index), name="date")
        df.to_csv(paths[name])
    return paths


def _sector_panel(sectors: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    out = sectors.copy()
    out.index = stamp_daily(pd.DatetimeIndex(sectors.index))
    return out.reindex(index)


def _complete(md: MarketData, paths: dict[str, Path], sectors: pd.DataFrame,
              policy: str, spreads: pd.DataFrame | None) -> MarketData:
    caps = read_wide(paths["caps"], name="market_caps")
    return MarketData(md.prices, md.volumes, spreads=spreads,
                      market_caps=caps.reindex(md.dates),
                      sectors=_sector_panel(sectors, md.dates), on_missing=policy, **WINDOWS)


def load_long(paths: dict[str, Path], sectors: pd.DataFrame, policy: str) -> MarketData:
    """The long-file path, with the causal Abdi-Ranaldo spread estimate from high/low/close."""
    md = load_prices_long(paths["long"], on_missing=policy, **WINDOWS)
    return _complete(md, paths, sectors, policy, md.spreads)


def load_wide(paths: dict[str, Path], sectors: pd.DataFrame, policy: str) -> MarketData:
    """The wide-file path, with spreads read from a file."""
    md = load_prices_wide(paths["prices"], paths["volumes"], spreads=paths["spreads"],
                          on_missing=policy, **WINDOWS)
    return _complete(md, paths, sectors, policy, md.spreads)


def assert_same_view(a: MarketData, b: MarketData) -> None:
    """Every value of every panel (given and derived) of two views is identical."""
    assert a.now == b.now
    for name in PANELS:
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, name
        elif isinstance(x, pd.Series):
            pd.testing.assert_series_equal(x, y, check_exact=True, obj=name)
        else:
            pd.testing.assert_frame_equal(x, y, check_exact=True, obj=name)
    pd.testing.assert_series_equal(a.sectors, b.sectors, obj="sectors")
    pd.testing.assert_index_equal(a.universe, b.universe, obj="universe")


def _check(raw: pd.DataFrame, tmp: Path, loader: Callable[..., MarketData], policy: str,
           cut: str, times: list[pd.Timestamp], seed: int = 0) -> None:
    spreads, caps, sectors = _wide(raw, seed)
    base = loader(_write(tmp / "base", raw, spreads, caps), sectors, policy)
    p_raw, p_spr, p_caps, p_sec = _perturb(raw, spreads, caps, sectors, cut, seed + 1)
    moved = loader(_write(tmp / "moved", p_raw, p_spr, p_caps), p_sec, policy)
    assert not base.prices.equals(moved.prices)  # the perturbation did reach the data
    for t in times:
        assert_same_view(base.as_of(t), moved.as_of(t))


# Cut sessions: a half day (2015-11-27 closed at 13:00 New York) and an ordinary day; the
# views are taken before the cut session's close (its value is not known yet).
CASES = [
    ("2015-11-27", [pd.Timestamp("2015-11-27 12:59", tz=NY),
                    pd.Timestamp("2015-11-27 09:30", tz=NY),
                    pd.Timestamp("2015-11-26 23:00", tz="UTC")]),
    ("2015-12-01", [pd.Timestamp("2015-12-01 10:00", tz=NY),
                    pd.Timestamp("2015-12-01 00:00", tz="UTC"),
                    pd.Timestamp("2015-11-30 16:00", tz=NY)]),
]


@pytest.mark.parametrize("loader", [load_long, load_wide], ids=["long", "wide"])
@pytest.mark.parametrize("cut,times", CASES, ids=[c[0] for c in CASES])
def test_no_view_changes_when_the_future_changes(raw, tmp_path, loader, cut, times):
    _check(raw, tmp_path, loader, "mask", cut, times)


def test_the_half_day_close_is_seen_at_13_00(raw, tmp_path):
    spreads, caps, sectors = _wide(raw, 0)
    md = load_long(_write(tmp_path, raw, spreads, caps), sectors, "mask")
    assert md.as_of(pd.Timestamp("2015-11-27 12:59", tz=NY)).now.tz_convert(NY).day == 25
    assert md.as_of(pd.Timestamp("2015-11-27 13:00", tz=NY)).now == pd.Timestamp(
        "2015-11-27 13:00", tz=NY)


def test_guard_whole_sample_drop_is_caught(raw, tmp_path):
    """The pre-mask universe (drop any name with a gap anywhere) fails the same test: the view
    loses names (or the load fails outright) because of gaps after the cut."""
    with pytest.raises((AssertionError, DataError), match="prices"):
        _check(raw, tmp_path, load_long, "drop", *CASES[1])


def _old_stamping(paths: dict[str, Path], sectors: pd.DataFrame, policy: str) -> MarketData:
    """The stamping before the fix: a tz-aware date kept as the instant it spells (midnight)."""
    df = pd.read_csv(paths["long"])
    df["date"] = pd.to_datetime(df["date"], utc=True)
    px = df.pivot(index="date", columns="Name", values="close")
    vol = df.pivot(index="date", columns="Name", values="volume")
    return MarketData(px, vol, on_missing=policy, **WINDOWS)


def test_guard_midnight_utc_stamping_is_caught(raw, tmp_path):
    with pytest.raises(AssertionError, match="prices"):
        _check(raw, tmp_path, _old_stamping, "mask", *CASES[1])
