"""Fixtures of the FIX tests: the data dictionaries and QuickFIX suite under SHARED/fix."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import FIX_SPEC, SHARED

from keel.venues.fix.dictionary import DataDictionary, load_dictionary

FIX_DIR = SHARED / "fix"
SOH = "\x01"


@pytest.fixture(scope="session")
def fix_dir() -> Path:
    """QuickFIX's acceptance suite (only in ../shared)."""
    if not (FIX_DIR / "acceptance").is_dir():
        pytest.skip(f"QuickFIX acceptance suite not found under {FIX_DIR}")
    return FIX_DIR


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    return FIX_SPEC


@pytest.fixture(scope="session")
def dd42(spec_dir: Path) -> DataDictionary:
    return load_dictionary("FIX.4.2", spec_dir)


@pytest.fixture(scope="session")
def dd44(spec_dir: Path) -> DataDictionary:
    return load_dictionary("FIX.4.4", spec_dir)


def fixify(text: str) -> bytes:
    """``8=FIX.4.2|35=0|...|`` with ``|`` for SOH -> a framed message (BodyLength, CheckSum
    added unless given), like the acceptance runner."""
    msg = text.replace("|", SOH)
    m = re.match(r"8=[^\x01]*\x01", msg)
    assert m is not None
    head, rest = m.group(0), msg[m.end():]
    if not rest.startswith("9="):
        rest_body = re.sub(r"10=\d*\x01$", "", rest)
        cs_given = rest_body != rest
        msg = f"{head}9={len(rest_body)}{SOH}{rest}"
        if cs_given:
            return msg.encode("latin-1")
    if not re.search(r"\x0110=\d*\x01$", msg):
        msg += f"10={sum(msg.encode('latin-1')) % 256:03d}{SOH}"
    return msg.encode("latin-1")


@pytest.fixture(scope="session")
def fx() -> Callable[[str], bytes]:
    """The :func:`fixify` helper."""
    return fixify


@pytest.fixture(scope="module", params=["python", "native"])
def codec(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a module's tests on both codecs: the pure-Python one and the compiled one
    (``native/keel_fixcodec``, built by ``scripts/build-native``; skipped where it is not
    installed unless ``KEEL_REQUIRE_NATIVE=1`` makes that a failure)."""
    from keel.venues.fix import codec as codec_mod

    name = request.param
    if name not in codec_mod.available_codecs():
        if os.environ.get("KEEL_REQUIRE_NATIVE") == "1":
            pytest.fail("the compiled FIX codec is required (KEEL_REQUIRE_NATIVE=1) but not "
                        "installed: run scripts/build-native")
        pytest.skip("compiled FIX codec not installed (scripts/build-native)")
    before = codec_mod.codec_name()
    codec_mod.use_codec(name)
    yield name
    codec_mod.use_codec(before)
