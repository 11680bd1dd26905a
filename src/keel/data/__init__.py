"""keel.data: market data in, validated.

Public API (imported lazily, so ``import keel.data`` stays cheap):

* calendar: ``ExchangeCalendar``, ``get_calendar``, ``stamp_at_close``; ``stamp_daily``
  (any notation of a daily bar -> its session close; ambiguous times refused)
* panels: ``MarketData``, ``MissingReport``, ``BookSnapshots``; ``tradable_mask`` (the
  point-in-time universe)
* loaders: ``load_prices_long``, ``read_ohlcv_long``, ``OHLCV``, ``read_wide``,
  ``load_prices_wide``, ``load_sectors``, ``load_lobster``, ``LobsterDay``,
  ``load_lean_minute``, ``load_lean_minute_folder``, ``load_lean_daily``,
  ``load_lean_factor_file``, ``load_lean_daily_market``, ``load_fama_french``,
  ``load_market``
* synthetic: ``generate_market``, ``synthetic_market``, ``SyntheticConfig``,
  ``SyntheticMarket``, ``FactorTruth``, ``u_shaped_volume_curve``,
  ``intraday_spread_curve``, ``synthetic_minute_bars``, ``synthetic_minute_history``,
  ``synthetic_order_book``, ``minute_of_session``
* estimates: ``abdi_ranaldo_spread``
"""

from __future__ import annotations

from keel._lazy import lazy_exports

_EXPORTS = {
    "keel.data.calendar": ("ExchangeCalendar", "get_calendar", "calendar_covering",
                           "stamp_at_close"),
    "keel.data.market": ("MarketData", "MissingReport", "UNKNOWN_SECTOR"),
    "keel.data.stamps": ("stamp_daily",),
    "keel.data.universe": ("tradable_mask",),
    "keel.data.orderbook": ("BookSnapshots",),
    "keel.data.prices": ("load_prices_long", "read_ohlcv_long", "OHLCV", "LoadReport",
                         "read_wide", "load_prices_wide", "load_sectors"),
    "keel.data.lobster": ("load_lobster", "LobsterDay", "LobsterEvent", "find_lobster_pair"),
    "keel.data.lean": ("load_lean_minute", "load_lean_minute_folder", "load_lean_daily",
                       "load_lean_factor_file", "load_lean_daily_market"),
    "keel.data.factors": ("load_fama_french",),
    "keel.data.spreads": ("abdi_ranaldo_spread",),
    "keel.data.synthetic": ("generate_market", "synthetic_market", "SyntheticConfig",
                            "SyntheticMarket", "FactorTruth"),
    "keel.data.intraday": ("u_shaped_volume_curve", "intraday_spread_curve", "minute_of_session",
                           "synthetic_minute_history",
                           "synthetic_minute_bars", "synthetic_order_book"),
    "keel.data.source": ("load_market",),
}
__getattr__, __all__ = lazy_exports("keel.data", globals(), _EXPORTS)
