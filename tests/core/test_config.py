from pathlib import Path

import pydantic
import pytest

from keel.config import DataSource, KeelConfig, load_config
from keel.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_example_config_loads_and_is_frozen():
    cfg = load_config(REPO / "examples" / "keel.toml")
    assert isinstance(cfg, KeelConfig)
    assert cfg.data.source is DataSource.SYNTHETIC
    with pytest.raises(pydantic.ValidationError):
        cfg.general = None  # type: ignore[misc]


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[store]\nurl='sqlite:///x.db'\nurll='oops'\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert exc.value.field == "store.urll"
    assert str(p) in str(exc.value)


def test_unknown_section_and_bad_value(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[nope]\nx=1\n")
    with pytest.raises(ConfigError, match="nope"):
        load_config(p)
    p.write_text("[optimize]\nmax_weight=2.0\n")
    with pytest.raises(ConfigError, match=r"optimize\.max_weight"):
        load_config(p)
    p.write_text("[optimize\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_environment_overrides_file(tmp_path, monkeypatch):
    p = tmp_path / "c.toml"
    p.write_text("[store]\nurl='sqlite:///file.db'\n[general]\nseed=3\n")
    monkeypatch.setenv("KEEL_STORE__URL", "sqlite:///env.db")
    cfg = load_config(p)
    assert cfg.store.url == "sqlite:///env.db"
    assert cfg.general.seed == 3
