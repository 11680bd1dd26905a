"""`keel fix` CLI: help text and the clear error when the dictionaries are missing."""

from __future__ import annotations

from typer.testing import CliRunner

from keel.cli import app


def test_fix_help_lists_acceptance_server() -> None:
    result = CliRunner().invoke(app, ["fix", "--help"])
    assert result.exit_code == 0 and "acceptance-server" in result.output


def test_missing_spec_dir_exits_2_with_one_line(tmp_path) -> None:
    result = CliRunner().invoke(app, ["fix", "acceptance-server", "--port", "1",
                                      "--spec-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "ConfigError" in result.output and "KEEL_FIX_SPEC_DIR" in result.output
