"""Risk limits and the monitor that checks a portfolio against them.

:class:`RiskMonitor` evaluates weights under a :class:`~keel.risk.base.FactorCovariance` and
returns *every* breach (not just the first), each with its reason code, the limit, the value
and a severity. Breaches are logged (logger ``keel.risk.monitor``) and passed to every
registered callback; a failing callback is logged and does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from keel.errors import ValidationError
from keel.risk._input import as_weights
from keel.risk.base import FactorCovariance

log = logging.getLogger("keel.risk.monitor")


class ReasonCode(StrEnum):
    """Stable, machine-readable reason of a breach."""

    MAX_POSITION = "MAX_POSITION"
    SECTOR_WEIGHT = "SECTOR_WEIGHT"
    PAIRWISE_CORRELATION = "PAIRWISE_CORRELATION"
    VAR_BUDGET = "VAR_BUDGET"
    VOLATILITY_TARGET = "VOLATILITY_TARGET"


class Severity(StrEnum):
    """``warning``: within ``warn_fraction`` of the limit; ``breach``: over it;
    ``critical``: over ``critical_multiple`` times it."""

    WARNING = "warning"
    BREACH = "breach"
    CRITICAL = "critical"


@dataclass(frozen=True)
class RiskLimits:
    """Limits on a portfolio of weights (fractions of NAV). ``None`` disables a limit.

    Attributes:
        max_position: largest ``|weight|`` of one name.
        max_sector_weight: largest ``|sum of weights|`` of one sector (net).
        max_pairwise_correlation: largest model correlation between two held names.
        var_budget: largest parametric VaR (loss fraction) at ``var_confidence`` over
            ``var_horizon`` days, from the model volatility (zero mean).
        vol_target: largest annualised predicted volatility.
        warn_fraction: values at or above ``warn_fraction * limit`` give a warning.
        critical_multiple: values above ``critical_multiple * limit`` are critical.
    """

    max_position: float | None = None
    max_sector_weight: float | None = None
    max_pairwise_correlation: float | None = None
    var_budget: float | None = None
    vol_target: float | None = None
    var_confidence: float = 0.95
    var_horizon: int = 21
    warn_fraction: float = 0.9
    critical_multiple: float = 1.5

    def __post_init__(self) -> None:
        for name in ("max_position", "max_sector_weight", "max_pairwise_correlation",
                     "var_budget", "vol_target"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise ValidationError(f"{name} must be > 0", field=name, value=v)
        if self.max_pairwise_correlation is not None and self.max_pairwise_correlation > 1:
            raise ValidationError("max_pairwise_correlation must be <= 1",
                                  field="max_pairwise_correlation",
                                  value=self.max_pairwise_correlation)
        if not 0 < self.var_confidence < 1:
            raise ValidationError("var_confidence must be in (0, 1)", field="var_confidence",
                                  value=self.var_confidence)
        if self.var_horizon < 1:
            raise ValidationError("var_horizon must be >= 1", field="var_horizon",
                                  value=self.var_horizon)
        if not 0 < self.warn_fraction <= 1:
            raise ValidationError("warn_fraction must be in (0, 1]", field="warn_fraction",
                                  value=self.warn_fraction)
        if self.critical_multiple < 1:
            raise ValidationError("critical_multiple must be >= 1",
                                  field="critical_multiple", value=self.critical_multiple)


@dataclass(frozen=True)
class Breach:
    """One limit reached or exceeded."""

    code: ReasonCode
    severity: Severity
    limit: float
    value: float
    subject: str  #: the symbol, sector, pair ``A|B`` or ``portfolio``
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "severity": self.severity.value, "limit": self.limit,
                "value": self.value, "subject": self.subject, "message": self.message}


BreachCallback = Callable[[Breach], Any]


@dataclass
class RiskMonitor:
    """Checks portfolios against ``limits`` under a risk ``model``.

    Args:
        limits: the limits.
        model: the factored covariance (daily units, ``periods_per_year`` to annualise).
        sectors: symbol -> sector (needed for ``max_sector_weight``).
    """

    limits: RiskLimits
    model: FactorCovariance
    sectors: pd.Series | None = None
    _callbacks: list[BreachCallback] = field(default_factory=list, init=False, repr=False)

    def register(self, callback: BreachCallback) -> None:
        """Call ``callback(breach)`` for every breach found by :meth:`evaluate`."""
        self._callbacks.append(callback)

    def _grade(self, code: ReasonCode, limit: float, value: float, subject: str,
               what: str) -> Breach | None:
        lim = self.limits
        if value > lim.critical_multiple * limit and value > limit:
            sev = Severity.CRITICAL
        elif value > limit:
            sev = Severity.BREACH
        elif value >= lim.warn_fraction * limit:
            sev = Severity.WARNING
        else:
            return None
        return Breach(code, sev, float(limit), float(value), subject,
                      f"{what} of {subject} is {value:.6g} against a limit of {limit:.6g}")

    def evaluate(self, weights: Any) -> list[Breach]:
        """Every breach (and warning) for ``weights`` (Series by symbol or (N,) array).

        Breaches are ordered by severity (critical first), then by how far over the limit.
        """
        fc = self.model
        w = as_weights(weights, fc.symbols)
        lim = self.limits
        out: list[Breach | None] = []
        if lim.max_position is not None:
            a = np.abs(w)
            for i in np.flatnonzero(a >= lim.warn_fraction * lim.max_position):
                out.append(self._grade(ReasonCode.MAX_POSITION, lim.max_position,
                                       float(a[i]), str(fc.symbols[i]), "position weight"))
        if lim.max_sector_weight is not None:
            if self.sectors is None:
                raise ValidationError("max_sector_weight needs sectors", field="sectors")
            sec = pd.Series(self.sectors).reindex(fc.symbols).fillna("Unknown")
            sw = pd.Series(w, index=fc.symbols).groupby(sec.to_numpy()).sum().abs()
            for name, v in sw.items():
                out.append(self._grade(ReasonCode.SECTOR_WEIGHT, lim.max_sector_weight,
                                       float(v), str(name), "sector weight"))
        held = np.flatnonzero(w != 0)
        if lim.max_pairwise_correlation is not None and len(held) > 1:
            sub = fc.subset(held)
            cov = sub.covariance()
            sd = np.sqrt(np.diag(cov))
            corr = cov / np.outer(sd, sd)
            iu, ju = np.triu_indices(len(held), k=1)
            c = corr[iu, ju]
            hit = np.flatnonzero(c >= lim.warn_fraction * lim.max_pairwise_correlation)
            for h in hit:
                pair = f"{sub.symbols[iu[h]]}|{sub.symbols[ju[h]]}"
                out.append(self._grade(ReasonCode.PAIRWISE_CORRELATION,
                                       lim.max_pairwise_correlation, float(c[h]), pair,
                                       "correlation"))
        if lim.var_budget is not None or lim.vol_target is not None:
            daily = float(np.sqrt(fc.portfolio_variance(w)))
            if lim.var_budget is not None:
                var = daily * np.sqrt(lim.var_horizon) * stats.norm.ppf(lim.var_confidence)
                out.append(self._grade(ReasonCode.VAR_BUDGET, lim.var_budget, float(var),
                                       "portfolio",
                                       f"{lim.var_horizon}-day {lim.var_confidence:.0%} VaR"))
            if lim.vol_target is not None:
                out.append(self._grade(ReasonCode.VOLATILITY_TARGET, lim.vol_target,
                                       daily * np.sqrt(fc.periods_per_year), "portfolio",
                                       "annualised volatility"))
        rank = {Severity.CRITICAL: 0, Severity.BREACH: 1, Severity.WARNING: 2}
        breaches = sorted((b for b in out if b is not None),
                          key=lambda b: (rank[b.severity], -b.value / b.limit))
        for b in breaches:
            level = logging.WARNING if b.severity is Severity.WARNING else logging.ERROR
            log.log(level, "%s %s: %s", b.code.value, b.severity.value, b.message)
            for cb in self._callbacks:
                try:
                    cb(b)
                except Exception:
                    log.exception("risk breach callback %r failed", cb)
        return breaches
