"""Matplotlib figures for impact fits and order splits (built here, saved by the caller)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from keel.costs.allocation import AllocationResult
    from keel.costs.impact_fit import ImpactModel


def _figure(ncols: int = 1) -> tuple[Figure, np.ndarray]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5 * ncols, 4.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, ncols))
    return fig, axes


def impact_fit_figure(model: ImpactModel, samples: pd.DataFrame, max_points: int = 5000,
                      seed: int = 0) -> Figure:
    """Measured slippage per share against size, with each fitted curve's ``g(x) / x``;
    right: measured cost and fitted ``g(x)``."""
    fig, (ax1, ax2) = _figure(2)
    rng = np.random.default_rng(seed)
    pts = samples if len(samples) <= max_points else samples.iloc[
        np.sort(rng.choice(len(samples), max_points, replace=False))]
    x, y = pts["size"].to_numpy(dtype=np.float64), pts["cost"].to_numpy(dtype=np.float64)
    ax1.scatter(x, y / x, s=4, alpha=0.25, color="0.4", label="measured")
    ax2.scatter(x, y, s=4, alpha=0.25, color="0.4", label="measured")
    grid = np.linspace(max(float(x.min()), 1e-9), float(x.max()), 200)
    for kind, fit in model.fits.items():
        g = fit.curve.value(grid)
        label = f"{kind} (R² in {fit.r2_in:.2f}, out {fit.r2_out:.2f})"
        ax1.plot(grid, g / grid, lw=2, label=label)
        ax2.plot(grid, g, lw=2, label=label)
    ax1.set(xlabel="order size (shares)", ylabel="slippage vs mid (currency / share)",
            title=f"{model.symbol} impact ({model.method})")
    ax2.set(xlabel="order size (shares)", ylabel="cost g(x) (currency)", title="cost")
    for ax in (ax1, ax2):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return fig


def split_figure(result: AllocationResult, minutes: np.ndarray, title: str = "") -> Figure:
    """Optimal shares per interval against the uniform split."""
    fig, (ax,) = _figure(1)
    width = float(np.median(np.diff(minutes))) if len(minutes) > 1 else 1.0
    ax.bar(minutes, result.shares, width=width, color="tab:blue", alpha=0.7,
           label=f"optimal ({result.solver.value})")
    ax.step(minutes, np.full(len(minutes), result.total_shares / len(minutes)), where="mid",
            color="tab:red", lw=2, label="uniform")
    ax.set(xlabel="minutes after the open", ylabel="shares",
           title=title or f"cost {result.cost:,.2f} vs uniform {result.uniform_cost:,.2f} "
                          f"({result.improvement_pct:.1f} % better)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig
