"""QuickFIX-style settings files: the example of docs/fix.md, errors, and both ends wired.

The example is read out of docs/fix.md (the block after ``<!-- fix-settings-example -->``),
so the file a user copies is the file tested.
"""

from __future__ import annotations

import re
import time
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path

import pytest
from tests.conftest import REPO
from tests.venues.test_exchange_cli import start, stop, wait_line
from typer.testing import CliRunner

from keel.app.venue import initiator_settings, remote_broker
from keel.cli import app
from keel.errors import ConfigError
from keel.types import Order, Side, utc
from keel.venues.fix.broker import FixBroker
from keel.venues.fix.settings import FixSessionSettings, load_settings, parse_settings
from keel.venues.fix.store import FileStore, MemoryStore

DOC = REPO / "docs" / "fix.md"


def doc_block(marker: str) -> str:
    """The fenced block right after ``<!-- marker -->`` in docs/fix.md."""
    text = DOC.read_text(encoding="utf-8")
    m = re.search(rf"<!-- {marker} -->\s*```ini\n(.*?)```", text, re.S)
    assert m is not None, f"no {marker} block in {DOC}"
    return m.group(1)


EXAMPLE = doc_block("fix-settings-example")


def test_the_documented_example_parses_into_session_configs(tmp_path: Path) -> None:
    cfg_file = tmp_path / "keel-fix.cfg"
    cfg_file.write_text(EXAMPLE)
    acceptor, initiator = load_settings(cfg_file)
    assert isinstance(acceptor, FixSessionSettings) and acceptor.section == "SESSION 1"
    a, i = acceptor.config, initiator.config
    assert (a.begin_string, a.sender_comp_id, a.target_comp_id, a.initiator) == (
        "FIX.4.4", "KEELX", "KEEL", False)
    assert (i.begin_string, i.sender_comp_id, i.target_comp_id, i.initiator) == (
        "FIX.4.4", "KEEL", "KEELX", True)
    assert a.heartbeat_interval == i.heartbeat_interval == 30
    assert not a.reset_on_logon and not i.reset_on_logon
    assert acceptor.accept_port == 9878 and acceptor.connect_host is None
    assert (initiator.connect_host, initiator.connect_port) == ("127.0.0.1", 9878)
    assert initiator.reconnect_interval == 5.0
    # relative FileStorePath: next to the settings file, never the working directory
    assert acceptor.file_store_path == tmp_path / "keel-out" / "fix-store"
    for s in (acceptor, initiator):
        sched = s.config.schedule
        assert sched is not None and not sched.weekly and sched.time_zone == "UTC"
        assert sched.start_time == sched.end_time == dtime(0)
        day = utc(2026, 6, 2, 12).timestamp()
        assert sched.session_start(day) == utc(2026, 6, 2, 0).timestamp()
    store = acceptor.store()
    assert isinstance(store, FileStore)
    store.close()
    assert (tmp_path / "keel-out" / "fix-store").is_dir()


def test_the_documented_weekly_schedule() -> None:
    weekly = doc_block("fix-settings-weekly")
    text = re.sub(r"StartTime=.*\nEndTime=.*\nTimeZone=.*\n", weekly, EXAMPLE)
    assert "StartDay=Sunday" in text
    acceptor, _ = parse_settings(text)
    sched = acceptor.config.schedule
    assert sched is not None and sched.weekly
    assert (sched.start_day, sched.end_day) == (6, 4)  # Sunday .. Friday
    assert (sched.start_time, sched.end_time) == (dtime(17), dtime(17))
    assert sched.time_zone == "America/New_York"
    # Saturday noon New York is closed, Monday noon is open
    assert not sched.is_open(utc(2026, 6, 13, 16).timestamp())
    assert sched.is_open(utc(2026, 6, 15, 16).timestamp())


HEAD = "[DEFAULT]\nBeginString=FIX.4.2\nStartTime=00:00:00\nEndTime=00:00:00\n"
ACC = "[SESSION]\nConnectionType=acceptor\nSenderCompID=A\nTargetCompID=B\nSocketAcceptPort=1\n"


@pytest.mark.parametrize(("text", "field", "section", "words"), [
    (HEAD + ACC + ACC.replace("B\n", "C\n") + "FileLogPath=log\n", "FileLogPath",
     "SESSION 2", "unknown or unsupported"),
    (HEAD + ACC.replace("acceptor", "server"), "ConnectionType", "SESSION 1",
     "expected initiator or acceptor"),
    (HEAD + "HeartBtInt=abc\n" + ACC, "HeartBtInt", "SESSION 1, from DEFAULT", "bad value"),
    (HEAD + ACC + "HeartBtInt=0\n", "HeartBtInt", "SESSION 1", "positive"),
    (HEAD + ACC + "ResetOnLogon=yes\n", "ResetOnLogon", "SESSION 1", "Y or N"),
    (HEAD + ACC.replace("FIX.4.2", "") + "BeginString=FIX.5.0\n", "BeginString", "SESSION 1",
     "FIX.4.2, FIX.4.4"),
    (HEAD + ACC + "StartDay=Funday\nEndDay=Friday\n", "StartDay", "SESSION 1", "day"),
    (HEAD + ACC + "TimeZone=Mars/Olympus\n", "TimeZone", "SESSION 1", "time zone"),
    (HEAD + ACC + "StartTime=8:00\n", "StartTime", "SESSION 1", "HH:MM:SS"),
    (HEAD + ACC.replace("SocketAcceptPort=1\n", ""), "SocketAcceptPort", "SESSION 1",
     "missing"),
    (HEAD + ACC.replace("SocketAcceptPort=1\n", "SocketAcceptPort=70000\n"),
     "SocketAcceptPort", "SESSION 1", "port"),
    (HEAD + ACC + "UseDataDictionary=N\n", "UseDataDictionary", "SESSION 1", "only Y"),
])
def test_bad_settings_name_section_and_key(text: str, field: str, section: str,
                                           words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, source="x.cfg")
    err = info.value
    assert err.field == field and words in err.message, err
    assert err.context["section"] == section and f"[{section}]" in str(err)
    assert err.context["file"] == "x.cfg"


@pytest.mark.parametrize(("text", "words"), [
    ("[DEFAULT]\nHeartBtInt=30\n", "no [SESSION]"),
    ("[SESSIONS]\n", "unknown section"),
    ("HeartBtInt=30\n", "before any"),
    ("[SESSION]\nHeartBtInt\n", "Key=Value"),
    (HEAD + ACC + ACC, "same session"),
    (HEAD + ACC + "HeartBtInt=1\nHeartBtInt=2\n", "twice"),
    (HEAD.replace("StartTime=00:00:00\n", "") + ACC, "missing required setting"),
    (HEAD + ACC + "NonStopSession=Y\n", "NonStopSession=Y with a schedule"),
])
def test_malformed_files_are_config_errors(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        parse_settings(text)


def test_non_stop_session_and_data_dictionary(tmp_path: Path, spec_dir: Path) -> None:
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "FIX42.xml").write_bytes((spec_dir / "FIX42.xml").read_bytes())
    text = ("[DEFAULT]\nBeginString=FIX.4.2\nNonStopSession=Y\n"
            "DataDictionary=dd/FIX42.xml\nUseDataDictionary=Y\n" + ACC)
    (s,) = parse_settings(text, base_dir=tmp_path)
    assert s.config.schedule is None and s.data_dictionary == tmp_path / "dd" / "FIX42.xml"
    assert s.dictionary().begin_string == "FIX.4.2"
    assert isinstance(s.store(), MemoryStore)
    with pytest.raises(ConfigError, match="another FIX version"):
        (s44,) = parse_settings(text.replace("BeginString=FIX.4.2", "BeginString=FIX.4.4"),
                                base_dir=tmp_path)
        s44.dictionary()
    with pytest.raises(ConfigError, match="not found") as info:
        parse_settings(text.replace("dd/FIX42", "nowhere/FIX42"), base_dir=tmp_path)
    assert info.value.field == "DataDictionary"


def test_cli_refuses_a_bad_settings_file_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cfg"
    bad.write_text(EXAMPLE.replace("ConnectionType=acceptor", "ConnectionType=server"))
    for cmd in (["fix", "acceptance-server"], ["exchange", "--rest-port", "-1"]):
        result = CliRunner().invoke(app, [*cmd, "--fix-settings", str(bad)])
        assert result.exit_code == 2, result.output
        assert "ConnectionType" in result.output and "SESSION 1" in result.output
    assert "--fix-settings" in CliRunner().invoke(app, ["run", "--help"],
                                                  env={"COLUMNS": "200"}).output
    result = CliRunner().invoke(app, ["run", "--venue", "fix", "--fix-settings", str(bad)])
    assert result.exit_code == 2 and "ConnectionType" in result.output, result.output
    good = tmp_path / "good.cfg"
    good.write_text(EXAMPLE)
    result = CliRunner().invoke(app, ["run", "--venue", "local", "--fix-settings", str(good)])
    assert result.exit_code == 2 and "--venue fix" in result.output, result.output
    result = CliRunner().invoke(app, ["exchange", "--fix-settings", str(good), "--store-dir",
                                      str(tmp_path / "s"), "--rest-port", "-1"])
    assert result.exit_code == 2 and "FileStorePath" in result.output, result.output
    assert not (tmp_path / "keel-out").exists()  # refused before anything was created


def test_exchange_and_desk_from_the_documented_file_trade(tmp_path: Path) -> None:
    """`keel exchange --fix-settings` serves the example's acceptor; the desk's FIX broker is
    built from its initiator (as `keel run --venue fix --fix-settings` builds it) and trades."""
    cfg_file = tmp_path / "keel-fix.cfg"
    cfg_file.write_text(EXAMPLE)
    proc, lines = start("--fix-settings", str(cfg_file), "--port", "0", "--rest-port", "-1",
                        "--step-seconds", "0.2")
    try:
        line = wait_line(lines, r"FIX on .*:(\d+) sessions FIX\.4\.4:KEELX->KEEL")
        port = int(re.search(r":(\d+) ", line).group(1))  # type: ignore[union-attr]
        wait_line(lines, "ready")
        settings = initiator_settings(cfg_file)
        # as `keel run --venue fix --fix-settings FILE --fix-port PORT` builds it: the host
        # comes from the file's SocketConnectHost, the port from the option
        routing = remote_broker("fix", rest_url="http://127.0.0.1:9", fix_host=None,
                                fix_port=port, fix_settings=cfg_file)
        broker = routing.primary  # type: ignore[attr-defined]
        assert isinstance(broker, FixBroker)
        try:
            order = Order("S1", "AAPL", Side.BUY, Decimal(10), utc(2026, 6, 2, 15))
            broker.submit(order)
            filled = Decimal(0)
            deadline = time.monotonic() + 20
            while filled < order.qty:
                assert time.monotonic() < deadline, "no fill"
                filled += sum((e.fill.qty for e in broker.poll_events() if e.fill),
                              Decimal(0))
                time.sleep(0.05)
            assert broker.session.config == settings.config
        finally:
            broker.close()
            routing.fallback.close()  # type: ignore[attr-defined]
    finally:
        assert stop(proc) == 0
    stores = sorted(p.name for p in (tmp_path / "keel-out" / "fix-store").iterdir())
    assert any("KEEL" in n for n in stores), stores  # both ends kept FileStores there


def test_acceptance_server_sessions_from_a_settings_file(tmp_path: Path) -> None:
    from keel.venues.fix.acceptance import acceptance_sessions

    text = EXAMPLE.replace("TargetCompID=KEEL\n", "TargetCompID=TW44\n")
    sessions = acceptance_sessions(settings=parse_settings(text, base_dir=tmp_path))
    (s,) = sessions  # the initiator [SESSION] is not served
    assert s.session_id == "FIX.4.4:KEELX->TW44" and s.config.schedule is not None
    assert isinstance(s.store, FileStore)
    s.store.close()
    with pytest.raises(ConfigError, match="ConnectionType=acceptor"):
        acceptance_sessions(settings=[x for x in parse_settings(text) if x.initiator])


def test_quickfix_reads_the_documented_file_the_same_way(tmp_path: Path) -> None:
    """Peer check: QuickFIX's own parser (``quickfix.SessionSettings``) finds the same
    sessions, and the same value for every key keel read, [DEFAULT] inheritance included.
    Runs where the QuickFIX binding imports (bench/fix/build_quickfix.sh's venv)."""
    fix = pytest.importorskip("quickfix")
    cfg_file = tmp_path / "keel-fix.cfg"
    cfg_file.write_text(EXAMPLE)
    qf = fix.SessionSettings(str(cfg_file))
    ours = {s.config.session_id: s for s in load_settings(cfg_file)}
    theirs = {}
    for sid in qf.getSessions():
        d = qf.get(sid)
        key = f"{sid.getBeginString().getValue()}:{sid.getSenderCompID().getValue()}->" \
              f"{sid.getTargetCompID().getValue()}"
        theirs[key] = d
    assert set(theirs) == set(ours)
    for key, s in ours.items():
        d = theirs[key]
        c = s.config
        assert d.getString("ConnectionType") == ("initiator" if c.initiator else "acceptor")
        assert int(d.getString("HeartBtInt")) == c.heartbeat_interval
        assert (d.getString("ResetOnLogon") == "Y") == c.reset_on_logon
        assert tmp_path / d.getString("FileStorePath") == s.file_store_path
        assert c.schedule is not None
        assert d.getString("StartTime") == c.schedule.start_time.isoformat()
        assert d.getString("EndTime") == c.schedule.end_time.isoformat()
        if c.initiator:
            assert d.getString("SocketConnectHost") == s.connect_host
            assert int(d.getString("SocketConnectPort")) == s.connect_port
        else:
            assert int(d.getString("SocketAcceptPort")) == s.accept_port
