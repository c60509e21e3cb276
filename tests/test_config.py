"""Settings: the documented reference stays true, and bad values name the variable."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from vigie.config import Settings, settings_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_doc_is_current():
    assert (ROOT / "docs/configuration.md").read_text(encoding="utf-8") == settings_markdown(), \
        "regenerate: python -m vigie.config > docs/configuration.md"


@pytest.mark.parametrize("name,value,words", [
    ("timezone", "Mars/Olympus", "VIGIE_TIMEZONE"),
    ("mqtt_url", "http://broker", "VIGIE_MQTT_URL"),
    ("influx_url", "127.0.0.1:8086", "VIGIE_INFLUX_URL"),
    ("leak_check_time", "25:00", "VIGIE_LEAK_CHECK_TIME"),
])
def test_bad_values_name_the_variable(name, value, words):
    with pytest.raises(ValidationError, match=words):
        Settings(**{name: value})


def test_bounds():
    with pytest.raises(ValidationError):
        Settings(min_coverage=7)
    with pytest.raises(ValidationError):
        Settings(api_port=99999)
    assert Settings(water_topics=["a/#=native"]).topic_decoders() == [("a/#", "native")]


def test_config_file_with_a_misspelt_or_broken_setting_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "vigie.yaml"
    monkeypatch.setenv("VIGIE_CONFIG", str(path))
    path.write_text("mqtt_url: mqtt://127.0.0.1:1884\ntimezone: Europe/Paris\n", encoding="utf-8")
    assert Settings(_env_file=None).mqtt_url == "mqtt://127.0.0.1:1884"
    path.write_text("mqtt_urll: mqtt://127.0.0.1:1884\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown setting.*mqtt_urll"):
        Settings(_env_file=None)
    path.write_text("mqtt_url: [unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid YAML"):
        Settings(_env_file=None)
