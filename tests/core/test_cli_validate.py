"""keel.cli.validate: the validate-first checks `keel run` and the other commands call before
they open anything (each refusal names the option; values are echoed truncated)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.cli.validate import (
    control_file,
    normalise_symbols,
    number,
    short,
    text_file,
    validate_run_options,
)
from keel.errors import ConfigError, KeelError, ValidationError

OK = dict(bar_minutes=5.0, interval=1.0, max_bars=0, horizon_minutes=None, drain_timeout=5.0,
          nav=1e6, clock_kind="sim", drain="cancel")


@pytest.mark.parametrize(("field", "value"), [
    ("horizon_minutes", -10.0), ("bar_minutes", 0.0), ("bar_minutes", math.nan),
    ("nav", 1e40), ("nav", math.inf), ("interval", -1.0), ("drain_timeout", math.nan),
    ("max_bars", -1), ("clock_kind", "lunar"), ("drain", "maybe")])
def test_run_options_refused_naming_the_option(field, value):
    key = {"clock_kind": "clock"}.get(field, field)
    with pytest.raises(ValidationError) as e:
        validate_run_options(**{**OK, field: value})
    assert e.value.field == key


def test_run_options_accept_the_defaults(tmp_path: Path):
    validate_run_options(**OK, control=tmp_path / "absent.json")


@pytest.mark.parametrize(("content", "word"), [
    (b"\x00\x01binary", "binary"), ("a = 1".encode("utf-16"), "UTF"),
    (b"\xff\xfe\xfa", "UTF-8"), (b"[1, 2]", "object"), (b"{bad", "JSON")])
def test_bad_control_files_are_refused(tmp_path: Path, content: bytes, word: str):
    f = tmp_path / "control.json"
    f.write_bytes(content)
    with pytest.raises(ConfigError, match=word):
        control_file(f)


def test_text_file_refuses_binary_and_utf16_tomls(tmp_path: Path):
    f = tmp_path / "keel.toml"
    f.write_bytes("[general]\nseed = 1\n".encode("utf-16"))
    with pytest.raises(ConfigError, match="UTF-16"):
        text_file(f, "config")
    f.write_text("[general]\nseed = 1\n")
    assert text_file(f, "config").startswith("[general]")


def test_symbols_normalised_before_the_duplicate_check():
    assert normalise_symbols([" AAPL", "MSFT "]) == ["AAPL", "MSFT"]
    with pytest.raises(ValidationError, match="duplicated") as e:
        normalise_symbols(["AAPL", " aapl "])
    assert e.value.symbol == "aapl"
    with pytest.raises(ValidationError):
        normalise_symbols(["A\x01B"])


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_number_accepts_exactly_the_finite_values_in_range(x):
    try:
        assert number(x, "v", lo=0, hi=10) == x
        assert 0 <= x <= 10
    except KeelError:
        assert not (math.isfinite(x) and 0 <= x <= 10)


def test_short_is_bounded():
    assert len(short("x" * 1_000_000)) <= 64
    with pytest.raises(ValidationError, match="expected a number"):
        number(True, "v")
