"""Soak (short CI version of bench/reliability/soak.py): a desk trading bar after bar against
the simulated exchange and its requoting liquidity provider keeps a flat memory: the
exchange's live registry, finished window and event logs, and the order manager's records
stay bounded, and RSS after warm-up stays within a margin."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _soak():
    spec = importlib.util.spec_from_file_location("keel_bench_soak",
                                                  ROOT / "bench" / "reliability" / "soak.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_memory_is_flat_over_many_bars(tmp_path: Path) -> None:
    samples = _soak().run(bars=500, every=50, db_dir=tmp_path, levels=2, max_finished=200,
                          max_events=400)
    assert samples[-1].fills >= 400  # it really traded: ~1 fill per bar (market orders)
    for s in samples:
        # resting: <= 2 levels x 2 sides x 3 symbols of quotes + 3 bars of desk limits
        assert s.exchange_live <= 2 * 2 * 3 + 3 * 1 + 2
        assert s.exchange_finished <= 200
        assert s.oms_in_memory <= 2 * (3 + 1) * 2  # open parents + children: a few bars' worth
    warm = next(s for s in samples if s.bar == 150)
    growth = samples[-1].rss_mb - warm.rss_mb
    assert growth < 8.0, [(s.bar, round(s.rss_mb, 1)) for s in samples]
