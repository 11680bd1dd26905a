"""Risk of the current book for the service: decomposition, VaR/CVaR and limit breaches.

The factor model is fitted once per market snapshot (keyed by the market's last stamp) and
reused for every request until the market moves; each request only decomposes the current
weights (O(N K)). Units: volatility contributions annualised (fraction), VaR/CVaR positive
losses as a fraction of NAV over ``horizon_days`` at ``confidence``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from keel.data.market import MarketData
from keel.fmt import time_json
from keel.risk import measures as m
from keel.risk.attribution import decompose
from keel.risk.base import FactorCovariance
from keel.risk.fundamental import FundamentalFactorModel
from keel.risk.limits import Breach, RiskLimits, RiskMonitor


@dataclass(frozen=True)
class _Fit:
    key: tuple[int, pd.Timestamp]
    market: MarketData
    fc: FactorCovariance
    groups: pd.Series


class RiskView:
    """Risk analytics of a weight vector under a fundamental factor model of ``market()``.

    Args:
        market: returns the current market (called on every request; cheap when cached).
        limits: the limits watched (breaches); ``None`` watches none.
        confidence: VaR/CVaR confidence (0.95 = the 5% tail).
        horizon_days: VaR/CVaR horizon in trading days.
    """

    def __init__(self, market: Callable[[], MarketData], limits: RiskLimits | None = None, *,
                 confidence: float = 0.95, horizon_days: int = 21) -> None:
        self.market, self.limits = market, limits
        self.confidence, self.horizon_days = confidence, horizon_days
        self._fit: _Fit | None = None
        self._last: tuple[Any, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _model(self) -> _Fit:
        mkt = self.market()
        key = (id(mkt), mkt.now)
        with self._lock:
            if self._fit is None or self._fit.key != key:
                fm = FundamentalFactorModel().fit(mkt)
                self._fit = _Fit(key, mkt, fm.factored(), fm.factor_groups_)
            return self._fit

    def evaluate(self, weights: Mapping[str, float]) -> dict[str, Any]:
        """Risk of ``weights`` (symbol -> fraction of NAV) as a JSON-ready dict.

        Symbols the market does not know are listed in ``unmodelled`` and left out. The last
        answer is reused while the weights and the market are unchanged (the dashboard polls).
        """
        fit = self._model()
        key = (fit.key, tuple(sorted(weights.items())))
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        out = self._evaluate(fit, weights)
        self._last = (key, out)
        return out

    def _evaluate(self, fit: _Fit, weights: Mapping[str, float]) -> dict[str, Any]:
        mkt = fit.market
        known = {s: float(w) for s, w in weights.items() if s in mkt.symbols and w != 0}
        unmodelled = sorted(s for s in weights if s not in mkt.symbols)
        base: dict[str, Any] = {
            "as_of": time_json(mkt.now), "model": "fundamental", "confidence": self.confidence,
            "horizon_days": self.horizon_days, "unmodelled": unmodelled,
            "n_positions": len(known)}
        if not known:
            return {**base, "status": "flat", "volatility": 0.0, "decomposition": None,
                    "var_cvar": {}, "breaches": []}
        w = pd.Series(known).reindex(mkt.symbols).fillna(0.0)
        dec = decompose(fit.fc, w, groups=fit.groups, sectors=mkt.sectors)
        x = mkt.returns.to_numpy() @ w.to_numpy()
        c, h = self.confidence, self.horizon_days
        var = {
            "historical": {"var": float(m.historical_var(x, c, h)),
                           "cvar": float(m.historical_cvar(x, c, h))},
            "normal": {"var": float(m.normal_var(x, c, h)),
                       "cvar": float(m.normal_cvar(x, c, h))},
        }
        top = dec.by_asset.abs().sort_values(ascending=False).index[:15]
        sectors = dec.by_sector.reset_index().rename(columns={"index": "sector"})
        return {
            **base, "status": "ok", "volatility": float(dec.total),
            "summary": dec.summary(),
            "decomposition": {
                "total": float(dec.total), "factor": float(dec.factor),
                "specific": float(dec.specific),
                "factor_share_of_variance": float(dec.factor_share),
                "by_group": {str(k): float(v) for k, v in dec.by_group.items()},
                "by_factor": {str(k): float(v) for k, v in dec.by_factor.items()},
                "by_sector": sectors.to_dict(orient="records"),
                "top_assets": {str(k): float(dec.by_asset[k]) for k in top},
            },
            "var_cvar": var,
            "breaches": [{**b.to_dict(), "code": b.code.name, "severity": b.severity.name}
                         for b in self.breaches(w, fit)],
        }

    def breaches(self, w: pd.Series, fit: _Fit | None = None) -> list[Breach]:
        """Every limit breach of ``w`` (most severe first); none without limits."""
        if self.limits is None:
            return []
        fit = fit or self._model()
        mon = RiskMonitor(self.limits, fit.fc, fit.market.sectors)
        return mon.evaluate(w.reindex(fit.market.symbols).fillna(0.0))

