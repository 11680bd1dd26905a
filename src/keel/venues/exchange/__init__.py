"""The simulated exchange: a matching engine per symbol behind FIX and REST front ends."""

from keel.venues.exchange.matching import Book, MatchingEngine, RestingOrder, Routed, Trade

__all__ = ["Book", "MatchingEngine", "RestingOrder", "Routed", "Trade"]
