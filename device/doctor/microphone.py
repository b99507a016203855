"""The ear's input: PortAudio, the configured device, and the format it is asked for."""

from __future__ import annotations

from typing import Any

from device.config import Config
from device.doctor.findings import Finding, Status, finding_from_error
from device.ear.sources import import_sounddevice, list_input_devices, open_audio_file
from device.errors import SensesError


def check_microphone(config: Config, *, backend: Any = None) -> list[Finding]:
    """PortAudio loads; the configured input device exists and takes the configured format.

    ``backend`` is the sounddevice module or one with its API (``hardware.sim.microphone``);
    without it, a microphone on an emulated station gets a warning and PortAudio is not asked.
    """
    name = "microphone"
    ear = config.ear
    if not ear.enabled:
        return [Finding(name, Status.OK, "ear disabled in the config")]
    if ear.source == "generator":
        return [Finding(name, Status.OK, "ear.source = generator: no microphone needed")]
    if ear.source == "file":
        try:
            handle = open_audio_file(ear.path)
        except SensesError as e:
            return [finding_from_error(name, e)]
        with handle:
            detail = f"file {ear.path}: {handle.frames / handle.samplerate:.0f} s of audio"
        return [Finding(name, Status.OK, detail)]
    if backend is None:
        if config.hardware.use_emulation():
            return [
                Finding(
                    name,
                    Status.WARN,
                    "running on emulated hardware: the ear plays a shipped soundscape",
                    'set hardware.mode = "real" (or "auto" on a Pi with I2C) to use the microphone',
                )
            ]
        try:
            backend = import_sounddevice()
        except SensesError as e:
            return [finding_from_error(name, e)]
    try:
        inputs = list_input_devices(backend)
    except SensesError as e:
        return [finding_from_error(name, e)]
    if not inputs:
        return [
            Finding(
                name,
                Status.FAIL,
                "PortAudio sees no input device",
                "plug in a USB microphone; `arecord -l` lists what Linux sees (the station's "
                "user needs group audio)",
            )
        ]
    device = _input_device(backend, ear.device)
    if device is None:
        return [
            Finding(
                name,
                Status.FAIL,
                f"no input device matches ear.device = {ear.device!r}; there are: "
                + "; ".join(inputs),
                "set ear.device to one of those indexes or part of its name, or leave it out "
                "for the system's default",
            )
        ]
    index = int(device.get("index", 0))
    label = f"{index}: {device['name']}"
    max_channels = int(device.get("max_input_channels", 0))
    if ear.channels > max_channels:
        return [
            Finding(
                name,
                Status.FAIL,
                f"{label} has {max_channels} input channel(s), ear.channels is {ear.channels}",
                f"set ear.channels = {max_channels} or lower",
            )
        ]
    check_settings = getattr(backend, "check_input_settings", None)
    if check_settings is None:
        detail = f"{label} has {max_channels} input channel(s) (this backend cannot check rates)"
        return [Finding(name, Status.OK, detail)]
    try:
        check_settings(
            device=index, samplerate=ear.sample_rate, channels=ear.channels, dtype="float32"
        )
    except (backend.PortAudioError, ValueError) as e:
        default_hz = float(device.get("default_samplerate", 0.0))
        return [
            Finding(
                name,
                Status.FAIL,
                f"{label} refuses {ear.sample_rate} Hz, {ear.channels} channel(s) ({e})",
                f"set ear.sample_rate to one it supports (its default is {default_hz:g} Hz)",
            )
        ]
    return [
        Finding(name, Status.OK, f"{label} takes {ear.sample_rate} Hz, {ear.channels} channel(s)")
    ]


def _input_device(backend: Any, wanted: int | str | None) -> dict[str, Any] | None:
    """The PortAudio device ``ear.device`` selects, as sounddevice does: index, part of the
    name (case-insensitive), or the default input device."""
    if wanted is None:
        try:
            return dict(backend.query_devices(kind="input"))
        except backend.PortAudioError:
            return None
    for position, device in enumerate(backend.query_devices()):
        if int(device.get("max_input_channels", 0)) <= 0:
            continue
        index = int(device.get("index", position))
        matches = (
            index == wanted if isinstance(wanted, int) else wanted.lower() in device["name"].lower()
        )
        if matches:
            return {**dict(device), "index": index}
    return None
