"""`keel db upgrade / current / check / downgrade` on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import app
from keel.store import Store

runner = CliRunner()


def test_db_commands(db_url: str) -> None:
    out = runner.invoke(app, ["db", "current", "--url", db_url])
    assert out.exit_code == 0 and "current=(none)" in out.output
    out = runner.invoke(app, ["db", "check", "--url", db_url])
    assert out.exit_code == 2 and "StoreError" in out.output
    out = runner.invoke(app, ["db", "upgrade", "--url", db_url])
    assert out.exit_code == 0, out.output
    head = Store.from_url(db_url).head_revision()
    assert f"-> {head}" in " ".join(out.output.split())  # rich wraps at the terminal width
    out = runner.invoke(app, ["db", "check", "--url", db_url])
    assert out.exit_code == 0 and "schema OK" in out.output
    out = runner.invoke(app, ["db", "current", "--url", db_url])
    flat = " ".join(out.output.split())
    assert f"current={head}" in flat and "up to date" in flat
    out = runner.invoke(app, ["db", "downgrade", "base", "--url", db_url])
    assert out.exit_code == 0 and "-> base" in " ".join(out.output.split())


def test_db_url_defaults_to_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "keel.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "from-config.db"}"\n')
    out = runner.invoke(app, ["db", "upgrade", "--config", str(cfg)])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "from-config.db").is_file()
    monkeypatch.setenv("KEEL_STORE__URL", f"sqlite:///{tmp_path / 'from-env.db'}")
    out = runner.invoke(app, ["db", "upgrade"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "from-env.db").is_file()


@pytest.mark.parametrize("url", ["not a url", "nosuchdb://x/y"])
def test_db_bad_url_is_one_line_and_exit_2(url: str) -> None:
    out = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert out.exit_code == 2
    assert "StoreError" in out.output and "Traceback" not in out.output


def test_read_only_commands_never_create(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.chdir(tmp_path)
    url = "sqlite:///no-such-dir/keel.db"
    out = runner.invoke(app, ["db", "check", "--url", url])
    assert out.exit_code == 2 and "no database" in out.output
    out = runner.invoke(app, ["db", "current", "--url", url, "--format", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["database"]["current"] is None
    out = runner.invoke(app, ["tca", "--db", url])
    assert out.exit_code == 2 and "no database" in out.output
    assert not (tmp_path / "no-such-dir").exists()
    assert list(tmp_path.iterdir()) == []
