"""Peak memory of a risk-model fit, estimated before it runs, so a fit can be refused instead of
taking the process down (a pod's memory limit is a hard kill).

The estimates count the float64 arrays each estimator holds at its peak; they are upper bounds
within a small factor, not measurements (pandas and BLAS workspaces add little beside them).
"""

from __future__ import annotations

from keel.errors import ValidationError

_F8 = 8


def fit_bytes(kind: str, n_assets: int, n_obs: int, n_factors: int) -> int:
    """Estimated peak bytes of fitting ``kind`` on ``n_obs`` x ``n_assets`` returns.

    Args:
        kind: ``fundamental`` (batched daily regressions built block-wise by sector: returns,
            weights, residuals and six style panels, each (T, N); sector dummies never
            materialised),
            ``pca`` (returns, centred copy and thin SVD factors), or a dense estimator
            (``sample``, ``ewma``, ``lw``: N x N covariance, shrinkage target and a copy).
        n_assets, n_obs: N and T.
        n_factors: K, the factored rank (pca and dense estimators).
    """
    n, t, k = int(n_assets), int(n_obs), int(n_factors)
    if kind == "fundamental":
        return _F8 * t * n * 9
    if kind == "pca":
        return _F8 * (3 * t * n + n * k)
    if kind in ("sample", "ewma", "lw"):
        return _F8 * (3 * n * n + 2 * t * n)
    raise ValidationError("no memory estimate for this risk model kind", field="risk.model",
                          value=kind)


def check_fit_budget(kind: str, n_assets: int, n_obs: int, n_factors: int,
                     budget_mb: float | None) -> int:
    """The estimate, or ``ValidationError`` naming ``risk.memory_budget_mb`` when above it."""
    need = fit_bytes(kind, n_assets, n_obs, n_factors)
    if budget_mb is not None and need > budget_mb * 2**20:
        raise ValidationError(
            f"a {kind} fit of {n_assets} names x {n_obs} sessions needs about "
            f"{need / 2**20:,.0f} MiB, above the budget", field="risk.memory_budget_mb",
            value=budget_mb)
    return need
