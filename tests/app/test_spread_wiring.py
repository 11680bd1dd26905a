"""costs.spread_source / spread_fallback reach the desk's market, and every non-quote spread is
labelled on the market (``market.caveats``), never used silently (issue 14.4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.app.pipeline import Pipeline, load_market
from keel.config import parse_config
from keel.data.calendar import get_calendar
from keel.data.spreads import abdi_ranaldo_spread
from keel.errors import ConfigError, DataError

DATES = get_calendar("XNYS").sessions("2024-01-02", "2024-03-29")[:40]
SYMS = ["AAA", "BBB", "CCC"]


def _files(tmp_path: Path, quotes_for: tuple[str, ...] = ("AAA",), late: bool = True
           ) -> tuple[Path, Path]:
    rng = np.random.default_rng(3)
    rows = []
    for k, s in enumerate(SYMS):
        close = 50.0 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, len(DATES))))
        for d, c in zip(DATES, close, strict=True):
            rows.append({"date": d.date().isoformat(), "open": c, "high": c * 1.01,
                         "low": c * 0.99, "close": c, "volume": 1e6, "Name": s})
    prices = tmp_path / "prices.csv"
    pd.DataFrame(rows).to_csv(prices, index=False)
    wide = pd.DataFrame({s: 2e-4 if s in quotes_for else np.nan for s in SYMS},
                        index=[d.date().isoformat() for d in DATES])
    if late:
        wide.iloc[:5, 0] = np.nan  # AAA quoted only from the sixth session
    spreads = tmp_path / "spreads.csv"
    wide.rename_axis("date").to_csv(spreads)
    return prices, spreads


def _cfg(prices: Path, spreads: Path | None = None, **costs: object):
    data = {"source": "csv", "prices_path": str(prices)}
    if spreads is not None:
        data["spreads_path"] = str(spreads)
    return parse_config({"data": data, "costs": {"default_spread_bps": 7.0, **costs}})


def test_quotes_with_the_fixed_fallback_are_labelled(tmp_path: Path) -> None:
    prices, spreads = _files(tmp_path)
    m = load_market(_cfg(prices, spreads))
    assert m.spreads is not None
    last = m.spreads.iloc[-1]
    assert last["AAA"] == pytest.approx(2e-4)
    assert last["BBB"] == pytest.approx(7e-4) and last["CCC"] == pytest.approx(7e-4)
    assert m.spreads["AAA"].iloc[0] == pytest.approx(7e-4)  # before its first quote
    assert len(m.caveats) == 1 and "2 name(s) without quotes" in m.caveats[0]
    assert "7 bps" in m.caveats[0]
    # the caveat survives point-in-time views and selections
    assert m.head(10).caveats == m.caveats and m.select(["AAA"]).caveats == m.caveats
    ctx = Pipeline(_cfg(prices, spreads)).trade_context(m)
    assert ctx.spreads.tolist() == pytest.approx([2e-4, 7e-4, 7e-4])


def test_every_name_quoted_needs_no_caveat(tmp_path: Path) -> None:
    prices, spreads = _files(tmp_path, quotes_for=tuple(SYMS), late=False)
    m = load_market(_cfg(prices, spreads, spread_fallback="none"))
    assert m.caveats == () or all("without quotes" not in c for c in m.caveats)


def test_the_none_fallback_names_the_unquoted_price(tmp_path: Path) -> None:
    prices, spreads = _files(tmp_path)
    with pytest.raises(DataError) as e:
        load_market(_cfg(prices, spreads, spread_fallback="none"))
    assert e.value.field == "spreads" and e.value.symbol == "AAA"  # its first five sessions


def test_estimate_source_and_fallback_are_the_abdi_ranaldo_estimate(tmp_path: Path) -> None:
    prices, spreads = _files(tmp_path)
    raw = pd.read_csv(prices)
    m_est = load_market(_cfg(prices, spread_source="estimate"))
    panels = {c: raw.pivot(index="date", columns="Name", values=c) for c in
              ("high", "low", "close")}
    expect = abdi_ranaldo_spread(panels["high"], panels["low"], panels["close"])
    assert m_est.spreads is not None
    np.testing.assert_allclose(m_est.spreads.to_numpy(), expect.to_numpy(), rtol=1e-12)
    assert any("Abdi-Ranaldo" in c for c in m_est.caveats)
    m_fb = load_market(_cfg(prices, spreads, spread_fallback="estimate"))
    assert m_fb.spreads is not None
    np.testing.assert_allclose(m_fb.spreads["BBB"].to_numpy()[1:],
                               expect["BBB"].to_numpy()[1:], rtol=1e-12)
    assert m_fb.spreads["AAA"].iloc[-1] == pytest.approx(2e-4)
    assert "2 name(s) without quotes use the Abdi-Ranaldo" in m_fb.caveats[0]


def test_fixed_is_said_and_a_missing_spreads_file_is_refused(tmp_path: Path) -> None:
    prices, _ = _files(tmp_path)
    m = load_market(_cfg(prices, spread_source="fixed"))
    assert m.spreads is None and "fixed 7 bps" in m.caveats[0]
    with pytest.raises(ConfigError) as e:
        load_market(_cfg(prices, tmp_path / "nope.csv"))
    assert e.value.field == "data.spreads_path"


def test_the_synthetic_market_has_quotes_and_no_estimate() -> None:
    cfg = parse_config({"data": {"n_assets": 5, "n_days": 60}})
    assert load_market(cfg).caveats == ()
    with pytest.raises(ConfigError) as e:
        load_market(parse_config({"data": {"n_assets": 5, "n_days": 60},
                                  "costs": {"spread_source": "estimate"}}))
    assert e.value.field == "costs.spread_source"
