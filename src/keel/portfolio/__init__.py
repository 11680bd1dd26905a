"""keel.portfolio: what we hold and what to trade.

* :mod:`keel.portfolio.ledger` -- :class:`~keel.portfolio.ledger.Ledger` (Decimal positions, cash,
  equity; transactional, versioned, persisted, rebuilt from the store).
* :mod:`keel.portfolio.instruments` -- instrument specs and the
  :class:`~keel.portfolio.instruments.InstrumentRegistry` (rounding, margin, risk).
* :mod:`keel.portfolio.rebalance` -- :func:`~keel.portfolio.rebalance.rebalance`: target
  weights -> orders.
"""
