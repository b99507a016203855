"""Make ``training/data/birds/`` from the shared data folder's ``audio/`` (run once by a person).

``python -m training.birds.prepare_data ../shared/data/audio``

Each recording of the manifest is resampled to the front end's 16 kHz by
:func:`device.ear.frontend.resample` (what training would do to the original anyway; YAMNet
hears nothing above 8 kHz) and written as 16-bit FLAC, which keeps the copies to a few MB.
Recordings whose annotation counts sample frames (the AudioMoth snippet's Sonic Visualiser
layer) and the label files are copied byte for byte. ``SHA256SUMS`` (``sha256sum -c``) lists
every file written; the originals' checksums are in the shared folder's SOURCES.md. README.md
carries the attribution and licence texts.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import soundfile

from device.ear.frontend import FrontendConfig
from training.birds.dataset import DEFAULT_DATA_DIR, MANIFEST, audio_path, read_audio


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare(source: Path, target: Path) -> list[str]:
    """Write the copies into ``target``; return the SHA256SUMS lines."""
    rate = FrontendConfig().sample_rate
    sums: list[str] = []
    for entry in MANIFEST:
        original = audio_path(source, entry)
        if entry.segments_file is not None and entry.segments_file.endswith(".xml"):
            written = target / original.relative_to(source)
            written.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(original, written)
        else:
            written = target / f"{entry.stem}.flac"
            written.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(written), read_audio(original, rate), rate, subtype="PCM_16")
        sums.append(f"{_sha256(written)}  {written.relative_to(target)}")
        if entry.segments_file is not None:
            shutil.copyfile(source / entry.segments_file, target / entry.segments_file)
            sums.append(f"{_sha256(target / entry.segments_file)}  {entry.segments_file}")
    return sums


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="the shared data folder's audio/")
    parser.add_argument("--out", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    sums = prepare(args.source, args.out)
    (args.out / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="utf-8")
    print(f"{len(sums)} files written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
