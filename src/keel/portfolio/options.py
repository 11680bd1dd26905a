"""Black-Scholes(-Merton) price and Greeks of European options, vectorised over NumPy arrays.

Units: ``spot`` and ``strike`` in currency per unit of underlying; ``t`` in years; ``rate``
and ``div_yield`` continuously compounded per year; ``vol`` annualised (0.2 = 20%). Greeks are
per unit of underlying (multiply by the contract multiplier and quantity for a position):
``delta`` (d price / d spot), ``gamma`` (d delta / d spot), ``vega`` (d price / d vol, per 1.0
of vol, i.e. per 100 vol points), ``theta`` (d price / d calendar time, per year, negative for
a decaying long option), ``rho`` (d price / d rate, per 1.0 of rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from keel.errors import ValidationError

ArrayLike = float | np.ndarray


@dataclass(frozen=True)
class Greeks:
    """Black-Scholes sensitivities (arrays broadcast from the inputs); units in the module doc."""

    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray
    rho: np.ndarray


def _prep(spot: ArrayLike, strike: ArrayLike, t: ArrayLike, vol: ArrayLike
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    arrays = [np.asarray(x, dtype=np.float64) for x in (spot, strike, t, vol)]
    for name, a in zip(("spot", "strike", "t", "vol"), arrays, strict=True):
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValidationError(f"{name} must be finite and > 0", field=name,
                                  value=a.tolist() if a.ndim else float(a))
    return arrays[0], arrays[1], arrays[2], arrays[3]


def _d1_d2(S: np.ndarray, K: np.ndarray, t: np.ndarray, r: ArrayLike, q: ArrayLike,
           v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sq = v * np.sqrt(t)
    d1 = (np.log(S / K) + (np.asarray(r) - np.asarray(q) + 0.5 * v * v) * t) / sq
    return d1, d1 - sq


def bs_price(spot: ArrayLike, strike: ArrayLike, t: ArrayLike, vol: ArrayLike,
             rate: ArrayLike = 0.0, div_yield: ArrayLike = 0.0,
             is_call: bool | np.ndarray = True) -> np.ndarray:
    """European option value per unit of underlying (currency)."""
    S, K, T, v = _prep(spot, strike, t, vol)
    d1, d2 = _d1_d2(S, K, T, rate, div_yield, v)
    df_r, df_q = np.exp(-np.asarray(rate) * T), np.exp(-np.asarray(div_yield) * T)
    call = S * df_q * ndtr(d1) - K * df_r * ndtr(d2)
    put = K * df_r * ndtr(-d2) - S * df_q * ndtr(-d1)
    return np.where(is_call, call, put)


def bs_greeks(spot: ArrayLike, strike: ArrayLike, t: ArrayLike, vol: ArrayLike,
              rate: ArrayLike = 0.0, div_yield: ArrayLike = 0.0,
              is_call: bool | np.ndarray = True) -> Greeks:
    """Closed-form Greeks per unit of underlying; see the module doc for units."""
    S, K, T, v = _prep(spot, strike, t, vol)
    r, q = np.asarray(rate, dtype=np.float64), np.asarray(div_yield, dtype=np.float64)
    d1, d2 = _d1_d2(S, K, T, r, q, v)
    df_r, df_q = np.exp(-r * T), np.exp(-q * T)
    pdf = np.exp(-0.5 * d1 * d1) / np.sqrt(2.0 * np.pi)
    sqt = np.sqrt(T)
    gamma = df_q * pdf / (S * v * sqt)
    vega = S * df_q * pdf * sqt
    common = -S * df_q * pdf * v / (2.0 * sqt)
    delta = np.where(is_call, df_q * ndtr(d1), -df_q * ndtr(-d1))
    theta = np.where(is_call,
                     common - r * K * df_r * ndtr(d2) + q * S * df_q * ndtr(d1),
                     common + r * K * df_r * ndtr(-d2) - q * S * df_q * ndtr(-d1))
    rho = np.where(is_call, K * T * df_r * ndtr(d2), -K * T * df_r * ndtr(-d2))
    return Greeks(delta=delta, gamma=gamma, vega=vega, theta=theta, rho=rho)
