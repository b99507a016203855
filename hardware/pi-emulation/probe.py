"""Run every shipped model through ``device.inference`` and report what the process loaded.

Runs inside the emulated Pi (``qemu-aarch64-static``, the board's CPU) and natively on x86 for
the reference, with the same arguments::

    python probe.py --models models --inputs RUN/inputs --out RUN/<board>

For every folder of ``--models`` holding a ``card.json`` it loads the model with
``device.inference.load_model`` (the daemon's own path: card and checksum checks, the classic
``Interpreter``), runs the inputs in ``--inputs/<model>.npz`` and writes the outputs to
``--out/<model>.npz`` (``arr_0``, ``arr_1``, ... in tensor order, like the inputs).
``--out/probe.json`` says which models ran, what failed, and the evidence that the LiteRT
compiled-model path was never touched: neither its Python module nor
``libLiteRtWebGpuAccelerator.so`` (which kills a Pi 3 or 4 with SIGILL when loaded) is in the
process.

``--folder NAME=PATH`` (repeatable) adds a model folder from outside ``--models``: BirdNET,
which the user installs into the station's data folder and the check installs on the host
with the same command (``senses ear install birdnet``).

``--control-compiled-model`` does the opposite on purpose, to show the emulated board would
catch it: it creates a LiteRT ``CompiledModel`` for the first model. On a Cortex-A53 or A72
that must die with SIGILL.

This file needs only the device's own dependencies and ``boards.py`` (standard library).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import platform
import struct
import sys
import time
from pathlib import Path
from typing import Any, Final

import numpy as np
from boards import HWCAP_BITS  # the script's own folder is on sys.path

from device.errors import SensesError
from device.inference import CARD_FILE, load_model

WEBGPU_LIBRARY: Final = "libLiteRtWebGpuAccelerator.so"
COMPILED_MODEL_MARKER: Final = "compiled_model"
AT_HWCAP: Final = 16


def model_folders(models_dir: Path) -> list[Path]:
    """Every model folder: a folder of ``models_dir`` with a card, in name order."""
    return sorted(p.parent for p in models_dir.glob(f"*/{CARD_FILE}"))


def hwcaps() -> list[str]:
    """The CPU extensions the kernel (here: QEMU) reports to this process in AT_HWCAP."""
    try:
        data = Path("/proc/self/auxv").read_bytes()
    except OSError:
        return []
    pairs = struct.iter_unpack("<QQ", data[: len(data) // 16 * 16])
    value = next((v for key, v in pairs if key == AT_HWCAP), 0)
    return sorted(name for name, bit in HWCAP_BITS.items() if value >> bit & 1)


def litert_evidence() -> dict[str, Any]:
    """What this process loaded of LiteRT: the proof that the compiled-model API stayed out."""
    maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    spec = importlib.util.find_spec("ai_edge_litert")
    package = Path(spec.origin).parent if spec and spec.origin else None
    return {
        "webgpu_library_installed": bool(package and (package / WEBGPU_LIBRARY).exists()),
        "webgpu_library_loaded": WEBGPU_LIBRARY in maps,
        "compiled_model_library_loaded": COMPILED_MODEL_MARKER in maps,
        "compiled_model_modules": sorted(m for m in sys.modules if COMPILED_MODEL_MARKER in m),
    }


def cpuinfo_model() -> str:
    """The CPU part and board model the process reads from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in text.splitlines())
        if value
    )
    return " ".join(filter(None, (fields.get("CPU part"), fields.get("Model"))))


def parse_folders(specs: list[str]) -> dict[str, Path]:
    """``["birdnet=/x/models/birdnet", ...]`` as {name: folder}."""
    folders = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--folder takes NAME=PATH, got {spec!r}")
        folders[name] = Path(path)
    return folders


def run_models(
    models_dir: Path, inputs_dir: Path, out_dir: Path, extra: dict[str, Path] | None = None
) -> dict[str, Any]:
    models: dict[str, Any] = {}
    folders = {folder.name: folder for folder in model_folders(models_dir)} | (extra or {})
    for name, folder in folders.items():
        entry: dict[str, Any] = {"ran": False}
        models[name] = entry
        try:
            with np.load(inputs_dir / f"{name}.npz") as data:
                inputs = [data[f"arr_{k}"] for k in range(len(data.files))]
            start = time.perf_counter()
            # No deadline: under emulation a call takes 10-50 times its time on a Pi (BirdNET's
            # first window passed the daemon's 10 s), and the question here is agreement.
            model = load_model(folder, num_threads=1, deadline_s=None)
            entry["load_s"] = round(time.perf_counter() - start, 3)
            entry["runtime"] = model.runtime
            start = time.perf_counter()
            outputs = model.run_many(inputs)
            entry["run_s"] = round(time.perf_counter() - start, 3)
        except (SensesError, OSError, KeyError, ValueError) as e:
            entry["error"] = f"{type(e).__name__}: {e}"
            continue
        np.savez(out_dir / f"{name}.npz", *outputs)
        entry["ran"] = True
    return models


def control_compiled_model(models_dir: Path) -> None:
    """Touch the compiled-model API, as the device must not (see the module docstring)."""
    from ai_edge_litert.compiled_model import CompiledModel

    folder = model_folders(models_dir)[0]
    CompiledModel.from_file(str(folder / "model.tflite"))
    print("compiled model created", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--folder", action="append", default=[], help="NAME=PATH, repeatable")
    parser.add_argument("--inputs", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--control-compiled-model", action="store_true")
    args = parser.parse_args(argv)
    if args.control_compiled_model:
        control_compiled_model(args.models)
        return 0
    if args.inputs is None or args.out is None:
        parser.error("--inputs and --out are required")
    args.out.mkdir(parents=True, exist_ok=True)
    models = run_models(args.models, args.inputs, args.out, parse_folders(args.folder))
    report = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "litert": _version("ai-edge-litert"),
        "cpu": cpuinfo_model(),
        "hwcaps": hwcaps(),
        "models": models,
        "litert_evidence": litert_evidence(),
    }
    (args.out / "probe.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
