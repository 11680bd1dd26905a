"""Lazy validation (``SessionConfig.validation="lazy"``, the default) against strict.

Strict checks every value of every message (QuickFIX). Lazy checks a message in full the first
time its shape is seen, then only the values the session and the application read
(``Application.read_tags``); a type the application does not name is always checked in full.
"""

from __future__ import annotations

import pytest
from tests.venues.fix.test_session import T0, Echo, acceptor

from keel.errors import ConfigError
from keel.venues.fix.messages import READ_TAGS
from keel.venues.fix.session import SessionConfig

# 21 HandlInst is in no READ_TAGS entry (keel never reads it); 54 Side is read
NOS = "35=D|11={id}|21={handl}|38=100|40=1|54={side}|55=AAPL|60=20251121-08:30:00"


class Reader(Echo):
    read_tags = READ_TAGS


def _run(dd, app, validation: str, orders: list[tuple[str, str]],
         extra: str = "") -> list[tuple[str, str]]:
    """Send the orders; per order, what came back: ("D", "") echoed or ("3", reason)."""
    _s, p = acceptor(dd, app, validation=validation)
    p.logon()
    p.out()
    out = []
    for i, (handl, side) in enumerate(orders):
        p.send(NOS.format(id=f"C{i}", handl=handl, side=side) + extra, T0)
        (reply,) = p.out()
        out.append((reply.msg_type, reply.get(373, "") or ""))
    return out


def test_unread_bad_value_passes_lazy_once_the_shape_is_known(dd42) -> None:
    orders = [("1", "1"), ("Z", "1")]  # HandlInst "Z" is not in its enumeration
    assert _run(dd42, Reader(), "lazy", orders) == [("D", ""), ("D", "")]
    assert _run(dd42, Reader(), "strict", orders) == [("D", ""), ("3", "5")]


def test_read_bad_value_is_rejected_in_both_modes(dd42) -> None:
    orders = [("1", "1"), ("1", "Z")]  # Side "Z": read by the application
    for mode in ("lazy", "strict"):
        assert _run(dd42, Reader(), mode, orders) == [("D", ""), ("3", "5")], mode


def test_first_message_of_a_shape_is_checked_in_full(dd42) -> None:
    # shapes are learnt per dictionary (process-wide): 207 makes one no other test sends
    assert _run(dd42, Reader(), "lazy", [("Z", "1")], extra="|207=XNAS") == [("3", "5")]


def test_an_application_naming_no_tags_gets_strict_checking(dd42) -> None:
    orders = [("1", "1"), ("Z", "1")]
    assert _run(dd42, Echo(), "lazy", orders) == [("D", ""), ("3", "5")]


def test_structure_is_checked_lazily_too(dd42) -> None:
    _s, p = acceptor(dd42, Reader(), validation="lazy")
    p.logon()
    p.out()
    p.send(NOS.format(id="C0", handl="1", side="1"), T0)
    p.out()
    p.send(NOS.format(id="C1", handl="1", side="1") + "|9999=x", T0)  # an undefined tag
    (reply,) = p.out()
    assert reply.msg_type == "3" and reply.get(371) == "9999"


def test_unknown_validation_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="validation"):
        SessionConfig("FIX.4.2", "A", "B", validation="loose")
