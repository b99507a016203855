"""Every model the enabled senses use, loaded as the senses load them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from device.config import Config
from device.doctor.findings import Finding, Status, finding_from_error
from device.ear.backbone import YamnetBackbone
from device.ear.detector import SpeciesHead
from device.errors import ConceptError, ModelError
from device.eye.backbone import DEFAULT_BACKBONE_DIR, Backbone
from device.eye.concept import load_concept
from device.inference import load_model

_T = TypeVar("_T")


def check_models(config: Config) -> list[Finding]:
    """Every model the enabled senses use loads: checksum, card and tensors as the station
    checks them, and each eye concept against the backbone it was trained on."""
    models_dir = config.inference.models_dir
    threads = config.inference.num_threads
    findings: list[Finding] = []
    if config.nose.enabled:
        nose_dir = models_dir / config.nose.model
        _, found = _load(
            f"model {nose_dir.name}",
            lambda: load_model(nose_dir, num_threads=threads),
            _loaded(nose_dir),
        )
        findings.append(found)
    if config.eye.enabled:
        eye_dir = models_dir / DEFAULT_BACKBONE_DIR.name
        backbone, found = _load(
            f"model {eye_dir.name}",
            lambda: Backbone(eye_dir, num_threads=threads),
            _loaded(eye_dir),
        )
        findings.append(found)
        if backbone is not None:
            for path in config.eye.concepts:
                _, found = _load(
                    f"concept {path.stem}",
                    functools.partial(load_concept, path, backbone),
                    f"{path} loads; made for {backbone.name}",
                )
                findings.append(found)
    if config.ear.enabled:
        ear_dir = models_dir / config.ear.backbone
        ear_backbone, found = _load(
            f"model {ear_dir.name}",
            lambda: YamnetBackbone(ear_dir, num_threads=threads),
            _loaded(ear_dir),
        )
        findings.append(found)
        if ear_backbone is not None and config.ear.head is not None:
            head_dir = models_dir / config.ear.head
            _, found = _load(
                f"model {head_dir.name}",
                functools.partial(SpeciesHead, head_dir, ear_backbone, num_threads=threads),
                f"{_loaded(head_dir)}; fits {ear_backbone.name}",
            )
            findings.append(found)
        findings.append(check_species_model(config))
    if not findings:
        findings.append(Finding("models", Status.OK, "no sense that needs a model is enabled"))
    return findings


def check_species_model(config: Config) -> Finding:
    """Which species model the ear will run, its licence, and what to do if it cannot."""
    from device.ear.install import INSTALL_COMMAND, birdnet_folder
    from device.ear.models import load_species_model

    name = "species model"
    folder = birdnet_folder(Path(config.station.data_dir))
    if config.ear.species_model == "head":
        installed = " (BirdNET is installed but not used)" if folder.exists() else ""
        return Finding(name, Status.OK, f"the head {config.ear.head!r} names species{installed}")
    if not folder.exists():
        return Finding(
            name,
            Status.WARN,
            f"BirdNET is not installed: the ear names only the species of the head "
            f"{config.ear.head!r}, other birds as 'Bird'",
            f"`{INSTALL_COMMAND}` (CC BY-NC-SA 4.0, non-commercial use), or set "
            'ear.species_model = "head"',
        )
    try:
        model = load_species_model(config)
    except ModelError as e:
        found = finding_from_error(name, e, Status.WARN)
        return Finding(name, Status.WARN, f"BirdNET cannot be used, the head takes over: "
                       f"{found.detail}", found.fix or f"`{INSTALL_COMMAND}`")  # fmt: skip
    place = (
        f"range filter at {config.ear.latitude:g}, {config.ear.longitude:g}"
        if config.ear.latitude is not None and config.ear.longitude is not None
        else "no range filter (set ear.latitude and ear.longitude)"
    )
    return Finding(
        name,
        Status.OK,
        f"{model.name}, {len(model.species_indices)} species, licence {model.licence} "
        f"(non-commercial use only; not shipped with Senses), from {folder}; {place}",
    )


def _loaded(folder: Path) -> str:
    return f"{folder} loads; sha256 and card match"


def _load(name: str, load: Callable[[], _T], loaded: str) -> tuple[_T | None, Finding]:
    """What ``load`` returns (None if it failed), and the finding that says so."""
    try:
        value = load()
    except (ModelError, ConceptError) as e:
        return None, finding_from_error(name, e)
    return value, Finding(name, Status.OK, loaded)
