"""Hierarchical allocation: HRP (López de Prado 2016) and HERC (Raffinot 2017).

Both cluster the assets on a correlation distance, then split the budget top-down between
groups in inverse proportion to their risk, with no matrix inversion (so they cope with the
singular or ill-conditioned covariances that break mean-variance):

* **HRP**: order the assets by the dendrogram (quasi-diagonalisation), then bisect the ordered
  list recursively; each half gets ``1 - V_half / (V_left + V_right)`` of its parent's weight,
  ``V`` the variance of the half's inverse-variance portfolio.
* **HERC**: cut the dendrogram into ``n_clusters`` clusters; walk the tree from the root and
  split each node's weight between its two subtrees in inverse proportion to the summed risk
  of the clusters under each; inside a cluster, inverse-variance weights.

Distances (``rho`` the correlation): ``pearson`` ``sqrt((1 - rho) / 2)``; ``absolute``
``sqrt(1 - |rho|)``; ``squared`` ``sqrt(1 - rho^2)``. Linkages: single (López de Prado's),
average, complete, ward (scipy's definitions).

Risk model: a :class:`~keel.risk.base.FactorCovariance` is used in factored form. The clustering
needs the N (N - 1) / 2 pairwise distances (any agglomerative linkage does), which are computed
from a (N, K) embedding of the correlations, never from an N x N covariance; cluster variances
cost O(n_c K). A dense covariance (ndarray or DataFrame) works too. Weights are fractions of
NAV, long-only, summing to one; ``max_weight`` caps them by redistributing the excess to the
uncapped names in proportion to their weights (exact, in at most N passes).
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd
from scipy.cluster import hierarchy as sch
from scipy.spatial.distance import pdist, squareform

from keel.errors import ValidationError
from keel.optimize.heuristics import RiskModel, cov_diag
from keel.risk.base import FactorCovariance


class Linkage(StrEnum):
    SINGLE = "single"
    AVERAGE = "average"
    COMPLETE = "complete"
    WARD = "ward"


class Distance(StrEnum):
    PEARSON = "pearson"
    ABSOLUTE = "absolute"
    SQUARED = "squared"


def _symbols(risk: RiskModel, symbols: pd.Index | None) -> pd.Index:
    if isinstance(risk, FactorCovariance):
        return pd.Index(risk.symbols)
    if isinstance(risk, pd.DataFrame):
        return pd.Index(risk.index)
    n = np.asarray(risk).shape[0]
    if symbols is None:
        return pd.RangeIndex(n)
    if len(symbols) != n:
        raise ValidationError("symbols do not match the covariance", field="symbols",
                              value=len(symbols))
    return pd.Index(symbols)


def _variances(risk: RiskModel) -> np.ndarray:
    var = cov_diag(risk)
    if not np.all(np.isfinite(var)) or np.any(var <= 0):
        i = int(np.argmin(np.where(np.isfinite(var), var, -np.inf)))
        raise ValidationError("every asset needs a finite variance > 0", field="risk",
                              value=float(var[i]))
    return var


def condensed_correlation(risk: RiskModel) -> np.ndarray:
    """Pairwise correlations in scipy's condensed order, (N (N - 1) / 2,).

    A factor model goes through the unit-norm embedding ``y_i = L' b_i / sigma_i`` (``L L' = F``):
    ``rho_ij = y_i . y_j`` for ``i != j`` (the specific parts are orthogonal), so no N x N
    covariance is formed.
    """
    var = _variances(risk)
    sd = np.sqrt(var)
    if isinstance(risk, FactorCovariance):
        y = (risk.exposures @ risk.factor_sqrt()) / sd[:, None]
        norms = np.einsum("ij,ij->i", y, y)
        sq = pdist(y, "sqeuclidean")
        i, j = np.triu_indices(len(var), k=1)
        rho = 0.5 * (norms[i] + norms[j] - sq)
    else:
        cov = risk.to_numpy(dtype=np.float64) if isinstance(risk, pd.DataFrame) else \
            np.asarray(risk, dtype=np.float64)
        corr = cov / np.outer(sd, sd)
        np.fill_diagonal(corr, 1.0)
        rho = squareform(corr, checks=False)
    return np.clip(rho, -1.0, 1.0)


def condensed_distance(risk: RiskModel, distance: Distance | str = Distance.PEARSON
                       ) -> np.ndarray:
    """Correlation distances (condensed) of the chosen kind, each in [0, 1]."""
    rho = condensed_correlation(risk)
    kind = Distance(distance)
    if kind is Distance.PEARSON:
        return np.sqrt(np.clip(0.5 * (1.0 - rho), 0.0, None))
    if kind is Distance.ABSOLUTE:
        return np.sqrt(np.clip(1.0 - np.abs(rho), 0.0, None))
    return np.sqrt(np.clip(1.0 - rho**2, 0.0, None))


def linkage_matrix(risk: RiskModel, *, linkage: Linkage | str = Linkage.SINGLE,
                   distance: Distance | str = Distance.PEARSON,
                   optimal_ordering: bool = False) -> np.ndarray:
    """scipy's (N - 1, 4) linkage matrix of the assets."""
    n = len(_variances(risk))
    if n < 2:
        raise ValidationError("clustering needs at least two assets", field="risk", value=n)
    return sch.linkage(condensed_distance(risk, distance), method=Linkage(linkage).value,
                       optimal_ordering=optimal_ordering)


class _ClusterRisk:
    """Variance of a subset's inverse-variance portfolio, O(n_c K) for a factor model."""

    def __init__(self, risk: RiskModel) -> None:
        self.risk = risk
        self.var = _variances(risk)
        if not isinstance(risk, FactorCovariance):
            self.cov = risk.to_numpy(dtype=np.float64) if isinstance(risk, pd.DataFrame) \
                else np.asarray(risk, dtype=np.float64)

    def inverse_variance(self, ids: np.ndarray) -> np.ndarray:
        w = 1.0 / self.var[ids]
        return w / w.sum()

    def variance(self, ids: np.ndarray) -> float:
        w = self.inverse_variance(ids)
        if isinstance(self.risk, FactorCovariance):
            e = self.risk.exposures[ids].T @ w
            return float(e @ self.risk.factor_covariance @ e
                         + np.sum(self.risk.specific_variance[ids] * w * w))
        return float(w @ self.cov[np.ix_(ids, ids)] @ w)


def _split(left_risk: float, right_risk: float) -> float:
    total = left_risk + right_risk
    if not (np.isfinite(total) and total > 0):
        raise ValidationError("clusters with zero or non-finite risk cannot be split",
                              field="risk", value=total)
    return 1.0 - left_risk / total


def cap_weights(weights: np.ndarray, max_weight: float) -> np.ndarray:
    """Cap long-only weights summing to one at ``max_weight``, redistributing the excess to the
    uncapped names in proportion to their weights (repeated until nothing exceeds the cap)."""
    n = len(weights)
    if not (0 < max_weight <= 1) or max_weight * n < 1 - 1e-12:
        raise ValidationError("max_weight must be in (0, 1] and at least 1/N", field="max_weight",
                              value=max_weight)
    w = weights.astype(np.float64).copy()
    capped = np.zeros(n, dtype=bool)
    for _ in range(n):
        over = (w > max_weight) & ~capped
        if not over.any():
            break
        capped |= over
        free = ~capped
        excess = 1.0 - max_weight * capped.sum()
        w[capped] = max_weight
        if free.any():
            base = w[free].sum()
            w[free] = w[free] * (excess / base) if base > 0 else excess / free.sum()
    return w


def hrp(risk: RiskModel, *, linkage: Linkage | str = Linkage.SINGLE,
        distance: Distance | str = Distance.PEARSON, max_weight: float | None = None,
        optimal_ordering: bool = False, symbols: pd.Index | None = None) -> pd.Series:
    """Hierarchical risk parity weights (long-only, sum one), by symbol."""
    names = _symbols(risk, symbols)
    link = linkage_matrix(risk, linkage=linkage, distance=distance,
                          optimal_ordering=optimal_ordering)
    order = sch.leaves_list(link)
    cr = _ClusterRisk(risk)
    w = np.ones(len(names))
    items = [order]
    while items:
        nxt = []
        for ids in items:
            if len(ids) < 2:
                continue
            half = len(ids) // 2
            left, right = ids[:half], ids[half:]
            alpha = _split(cr.variance(left), cr.variance(right))
            w[left] *= alpha
            w[right] *= 1.0 - alpha
            nxt += [left, right]
        items = nxt
    if max_weight is not None:
        w = cap_weights(w, max_weight)
    return pd.Series(w, index=names, name="hrp")


def herc(risk: RiskModel, *, n_clusters: int, linkage: Linkage | str = Linkage.WARD,
         distance: Distance | str = Distance.PEARSON, max_weight: float | None = None,
         symbols: pd.Index | None = None) -> pd.Series:
    """Hierarchical equal risk contribution weights with ``n_clusters`` clusters, by symbol.

    Cluster risk is the variance of the cluster's inverse-variance portfolio.
    """
    names = _symbols(risk, symbols)
    if not 1 <= n_clusters <= len(names):
        raise ValidationError("n_clusters must be in [1, N]", field="n_clusters",
                              value=n_clusters)
    link = linkage_matrix(risk, linkage=linkage, distance=distance)
    labels = sch.fcluster(link, t=n_clusters, criterion="maxclust") - 1
    k = int(labels.max()) + 1
    cr = _ClusterRisk(risk)
    members = [np.flatnonzero(labels == c) for c in range(k)]
    cluster_risk = np.array([cr.variance(ids) for ids in members])
    cluster_w = np.ones(k)
    # For every tree node: the clusters fully below it (a node inside a cluster has one).
    root = sch.to_tree(link)

    def below(node: sch.ClusterNode) -> np.ndarray:
        return np.unique(labels[node.pre_order()])

    stack = [root]
    while stack:
        node = stack.pop()
        here = below(node)
        if len(here) < 2:
            continue
        left, right = node.get_left(), node.get_right()
        lc, rc = below(left), below(right)
        alpha = _split(float(cluster_risk[lc].sum()), float(cluster_risk[rc].sum()))
        cluster_w[lc] *= alpha
        cluster_w[rc] *= 1.0 - alpha
        stack += [left, right]
    w = np.zeros(len(names))
    for c, ids in enumerate(members):
        w[ids] = cr.inverse_variance(ids) * cluster_w[c]
    if max_weight is not None:
        w = cap_weights(w, max_weight)
    return pd.Series(w, index=names, name="herc")
