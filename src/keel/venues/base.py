"""The venues' contract: the `Broker` protocol every venue implements (defined with its
consumer in :mod:`keel.execution.broker`, so the order manager never imports a venue)."""

from keel.execution.broker import Account, Broker, OpenOrder

__all__ = ["Account", "Broker", "OpenOrder"]
