"""``senses doctor`` on this machine (no I2C, camera, microphone or BlueZ) and against the
emulated hardware of ``hardware/sim``: what a station owner reads, and the exit code."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dbus_fast import Variant

from device.clock import ManualClock
from device.config import DEFAULT_MODELS_DIR, Config, parse_config
from device.doctor import Finding, Status, diagnose, run_doctor
from device.doctor.bluetooth import BLUEZ_TIMEOUT_S, check_bluez
from device.doctor.camera import check_camera
from device.doctor.microphone import check_microphone
from device.doctor.models import check_models
from device.doctor.nose import check_calibration, check_i2c
from device.doctor.station import check_disk
from device.ear.settings import DEFAULT_SOUNDSCAPE
from device.events import Health, HealthStatus
from device.nose.ads1115 import ADS1115
from device.nose.calibration import NoseCalibration
from device.nose.mq import SensorCalibration
from device.store import EventStore
from hardware.sim.ads1115 import EmulatedADS1115
from hardware.sim.camera import EmulatedCamera
from hardware.sim.faults import FaultInjector
from hardware.sim.i2c_bus import EmulatedI2CBus
from hardware.sim.microphone import DEVICE_NAME, EmulatedSoundDevice
from hardware.sim.sht31 import EmulatedSHT31

# BlueZoo on a private bus (tests/link/bluezoo_harness.py, kept out of conftest.py on purpose).
from link.bluezoo_harness import (  # isort: skip
    STATION_ADAPTER,
    BlueZoo,
    DBusDaemon,
    bluezoo,
    dbus_daemon,
)

__all__ = ["bluezoo", "dbus_daemon"]  # fixtures, imported for pytest

TWO_ADCS = {
    "adcs": [{"address": 0x48}, {"address": 0x49}],
    "sensors": [
        {"name": "MQ135", "type": "MQ135", "adc_address": 0x48, "channel": 0},
        {"name": "MQ3", "type": "MQ3", "adc_address": 0x49, "channel": 0},
    ],
}


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = {"station": {"data_dir": str(tmp_path / "data")}}
    data.update(sections)
    return parse_config(data)


def by_name(findings: list[Finding]) -> dict[str, Finding]:
    return {f.name: f for f in findings}


@pytest.fixture
def no_system_bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A system bus address where nothing listens, so no real BlueZ is ever touched."""
    address = f"unix:path={tmp_path / 'no_bus_here'}"
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
    return address


# --- the whole run, as `senses doctor` does it ----------------------------------------------


def test_real_mode_without_i2c_fails_with_the_raspi_config_hint_and_exit_code_1(
    tmp_path: Path, no_system_bus: str
) -> None:
    config = make_config(tmp_path, hardware={"mode": "real", "i2c_bus": 57})
    out = io.StringIO()
    code = run_doctor(config, json_output=True, out=out)

    document = json.loads(out.getvalue())
    checks = {c["check"]: c for c in document["checks"]}
    assert code == 1
    assert document["summary"]["exit_code"] == code
    assert document["summary"]["fail"] == sum(c["status"] == "fail" for c in checks.values())
    i2c = checks["i2c"]
    assert i2c["status"] == "fail"
    assert "/dev/i2c-57" in i2c["detail"]
    assert "sudo raspi-config nonint do_i2c 0" in i2c["fix"]
    assert checks["bluetooth"]["status"] == "fail"
    # The shipped models all load, checksums and cards included.
    for name in ("food_quality", "mobilenet_v1_embedding", "yamnet", "birds"):
        assert checks[f"model {name}"]["status"] == "ok", checks[f"model {name}"]
    assert checks["concept cats"]["status"] == "ok"
    assert checks["store"]["status"] == "ok"


def test_table_output_names_each_problem_and_its_fix(tmp_path: Path, no_system_bus: str) -> None:
    config = make_config(
        tmp_path,
        hardware={"mode": "real", "i2c_bus": 57},
        eye={"source": {"kind": "camera", "device": 63}, "concepts": []},
        ear={"enabled": False},
    )
    out = io.StringIO()
    code = run_doctor(config, json_output=False, out=out)
    text = out.getvalue()
    assert code == 1
    assert "raspi-config" in text
    assert "systemctl start dbus" in text
    assert "/dev/video63" in text
    assert "[eye.source] device" in text  # printed as text, not taken for rich markup
    assert "something needs fixing" in text


def test_warnings_alone_exit_0_and_a_check_that_crashes_or_hangs_is_a_failure() -> None:
    def warns() -> list[Finding]:
        return [Finding("calibration", Status.WARN, "old", "calibrate")]

    def crashes() -> list[Finding]:
        raise KeyError("surprise")

    release = threading.Event()

    def hangs() -> list[Finding]:
        release.wait(30)
        return []

    out = io.StringIO()
    assert run_doctor(Config(), json_output=True, checks=[("a", warns, 1.0)], out=out) == 0
    assert json.loads(out.getvalue())["summary"] == {"ok": 0, "warn": 1, "fail": 0, "exit_code": 0}

    findings = diagnose([("a", warns, 1.0), ("b", crashes, 1.0), ("c", hangs, 0.3)])
    release.set()
    crashed, hung = findings[1], findings[2]
    assert findings[0].status is Status.WARN
    assert crashed.name == "b" and crashed.status is Status.FAIL
    assert "KeyError" in crashed.detail and "surprise" in crashed.detail
    assert hung.name == "c" and hung.status is Status.FAIL
    assert "did not finish within 0.3 s" in hung.detail


# --- I2C ------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def bus_with_one_adc(clock: ManualClock) -> EmulatedI2CBus:
    """An ADS1115 at 0x48 and an SHT31 at 0x44; nothing at 0x49."""
    bus = EmulatedI2CBus(1)
    bus.attach(EmulatedADS1115(0x48, clock=clock, input_voltage=lambda pin: 1.0))
    bus.attach(EmulatedSHT31(0x44, clock=clock, climate=lambda: (21.5, 48.0)))
    return bus


def test_a_missing_adc_is_named_with_its_address_and_addr_wiring(
    tmp_path: Path, bus_with_one_adc: EmulatedI2CBus, clock: ManualClock
) -> None:
    config = make_config(tmp_path, nose=TWO_ADCS)
    findings = by_name(check_i2c(config, bus=bus_with_one_adc, clock=clock))

    present = findings["i2c 0x48 ADS1115"]
    assert present.status is Status.OK
    assert "0x8583" in present.detail  # the power-on value of its config register
    missing = findings["i2c 0x49 ADS1115"]
    assert missing.status is Status.FAIL
    assert "nothing at 0x49" in missing.detail
    assert "ADDR" in missing.fix and "to VDD" in missing.fix
    climate = findings["i2c 0x44 SHT31"]
    assert climate.status is Status.OK
    assert "21.5 °C" in climate.detail and "48 %RH" in climate.detail


def test_an_adc_the_station_has_used_is_still_recognised(
    tmp_path: Path, bus_with_one_adc: EmulatedI2CBus, clock: ManualClock
) -> None:
    ADS1115(bus_with_one_adc, 0x48, clock=clock).read_voltage(2, pga_v=2.048)
    config = make_config(tmp_path, nose=TWO_ADCS)
    finding = by_name(check_i2c(config, bus=bus_with_one_adc, clock=clock))["i2c 0x48 ADS1115"]
    assert finding.status is Status.OK
    assert "single-shot" in finding.detail


def test_a_chip_in_continuous_comparator_mode_is_not_taken_for_the_stations_adc(
    tmp_path: Path, bus_with_one_adc: EmulatedI2CBus, clock: ManualClock
) -> None:
    # Another program left the chip converting continuously with the comparator on.
    bus_with_one_adc.write_i2c_block_data(0x48, 0x01, [0x84, 0x80])
    config = make_config(tmp_path, nose=TWO_ADCS)
    finding = by_name(check_i2c(config, bus=bus_with_one_adc, clock=clock))["i2c 0x48 ADS1115"]
    assert finding.status is Status.WARN
    assert "0x0480" in finding.detail or "0x8480" in finding.detail


def test_a_corrupted_climate_reading_fails_naming_the_crc(
    tmp_path: Path, bus_with_one_adc: EmulatedI2CBus, clock: ManualClock
) -> None:
    FaultInjector(bus_with_one_adc).corrupt_next_read(0x44, byte_index=1)
    config = make_config(tmp_path, nose=TWO_ADCS)
    finding = by_name(check_i2c(config, bus=bus_with_one_adc, clock=clock))["i2c 0x44 SHT31"]
    assert finding.status is Status.FAIL
    assert "CRC" in finding.detail
    assert "pull-up" in finding.fix


def test_emulated_hardware_is_reported_as_a_warning(tmp_path: Path) -> None:
    config = make_config(tmp_path, hardware={"mode": "emulated"})
    (finding,) = check_i2c(config)
    assert finding.status is Status.WARN
    assert "emulated hardware" in finding.detail


# --- calibration ----------------------------------------------------------------------------


def save_calibration(config: Config, created_ts: float) -> None:
    sensors = {
        s.name: SensorCalibration(s.name, 10.0, 10.0, 21.0, 45.0, 60) for s in config.nose.sensors
    }
    NoseCalibration(sensors, created_ts, "clean air").save(config.calibration_path)


def test_calibration_missing_old_or_recent(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    (missing,) = check_calibration(config)
    assert missing.status is Status.WARN
    assert "senses nose calibrate" in missing.fix

    save_calibration(config, created_ts=1_000_000.0)
    (recent,) = check_calibration(config, now_s=lambda: 1_000_000.0 + 2 * 86400)
    assert recent.status is Status.OK
    (old,) = check_calibration(config, now_s=lambda: 1_000_000.0 + 40 * 86400)
    assert old.status is Status.WARN
    assert "40 days old" in old.detail


# --- camera and microphone ------------------------------------------------------------------


def test_camera_takes_a_frame_from_the_emulated_camera_and_fails_when_unplugged(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, eye={"source": {"kind": "camera", "width": 320, "height": 240}})
    camera = EmulatedCamera.synthetic(ManualClock(), width=320, height=240)
    (finding,) = check_camera(config, capture_factory=camera.capture_factory)
    assert finding.status is Status.OK
    assert "320×240 frame" in finding.detail

    camera.set_plugged(False)
    (unplugged,) = check_camera(config, capture_factory=camera.capture_factory)
    assert unplugged.status is Status.FAIL
    assert "/dev/video0" in unplugged.detail
    assert "plugged in" in unplugged.fix


def test_a_video_source_that_does_not_exist_fails(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, eye={"source": {"kind": "video", "path": str(tmp_path / "gone.mp4")}}
    )
    (finding,) = check_camera(config)
    assert finding.status is Status.FAIL
    assert "gone.mp4" in finding.detail + finding.fix


@pytest.fixture
def microphone() -> EmulatedSoundDevice:
    return EmulatedSoundDevice([DEFAULT_SOUNDSCAPE])


def test_microphone_found_and_format_checked(
    tmp_path: Path, microphone: EmulatedSoundDevice
) -> None:
    ok_config = make_config(tmp_path, ear={"device": "usb", "channels": 2})
    (ok,) = check_microphone(ok_config, backend=microphone)
    assert ok.status is Status.OK
    assert DEVICE_NAME in ok.detail

    too_many = make_config(tmp_path, ear={"channels": 4})
    (channels,) = check_microphone(too_many, backend=microphone)
    assert channels.status is Status.FAIL
    assert "ear.channels = 2" in channels.fix

    wrong_name = make_config(tmp_path, ear={"device": "Blue Yeti"})
    (name,) = check_microphone(wrong_name, backend=microphone)
    assert name.status is Status.FAIL
    assert "'Blue Yeti'" in name.detail and DEVICE_NAME in name.detail

    microphone.unplug()
    (gone,) = check_microphone(ok_config, backend=microphone)
    assert gone.status is Status.FAIL
    assert "no input device" in gone.detail


# --- BlueZ ----------------------------------------------------------------------------------


def test_bluez_without_a_system_bus_fails_with_the_fix(tmp_path: Path, no_system_bus: str) -> None:
    (finding,) = check_bluez(make_config(tmp_path))
    assert finding.status is Status.FAIL
    assert "no_bus_here" in finding.detail
    assert "systemctl start dbus" in finding.fix


def test_a_bus_without_bluez_says_to_start_bluetooth(
    tmp_path: Path, dbus_daemon: DBusDaemon
) -> None:
    (finding,) = check_bluez(make_config(tmp_path))
    assert finding.status is Status.FAIL
    assert "not running" in finding.detail
    assert "systemctl start bluetooth" in finding.fix


@pytest.mark.asyncio
async def test_bluez_with_a_powered_adapter_passes_and_a_wrong_or_off_adapter_fails(
    tmp_path: Path, bluezoo: BlueZoo
) -> None:
    # The check runs its own event loop, as in `senses doctor`'s worker threads.
    (ok,) = await asyncio.to_thread(check_bluez, make_config(tmp_path))
    assert ok.status is Status.OK, ok
    assert f"adapter {STATION_ADAPTER} is powered" in ok.detail

    wrong = make_config(tmp_path, link={"adapter": "hci7"})
    (missing,) = await asyncio.to_thread(check_bluez, wrong)
    assert missing.status is Status.FAIL
    assert "hci7" in missing.detail
    assert "hci0" in missing.fix and "configure one of those" in missing.fix

    await bluezoo.set_adapter(STATION_ADAPTER, "Powered", Variant("b", False))
    station = make_config(tmp_path, link={"adapter": STATION_ADAPTER})
    (off,) = await asyncio.to_thread(check_bluez, station)
    assert off.status is Status.FAIL
    assert "powered off" in off.detail
    assert "bluetoothctl power on" in off.fix


@pytest.fixture
def silent_bus(tmp_path: Path) -> Iterator[str]:
    """A socket that accepts connections and never answers: a hung dbus-daemon."""
    path = tmp_path / "silent_bus"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    yield f"unix:path={path}"
    server.close()


def test_a_bus_that_never_answers_fails_at_the_deadline(tmp_path: Path, silent_bus: str) -> None:
    (finding,) = check_bluez(make_config(tmp_path), bus_address=silent_bus)
    assert finding.status is Status.FAIL
    assert "silent_bus" in finding.detail
    assert f"no answer within {BLUEZ_TIMEOUT_S:g} s" in finding.detail


# --- models ---------------------------------------------------------------------------------


@pytest.fixture
def models_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(DEFAULT_MODELS_DIR / "food_quality", folder / "food_quality")
    return folder


def nose_only(tmp_path: Path, models_dir: Path) -> Config:
    return make_config(
        tmp_path,
        inference={"models_dir": str(models_dir)},
        eye={"enabled": False},
        ear={"enabled": False},
    )


def test_a_corrupted_model_fails_naming_the_checksum_and_the_fix(
    tmp_path: Path, models_copy: Path
) -> None:
    config = nose_only(tmp_path, models_copy)
    (intact,) = check_models(config)
    assert intact.status is Status.OK

    model_file = models_copy / "food_quality" / "model.tflite"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    (corrupt,) = check_models(config)
    assert corrupt.name == "model food_quality"
    assert corrupt.status is Status.FAIL
    assert "sha256" in corrupt.detail
    assert "git checkout" in corrupt.fix and "senses-train" in corrupt.fix


def test_a_damaged_concept_is_named_and_the_backbone_still_checked(tmp_path: Path) -> None:
    damaged = tmp_path / "birds_at_dusk.cav"
    damaged.write_bytes((DEFAULT_MODELS_DIR / "concepts" / "cats.cav").read_bytes()[:200])
    config = make_config(
        tmp_path,
        eye={"concepts": [str(damaged)]},
        nose={"enabled": False},
        ear={"enabled": False},
    )
    findings = by_name(check_models(config))
    assert findings["model mobilenet_v1_embedding"].status is Status.OK
    concept = findings["concept birds_at_dusk"]
    assert concept.status is Status.FAIL
    assert "birds_at_dusk.cav" in concept.detail + concept.fix


def test_a_missing_model_folder_is_named(tmp_path: Path) -> None:
    (finding,) = check_models(nose_only(tmp_path, tmp_path / "empty_models"))
    assert finding.status is Status.FAIL
    assert "food_quality" in finding.detail


# --- disk and store -------------------------------------------------------------------------


def fake_statvfs(free_bytes: int) -> Any:
    return lambda path: SimpleNamespace(f_bavail=free_bytes // 4096, f_frsize=4096)


@pytest.mark.parametrize(
    ("free_mb", "status"), [(50, Status.FAIL), (500, Status.WARN), (20_000, Status.OK)]
)
def test_disk_space_thresholds(tmp_path: Path, free_mb: int, status: Status) -> None:
    findings = check_disk(make_config(tmp_path), statvfs=fake_statvfs(free_mb * 10**6))
    disk = by_name(findings)["disk"]
    assert disk.status is status
    assert f"{free_mb:,} MB free" in disk.detail
    if status is Status.FAIL:
        assert "clip_budget_mb" in disk.fix


def test_store_opens_and_passes_quick_check_and_a_damaged_one_fails(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with EventStore(config.store_path) as store:
        store.append(Health(ts=1.0, component="nose", status=HealthStatus.OK, message="fine"))
    store_finding = by_name(check_disk(config))["store"]
    assert store_finding.status is Status.OK
    assert "quick_check ok" in store_finding.detail

    config.store_path.write_bytes(b"this is not a database" * 200)
    damaged = by_name(check_disk(config))["store"]
    assert damaged.status is Status.FAIL
    assert "mv " in damaged.fix


def test_food_state_says_whether_food_is_marked_in(tmp_path: Path) -> None:
    from device.doctor.nose import check_food_state
    from device.nose.food import SavedFoodState

    config = parse_config({"station": {"data_dir": str(tmp_path)}})
    (none,) = check_food_state(config)
    assert none.status is Status.OK and "no food marked in" in none.detail
    SavedFoodState(1_700_000_000.0, "app", {"MQ2": 10.0}, 20.0, 50.0).save(config.food_state_path)
    (taken,) = check_food_state(config)
    assert taken.status is Status.OK and "baseline taken" in taken.detail
    SavedFoodState(1_700_000_000.0, "app", None, None, None, no_change=True).save(
        config.food_state_path
    )
    (flat,) = check_food_state(config)
    assert flat.status is Status.WARN and "New food" in flat.fix
    config.food_state_path.write_text("{")
    (damaged,) = check_food_state(config)
    assert damaged.status is Status.WARN and "new-food" in damaged.fix


def test_allowing_just_works_bonds_is_a_warning_with_what_to_do(
    tmp_path: Path, no_system_bus: str
) -> None:
    lenient = make_config(tmp_path, link={"allow_just_works": True})
    findings = by_name(check_bluez(lenient))
    warning = findings["bluetooth pairing"]
    assert warning.status is Status.WARN
    assert "man in the middle" in warning.detail and "allow_just_works = false" in warning.fix
