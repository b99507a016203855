"""Stage the app for buildozer: ``python -m mobile_app.apk`` (then ``buildozer android debug``).

python-for-android starts ``main.py`` at the root of the app folder, and the app imports the
wire protocol shared with the station (``device/link/protocol.py``), so buildozer's
``source.dir`` can be neither ``mobile_app/`` (no ``device``) nor the repository (no
``main.py``, and the whole station with it). This writes ``build/android/``:

* ``app/``: ``main.py``, the ``mobile_app`` package (without the demo, which needs the whole
  station, and without build-time files), and the four pure-Python ``device`` files the app
  imports;
* ``java/``: bleak's Java classes (``android.add_src``), taken from the installed bleak,
  which must be the version the recipe pins (``mobile_app/recipes/bleak``), so the Python
  and Java halves of bleak in the APK match.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

APP_DIR: Final = Path(__file__).resolve().parent
REPO: Final = APP_DIR.parent
STAGE: Final = REPO / "build" / "android"
RECIPE: Final = APP_DIR / "recipes" / "bleak" / "__init__.py"

DEVICE_FILES: Final = (
    "device/__init__.py",
    "device/link/__init__.py",
    "device/link/boardfile.py",
    "device/link/protocol.py",
    "device/link/uuids.py",
)
LEFT_OUT: Final = frozenset({"demo.py", "apk.py"})
"""``demo.py`` imports the station (numpy, the nose, Bumble); ``apk.py`` is this file."""

ENTRY_POINT: Final = '''"""The Android entry point (python-for-android runs main.py)."""

from mobile_app.main import main

raise SystemExit(main([]))
'''


class StageError(RuntimeError):
    """The stage cannot be built as it is (the message says what to change)."""


def pinned_bleak_version(recipe: Path = RECIPE) -> str:
    """The bleak version the python-for-android recipe downloads."""
    found = re.search(r'^\s*version = "([^"]+)"', recipe.read_text(encoding="utf-8"), re.M)
    if found is None:
        raise StageError(f'no version = "..." in {recipe}')
    return found.group(1)


def bleak_java_dir() -> Path:
    """bleak's Java sources in the installed bleak, checked against the recipe's version."""
    pinned = pinned_bleak_version()
    installed = importlib.metadata.version("bleak")
    if installed != pinned:
        raise StageError(
            f"bleak {installed} is installed but the Android recipe pins {pinned}: run "
            f"`pip install bleak=={pinned}` (or change version in {RECIPE.relative_to(REPO)})"
        )
    import bleak

    java = Path(bleak.__file__).parent / "backends" / "p4android" / "java"
    if not java.is_dir():
        raise StageError(f"bleak {installed} has no Java sources at {java}")
    return java


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def stage(dest: Path = STAGE) -> Path:
    """Write the staged app to ``dest`` (replacing what was there); returns ``dest``."""
    java = bleak_java_dir()
    app = dest / "app"
    for folder in (app, dest / "java"):
        shutil.rmtree(folder, ignore_errors=True)
    for source in sorted(APP_DIR.rglob("*.py")):
        relative = source.relative_to(APP_DIR)
        if relative.parts[0] == "recipes" or relative.name in LEFT_OUT:
            continue
        _copy(source, app / "mobile_app" / relative)
    for name in DEVICE_FILES:
        _copy(REPO / name, app / name)
    (app / "main.py").write_text(ENTRY_POINT, encoding="utf-8")
    shutil.copytree(java, dest / "java")
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mobile_app.apk", description="Stage the app for buildozer."
    )
    parser.add_argument("--dest", type=Path, default=STAGE, help=f"default: {STAGE}")
    args = parser.parse_args(argv)
    try:
        dest = stage(args.dest)
    except StageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    files = sum(1 for p in dest.rglob("*") if p.is_file())
    print(f"staged {files} files in {dest}; now: cd mobile_app && buildozer android debug")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
