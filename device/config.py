"""The station's configuration: one TOML file, validated by pydantic.

Every section forbids unknown keys, so a typo is an error rather than a silently ignored
setting. The defaults run on any machine: with ``hardware.mode = "auto"`` the station uses the
real I2C bus when ``/dev/i2c-<bus>`` exists and emulated chips (``hardware/sim``) otherwise.

A bad file is reported with the dotted path of each bad key and what is allowed, e.g.::

    nose.sensors[2].channel: Input should be less than or equal to 3 (got 5)
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from device.ear.settings import EarConfig
from device.errors import ConfigError
from device.eye.settings import EyeConfig
from device.mqtt.settings import MqttConfig
from device.nose.mq import mq_type
from device.paths import CONCEPTS_SUBDIR, MODELS_DIR_ENV, default_models_dir
from device.validation import describe_validation_error

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: The models folder as this process started (``SENSES_MODELS_DIR``, else the checkout's).
DEFAULT_MODELS_DIR = default_models_dir()
DEFAULT_RECORDING = PROJECT_ROOT / "training" / "data" / "beef_wijaya" / "TS2.csv"

ADS1115_PGA_V = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256)
ADS_ADDRESSES = (0x48, 0x49, 0x4A, 0x4B)


def _default_data_dir() -> Path:
    env = os.environ.get("SENSES_DATA_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "senses"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationConfig(_Section):
    name: str = Field("senses", min_length=1, max_length=20)
    data_dir: Path = Field(default_factory=_default_data_dir)


class HardwareConfig(_Section):
    mode: Literal["auto", "real", "emulated"] = "auto"
    i2c_bus: int = Field(1, ge=0)

    def i2c_device_path(self) -> Path:
        return Path(f"/dev/i2c-{self.i2c_bus}")

    def use_emulation(self) -> bool:
        if self.mode == "auto":
            return not self.i2c_device_path().exists()
        return self.mode == "emulated"


class AdcConfig(_Section):
    address: int = Field(ge=0x48, le=0x4B, description="0x48 (ADDR→GND) to 0x4B (ADDR→SCL)")
    chip: Literal["ads1115", "ads1015"] = "ads1115"
    pga_v: float = 4.096
    data_rate_sps: int = 128

    @field_validator("pga_v")
    @classmethod
    def _known_pga(cls, value: float) -> float:
        if value not in ADS1115_PGA_V:
            raise ValueError(f"must be one of {ADS1115_PGA_V} volts")
        return value

    @model_validator(mode="after")
    def _known_rate(self) -> Self:
        rates: tuple[int, ...] = (8, 16, 32, 64, 128, 250, 475, 860)
        if self.chip == "ads1015":
            rates = (128, 250, 490, 920, 1600, 2400, 3300)
        if self.data_rate_sps not in rates:
            raise ValueError(f"data_rate_sps for {self.chip} must be one of {rates}")
        return self


class SensorConfig(_Section):
    """One MQ module wired to one ADC channel."""

    name: str = Field(min_length=1, description="the column name used in recordings, e.g. MQ135")
    type: str
    adc_address: int = Field(ge=0x48, le=0x4B)
    channel: int = Field(ge=0, le=3)
    load_kohm: float = Field(10.0, gt=0, description="RL on the module; many carry 1 kΩ or 10 kΩ")
    supply_v: float = Field(5.0, gt=0, le=5.5)
    adc_divider_ratio: float = Field(
        2.0 / 3.0, gt=0, le=1, description="V at the ADC pin / V at the module's AO pin"
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        return mq_type(value).name


class ClimateConfig(_Section):
    chip: Literal["sht31"] = "sht31"
    address: Literal[0x44, 0x45] = 0x44


def _beef_sensors() -> list[SensorConfig]:
    """The nine sensors of the beef e-nose recordings, three ADS1115s, four channels each."""
    names = ("MQ135", "MQ136", "MQ2", "MQ3", "MQ4", "MQ5", "MQ6", "MQ8", "MQ9")
    return [
        SensorConfig(name=n, type=n, adc_address=0x48 + i // 4, channel=i % 4)
        for i, n in enumerate(names)
    ]


def _beef_adcs() -> list[AdcConfig]:
    return [AdcConfig(address=a) for a in (0x48, 0x49, 0x4A)]


class NoseConfig(_Section):
    enabled: bool = True
    sample_period_s: float = Field(10.0, gt=0)
    conversions_per_sample: int = Field(3, ge=1, le=15, description="median of this many")
    warmup_s: float = Field(
        1200.0, ge=0, description="heater warm-up after power-on; readings are marked meanwhile"
    )
    calibration_s: float = Field(600.0, gt=0)
    model: str = "food_quality"
    trend_minutes: int = Field(30, ge=2)
    adcs: list[AdcConfig] = Field(default_factory=_beef_adcs)
    sensors: list[SensorConfig] = Field(default_factory=_beef_sensors)
    climate: ClimateConfig = Field(default_factory=ClimateConfig)

    @model_validator(mode="after")
    def _wiring_consistent(self) -> Self:
        addresses = [a.address for a in self.adcs]
        if len(set(addresses)) != len(addresses):
            raise ValueError("two adcs share an address; each ADS1115 needs its own ADDR wiring")
        seen: dict[tuple[int, int], str] = {}
        names: set[str] = set()
        for sensor in self.sensors:
            if sensor.adc_address not in addresses:
                listed = ", ".join(hex(a) for a in addresses) or "none"
                raise ValueError(
                    f"sensor {sensor.name} uses adc_address {hex(sensor.adc_address)}, "
                    f"but [[nose.adcs]] lists only {listed}"
                )
            key = (sensor.adc_address, sensor.channel)
            if key in seen:
                raise ValueError(
                    f"sensors {seen[key]} and {sensor.name} are both on "
                    f"{hex(key[0])} channel {key[1]}"
                )
            if sensor.name in names:
                raise ValueError(f"two sensors are named {sensor.name}")
            seen[key] = sensor.name
            names.add(sensor.name)
        return self


class EmulationConfig(_Section):
    """The emulated nose: a real recording replayed through MQ physics into ADC voltages."""

    recording: Path = DEFAULT_RECORDING
    speed: float = Field(1.0, gt=0, description="1 = real time; 300 = five hours a minute")
    start_minute: int = Field(1, ge=1)
    noise_fraction: float = Field(0.002, ge=0, le=0.05)
    seed: int = 0


class InferenceConfig(_Section):
    num_threads: int = Field(1, ge=1, le=4)
    models_dir: Path = Field(
        default_factory=default_models_dir,
        description=f"the folder of model folders and concepts; default: ${MODELS_DIR_ENV}, "
        "else the checkout's models/, else /opt/senses/models",
    )
    deadline_s: float = Field(
        10.0, gt=0, description="longest one model call may take before the sense restarts it"
    )


class LinkConfig(_Section):
    """The Bluetooth LE link (a GATT server on BlueZ)."""

    enabled: bool = True
    adapter: str | None = Field(None, description="e.g. hci0; default: BlueZ's first adapter")
    allow_just_works: bool = Field(
        False,
        description="accept control writes over a bond made without a passkey (a phone that "
        "cannot type one): encrypted, but not protected against a man in the middle",
    )
    pair_window_s: float = Field(
        120.0, gt=0, le=3600, description="how long 'senses link pair' lets a phone pair"
    )
    auto_pair_window_s: float = Field(
        300.0,
        ge=0,
        le=3600,
        description="pairing is open this long after start while no phone is bonded (0: never)",
    )
    control_socket: Path | None = Field(
        None,
        description="Unix socket 'senses link' talks to the daemon on; default "
        "/run/senses/link.sock under systemd, else $XDG_RUNTIME_DIR/senses/link.sock",
    )


class StoreConfig(_Section):
    retention_days: float = Field(30.0, gt=0)


class Config(_Section):
    station: StationConfig = Field(default_factory=StationConfig)
    hardware: HardwareConfig = Field(default_factory=HardwareConfig)
    nose: NoseConfig = Field(default_factory=NoseConfig)
    eye: EyeConfig = Field(default_factory=EyeConfig)
    ear: EarConfig = Field(default_factory=EarConfig)
    emulation: EmulationConfig = Field(default_factory=EmulationConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    link: LinkConfig = Field(default_factory=LinkConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)

    @model_validator(mode="after")
    def _shipped_concepts_follow_the_models_dir(self) -> Self:
        # The default concepts are the ones shipped in the models folder: when the file names
        # another models folder but no concepts, take them from there, not from the default's.
        if "concepts" in self.eye.model_fields_set or "models_dir" not in (
            self.inference.model_fields_set
        ):
            return self
        shipped = sorted((self.inference.models_dir / CONCEPTS_SUBDIR).glob("*.cav"))
        eye = self.eye.model_copy(update={"concepts": shipped})
        return self.model_copy(update={"eye": eye})

    @property
    def store_path(self) -> Path:
        return self.station.data_dir / "senses.db"

    @property
    def calibration_path(self) -> Path:
        return self.station.data_dir / "nose_calibration.json"

    @property
    def food_state_path(self) -> Path:
        """The food in the box and its baseline (device/nose/food.py), across restarts."""
        return self.station.data_dir / "food_state.json"

    @property
    def food_request_path(self) -> Path:
        """Where ``senses nose new-food`` asks the running station to mark food in."""
        return self.station.data_dir / "new_food.request"


def parse_config(data: dict[str, object], *, source: str = "<config>") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(
            f"{source} is not a valid Senses config:\n{describe_validation_error(e)}"
        ) from e


def load_config(path: Path | None = None) -> Config:
    """Read and validate a TOML config; ``None`` gives the defaults."""
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(
            f"config file {path} does not exist; pass --config with an existing file, "
            "or leave it out to run on the defaults"
        ) from e
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from e
    return parse_config(data, source=str(path))
