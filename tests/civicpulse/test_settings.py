"""The settings object: environment, flags over environment, and the README's table."""

from __future__ import annotations

from pathlib import Path

import pytest

from civicpulse.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_flags_override_environment_which_overrides_defaults() -> None:
    env = {"CIVICPULSE_KAFKA_PARTITIONS": "3", "CIVICPULSE_MQTT_URL": "mqtt://env:1"}
    s = Settings.load(env, mqtt_url="mqtt://flag:2", database_url=None)
    assert s.kafka_partitions == 3
    assert s.mqtt_url == "mqtt://flag:2"
    assert s.database_url == Settings().database_url


def test_a_bad_number_in_the_environment_names_the_variable() -> None:
    with pytest.raises(ValueError, match="CIVICPULSE_BATCH_SIZE"):
        Settings.load({"CIVICPULSE_BATCH_SIZE": "lots"})


def test_readme_documents_every_setting_with_its_default() -> None:
    text = README.read_text(encoding="utf-8")
    for variable, default, _doc in Settings.documented():
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| `{variable}` |")), None)
        assert row is not None, f"README's configuration table lacks {variable}"
        assert default in row, f"README gives {variable} a different default than {default}"


def test_a_bad_mqtt_partition_names_the_variable_and_the_form() -> None:
    refusal = r"CIVICPULSE_MQTT_PARTITION: partition '2/2' is not 'i/N'"
    with pytest.raises(ValueError, match=refusal):
        Settings.load({"CIVICPULSE_MQTT_PARTITION": "2/2"})
    assert Settings.load({"CIVICPULSE_MQTT_PARTITION": "1/2"}).mqtt_partition == "1/2"
