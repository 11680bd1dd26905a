"""A seeded synthetic daily market: keel's built-in default data.

Model (all daily, fully vectorised, one ``numpy.random.Generator``):

* **Universe**: ``n_assets`` names ``S0000..``, each in one GICS-like sector (drawn with
  GICS-like weights). Initial market caps log-normal; initial prices log-normal.
* **Factor structure** (log returns): ``r_t = B f_t + e_t`` with exposures ``B`` (N x K) on
  ``K = 1 + n_sectors + n_styles`` factors: ``market`` (exposure = the asset's true beta),
  one-hot ``sector:<name>``, and standardised styles (``style:size`` = z-scored log cap,
  ``style:value``, ``style:momentum``, ... N(0, 1)). Factor returns are Gaussian with a
  diagonal covariance ``F`` (market carries a positive premium); specific returns are
  Student-t (``t_dof`` degrees of freedom, fat tails) scaled to the specific vol, which
  falls with size.
* **Volatility clustering**: every return on day ``t`` is multiplied by ``m_t =
  exp(h_t - var(h))`` with ``h`` a stationary AR(1) (``vol_persistence``, ``vol_of_vol``),
  normalised so ``E[m_t^2] = 1``: the *unconditional* covariance is exactly
  ``B F B' + diag(d)``, which is what :class:`FactorTruth` exposes.
* **Liquidity**: shares outstanding = cap / price (constant); daily turnover log-normal
  per name; volume = shares x turnover x log-normal noise x (0.6 + 0.4 |z_t|), so volume
  rises with absolute returns and ADV (notional) scales with size.
* **Spreads** (fraction of mid): ``base_spread x (ADV$ / 1e8)^(-spread_elasticity)``,
  widening with the day's volatility multiplier, with log-normal noise, never below one
  cent (a tick) per share: the spread falls with size and liquidity.
* **Stamping**: consecutive sessions of ``calendar`` from ``start``, stamped at session
  close in UTC (early closes included).

Units: prices in currency per share, volumes in shares, market caps in currency, spreads as
a fraction of mid, vols and covariances in daily log-return units.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from keel.data.calendar import ExchangeCalendar
from keel.data.market import MarketData
from keel.errors import ValidationError

#: GICS sectors and rough index weights (used as assignment probabilities).
GICS_SECTORS: tuple[tuple[str, float], ...] = (
    ("Information Technology", 0.15), ("Health Care", 0.12), ("Financials", 0.13),
    ("Consumer Discretionary", 0.12), ("Industrials", 0.14), ("Communication Services", 0.05),
    ("Consumer Staples", 0.07), ("Energy", 0.05), ("Utilities", 0.06),
    ("Real Estate", 0.06), ("Materials", 0.05),
)
STYLE_NAMES = ("size", "value", "momentum", "quality", "low_vol")
TRADING_DAYS = 252.0


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic market (annualised vols where named ``*_annual``).

    Raises ``ValidationError`` naming the field on construction when a value is out of range.
    """

    n_assets: int = 100
    n_days: int = 756
    start: str = "2021-01-04"
    calendar: str = "XNYS"
    n_styles: int = 3
    market_vol_annual: float = 0.16
    market_premium_annual: float = 0.06
    sector_vol_annual: float = 0.08
    style_vol_annual: float = 0.04
    specific_vol_annual: float = 0.25
    specific_vol_size_slope: float = 0.25
    t_dof: float = 5.0
    beta_dispersion: float = 0.25
    log_cap_mean: float = float(np.log(2e10))
    log_cap_sd: float = 1.2
    log_price_mean: float = float(np.log(60.0))
    log_price_sd: float = 0.7
    turnover_median: float = 0.007
    turnover_sd: float = 0.4
    volume_noise_sd: float = 0.3
    base_spread: float = 0.0005
    spread_elasticity: float = 0.35
    spread_noise_sd: float = 0.15
    tick: float = 0.01
    vol_persistence: float = 0.97
    vol_of_vol: float = 0.08

    def __post_init__(self) -> None:
        checks = {
            "n_assets": self.n_assets >= 2, "n_days": self.n_days >= 2,
            "n_styles": 0 <= self.n_styles <= len(STYLE_NAMES), "t_dof": self.t_dof > 2,
            "vol_persistence": 0 <= self.vol_persistence < 1, "vol_of_vol": self.vol_of_vol >= 0,
            "tick": self.tick > 0, "base_spread": self.base_spread > 0,
        }
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not np.isfinite(v):
                raise ValidationError("must be finite", field=f.name, value=v)
            if (f.name.endswith(("_annual", "_sd", "_median", "_dispersion"))
                    and f.name != "market_premium_annual" and v < 0):
                raise ValidationError("must be >= 0", field=f.name, value=v)
        for name, ok in checks.items():
            if not ok:
                raise ValidationError("out of range", field=name, value=getattr(self, name))


@dataclass(frozen=True, eq=False)
class FactorTruth:
    """The factor structure the synthetic returns were drawn from (daily log returns).

    Attributes:
        exposures: symbols x factors ``B``.
        factor_covariance: factors x factors ``F`` (diagonal).
        specific_variance: symbols ``d`` (variance of the Student-t specific returns).
        factor_returns: dates[1:] x factors, the realised ``f_t`` (incl. vol multiplier).
        specific_returns: dates[1:] x symbols, the realised ``e_t``.
        vol_multiplier: dates[1:], ``m_t`` (``E[m^2] = 1``).
        factor_mean: factors, daily mean of ``f`` (the market premium).
    """

    exposures: pd.DataFrame
    factor_covariance: pd.DataFrame
    specific_variance: pd.Series
    factor_returns: pd.DataFrame
    specific_returns: pd.DataFrame
    vol_multiplier: pd.Series
    factor_mean: pd.Series

    @property
    def betas(self) -> pd.Series:
        """True market betas (the ``market`` column of the exposures)."""
        return self.exposures["market"].rename("beta")

    def covariance(self) -> pd.DataFrame:
        """Dense unconditional ``B F B' + diag(d)``, symbols x symbols (small N only)."""
        b = self.exposures.to_numpy()
        c = b @ self.factor_covariance.to_numpy() @ b.T + np.diag(self.specific_variance)
        return pd.DataFrame(c, index=self.exposures.index, columns=self.exposures.index)


@dataclass(frozen=True, eq=False)
class SyntheticMarket:
    """A generated market with the truth behind it."""

    market: MarketData
    truth: FactorTruth
    config: SyntheticConfig
    seed: int | None = field(default=None)


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def synthetic_sessions(start: str, n_days: int, calendar: str = "XNYS") -> pd.DatetimeIndex:
    """``n_days`` consecutive sessions from ``start`` (inclusive), as UTC closes."""
    s = pd.Timestamp(start)
    end = s + pd.Timedelta(days=int(n_days * 7 / 4.5) + 30)
    cal = ExchangeCalendar(calendar, s, end)
    sess = cal.sessions()
    if len(sess) < n_days:
        raise ValidationError("calendar too short for n_days", field="n_days", value=n_days)
    return pd.DatetimeIndex(cal.closes(sess[:n_days]), name="timestamp")


def generate_market(config: SyntheticConfig | None = None, *,
                    seed: int | np.random.Generator | None = 0,
                    **overrides: Any) -> SyntheticMarket:
    """Draw a synthetic market.

    Args:
        config: parameters (default :class:`SyntheticConfig`); ``overrides`` replace fields,
            e.g. ``generate_market(n_assets=500, n_days=2000, seed=7)``.
        seed: an int or a ``numpy.random.Generator``; the same seed gives the same market.

    Returns:
        :class:`SyntheticMarket` with ``market`` (``MarketData`` with prices, volumes,
        sectors, spreads, market caps) and ``truth`` (:class:`FactorTruth`).
    """
    cfg = config or SyntheticConfig()
    if overrides:
        unknown = set(overrides) - {f.name for f in fields(SyntheticConfig)}
        if unknown:
            raise ValidationError("unknown synthetic market parameter",
                                  field=sorted(unknown)[0])
        cfg = SyntheticConfig(**{**{f.name: getattr(cfg, f.name) for f in fields(cfg)},
                                 **overrides})
    rng = _rng(seed)
    n, t = cfg.n_assets, cfg.n_days
    stamps = synthetic_sessions(cfg.start, t, cfg.calendar)
    symbols = pd.Index([f"S{i:04d}" for i in range(n)], name="symbol")
    day = 1.0 / np.sqrt(TRADING_DAYS)

    # ---- cross-section
    names = np.array([s for s, _ in GICS_SECTORS])
    probs = np.array([w for _, w in GICS_SECTORS])
    sector_idx = rng.choice(len(names), size=n, p=probs / probs.sum())
    log_cap = rng.normal(cfg.log_cap_mean, cfg.log_cap_sd, n)
    size_z = (log_cap - log_cap.mean()) / log_cap.std()
    beta = np.exp(rng.normal(0.0, cfg.beta_dispersion, n) - 0.5 * cfg.beta_dispersion ** 2)
    styles = rng.standard_normal((n, cfg.n_styles))
    if cfg.n_styles:
        styles[:, 0] = size_z
    spec_vol = (cfg.specific_vol_annual * day
                * np.exp(-cfg.specific_vol_size_slope * size_z + 0.2 * rng.standard_normal(n)))

    sector_names = [f"sector:{s}" for s in names]
    style_names = [f"style:{s}" for s in STYLE_NAMES[: cfg.n_styles]]
    factors = pd.Index(["market", *sector_names, *style_names], name="factor")
    k = len(factors)
    b = np.zeros((n, k))
    b[:, 0] = beta
    b[np.arange(n), 1 + sector_idx] = 1.0
    b[:, 1 + len(names):] = styles
    fvol = np.r_[cfg.market_vol_annual, np.full(len(names), cfg.sector_vol_annual),
                 np.full(cfg.n_styles, cfg.style_vol_annual)] * day
    fmean = np.zeros(k)
    fmean[0] = cfg.market_premium_annual / TRADING_DAYS

    # ---- time series (t - 1 return days; the first session only sets the price level)
    m = t - 1
    h_var = cfg.vol_of_vol ** 2 / (1 - cfg.vol_persistence ** 2)
    eta = rng.standard_normal(m) * cfg.vol_of_vol
    eta[0] *= np.sqrt(1.0 / (1 - cfg.vol_persistence ** 2))  # start in the stationary law
    h = lfilter([1.0], [1.0, -cfg.vol_persistence], eta)
    mult = np.exp(h - h_var)  # E[exp(2h - 2 var)] = exp(2 var - 2 var) = 1
    f = fmean + rng.standard_normal((m, k)) * fvol * mult[:, None]
    tscale = np.sqrt((cfg.t_dof - 2) / cfg.t_dof)
    e = rng.standard_t(cfg.t_dof, (m, n)) * (tscale * spec_vol) * mult[:, None]
    logret = f @ b.T + e

    p0 = np.exp(rng.normal(cfg.log_price_mean, cfg.log_price_sd, n))
    logp = np.vstack([np.log(p0)[None, :], np.log(p0) + np.cumsum(logret, axis=0)])
    prices = np.exp(logp)
    shares = np.exp(log_cap) / p0
    caps = prices * shares

    turnover = cfg.turnover_median * np.exp(cfg.turnover_sd * rng.standard_normal(n))
    z = np.vstack([np.zeros((1, n)), logret / np.sqrt(b ** 2 @ fvol ** 2 + spec_vol ** 2)])
    vnoise = np.exp(cfg.volume_noise_sd * rng.standard_normal((t, n))
                    - 0.5 * cfg.volume_noise_sd ** 2)
    volumes = np.round(shares * turnover * vnoise * (0.6 + 0.4 * np.abs(z) / 0.8))
    volumes = np.maximum(volumes, 1.0)

    adv_notional = shares * turnover * p0
    base = cfg.base_spread * (adv_notional / 1e8) ** (-cfg.spread_elasticity)
    mult_full = np.r_[1.0, mult]
    spreads = (base[None, :] * np.sqrt(mult_full)[:, None]
               * np.exp(cfg.spread_noise_sd * rng.standard_normal((t, n))))
    spreads = np.maximum(spreads, cfg.tick / prices)

    def panel(a: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(a, index=stamps, columns=symbols)

    label = "generator" if isinstance(seed, np.random.Generator) else seed
    market = MarketData(prices=panel(prices), volumes=panel(volumes),
                        sectors=pd.Series(names[sector_idx], index=symbols, name="sector"),
                        spreads=panel(spreads), market_caps=panel(caps),
                        source=f"synthetic(seed={label})")
    rdates = stamps[1:]
    truth = FactorTruth(
        exposures=pd.DataFrame(b, index=symbols, columns=factors),
        factor_covariance=pd.DataFrame(np.diag(fvol ** 2), index=factors, columns=factors),
        specific_variance=pd.Series(spec_vol ** 2, index=symbols, name="specific_variance"),
        factor_returns=pd.DataFrame(f, index=rdates, columns=factors),
        specific_returns=pd.DataFrame(e, index=rdates, columns=symbols),
        vol_multiplier=pd.Series(mult, index=rdates, name="vol_multiplier"),
        factor_mean=pd.Series(fmean, index=factors, name="factor_mean"),
    )
    return SyntheticMarket(market=market, truth=truth, config=cfg,
                           seed=None if isinstance(seed, np.random.Generator) else seed)


def synthetic_market(n_assets: int = 100, n_days: int = 756, *, seed: int = 0,
                     **overrides: Any) -> MarketData:
    """Shorthand: just the ``MarketData`` of :func:`generate_market`."""
    return generate_market(seed=seed, n_assets=n_assets, n_days=n_days, **overrides).market
