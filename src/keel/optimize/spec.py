"""Optimizers and constraints from plain dicts (a TOML config), with typed errors.

``[[constraints]]`` tables name a ``type`` (the class name) and its keyword arguments;
``[optimizer]`` picks ``kind`` (``mean_variance``, ``mean_cvar``, ``min_cvar``) and its
hyper-parameters. Unknown types and keys raise :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from keel.costs.base import CostModel
from keel.errors import ConfigError, KeelError
from keel.optimize import constraints as cons_mod
from keel.optimize.cvar import CVaRRisk, CvxpyBackend, MeanCVaR
from keel.optimize.mean_variance import MeanVariance

CONSTRAINTS: dict[str, type[cons_mod.Constraint]] = {
    cls.__name__: cls for cls in (
        cons_mod.Budget, cons_mod.LongOnly, cons_mod.WeightBounds, cons_mod.GrossExposure,
        cons_mod.NetExposure, cons_mod.Turnover, cons_mod.BetaNeutral, cons_mod.SectorCaps,
        cons_mod.Liquidity, cons_mod.FactorExposureBounds, cons_mod.TrackingError,
        cons_mod.MinCash)
}


class OptimizerKind(StrEnum):
    MEAN_VARIANCE = "mean_variance"
    MEAN_CVAR = "mean_cvar"
    MIN_CVAR = "min_cvar"


def _call(cls: type, kwargs: Mapping[str, Any], where: str) -> Any:
    params = inspect.signature(cls).parameters
    for key in kwargs:
        if key not in params:
            raise ConfigError(f"unknown key for {cls.__name__}", field=f"{where}.{key}")
    try:
        return cls(**kwargs)
    except KeelError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad arguments for {cls.__name__}: {exc}", field=where) from None


def build_constraints(tables: Sequence[Mapping[str, Any]]) -> list[cons_mod.Constraint]:
    """``[{"type": "WeightBounds", "upper": 0.05}, ...]`` -> constraint objects."""
    out = []
    for i, t in enumerate(tables):
        kw = dict(t)
        name = kw.pop("type", None)
        if name not in CONSTRAINTS:
            raise ConfigError("unknown constraint type", field=f"constraints[{i}].type",
                              value=name, known=", ".join(sorted(CONSTRAINTS)))
        out.append(_call(CONSTRAINTS[name], kw, f"constraints[{i}]"))
    return out


def build_optimizer(table: Mapping[str, Any], constraints: Sequence[cons_mod.Constraint],
                    costs: Sequence[CostModel] = ()) -> MeanVariance | MeanCVaR:
    """An optimizer from the ``[optimizer]`` table."""
    kw = dict(table)
    try:
        kind = OptimizerKind(kw.pop("kind", OptimizerKind.MEAN_VARIANCE))
    except ValueError:
        raise ConfigError("unknown optimizer kind", field="optimizer.kind",
                          value=table.get("kind")) from None
    allowed = {OptimizerKind.MEAN_VARIANCE: {"risk_aversion", "solvers"},
               OptimizerKind.MEAN_CVAR: {"beta", "cvar_aversion", "solvers"},
               OptimizerKind.MIN_CVAR: {"beta", "solvers"}}[kind]
    for key in kw:
        if key not in allowed:
            raise ConfigError(f"unknown key for {kind.value}", field=f"optimizer.{key}")
    if kind is OptimizerKind.MEAN_VARIANCE:
        return MeanVariance(constraints=constraints, costs=costs,
                            risk_aversion=float(kw.get("risk_aversion", 1.0)),
                            solvers=kw.get("solvers"))
    backend = CvxpyBackend(kw["solvers"]) if "solvers" in kw else None
    beta = float(kw.get("beta", 0.95))
    if kind is OptimizerKind.MIN_CVAR:
        return MeanCVaR(constraints, terms=[CVaRRisk(beta)], backend=backend)
    return MeanCVaR(constraints, beta=beta, cvar_aversion=float(kw.get("cvar_aversion", 1.0)),
                    costs=costs, backend=backend)
