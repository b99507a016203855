"""The emulated Pi: an arm64 Debian root, the device's aarch64 wheels, and running under QEMU.

Nothing arm64 runs while the root is built: ``debootstrap --foreign`` only downloads and unpacks
Debian's required packages, and every other downloaded ``.deb`` (Python, libstdc++) is unpacked
here with ``dpkg-deb | tar``, keeping the merged-/usr symlinks. No binfmt_misc registration is
used or needed: each guest program is started explicitly as ``qemu-aarch64-static -cpu CPU -L
PROFILE python3.X ...``.

The wheels are resolved on the host by pip for the guest's platform (``pip download
--only-binary=:all: --platform manylinux_2_N_aarch64 --python-version 3.X``), from the same
requirements the Pi installs (pyproject.toml's base dependencies and the ``device`` extra). They
are then installed by pip running *inside* the guest, offline, so wheel tags and environment
markers are judged by the guest's own Python, glibc and CPU architecture, as on a Pi.

Everything lands in the cache folder and is reused while its inputs stay the same: the root
(per Debian release and package list) and the installed wheels (per requirement list).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import pip
from agreement import missing_wheels
from boards import Board, make_profile

QEMU: Final = "qemu-aarch64-static"
HOST_PACKAGES: Final = {"qemu-aarch64-static": "qemu-user-static", "debootstrap": "debootstrap"}
DEFAULT_MIRROR: Final = "http://deb.debian.org/debian"
# python3 brings the release's python3.X; LiteRT's libraries link libstdc++ (in minbase too,
# through apt, but named so a leaner base cannot drop it).
ROOT_PACKAGES: Final = ("python3", "libstdc++6")
# Bump when the way a root is built changes, so cached roots are rebuilt.
ROOT_FORMAT: Final = 1
STAMP: Final = ".senses-pi-emulation.json"
DEVICE_EXTRA: Final = "device"


class PiEmulationError(Exception):
    """The emulated Pi could not be set up; the message says what to do."""


class HostToolsMissingError(PiEmulationError):
    """qemu-user-static or debootstrap is missing and cannot be installed here."""


class RootBuildError(PiEmulationError):
    """debootstrap or unpacking the arm64 root failed."""


class WheelsMissingError(PiEmulationError):
    """Some requirement has no aarch64 wheel for the guest's Python and glibc."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class Release:
    """A Raspberry Pi OS generation: its Debian release and the Python it ships."""

    suite: str  # Debian codename
    debian: str  # Debian version number
    python: str  # major.minor of the release's python3

    @property
    def label(self) -> str:
        return f"{self.suite}/{self.python}"

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")


RELEASES: Final = (
    Release("bookworm", "12", "3.11"),
    Release("trixie", "13", "3.13"),
)


def release_named(name: str) -> Release:
    for release in RELEASES:
        if name in (release.suite, release.python, release.label):
            return release
    raise ValueError(f"no release {name!r}: use one of {', '.join(r.suite for r in RELEASES)}")


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _read_stamp(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _publish(partial: Path, final: Path, stamp: dict[str, str]) -> None:
    """Move a finished ``partial`` folder to ``final``: a folder with a stamp is complete."""
    (partial / STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)


def _text(output: str | bytes | None) -> str:
    """What a timed-out subprocess had printed (bytes even in text mode, or None)."""
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --- host tools --------------------------------------------------------------------------------


def ensure_host_tools(log: Path) -> None:
    """Install qemu-user-static and debootstrap from Debian when missing (as root), else say how."""
    missing = sorted({pkg for tool, pkg in HOST_PACKAGES.items() if not shutil.which(tool)})
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise HostToolsMissingError(
            f"missing host tools: run `sudo apt-get install {' '.join(missing)}` (Debian or "
            "Ubuntu x86_64), then run the check again"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with log.open("a", encoding="utf-8") as out:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", *missing]):
            done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
            if done.returncode:
                raise HostToolsMissingError(
                    f"`{' '.join(cmd)}` failed (exit {done.returncode}); see {log}"
                )


# --- the arm64 root ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Root:
    """An unpacked arm64 Debian root."""

    release: Release
    path: Path
    glibc: str  # e.g. "2.36": decides which manylinux wheels can run
    cached: bool

    @property
    def python(self) -> Path:
        return self.path / "usr" / "bin" / f"python{self.release.python}"


_LIBC_DEB: Final = re.compile(r"^libc6_(\d+\.\d+)[-+~]")


def _unpack(deb: Path, root: Path) -> None:
    # tar's --keep-directory-symlink keeps /bin, /lib and /sbin the merged-/usr symlinks that
    # debootstrap made; `dpkg -x` would replace them with directories.
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as p:
        tar = subprocess.run(
            ["tar", "-x", "--keep-directory-symlink", "-C", str(root)],
            stdin=p.stdout,
            capture_output=True,
            check=False,
        )
    if p.returncode or tar.returncode:
        raise RootBuildError(f"cannot unpack {deb.name}: {tar.stderr.decode(errors='replace')}")


def build_root(release: Release, cache: Path, mirror: str, log: Path) -> Root:
    """The arm64 root for ``release``, from the cache when it was built the same way."""
    final = cache / "roots" / release.suite
    key = _key(ROOT_FORMAT, release.suite, ROOT_PACKAGES, mirror)
    stamp = _read_stamp(final)
    if stamp.get("key") == key:
        return Root(release, final, stamp["glibc"], cached=True)
    if os.geteuid() != 0:
        raise RootBuildError(
            f"building the {release.suite} root needs root (debootstrap makes device nodes): "
            "run the check as root once; later runs reuse the root from the cache"
        )
    partial = final.with_name(final.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "debootstrap",
        "--arch=arm64",
        "--foreign",
        "--variant=minbase",
        f"--include={','.join(ROOT_PACKAGES)}",
        release.suite,
        str(partial),
        mirror,
    ]
    with log.open("a", encoding="utf-8") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        raise RootBuildError(
            f"debootstrap {release.suite} failed (exit {done.returncode}): {_tail(log.read_text())}"
            f"\nIs {mirror} reachable? Set DEBIAN_MIRROR to another Debian mirror."
        )
    archives = partial / "var" / "cache" / "apt" / "archives"
    debs = sorted(archives.glob("*.deb"))
    glibc = next((m.group(1) for d in debs if (m := _LIBC_DEB.match(d.name))), "")
    for deb in debs:
        _unpack(deb, partial)
        deb.unlink()
    python = partial / "usr" / "bin" / f"python{release.python}"
    if not glibc or not python.exists():
        raise RootBuildError(
            f"the {release.suite} root has no {python.name} or no libc6 (glibc {glibc!r}): "
            f"Debian {release.debian} no longer ships Python {release.python}? Update RELEASES."
        )
    _publish(partial, final, {"key": key, "glibc": glibc})
    return Root(release, final, glibc, cached=False)


# --- the device's wheels -----------------------------------------------------------------------


def device_requirements(pyproject: Path) -> list[str]:
    """What ``pip install '.[device]'`` installs on the Pi: base dependencies + the extra."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extra = project.get("optional-dependencies", {}).get(DEVICE_EXTRA)
    if extra is None:
        raise PiEmulationError(f"{pyproject} has no [project.optional-dependencies] {DEVICE_EXTRA}")
    return [*project.get("dependencies", []), *extra]


def platform_tags(glibc: str) -> list[str]:
    """Every manylinux aarch64 tag a system with ``glibc`` runs, newest first."""
    major, minor = (int(p) for p in glibc.split(".")[:2])
    return [f"manylinux_{major}_{m}_aarch64" for m in range(minor, 16, -1)] + [
        "manylinux2014_aarch64"
    ]


@dataclass(frozen=True)
class Site:
    """The device's dependencies installed for one release (a ``--target`` folder)."""

    path: Path
    distributions: dict[str, str]  # name -> version
    cached: bool


def _distributions(site: Path) -> dict[str, str]:
    found = {}
    for info in site.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        found[name.lower().replace("_", "-")] = version
    return dict(sorted(found.items()))


def download_wheels(root: Root, requirements: list[str], dest: Path, log: Path) -> None:
    """``pip download`` the aarch64 wheels of ``requirements`` for the guest into ``dest``.

    Uses the host's pip configuration (index, proxy, certificates), only for this download.
    """
    dest.mkdir(parents=True, exist_ok=True)
    release = root.release
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--progress-bar=off"]
    cmd += ["--python-version", release.python, "--implementation", "cp", "--abi", release.abi]
    for tag in platform_tags(root.glibc):
        cmd += ["--platform", tag]
    cmd += ["-d", str(dest), *requirements]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n{done.stdout}{done.stderr}\n")
    if done.returncode:
        missing = missing_wheels(done.stderr)
        what = (
            f"no aarch64 wheel for Python {release.python} (glibc {root.glibc}) of: "
            + ", ".join(missing)
            if missing
            else f"pip download failed: {_tail(done.stderr, 5)}"
        )
        raise WheelsMissingError(f"{release.label}: {what}", missing)


class Guest:
    """Runs Python programs in one release's root under QEMU, as one board or another."""

    def __init__(self, root: Root, repo: Path, cache: Path) -> None:
        self.root = root
        self.repo = repo
        self.pycache = cache / "pycache" / root.release.suite
        self._profiles = cache / "profiles" / root.release.suite
        self._pip_dir = cache / "pip" / root.release.suite
        self._site_dir = cache / "site" / root.release.suite
        self.site: Site | None = None
        self._made: dict[str, Path] = {}
        self._lock = threading.Lock()

    def profile(self, board: Board) -> Path:
        """The ``-L`` prefix for ``board``, made afresh once per check (a few kilobytes)."""
        with self._lock:
            if board.name not in self._made:
                self._made[board.name] = make_profile(
                    board, self.root.path, self._profiles / board.name
                )
            return self._made[board.name]

    def environment(self, run_dir: Path, *path: Path) -> dict[str, str]:
        """A clean environment: nothing of the host's Python or pip settings leaks in."""
        home = run_dir / "home"
        tmp = run_dir / "tmp"
        home.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "TMPDIR": str(tmp),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join(str(p) for p in path),
            # Compiled bytecode is kept between runs, outside the work tree: importing the
            # device's dependencies under emulation takes ~12 s cold and ~4 s with it.
            "PYTHONPYCACHEPREFIX": str(self.pycache),
            "PYTHONFAULTHANDLER": "1",
            "PYTHONUNBUFFERED": "1",
            "PIP_CONFIG_FILE": os.devnull,
        }

    def command(self, board: Board, profile: Path, argv: list[str]) -> list[str]:
        return [QEMU, "-cpu", board.qemu_cpu, "-L", str(profile), str(self.root.python), *argv]

    def _path(self, with_device: bool) -> list[Path]:
        return [self.repo, self.site.path] if with_device and self.site else [self._pip_dir]

    def run(
        self,
        board: Board,
        argv: list[str],
        run_dir: Path,
        *,
        timeout_s: float,
        with_device: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python3.X argv`` on ``board``; the repo and the device's wheels are importable.

        A run past ``timeout_s`` is killed and reported as killed by SIGKILL.
        """
        cmd = self.command(board, self.profile(board), argv)
        try:
            return subprocess.run(
                cmd,
                env=self.environment(run_dir, *self._path(with_device)),
                cwd=run_dir,  # where QEMU writes a core file if the guest crashes and limits allow
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(
                cmd,
                -signal.SIGKILL,
                _text(e.stdout),
                f"{_text(e.stderr)}\ntimed out after {timeout_s:.0f} s",
            )

    def start(
        self, board: Board, argv: list[str], run_dir: Path, stderr: IO[str]
    ) -> subprocess.Popen[str]:
        """Start ``python3.X argv`` on ``board`` with its output on a pipe, for reading live."""
        return subprocess.Popen(
            self.command(board, self.profile(board), argv),
            env=self.environment(run_dir, *self._path(True)),
            cwd=run_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )

    def install(
        self, board: Board, requirements: list[str], wheels: Path, work: Path, log: Path
    ) -> Site:
        """Install ``requirements`` with pip running in the guest, offline, from ``wheels``.

        The wheels are downloaded first (on the host) unless the installed set in the cache was
        made from the same requirements. ``work`` holds the guest's home and temporary files.
        """
        final = self._site_dir
        key = _key(requirements, self.root.glibc, self.root.release.python)
        if _read_stamp(final).get("key") == key:
            self.site = Site(final, _distributions(final), cached=True)
            return self.site
        download_wheels(self.root, requirements, wheels, log)
        # The host's pip is pure Python and runs on the guest's interpreter unchanged; the
        # folder holds only it, so nothing else of the host is importable.
        self._pip_dir.mkdir(parents=True, exist_ok=True)
        link = self._pip_dir / "pip"
        if not link.exists():
            link.symlink_to(Path(pip.__file__).parent)
        partial = final.with_name(final.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        argv = ["-m", "pip", "install", "--no-index", "--find-links", str(wheels)]
        argv += ["--target", str(partial), "--no-compile", "--disable-pip-version-check"]
        argv += ["--root-user-action=ignore", *requirements]
        done = self.run(board, argv, work, timeout_s=1200, with_device=False)
        with log.open("a", encoding="utf-8") as out:
            out.write(f"$ (guest) python {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
        if done.returncode:
            missing = missing_wheels(done.stderr)
            raise WheelsMissingError(
                f"{self.root.release.label}: pip in the guest cannot install "
                + (", ".join(missing) if missing else _tail(done.stderr, 5)),
                missing,
            )
        _publish(partial, final, {"key": key})
        self.site = Site(final, _distributions(final), cached=False)
        return self.site
