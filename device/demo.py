"""The station as ``senses demo`` (and the app's ``--demo``) run it: emulated, accelerated.

The emulated nose replays a real beef recording at :data:`DEMO_SPEED` through the real
drivers; its heaters warm up for :data:`DEMO_WARMUP_S`, then the first
:data:`~device.nose.features.BASELINE_MINUTES` of the recording are its baseline, as in
training (the recordings start with the meat already in the box, so those minutes are not
clean air and the clean-air stability check is off).
"""

from __future__ import annotations

from pathlib import Path

from device.clock import Clock
from device.config import Config
from device.nose.features import BASELINE_MINUTES
from device.runtime import NoseSetup, build_nose

#: Five simulated hours a real minute: a verdict shows within seconds and the whole 36 h
#: recording (fresh → spoiled) plays in about seven minutes.
DEMO_SPEED = 300.0
DEMO_WARMUP_S = 300.0
DEMO_SAMPLE_PERIOD_S = 10.0


def demo_config(config: Config, data_dir: Path) -> Config:
    """``config`` with the demo's nose timing and its own data folder.

    BirdNET, if the user installed it in the station's data folder, is linked into the
    demo's folder so the demo names species with it; without it the demo runs the head
    (no "BirdNET missing" warning: the demo prints one line on how to add it instead).
    """
    from device.ear.install import birdnet_folder

    installed = birdnet_folder(Path(config.station.data_dir))
    ear = config.ear
    if (installed / "card.json").is_file():
        birdnet_folder(data_dir).parent.mkdir(parents=True, exist_ok=True)
        birdnet_folder(data_dir).symlink_to(installed.resolve(), target_is_directory=True)
    else:
        ear = ear.model_copy(update={"species_model": "head"})
    return config.model_copy(
        update={
            "ear": ear,
            "station": config.station.model_copy(update={"data_dir": data_dir}),
            "nose": config.nose.model_copy(
                update={
                    "warmup_s": DEMO_WARMUP_S,
                    "calibration_s": BASELINE_MINUTES * 60.0,
                    "sample_period_s": DEMO_SAMPLE_PERIOD_S,
                }
            ),
        }
    )


def build_demo_nose(config: Config, clock: Clock) -> NoseSetup:
    """The emulated nose of the demo, calibrating on the recording's first minutes."""
    return build_nose(
        config,
        clock,
        emulated=True,
        calibrate_after_warmup=True,
        calibration_max_spread=None,
        calibration_source=(
            f"first {BASELINE_MINUTES} minutes of {config.emulation.recording.name}"
        ),
        scene_hold_s=DEMO_WARMUP_S,
        preheated_s=0.0,
    )
