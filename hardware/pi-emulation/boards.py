"""The Raspberry Pi boards the emulated check runs on, and the fake ``/proc`` + ``/sys`` each needs.

A board is a QEMU CPU model (``qemu-aarch64-static -cpu``) plus the ``/proc/cpuinfo`` and
``/sys/devices/system/cpu`` that Raspberry Pi OS 64-bit shows on the real board. Both live in one
:class:`Board` record, so the CPU the guest executes on and the CPU it reads about cannot drift
apart.

Why the files are needed: QEMU 7.2 (Debian 12) does not emulate ``/proc/cpuinfo`` for aarch64
guests, so a guest sees the x86 host's, and LiteRT 2.3.0's CPU detection then dereferences NULL
inside ``Interpreter()``. QEMU's ``-L PREFIX`` opens ``PREFIX/<path>`` instead of ``<path>``
whenever that file exists, so a profile folder holding ``proc/cpuinfo`` and ``sys/...`` shadows
the host's (shared/research/edge.md §6).

Why the ID must match ``-cpu``: the cpuinfo library applies quirks by MIDR part number (it
assumes dot-product instructions on a Cortex-A76, for example); a profile that names another
core than the one QEMU emulates produces SIGILLs that no Pi would see.

``AT_HWCAP`` (what the instruction-set checks read) and the instructions the guest may execute
still come from ``-cpu``. QEMU's Cortex-A53/A72 models include the AES/SHA/PMULL extensions that
the Pi 3, Zero 2 W and Pi 4 chips lack; the shared instruction scan found the runtime never
executes them on these cores, and the profiles below do not advertise them.

Sources: ARM Cortex-A53/A72/A76 TRMs (MIDR_EL1 reset values 0x410FD034, 0x410FD083,
0x414FD0B1, which are also what QEMU 7.2 reports), and ``/proc/cpuinfo`` and
``/sys/devices/system/cpu`` of Raspberry Pi OS bookworm on each board.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ARM_IMPLEMENTER: Final = 0x41
CACHE_LINE_BYTES: Final = 64


@dataclass(frozen=True)
class Cache:
    """One cache level as ``/sys/devices/system/cpu/cpuN/cache/indexK`` describes it."""

    level: int
    kind: str  # "Data", "Instruction" or "Unified"
    size_kib: int
    ways: int
    shared_by_all_cores: bool


@dataclass(frozen=True)
class Board:
    """A Raspberry Pi board: the core QEMU emulates and what the OS says about it."""

    name: str  # short id used in folder names and the table
    title: str
    qemu_cpu: str
    midr_variant: int
    midr_part: int
    midr_revision: int
    features: tuple[str, ...]  # the "Features" line of /proc/cpuinfo
    model: str  # the "Model" line (the device tree's model string)
    cores: int
    bogomips: str
    min_khz: int
    max_khz: int
    caches: tuple[Cache, ...]

    @property
    def has_armv82_atomics(self) -> bool:
        """Whether the core has LSE atomics, which libLiteRtWebGpuAccelerator.so requires."""
        return "atomics" in self.features


_PI3_FEATURES: Final = ("fp", "asimd", "evtstrm", "crc32", "cpuid")

BOARDS: Final = (
    Board(
        name="pi3",
        title="Pi 3 / Zero 2 W",
        qemu_cpu="cortex-a53",
        midr_variant=0x0,
        midr_part=0xD03,
        midr_revision=4,
        features=_PI3_FEATURES,
        model="Raspberry Pi 3 Model B Plus Rev 1.3",
        cores=4,
        bogomips="38.40",
        min_khz=600_000,
        max_khz=1_200_000,
        caches=(
            Cache(1, "Data", 32, 4, shared_by_all_cores=False),
            Cache(1, "Instruction", 32, 2, shared_by_all_cores=False),
            Cache(2, "Unified", 512, 16, shared_by_all_cores=True),
        ),
    ),
    Board(
        name="pi4",
        title="Pi 4",
        qemu_cpu="cortex-a72",
        midr_variant=0x0,
        midr_part=0xD08,
        midr_revision=3,
        features=_PI3_FEATURES,
        model="Raspberry Pi 4 Model B Rev 1.4",
        cores=4,
        bogomips="108.00",
        min_khz=600_000,
        max_khz=1_800_000,
        caches=(
            Cache(1, "Data", 32, 2, shared_by_all_cores=False),
            Cache(1, "Instruction", 48, 3, shared_by_all_cores=False),
            Cache(2, "Unified", 1024, 16, shared_by_all_cores=True),
        ),
    ),
    Board(
        name="pi5",
        title="Pi 5",
        qemu_cpu="cortex-a76",
        midr_variant=0x4,
        midr_part=0xD0B,
        midr_revision=1,
        features=(
            *("fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics"),
            *("fphp", "asimdhp", "cpuid", "asimdrdm", "lrcpc", "dcpop", "asimddp"),
        ),
        model="Raspberry Pi 5 Model B Rev 1.0",
        cores=4,
        bogomips="108.00",
        min_khz=1_500_000,
        max_khz=2_400_000,
        caches=(
            Cache(1, "Data", 64, 4, shared_by_all_cores=False),
            Cache(1, "Instruction", 64, 4, shared_by_all_cores=False),
            Cache(2, "Unified", 512, 8, shared_by_all_cores=False),
            Cache(3, "Unified", 2048, 16, shared_by_all_cores=True),
        ),
    ),
)

# The MIDR part number of each QEMU CPU model, from QEMU's target/arm/cpu64.c. A board whose
# profile names another part than the CPU it runs on is refused (see the module docstring).
QEMU_CPU_PART: Final = {"cortex-a53": 0xD03, "cortex-a72": 0xD08, "cortex-a76": 0xD0B}

# AT_HWCAP bits (Linux arch/arm64/include/uapi/asm/hwcap.h) that tell an ARMv8.0 core from
# the ARMv8.2 ones; the guest reports which are set, and they must match the board.
HWCAP_BITS: Final = {
    "aes": 3,
    "pmull": 4,
    "sha1": 5,
    "sha2": 6,
    "crc32": 7,
    "atomics": 8,
    "fphp": 9,
    "asimdhp": 10,
    "asimdrdm": 12,
    "lrcpc": 15,
    "asimddp": 20,
}
# Extensions that must be absent on an ARMv8.0 Pi and present on the Pi 5. (AES/SHA/PMULL are
# not listed: QEMU's A53/A72 models have them though the Pi chips do not; see the docstring.)
ARMV82_HWCAPS: Final = ("atomics", "fphp", "asimdhp", "asimdrdm", "lrcpc", "asimddp")


_HOST_OWNED: Final = frozenset({"proc", "sys", "dev", "run", "tmp"})


def board_named(name: str) -> Board:
    for board in BOARDS:
        if board.name == name:
            return board
    raise ValueError(f"no board {name!r}: use one of {', '.join(b.name for b in BOARDS)}")


def hwcap_problems(board: Board, hwcaps: set[str]) -> list[str]:
    """What is wrong with the extensions the guest saw, for ``board`` (empty when right)."""
    wanted = {cap for cap in ARMV82_HWCAPS if cap in board.features}
    problems = [f"{cap} missing" for cap in sorted(wanted - hwcaps)]
    problems += [
        f"{cap} present, the {board.title} has none"
        for cap in sorted((set(ARMV82_HWCAPS) - wanted) & hwcaps)
    ]
    return problems


def cpuinfo_text(board: Board) -> str:
    """``/proc/cpuinfo`` as the board's 64-bit Raspberry Pi OS kernel prints it."""
    blocks = [
        f"processor\t: {i}\n"
        f"BogoMIPS\t: {board.bogomips}\n"
        f"Features\t: {' '.join(board.features)}\n"
        f"CPU implementer\t: 0x{ARM_IMPLEMENTER:02x}\n"
        "CPU architecture: 8\n"
        f"CPU variant\t: 0x{board.midr_variant:x}\n"
        f"CPU part\t: 0x{board.midr_part:03x}\n"
        f"CPU revision\t: {board.midr_revision}\n"
        for i in range(board.cores)
    ]
    tail = f"Revision\t: 000000\nSerial\t\t: 0000000000000000\nModel\t\t: {board.model}\n"
    return "\n".join(blocks) + "\n" + tail


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + ("" if text.endswith("\n") else "\n"), encoding="ascii")


def write_sys_cpu(board: Board, sys_cpu: Path) -> None:
    """The ``/sys/devices/system/cpu`` files the cpuinfo library reads (topology, caches)."""
    last = board.cores - 1
    every = f"0-{last}"
    for name in ("possible", "present", "online"):
        _write(sys_cpu / name, every)
    _write(sys_cpu / "kernel_max", str(last))
    for i in range(board.cores):
        cpu = sys_cpu / f"cpu{i}"
        topology = {
            "physical_package_id": "0",
            "core_id": str(i),
            "cluster_id": "0",
            "cluster_cpus_list": every,
            "core_siblings_list": every,
            "package_cpus_list": every,
            "thread_siblings_list": str(i),
            "core_cpus_list": str(i),
        }
        for name, value in topology.items():
            _write(cpu / "topology" / name, value)
        _write(cpu / "cpufreq" / "cpuinfo_max_freq", str(board.max_khz))
        _write(cpu / "cpufreq" / "cpuinfo_min_freq", str(board.min_khz))
        for k, cache in enumerate(board.caches):
            index = cpu / "cache" / f"index{k}"
            sets = cache.size_kib * 1024 // CACHE_LINE_BYTES // cache.ways
            for name, value in {
                "level": str(cache.level),
                "type": cache.kind,
                "size": f"{cache.size_kib}K",
                "ways_of_associativity": str(cache.ways),
                "coherency_line_size": str(CACHE_LINE_BYTES),
                "number_of_sets": str(sets),
                "shared_cpu_list": every if cache.shared_by_all_cores else str(i),
            }.items():
                _write(index / name, value)


def make_profile(board: Board, root: Path, dest: Path) -> Path:
    """A ``-L`` prefix for ``board``: the guest root ``root`` with the board's /proc and /sys.

    Every top-level entry of ``root`` is a symlink back into it, so a profile costs a few
    kilobytes and always sees the current root, except the host-owned ones: ``proc`` and
    ``sys`` are the board's, and ``dev``, ``run`` and ``tmp`` fall through to the host's.
    """
    expected_part = QEMU_CPU_PART.get(board.qemu_cpu)
    if expected_part != board.midr_part:
        raise ValueError(
            f"board {board.name}: profile part 0x{board.midr_part:x} does not match -cpu "
            f"{board.qemu_cpu} (part {expected_part and hex(expected_part)})"
        )
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for entry in sorted(os.listdir(root)):
        if entry not in _HOST_OWNED:
            (dest / entry).symlink_to((root / entry).resolve())
    _write(dest / "proc" / "cpuinfo", cpuinfo_text(board))
    write_sys_cpu(board, dest / "sys" / "devices" / "system" / "cpu")
    return dest
