"""Which species model the ear runs, and loading it with a fix in every error.

``ear.species_model = "birdnet"`` (the default) runs BirdNET v2.4 from
``<data_dir>/models/birdnet`` when the user has installed it (``senses ear install birdnet``);
``"head"`` runs the Apache-licensed head on YAMNet's embedding (``models/birds``). When BirdNET
is chosen but cannot be loaded (not installed, a file that fails its checksum) the ear falls
back to YAMNet presence and the head and says why, with the command that fixes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from device.ear.detector import Detector, SpeciesStage
from device.ear.install import INSTALL_COMMAND, birdnet_folder
from device.ear.settings import EarConfig
from device.ear.species import WaveformSpeciesModel
from device.errors import ModelChecksumError, ModelError, ModelNotFoundError

if TYPE_CHECKING:
    from device.config import Config


def load_species_model(
    config: Config, *, num_threads: int | None = None, ear: EarConfig | None = None
) -> WaveformSpeciesModel:
    """The installed BirdNET model; raises :class:`ModelError` saying how to install or repair."""
    ear = ear or config.ear
    folder = birdnet_folder(Path(config.station.data_dir))
    if not (folder / "card.json").is_file():
        raise ModelNotFoundError(
            f"BirdNET is not installed (no {folder}): run `{INSTALL_COMMAND}` to add it "
            '(CC BY-NC-SA 4.0, non-commercial use), or set ear.species_model = "head"'
        )
    try:
        return WaveformSpeciesModel.load(
            folder,
            num_threads=num_threads or config.inference.num_threads,
            sensitivity=ear.sensitivity,
        )
    except ModelChecksumError as e:
        raise ModelChecksumError(
            f"the installed BirdNET model is damaged ({e}). Reinstall it: `{INSTALL_COMMAND}`"
        ) from e
    except ModelError as e:
        raise type(e)(f"{e} (reinstalling may help: `{INSTALL_COMMAND}`)") from e


def load_detector(
    config: Config, ear: EarConfig | None = None, *, num_threads: int | None = None
) -> tuple[Detector, str | None]:
    """The ear's models as ``ear.species_model`` asks; and why the ear runs degraded, if it does.

    ``"birdnet"``: BirdNET names the species, YAMNet gives presence. If BirdNET cannot be
    loaded (not installed, damaged), the head takes over and the returned message says so
    with the command that fixes it (the service sends it as Health DEGRADED).
    """
    ear = ear or config.ear
    threads = num_threads or config.inference.num_threads
    models_dir = config.inference.models_dir
    problem: str | None = None
    if ear.species_model == "birdnet":
        try:
            model = load_species_model(config, num_threads=threads, ear=ear)
            stage = SpeciesStage(
                model,
                latitude=ear.latitude,
                longitude=ear.longitude,
                range_threshold=ear.range_threshold,
                overlap_s=ear.species_overlap_s,
            )
        except ModelError as e:
            problem = f"BirdNET unavailable, species from the head on {ear.backbone}: {e}"
        else:
            detector, _ = Detector.load(
                models_dir, ear.backbone, None, num_threads=threads, species=stage
            )
            return detector, None
    detector, head_problem = Detector.load(models_dir, ear.backbone, ear.head, num_threads=threads)
    if problem and head_problem:
        problem = f"{problem}; {head_problem}"
    return detector, problem or head_problem
