from pathlib import Path

from keel.config import config_markdown, describe_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_page_is_in_sync_with_the_models():
    text = DOC.read_text()
    assert config_markdown() in text, "regenerate: keel config reference"


def test_every_key_has_a_description():
    missing = [f"{s}.{k}" for s, k, _, _, d in describe_config() if not d]
    assert missing == []
