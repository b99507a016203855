"""The config file: defaults that run anywhere, and errors a person can act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.config import Config, load_config, parse_config
from device.errors import ConfigError


def test_defaults_describe_the_beef_nose_on_three_adcs() -> None:
    config = Config()
    assert [s.name for s in config.nose.sensors][:3] == ["MQ135", "MQ136", "MQ2"]
    assert {s.adc_address for s in config.nose.sensors} == {0x48, 0x49, 0x4A}
    assert config.nose.climate.chip == "sht31"


def test_auto_mode_emulates_when_the_bus_is_missing() -> None:
    config = parse_config({"hardware": {"mode": "auto", "i2c_bus": 97}})
    assert config.hardware.use_emulation()
    assert not parse_config({"hardware": {"mode": "real"}}).hardware.use_emulation()


def test_bad_values_are_reported_with_their_dotted_path_and_what_is_allowed() -> None:
    bad = {
        "nose": {
            "adcs": [{"address": 0x48}],
            "sensors": [{"name": "MQ135", "type": "MQ135", "adc_address": 0x48, "channel": 5}],
        }
    }
    with pytest.raises(ConfigError) as error:
        parse_config(bad, source="station.toml")
    message = str(error.value)
    assert "station.toml" in message
    assert "nose.sensors[0].channel" in message
    assert "less than or equal to 3" in message


def test_unknown_keys_are_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match=r"nose\.sample_rate: unknown key"):
        parse_config({"nose": {"sample_rate": 5}})


def test_unknown_sensor_type_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known types: MQ2, MQ3"):
        parse_config(
            {"nose": {"sensors": [{"name": "x", "type": "MQ999", "adc_address": 72, "channel": 0}]}}
        )


def test_wiring_mistakes_name_both_sensors() -> None:
    sensors = [
        {"name": "MQ135", "type": "MQ135", "adc_address": 0x48, "channel": 0},
        {"name": "MQ2", "type": "MQ2", "adc_address": 0x48, "channel": 0},
    ]
    with pytest.raises(ConfigError, match="MQ135 and MQ2 are both on 0x48 channel 0"):
        parse_config({"nose": {"sensors": sensors}})
    with pytest.raises(ConfigError, match=r"uses adc_address 0x4b, but \[\[nose.adcs\]\]"):
        parse_config(
            {"nose": {"sensors": [{"name": "a", "type": "MQ2", "adc_address": 0x4B, "channel": 0}]}}
        )


def test_data_rate_must_exist_on_the_chip() -> None:
    with pytest.raises(ConfigError, match="data_rate_sps for ads1115 must be one of"):
        parse_config({"nose": {"adcs": [{"address": 0x48, "data_rate_sps": 100}]}})


def test_toml_file_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text('[station]\nname = "fridge"\n[nose]\nsample_period_s = 5\n')
    config = load_config(path)
    assert config.station.name == "fridge"
    assert config.nose.sample_period_s == 5
    path.write_text("[nose\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
