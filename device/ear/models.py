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

from device.ear.install import INSTALL_COMMAND, birdnet_folder
from device.ear.species import WaveformSpeciesModel
from device.errors import ModelChecksumError, ModelError, ModelNotFoundError

if TYPE_CHECKING:
    from device.config import Config


def load_species_model(config: Config, *, num_threads: int | None = None) -> WaveformSpeciesModel:
    """The installed BirdNET model; raises :class:`ModelError` saying how to install or repair."""
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
            sensitivity=config.ear.sensitivity,
        )
    except ModelChecksumError as e:
        raise ModelChecksumError(
            f"the installed BirdNET model is damaged ({e}). Reinstall it: `{INSTALL_COMMAND}`"
        ) from e
    except ModelError as e:
        raise type(e)(f"{e} (reinstalling may help: `{INSTALL_COMMAND}`)") from e
