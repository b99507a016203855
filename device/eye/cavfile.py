"""The ``.cav`` file: a concept on disk.

A msgpack map, as Mood Board Search / cavlib write it (``CAV.save``: ``vector`` as float32,
``id`` a uuid string, ``model_layer``; research/cav.md §1.8), with what they lack so a concept
can be trusted and refused when it does not fit: a format tag and version, the concept's name
and creation time, the backbone (name, sha256, layer, dimension) and the preprocessing it was
trained on, the calibration, the quality statistics, and the sha256 and weight of every board
image. MBS-style score statistics over the negative bank go under ``stats`` (``mean``,
``stddev``, ``max``, ``min``, ``top_5_mean``), as cavlib names them. Keys this version does
not know are kept and written back unchanged, as cavlib does.

Reading refuses corrupt or truncated files, files of a newer format version, and plain Mood
Board Search files (their vector lives in another layer's space), each with what to do.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import msgpack
import numpy as np

from device.errors import ConceptFileError

FORMAT_TAG: Final = "senses-cav"
FORMAT_VERSION: Final = 1
SUFFIX: Final = ".cav"
#: A CAV vector is stored unit-length in float32; one part in 1e-3 allows for its rounding.
_UNIT_NORM_TOL: Final = 1e-3
#: Keys every version-1 file must hold, beyond the MBS ones.
REQUIRED_KEYS: Final = (
    "format",
    "version",
    "vector",
    "id",
    "model_layer",
    "name",
    "created",
    "backbone",
    "preprocessing",
    "calibration",
    "quality",
    "board",
)
#: Larger than any sane concept file; guards msgpack against a huge bogus length prefix.
_MAX_FILE_BYTES: Final = 64 << 20


def retrain_hint(name: str | None = None) -> str:
    board = f" --name {name}" if name else " --name NAME"
    return (
        "train the concept again from its mood board: "
        f"`senses eye train --positive DIR{board} --out FILE.cav`"
    )


def write_cav(path: Path, record: Mapping[str, Any]) -> None:
    """Write ``record`` (a map with at least :data:`REQUIRED_KEYS`) to ``path`` atomically."""
    path = Path(path)
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"a .cav record needs the keys {missing}")
    # The vector as float32, as cavlib writes it (half the size); everything else as float64,
    # so a calibration or a p-value reads back exactly as it was computed.
    single = msgpack.Packer(use_single_float=True, use_bin_type=True)
    double = msgpack.Packer(use_bin_type=True)
    parts = [double.pack_map_header(len(record))]
    for key, value in record.items():
        parts.append(double.pack(key))
        parts.append((single if key == "vector" else double).pack(value))
    data = b"".join(parts)
    tmp_path = path.with_name(f".{path.name}.tmp")
    try:
        tmp_path.write_bytes(data)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def read_cav(path: Path) -> dict[str, Any]:
    """Read and check a ``.cav`` file; return its map with ``vector`` as a float32 array.

    Checks the format and version and the vector's shape and length; the backbone is checked
    by :func:`device.eye.concept.load_concept`, which knows which backbone is loaded.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > _MAX_FILE_BYTES:
            raise ConceptFileError(
                f"{path} is {size} bytes, far more than any concept: it is not a .cav file"
            )
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise ConceptFileError(
            f"concept file {path} does not exist: check the path, or {retrain_hint()}"
        ) from e
    except OSError as e:
        raise ConceptFileError(f"cannot read concept file {path}: {e}") from e
    try:
        record = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        # msgpack reports a truncated file as ValueError("Unpack failed: incomplete input").
        raise ConceptFileError(
            f"{path} is not a readable .cav file (corrupt or truncated: {e}); restore it from "
            f"a backup or {retrain_hint()}"
        ) from e
    if not isinstance(record, dict) or "vector" not in record:
        raise ConceptFileError(f"{path} is not a .cav file (no 'vector' in it); {retrain_hint()}")
    if record.get("format") != FORMAT_TAG:
        layer = record.get("model_layer", "unknown")
        raise ConceptFileError(
            f"{path} is a Mood Board Search / cavlib concept (layer {layer!r}): its vector "
            "lives in another model's space and has no calibration or quality check; "
            f"{retrain_hint()} with the same images"
        )
    version = record.get("version")
    if not isinstance(version, int) or version < 1:
        raise ConceptFileError(f"{path} has no valid format version; {retrain_hint()}")
    if version > FORMAT_VERSION:
        raise ConceptFileError(
            f"{path} is a version {version} concept file, newer than this station reads "
            f"(version {FORMAT_VERSION}): update the station software (pip install -U senses), "
            f"or {retrain_hint(str(record.get('name') or ''))} here"
        )
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ConceptFileError(
            f"{path} lacks {', '.join(missing)}: the file is damaged; "
            f"{retrain_hint(str(record.get('name') or ''))}"
        )
    record["vector"] = _vector(path, record["vector"])
    return record


def _vector(path: Path, value: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    try:
        vector = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ConceptFileError(
            f"{path}: 'vector' is not a list of numbers; {retrain_hint()}"
        ) from e
    if vector.ndim != 1 or vector.size == 0 or not np.all(np.isfinite(vector)):
        raise ConceptFileError(
            f"{path}: 'vector' must be a non-empty list of finite numbers; {retrain_hint()}"
        )
    norm = float(np.linalg.norm(vector))
    if not math.isclose(norm, 1.0, abs_tol=_UNIT_NORM_TOL):
        raise ConceptFileError(
            f"{path}: 'vector' has length {norm:.4f}, a concept vector has length 1: the file "
            f"was altered; {retrain_hint()}"
        )
    return vector / np.float32(norm)
