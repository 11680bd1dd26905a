"""Dictionary validation: each SessionRejectReason with the tag it names (FIX 4.2 and 4.4)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import REPO
from tests.venues.fix.conftest import FIX_DIR, fixify

from keel.errors import ConfigError
from keel.venues.fix.codec import decode
from keel.venues.fix.dictionary import DataDictionary, find_spec_dir, load_dictionary
from keel.venues.fix.validate import RejectError, SessionRejectReason, validate

R = SessionRejectReason
HDR = "34=2|49=TW|52=20251121-08:30:00|56=ISLD|"
NOS = "11=ID|21=1|38=100|40=1|54=1|55=INTC|60=20251121-08:30:00|"
NOS44 = "11=ID|38=100|40=1|54=1|55=INTC|60=20251121-08:30:00|"

CASES_42 = [
    ("0", "999=HI|", R.INVALID_TAG_NUMBER, 999),
    ("0", "5000=HI|", R.INVALID_TAG_NUMBER, 5000),
    ("0", "55=MSFT|", R.TAG_NOT_DEFINED_FOR_MESSAGE_TYPE, 55),
    ("1", "", R.REQUIRED_TAG_MISSING, 112),
    ("1", "112=|", R.TAG_SPECIFIED_WITHOUT_A_VALUE, 112),
    ("D", NOS.replace("21=1", "21=4"), R.VALUE_IS_INCORRECT, 21),
    ("D", NOS.replace("38=100", "38=+100"), R.INCORRECT_DATA_FORMAT, 38),
    ("D", NOS + "126=20040415|", R.INCORRECT_DATA_FORMAT, 126),
    ("D", NOS.replace("40=1|", "40=1|40=2|"), R.TAG_APPEARS_MORE_THAN_ONCE, 40),
    ("D", NOS + "386=3|336=A|336=B|", R.INCORRECT_NUMINGROUP_COUNT, 386),
    ("D", NOS + "18=1 5 Z|", R.VALUE_IS_INCORRECT, 18),
    ("*", "", R.INVALID_MSGTYPE, 0),
    ("4", "36=x|", R.INCORRECT_DATA_FORMAT, 36),
    ("4", "36=5|123=X|", R.INCORRECT_DATA_FORMAT, 123),
]


def _msg(begin: str, mt: str, body: str, dd: DataDictionary):
    return decode(fixify(f"8={begin}|35={mt}|{HDR}{body}"), dd)


@pytest.mark.parametrize(("mt", "body", "reason", "tag"), CASES_42)
def test_reject_reasons_fix42(dd42, mt: str, body: str, reason: R, tag: int) -> None:
    with pytest.raises(RejectError) as info:
        validate(_msg("FIX.4.2", mt, body, dd42), dd42)
    assert (info.value.reason, info.value.ref_tag) == (reason, tag)


def test_valid_messages_pass(dd42, dd44) -> None:
    validate(_msg("FIX.4.2", "D", NOS + "386=2|336=A|336=B|18=1 5|", dd42), dd42)
    validate(_msg("FIX.4.2", "d", "320=R|322=1|323=6|55=TBS|146=0|393=0|", dd42), dd42)
    validate(_msg("FIX.4.4", "D", NOS44 + "453=1|448=P|447=D|452=1|", dd44), dd44)


def test_user_defined_tags_can_be_allowed(dd42) -> None:
    validate(_msg("FIX.4.2", "0", "5000=HI|", dd42), dd42, check_user_defined=False)


def test_header_after_body_is_out_of_order(dd42) -> None:
    msg = decode(fixify("8=FIX.4.2|35=0|112=x|34=2|49=TW|52=20251121-08:30:00|56=ISLD|"),
                 dd42)
    with pytest.raises(RejectError) as info:
        validate(msg, dd42)
    assert (info.value.reason, info.value.ref_tag) == (R.TAG_SPECIFIED_OUT_OF_REQUIRED_ORDER, 34)


def test_fix44_group_checks(dd44) -> None:
    with pytest.raises(RejectError) as info:
        validate(_msg("FIX.4.4", "D", NOS44 + "453=2|448=P|447=D|452=1|", dd44), dd44)
    assert (info.value.reason, info.value.ref_tag) == (R.INCORRECT_NUMINGROUP_COUNT, 453)
    # Symbol sits in the Instrument component in 4.4 and is not required there
    validate(_msg("FIX.4.4", "D", NOS44.replace("55=INTC|", ""), dd44), dd44)


def test_dictionary_contents(dd42, dd44) -> None:
    assert dd42.begin_string == "FIX.4.2" and dd44.begin_string == "FIX.4.4"
    assert dd42.messages["D"].required == [11, 21, 40, 54, 55, 60]
    assert dd42.fields[38].type == "QTY"
    assert dd42.data_length_tag[96] == 95 and dd42.data_length_tag[89] == 93
    assert 627 in dd44.header.groups  # NoHops


def test_missing_spec_dir_is_a_clear_config_error(tmp_path, monkeypatch) -> None:
    with pytest.raises(ConfigError) as info:
        find_spec_dir(tmp_path)
    assert info.value.field == "spec_dir" and "KEEL_FIX_SPEC_DIR" in str(info.value)
    monkeypatch.setenv("KEEL_FIX_SPEC_DIR", str(tmp_path))
    with pytest.raises(ConfigError):
        load_dictionary("FIX.4.2")
    bad = tmp_path / "FIX42.xml"
    bad.write_text("<fix")
    with pytest.raises(ConfigError, match="malformed"):
        DataDictionary.load(bad)


def test_spec_dir_from_environment(spec_dir, monkeypatch) -> None:
    monkeypatch.setenv("KEEL_FIX_SPEC_DIR", str(spec_dir))
    assert find_spec_dir() == spec_dir


def test_packaged_dictionaries_are_the_last_resort(monkeypatch) -> None:
    from keel.venues.fix.dictionary import PACKAGED_SPEC_DIR

    monkeypatch.delenv("KEEL_FIX_SPEC_DIR", raising=False)
    assert find_spec_dir() == PACKAGED_SPEC_DIR
    assert load_dictionary("FIX.4.4").messages  # parses
    spec = FIX_DIR / "spec"
    shared = spec if (spec / "FIX42.xml").is_file() else None
    if shared is not None:  # the shipped copy is the reference one, byte for byte
        for name in ("FIX42.xml", "FIX44.xml"):
            assert (PACKAGED_SPEC_DIR / name).read_bytes() == (shared / name).read_bytes()


def _stranger_above(tmp_path: Path) -> Path:
    """``tmp/shared/fix/spec`` with broken dictionaries, and a copy of keel's sources in
    ``tmp/work/clone`` below it; returns a folder deep inside the clone."""
    spec = tmp_path / "shared" / "fix" / "spec"
    spec.mkdir(parents=True)
    for name in ("FIX42.xml", "FIX44.xml"):
        (spec / name).write_text("<fix broken")
    (tmp_path / "fix" / "spec").mkdir(parents=True)  # the old search's other candidate
    (tmp_path / "fix" / "spec" / "FIX42.xml").write_text("<fix broken")
    clone = tmp_path / "work" / "clone"
    shutil.copytree(REPO / "src", clone / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    deep = clone / "a" / "b"
    deep.mkdir(parents=True)
    return deep


def test_an_unrelated_shared_folder_above_is_ignored(tmp_path, monkeypatch) -> None:
    """A stranger's ``shared/fix/spec`` above the working directory is never read: in this
    process (cwd inside it) and in a clean interpreter running a copy of keel from below it."""
    from keel.venues.fix.dictionary import PACKAGED_SPEC_DIR

    deep = _stranger_above(tmp_path)
    monkeypatch.delenv("KEEL_FIX_SPEC_DIR", raising=False)
    monkeypatch.chdir(deep)
    assert find_spec_dir() == PACKAGED_SPEC_DIR
    assert load_dictionary("FIX.4.2").messages["D"].required == [11, 21, 40, 54, 55, 60]
    env = {k: v for k, v in os.environ.items() if k != "KEEL_FIX_SPEC_DIR"}
    env["PYTHONPATH"] = str(deep.parents[1] / "src")
    code = ("import keel.venues.fix.dictionary as d; p = d.find_spec_dir(); "
            "print(p); print(len(d.load_dictionary('FIX.4.4').messages))")
    out = subprocess.run([sys.executable, "-c", code], cwd=deep, env=env, text=True,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    where, n = out.stdout.split()
    assert Path(where) == deep.parents[1] / "src" / "keel" / "venues" / "fix" / "spec"
    assert int(n) == len(load_dictionary("FIX.4.4", PACKAGED_SPEC_DIR).messages) > 50
    # the variable, when set, still wins (and names its folder when wrong)
    monkeypatch.setenv("KEEL_FIX_SPEC_DIR", str(tmp_path / "shared" / "fix" / "spec"))
    with pytest.raises(ConfigError, match="malformed"):
        load_dictionary("FIX.4.2")
