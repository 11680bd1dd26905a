"""`GreedyRotation`: the fast intraday engine, top-K with hysteresis and reason codes.

Rules, applied in this order each cycle (``z`` is the score, higher is better; rank 0 is the
best name):

1. ``CUT_LOW_PERFORMER``: a held name with ``z < z_cut`` is sold.
2. ``TIME_STOP``: a held name held for ``>= time_stop`` periods whose ``z`` is still below
   ``z_keep`` is dead money and is sold.
3. ``CUT_RANK``: a held name that fell out of the top ``K_sell`` is sold.
4. Every other held name is kept: ``HOLD`` inside the top ``K``, ``HOLD_BAND`` when it sits
   between ranks ``K`` and ``K_sell`` (the hysteresis band).
5. ``BUY_TOP``: free slots (up to ``K`` names) are filled with the best non-held names that
   rank inside the top ``K_buy`` and have ``z >= z_keep``.
6. Rotation, when the book is full: the best remaining candidate replaces the worst held name
   when its score is higher by at least ``delta_z_min`` *and* the expected gain
   ``alpha_per_z * (z_new - z_old) * target_weight`` exceeds the round-trip cost of the swap
   (``(rt_cost_old + rt_cost_new) / 2 * target_weight``, half a round trip per leg) by
   ``utility_threshold``; the sold name gets ``ROTATE`` and the bought one ``BUY_BETTER``.
   A held name that a candidate beat on score but not after costs gets ``HOLD_COST``.
   Pairs are matched best candidate with worst held, and rotation stops at the first pair
   that fails (the gain is monotone along the pairs).

Every selected name gets its per-name target weight (a Series, or ``1 / K``). Cost: one
``np.partition`` for the rank thresholds (O(N)) and sorts over at most ``K_buy + K_sell``
names, so O(N) + O(K log K) per cycle; no Python loop over names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from keel.errors import ValidationError
from keel.optimize.inputs import align_series


class Reason(StrEnum):
    CUT_LOW_PERFORMER = "CUT_LOW_PERFORMER"
    TIME_STOP = "TIME_STOP"
    CUT_RANK = "CUT_RANK"
    ROTATE = "ROTATE"
    HOLD = "HOLD"
    HOLD_BAND = "HOLD_BAND"
    HOLD_COST = "HOLD_COST"
    BUY_TOP = "BUY_TOP"
    BUY_BETTER = "BUY_BETTER"


class Action(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


_ACTION = {Reason.CUT_LOW_PERFORMER: Action.SELL, Reason.TIME_STOP: Action.SELL,
           Reason.CUT_RANK: Action.SELL, Reason.ROTATE: Action.SELL,
           Reason.HOLD: Action.HOLD, Reason.HOLD_BAND: Action.HOLD,
           Reason.HOLD_COST: Action.HOLD, Reason.BUY_TOP: Action.BUY,
           Reason.BUY_BETTER: Action.BUY}
_CODES = list(Reason)
_CODE = {r: i for i, r in enumerate(_CODES)}


@dataclass(frozen=True)
class RotationResult:
    """The new book and one decision per name that was held or bought.

    Attributes:
        weights: target weights of the selected names (fraction of NAV), by symbol.
        decisions: symbol -> (action, reason, z, rank, weight) for every name held before or
            bought now, sorted by rank.
    """

    weights: pd.Series
    decisions: pd.DataFrame

    def reasons(self) -> pd.Series:
        return self.decisions["reason"]


def rotate_arrays(z: np.ndarray, held: np.ndarray, age: np.ndarray, rt_cost: np.ndarray,
                  target: np.ndarray, *, k: int, k_buy: int, k_sell: int, z_keep: float,
                  z_cut: float, delta_z_min: float, alpha_per_z: float,
                  utility_threshold: float, time_stop: int | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Core of :class:`GreedyRotation` on aligned arrays.

    Args:
        z: (N,) scores; held: (N,) bool; age: (N,) periods held; rt_cost: (N,) round-trip cost
            as a fraction of traded value; target: (N,) per-name target weight.

    Returns:
        (idx, code, rank): positions of every name held before or bought now, its reason code
        (index into ``list(Reason)``) and its rank (0 = best).
    """
    n = z.size
    # threshold scores of rank K_buy-1 and K_sell-1 (O(N) selection, no full sort)
    kb, ks, kk = min(k_buy, n), min(k_sell, n), min(k, n)
    neg = -z
    part = np.partition(neg, [kb - 1, ks - 1, kk - 1])
    thr_buy, thr_sell, thr_k = -part[kb - 1], -part[ks - 1], -part[kk - 1]
    in_buy, in_sell, in_k = z >= thr_buy, z >= thr_sell, z >= thr_k

    held_idx = np.flatnonzero(held)
    hz = z[held_idx]
    code = np.full(held_idx.size, _CODE[Reason.HOLD], dtype=np.int64)
    code[~in_k[held_idx]] = _CODE[Reason.HOLD_BAND]
    code[~in_sell[held_idx]] = _CODE[Reason.CUT_RANK]
    if time_stop is not None:
        code[(age[held_idx] >= time_stop) & (hz < z_keep)] = _CODE[Reason.TIME_STOP]
    code[hz < z_cut] = _CODE[Reason.CUT_LOW_PERFORMER]
    kept = np.isin(code, [_CODE[Reason.HOLD], _CODE[Reason.HOLD_BAND]])

    cand = np.flatnonzero(in_buy & ~held & (z >= z_keep))
    cand = cand[np.argsort(-z[cand], kind="stable")]
    free = max(kk - int(kept.sum()), 0)
    buys = cand[:free]
    rest = cand[free:]

    new_idx, new_code = [held_idx, buys], [code, np.full(buys.size, _CODE[Reason.BUY_TOP])]
    if rest.size and kept.any():
        kept_pos = np.flatnonzero(kept)
        worst = kept_pos[np.argsort(hz[kept_pos], kind="stable")]
        m = min(rest.size, worst.size)
        old, new = held_idx[worst[:m]], rest[:m]
        dz = z[new] - z[old]
        w = np.minimum(target[old], target[new])
        gain = alpha_per_z * dz * w - 0.5 * (rt_cost[old] + rt_cost[new]) * w
        ok_z = dz >= delta_z_min
        ok = np.logical_and.accumulate(ok_z & (gain > utility_threshold))
        code[worst[:m][ok]] = _CODE[Reason.ROTATE]
        blocked = ok_z & ~ok
        code[worst[:m][blocked]] = _CODE[Reason.HOLD_COST]
        new_idx.append(new[ok])
        new_code.append(np.full(int(ok.sum()), _CODE[Reason.BUY_BETTER]))
    idx = np.concatenate(new_idx)
    codes = np.concatenate(new_code)
    # rank of the few names reported: count of strictly better scores (O(N) per name is
    # avoided by ranking inside the reported set against the sorted top-K_sell block)
    top = np.sort(z[in_sell])[::-1]
    rank = np.searchsorted(-top, -z[idx], side="left")
    rank = np.where(z[idx] >= thr_sell, rank, -1)
    return idx, codes, rank


class GreedyRotation:
    """Top-K rotation with hysteresis, thresholds, costs and a time stop.

    Args:
        k: number of names held.
        k_buy: a new name must rank inside the top ``k_buy`` to be bought.
        k_sell: a held name is sold once it ranks outside the top ``k_sell``.
        z_keep: minimum score to buy, and to avoid the time stop.
        z_cut: a held name scoring below this is sold at once.
        delta_z_min: minimum score gap for a rotation.
        alpha_per_z: expected return over the holding horizon per unit of score (fraction).
        utility_threshold: gain after round-trip costs a rotation must clear (NAV units).
        time_stop: periods after which a held name below ``z_keep`` is sold (None: never).
        target_weight: per-name weight, a scalar or a per-symbol Series (default ``1 / k``).
    """

    def __init__(self, k: int = 20, k_buy: int = 18, k_sell: int = 24, *, z_keep: float = 0.8,
                 z_cut: float = 0.2, delta_z_min: float = 0.25, alpha_per_z: float = 0.01,
                 utility_threshold: float = 0.0, time_stop: int | None = None,
                 target_weight: float | pd.Series | None = None) -> None:
        if not 0 < k_buy <= k <= k_sell:
            raise ValidationError("need 0 < k_buy <= k <= k_sell", field="k",
                                  value=(k, k_buy, k_sell))
        if z_cut > z_keep:
            raise ValidationError("z_cut must be <= z_keep", field="z_cut", value=z_cut)
        if delta_z_min < 0:
            raise ValidationError("delta_z_min must be >= 0", field="delta_z_min",
                                  value=delta_z_min)
        if time_stop is not None and time_stop < 1:
            raise ValidationError("time_stop must be >= 1", field="time_stop",
                                  value=time_stop)
        self.k, self.k_buy, self.k_sell = k, k_buy, k_sell
        self.z_keep, self.z_cut, self.delta_z_min = z_keep, z_cut, delta_z_min
        self.alpha_per_z, self.utility_threshold = alpha_per_z, utility_threshold
        self.time_stop = time_stop
        self.target_weight = target_weight

    def rebalance(self, scores: pd.Series, held: pd.Index | list[str] | None = None, *,
                  age: pd.Series | None = None,
                  round_trip_cost: float | pd.Series = 0.0) -> RotationResult:
        """The new book given this cycle's ``scores``.

        Args:
            scores: z-score per symbol (the universe); NaN is refused.
            held: names held now (each must be in ``scores``).
            age: periods each held name has been held (missing: 0).
            round_trip_cost: cost of buying and later selling, fraction of traded value.
        """
        if not isinstance(scores, pd.Series):
            raise ValidationError("scores must be a pd.Series", field="scores")
        # keep the caller's index object (pandas caches its hash table between cycles)
        symbols = scores.index
        z = scores.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(z)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValidationError("scores must be finite", field="scores",
                                  symbol=str(symbols[i]), value=float(z[i]))
        if symbols.has_duplicates:
            raise ValidationError("duplicated symbol in scores", field="scores",
                                  symbol=str(symbols[symbols.duplicated()][0]))
        held_idx = pd.Index([] if held is None else list(held))
        pos = symbols.get_indexer(held_idx) if len(held_idx) else np.zeros(0, dtype=np.int64)
        if np.any(pos < 0):
            raise ValidationError("a held name has no score", field="held",
                                  symbol=str(held_idx[pos < 0][0]))
        mask = np.zeros(len(symbols), dtype=bool)
        mask[pos] = True
        ages = self._per_name(age, symbols, "age", 0.0)
        rt = self._per_name(round_trip_cost, symbols, "round_trip_cost", 0.0)
        tw = self._per_name(1.0 / self.k if self.target_weight is None else self.target_weight,
                            symbols, "target_weight", None)
        idx, codes, rank = rotate_arrays(
            z, mask, ages, rt, tw, k=self.k, k_buy=self.k_buy, k_sell=self.k_sell,
            z_keep=self.z_keep, z_cut=self.z_cut, delta_z_min=self.delta_z_min,
            alpha_per_z=self.alpha_per_z, utility_threshold=self.utility_threshold,
            time_stop=self.time_stop)
        order = np.argsort(-z[idx], kind="stable")
        idx, codes, rank = idx[order], codes[order], rank[order]
        reasons = [_CODES[c] for c in codes]
        actions = [_ACTION[r].value for r in reasons]
        keep = np.array([a != Action.SELL for a in actions], dtype=bool)
        wts = np.where(keep, tw[idx], 0.0)
        names = pd.Index(np.asarray(symbols)[idx].astype(str), name="symbol")
        dec = pd.DataFrame({"action": actions, "reason": [r.value for r in reasons],
                            "z": z[idx], "rank": rank, "weight": wts}, index=names)
        weights = pd.Series(wts[keep], index=names[keep], name="weight")
        return RotationResult(weights=weights, decisions=dec)

    @staticmethod
    def _per_name(value: float | pd.Series | None, symbols: pd.Index, name: str,
                  fill: float | None) -> np.ndarray:
        if value is None:
            return np.zeros(len(symbols))
        if not isinstance(value, pd.Series):
            v = float(value)
            if not np.isfinite(v):
                raise ValidationError(f"{name} must be finite", field=name, value=v)
            return np.full(len(symbols), v)
        out = align_series(value, pd.Index(symbols.astype(str)), name, fill=fill)
        assert out is not None
        return out
