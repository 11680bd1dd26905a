"""load_market: the configured market (synthetic by default, else a long price file)."""

from __future__ import annotations

import pytest

from keel.config import DataConfig, DataSource
from keel.data.source import load_market
from keel.errors import ConfigError


def test_default_is_the_synthetic_market():
    md = load_market(DataConfig(n_assets=10, n_days=30), seed=1)
    assert md.n_assets == 10 and len(md.dates) == 30
    assert md.spreads is not None and md.market_caps is not None


def test_file_source(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text("date,close,volume,Name\n2013-02-08,1,5,A\n2013-02-11,2,5,A\n")
    s = tmp_path / "s.csv"
    s.write_text("Symbol,Sector\nA,Energy\n")
    md = load_market(DataConfig(source=DataSource.CSV, prices_path=p, sectors_path=s))
    assert md.prices["A"].tolist() == [1.0, 2.0] and md.sectors["A"] == "Energy"
    assert md.spreads is None  # no high/low in the file: no estimate
    with pytest.raises(ConfigError) as e:
        load_market(DataConfig(source=DataSource.CSV))
    assert e.value.field == "data.prices_path"
