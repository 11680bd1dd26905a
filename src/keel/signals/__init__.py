"""keel.signals: scores and expected returns per symbol as of a time (between data and optimize).

Public API (imported lazily):

* protocol: ``SignalModel`` (``evaluate(market) -> SignalSnapshot``), ``SignalSnapshot``
* transforms: ``zscore``, ``expected_returns`` (Grinold ``alpha = IC x vol x z``)
* built-in: ``BlendSignal``, ``composite_score``, ``momentum_12_1``, ``short_term_reversal``,
  ``low_volatility``, ``SIGNALS``, ``DEFAULT_WEIGHTS``
* external: ``ExternalSignal``, ``SignalTable``, ``read_signal_table``

See docs/signals.md.
"""

from __future__ import annotations

from keel._lazy import lazy_exports

_EXPORTS = {
    "keel.signals.base": ("SignalModel", "SignalSnapshot", "zscore", "expected_returns"),
    "keel.signals.blend": ("BlendSignal", "composite_score", "momentum_12_1",
                           "short_term_reversal", "low_volatility", "SIGNALS",
                           "DEFAULT_WEIGHTS"),
    "keel.signals.external": ("ExternalSignal", "SignalTable", "read_signal_table"),
}

__getattr__, __all__ = lazy_exports(__name__, globals(), _EXPORTS)
