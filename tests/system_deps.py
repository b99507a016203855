"""The programs and libraries outside Python that the tests need, found by themselves.

``make test`` runs this before pytest. It looks for each program on the PATH (and in the sbin
folders, where Debian keeps mosquitto) and each library where the dynamic loader finds it, so
it works without ``dpkg`` (Fedora, Arch, macOS). What is missing is listed by name with what it
is for; as root on a machine with ``apt-get`` it is installed, elsewhere the command to install
it is printed for each package manager present, and the exit status is 1.

    python tests/system_deps.py            # check (and, as root with apt-get, install)
    python tests/system_deps.py --check    # only check and list
"""

from __future__ import annotations

import argparse
import ctypes.util
import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# Where Mesa's DRI drivers live on Debian/Ubuntu (multiarch), Fedora and Arch.
_DRI_GLOBS = (
    "/usr/lib/*/dri/swrast_dri.so",
    "/usr/lib/*/dri/*_dri.so",
    "/usr/lib64/dri/*_dri.so",
    "/usr/lib/dri/*_dri.so",
)


@dataclass(frozen=True)
class Requirement:
    """One thing the tests need: how to find it and which package brings it."""

    name: str
    purpose: str
    is_present: Callable[[], bool]
    debian: str
    fedora: str
    homebrew: str | None = None
    linux_only: bool = False


def _program(name: str) -> Callable[[], bool]:
    def found() -> bool:
        path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS])
        return shutil.which(name, path=path) is not None

    return found


def _library(name: str) -> Callable[[], bool]:
    return lambda: ctypes.util.find_library(name) is not None


def _mesa_dri_driver() -> bool:
    return any(glob.glob(pattern) for pattern in _DRI_GLOBS)


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(
        "dbus-daemon",
        "the private D-Bus that BlueZoo (a mock BlueZ) runs on",
        _program("dbus-daemon"),
        "dbus",
        "dbus-daemon",
        "dbus",
    ),
    Requirement(
        "libEGL",
        "Kivy's offscreen rendering of the app's screens",
        _library("EGL"),
        "libegl1",
        "libglvnd-egl",
        linux_only=True,
    ),
    Requirement(
        "libGL",
        "Kivy's offscreen rendering of the app's screens",
        _library("GL"),
        "libgl1",
        "libglvnd-glx",
        linux_only=True,
    ),
    Requirement(
        "Mesa DRI driver (swrast)",
        "software OpenGL where there is no GPU",
        _mesa_dri_driver,
        "libgl1-mesa-dri",
        "mesa-dri-drivers",
        linux_only=True,
    ),
    Requirement(
        "libportaudio",
        "the ear's microphone (sounddevice)",
        _library("portaudio"),
        "libportaudio2",
        "portaudio",
        "portaudio",
    ),
    Requirement(
        "libsndfile",
        "the ear's WAV/FLAC files (soundfile)",
        _library("sndfile"),
        "libsndfile1",
        "libsndfile",
        "libsndfile",
    ),
    Requirement(
        "mosquitto",
        "the real MQTT broker the MQTT tests publish to",
        _program("mosquitto"),
        "mosquitto",
        "mosquitto",
        "mosquitto",
    ),
    Requirement(
        "systemd-analyze",
        "checking the systemd unit (verify, security)",
        _program("systemd-analyze"),
        "systemd",
        "systemd",
        linux_only=True,
    ),
    Requirement(
        "shellcheck",
        "linting the Pi installer",
        _program("shellcheck"),
        "shellcheck",
        "ShellCheck",
        "shellcheck",
    ),
    Requirement(
        "setpriv",
        "running the installer's dry run as an unprivileged user",
        _program("setpriv"),
        "util-linux",
        "util-linux",
        linux_only=True,
    ),
)


def missing_requirements() -> list[Requirement]:
    """The requirements of this platform that are not found."""
    on_linux = sys.platform.startswith("linux")
    return [r for r in REQUIREMENTS if (on_linux or not r.linux_only) and not r.is_present()]


def install_hints(missing: list[Requirement]) -> list[str]:
    """One install command per package manager present on this machine (all if none is)."""
    commands = {
        "apt-get": "sudo apt-get install " + " ".join(sorted({r.debian for r in missing})),
        "dnf": "sudo dnf install " + " ".join(sorted({r.fedora for r in missing})),
    }
    brew = sorted({r.homebrew for r in missing if r.homebrew})
    if brew:
        commands["brew"] = "brew install " + " ".join(brew)
    present = [cmd for manager, cmd in commands.items() if shutil.which(manager)]
    return present or list(commands.values())


def _apt_install(missing: list[Requirement]) -> None:
    packages = sorted({r.debian for r in missing})
    print(f"installing Debian packages: {' '.join(packages)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; install nothing")
    args = parser.parse_args(argv)
    missing = missing_requirements()
    can_install = os.geteuid() == 0 and shutil.which("apt-get") is not None
    if missing and can_install and not args.check:
        _apt_install(missing)
        missing = missing_requirements()
    if not missing:
        return 0
    print("the tests need these programs and libraries, which were not found:", file=sys.stderr)
    for requirement in missing:
        print(f"  - {requirement.name}: {requirement.purpose}", file=sys.stderr)
    print("install them with one of:", file=sys.stderr)
    for hint in install_hints(missing):
        print(f"  {hint}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
