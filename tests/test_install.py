"""The Pi installation: hardware/install.sh, the systemd unit and the udev rules.

This machine is x86 and shared, so the installer never really runs here: the tests run its
dry run (as an unprivileged user, so a step that forgot the dry run fails on permissions
instead of changing the machine), its refusals, and its pure functions by sourcing the script.
The unit is checked by systemd's own ``systemd-analyze verify`` and ``security``.
"""

from __future__ import annotations

import atexit
import functools
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

import pytest

from device.config import PROJECT_ROOT, parse_config

HARDWARE = PROJECT_ROOT / "hardware"
INSTALL_SH = HARDWARE / "install.sh"
UNIT = HARDWARE / "systemd" / "senses.service"
UDEV_RULES = HARDWARE / "udev" / "99-senses.rules"
SENSES_IN_VENV = Path(sys.executable).parent / "senses"
NOBODY_UID = 65534
# systemd-analyze security: 2.1 when written; above this, hardening was lost.
MAX_EXPOSURE = 3.0

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze (Debian: systemd) missing"
)


def _as_unprivileged(command: Sequence[str]) -> list[str]:
    """``command`` run as nobody when we are root; as is otherwise."""
    if os.geteuid() != 0:
        return list(command)
    return ["setpriv", f"--reuid={NOBODY_UID}", f"--regid={NOBODY_UID}", "--clear-groups", *command]


# What install.sh reads from its checkout: its own folder (less the emulators and the Pi check,
# which are large and which it never reads) and the checkout's models.
_INSTALLER_READS = ("hardware", "models", "pyproject.toml")
_NOT_READ = shutil.ignore_patterns("sim", "pi-emulation", "__pycache__")


@functools.cache
def _world_readable_checkout() -> Path:
    """A copy of what the installer reads, in a folder every user can enter.

    nobody cannot run the clone's own install.sh when any folder above the clone is private
    (a ``mktemp -d`` folder is 0700, so are many home folders): the copy makes the tests
    independent of where the repository was cloned and of the clone's umask.
    """
    root = Path(tempfile.mkdtemp(prefix="senses-installer-test-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    checkout = root / "senses"
    for name in _INSTALLER_READS:
        source, target = PROJECT_ROOT / name, checkout / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=_NOT_READ)
        else:
            shutil.copy2(source, target)
    (checkout / "device").mkdir()
    for path in [root, *checkout.rglob("*"), checkout]:
        executable = path.is_dir() or path.name == "install.sh"
        path.chmod(0o755 if executable else 0o644)
    return checkout


def _install(*args: str, unprivileged: bool = True) -> subprocess.CompletedProcess[str]:
    command = [str(_world_readable_checkout() / "hardware" / "install.sh"), *args]
    return subprocess.run(
        _as_unprivileged(command) if unprivileged else command,
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        check=False,
    )


def _sourced(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run bash ``script`` with install.sh's functions and constants defined."""
    return subprocess.run(
        ["bash", "-c", f'source "$1"; shift; {script}', "bash", str(INSTALL_SH), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _install_constant(name: str) -> str:
    result = _sourced(f'printf "%s" "${{{name}[*]}}"')
    assert result.returncode == 0, result.stderr
    return result.stdout


def _unit_settings() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, in order (keys like DeviceAllow= repeat)."""
    settings: dict[str, list[str]] = {}
    for raw_line in UNIT.read_text().splitlines():
        line = raw_line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key, []).append(value)
    return settings


def _is_debian_arm64() -> bool:
    return platform.machine() in {"aarch64", "arm64"} and Path("/etc/debian_version").exists()


# --- install.sh ------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck (Debian) missing")
def test_install_script_is_shellcheck_clean() -> None:
    result = subprocess.run(
        ["shellcheck", "--severity=style", str(INSTALL_SH)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_install_script_is_executable_bash_with_strict_mode() -> None:
    text = INSTALL_SH.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert os.access(INSTALL_SH, os.X_OK)


@pytest.mark.skipif(_is_debian_arm64(), reason="this machine is what the installer expects")
def test_installer_refuses_a_machine_that_is_not_a_64_bit_pi_and_says_how_to_override() -> None:
    result = _install("--dry-run")
    assert result.returncode == 1
    assert "not arm64" in result.stderr
    assert "--force" in result.stderr
    assert "==>" not in result.stdout  # refused before the first step


def test_dry_run_prints_every_step_and_changes_nothing() -> None:
    existed_before = {p: p.exists() for p in (Path("/opt/senses"), Path("/etc/senses"))}
    result = _install("--dry-run", "--force")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in (
        "Debian packages",
        "user senses",
        "Python environment /opt/senses/venv",
        "models /opt/senses/models",
        "configuration /etc/senses/senses.toml",
        "I2C",
        "udev rules /etc/udev/rules.d/99-senses.rules",
        "systemd service senses.service",
    ):
        assert f"==> {step}" in out, f"step {step!r} missing from:\n{out}"
    assert "python3 -m venv --system-site-packages /opt/senses/venv" in out
    assert re.search(r"pip install .*\[device\]", out)
    hardware = _world_readable_checkout() / "hardware"
    assert (
        f"install -m 0644 {hardware}/systemd/senses.service /etc/systemd/system/senses.service"
        in out
    )
    assert (
        f"install -m 0644 {hardware}/udev/99-senses.rules /etc/udev/rules.d/99-senses.rules" in out
    )
    assert "systemctl enable senses.service" in out
    assert f"install -m 0644 {hardware}/README.md {hardware}/WIRING.md /opt/senses/doc/" in out
    assert "install -d -m 0750 -o senses -g senses /var/lib/senses" in out
    assert "dry run: nothing was changed" in out
    for path, existed in existed_before.items():
        assert path.exists() == existed, f"the dry run changed {path}"


def test_dry_run_puts_the_service_user_in_every_group_its_devices_belong_to() -> None:
    out = _install("--dry-run", "--force").stdout
    if "senses exists" in out:
        pytest.skip("a senses user exists on this machine; its groups decide the output")
    groups = re.search(r"usermod --append --groups (\S+) senses", out)
    assert groups is not None, out
    assert set(groups.group(1).split(",")) == {"i2c", "video", "audio", "bluetooth", "gpio"}


def test_installing_for_real_without_root_is_refused_before_any_step() -> None:
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("cannot drop root here")
    result = _install("--force")
    assert result.returncode == 1
    assert "needs root" in result.stderr
    assert "--dry-run" in result.stderr
    assert "==>" not in result.stdout


def test_a_checkout_whose_models_are_git_lfs_pointers_is_refused(tmp_path: Path) -> None:
    # A clone without `git lfs pull` has text pointers where the models should be; installing
    # them would give a station whose every model fails its checksum.
    checkout = tmp_path / "senses"
    (checkout / "hardware").mkdir(parents=True)
    (checkout / "device").mkdir()
    (checkout / "pyproject.toml").write_text("[project]\nname = 'senses'\n")
    shutil.copy2(INSTALL_SH, checkout / "hardware" / "install.sh")
    shutil.copytree(PROJECT_ROOT / "models", checkout / "models")
    pointer = checkout / "models" / "food_quality" / "model.tflite"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 5280\n")
    result = subprocess.run(
        [str(checkout / "hardware" / "install.sh"), "--dry-run", "--force"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert f"{pointer} is a Git LFS pointer" in result.stderr
    assert "git lfs pull" in result.stderr
    assert "==> Debian packages" not in result.stdout


def test_unknown_options_are_refused_with_the_usage() -> None:
    result = _install("--dryrun")
    assert result.returncode == 1
    assert "unknown option --dryrun" in result.stderr
    assert "--dry-run" in result.stderr


def test_purge_alone_is_refused() -> None:
    result = _install("--purge", "--force")
    assert result.returncode == 1
    assert "--purge goes with --uninstall" in result.stderr


def test_uninstall_dry_run_keeps_config_and_data_unless_purged() -> None:
    kept = _install("--uninstall", "--dry-run", "--force")
    assert kept.returncode == 0, kept.stderr
    assert "rm -rf /opt/senses" in kept.stdout
    assert "rm -f /etc/systemd/system/senses.service" in kept.stdout
    assert "kept /etc/senses" in kept.stdout
    assert "/var/lib/senses" not in re.findall(r"would run: rm .*", kept.stdout)[-1]
    purged = _install("--uninstall", "--purge", "--dry-run", "--force")
    assert purged.returncode == 0, purged.stderr
    assert "rm -rf /etc/senses /var/lib/senses" in purged.stdout


def test_the_bluetooth_policy_drop_in_is_installed_and_uninstalled() -> None:
    policy = HARDWARE / "dbus" / "senses-bluetooth.conf"
    target = _install_constant("DBUS_POLICY_FILE")
    assert target.startswith("/etc/dbus-1/system.d/")
    installed = _install("--dry-run", "--force")
    copied = _world_readable_checkout() / policy.relative_to(PROJECT_ROOT)
    assert f"install -m 0644 {copied} {target}" in installed.stdout
    removed = _install("--uninstall", "--dry-run", "--force")
    assert any(target in line for line in re.findall(r"would run: rm -f .*", removed.stdout))
    # The policy names the user the installer creates, and lets bluetoothd call our agent.
    root = ElementTree.parse(policy).getroot()
    users = {p.get("user") for p in root.iter("policy")}
    assert _install_constant("SERVICE_USER") in users
    sends = {a.get("send_interface") for a in root.iter("allow")}
    assert "org.bluez.Agent1" in sends


def test_unit_gives_the_cli_socket_a_runtime_directory() -> None:
    unit = _unit_settings()
    assert unit["RuntimeDirectory"] == ["senses"]
    assert unit["RuntimeDirectoryMode"] == ["0750"]  # root and the group senses


# --- the example configuration ---------------------------------------------------------------


def _example_config() -> dict[str, object]:
    result = _install("--print-config")
    assert result.returncode == 0, result.stderr
    return tomllib.loads(result.stdout)


def test_example_config_is_valid_for_the_daemon() -> None:
    config = parse_config(_example_config(), source="install.sh --print-config")
    # A station must not fall back to replaying a recording when its I2C bus is missing.
    assert config.hardware.mode == "real"
    assert str(config.station.data_dir) == _install_constant("DATA_DIR")
    assert str(config.inference.models_dir) == _install_constant("MODELS_DIR")


def test_example_config_points_at_models_the_installer_copies() -> None:
    # install.sh copies the checkout's models/ to MODELS_DIR; every model path in the example
    # must exist there, or the installed station starts without its model.
    config = parse_config(_example_config())
    installed = Path(_install_constant("MODELS_DIR"))

    def in_checkout(path: Path) -> Path:
        return PROJECT_ROOT / "models" / path.relative_to(installed)

    assert (in_checkout(config.inference.models_dir / config.nose.model) / "card.json").is_file()
    for concept in config.eye.concepts:
        assert in_checkout(concept).is_file(), concept


def test_every_commented_example_in_the_config_parses_when_uncommented() -> None:
    # A user enables a block by deleting the leading "# "; that must give a valid file.
    text = _install("--print-config").stdout
    uncommented = re.sub(r"^# (\[|\w+ = )", r"\1", text, flags=re.MULTILINE)
    assert uncommented != text
    config = parse_config(tomllib.loads(uncommented))
    assert [a.address for a in config.nose.adcs] == [0x48]
    assert config.nose.sensors[0].load_kohm == 10


# --- enabling I2C without raspi-config -------------------------------------------------------

PI_OS_CONFIG_TXT = """\
# For more options and information see http://rptl.io/configtxt
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on
dtparam=audio=on
camera_auto_detect=1
[cm4]
otg_mode=1
[all]
[cm5]
dtoverlay=dwc2,dr_mode=host
"""


def _enable_i2c(config_txt: Path) -> tuple[str, str]:
    result = _sourced(
        'enable_i2c_in_config_txt "$1"; echo "reboot=$REBOOT_NEEDED"', str(config_txt)
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, config_txt.read_text()


def test_i2c_is_enabled_for_every_board_once_and_needs_a_reboot(tmp_path: Path) -> None:
    config_txt = tmp_path / "config.txt"
    config_txt.write_text(PI_OS_CONFIG_TXT)
    out, text = _enable_i2c(config_txt)
    assert "reboot=1" in out
    active = [line for line in text.splitlines() if not line.startswith("#")]
    # Appended after an [all], not inside the file's last section ([cm5] boards only).
    assert active[-2:] == ["[all]", "dtparam=i2c_arm=on"]
    out, again = _enable_i2c(config_txt)
    assert "reboot=0" in out
    assert "already on" in out
    assert again == text


def test_i2c_switched_off_is_switched_on_in_place(tmp_path: Path) -> None:
    config_txt = tmp_path / "config.txt"
    config_txt.write_text("dtparam=audio=on\ndtparam=i2c_arm=off\n")
    out, text = _enable_i2c(config_txt)
    assert "reboot=1" in out
    assert text == "dtparam=audio=on\ndtparam=i2c_arm=on\n"


@pytest.mark.parametrize(
    "line", ["dtparam=i2c_arm=on", "dtparam=spi=on,i2c_arm=on", "dtparam=i2c=on"]
)
def test_i2c_already_on_is_left_alone(tmp_path: Path, line: str) -> None:
    config_txt = tmp_path / "config.txt"
    config_txt.write_text(f"{line}\n")
    out, text = _enable_i2c(config_txt)
    assert "reboot=0" in out
    assert text == f"{line}\n"


# --- the systemd unit ------------------------------------------------------------------------


@needs_systemd_analyze
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart= is executable, and /opt/senses/venv exists only on an
    # installed Pi. The copy differs in that one path, pointing at this venv's real `senses`.
    original = UNIT.read_text()
    copy = tmp_path / UNIT.name
    copy.write_text(
        original.replace("ExecStart=/opt/senses/venv/bin/senses", f"ExecStart={SENSES_IN_VENV}")
    )
    assert copy.read_text() != original
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 even for unknown keys or bad values; it only warns. So: no output at all.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert result.stdout.strip() == "", result.stdout


@needs_systemd_analyze
def test_unit_keeps_its_hardening(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    score = re.search(r"Overall exposure level for senses\.service: ([\d.]+)", result.stdout)
    assert score is not None, result.stdout[-2000:]
    assert float(score.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_is_a_notify_service_with_a_watchdog_that_restarts_it() -> None:
    unit = _unit_settings()
    assert unit["Type"] == ["notify"]
    assert int(unit["WatchdogSec"][0].removesuffix("s")) >= 10
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartSec"]
    assert unit["TimeoutStopSec"] == ["10"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["WantedBy"] == ["multi-user.target"]


def test_unit_runs_what_the_installer_installs() -> None:
    unit = _unit_settings()
    venv = _install_constant("VENV")
    config_file = _install_constant("CONFIG_FILE")
    assert unit["ExecStart"] == [f"{venv}/bin/senses run --config {config_file}"]
    assert unit["User"] == [_install_constant("SERVICE_USER")]
    assert unit["ReadWritePaths"] == [_install_constant("DATA_DIR")]
    assert unit["Environment"] == [
        f"SENSES_DATA_DIR={_install_constant('DATA_DIR')}",
        f"SENSES_MODELS_DIR={_install_constant('MODELS_DIR')}",
    ]
    doc_dir = _install_constant("DOC_DIR")
    for document in unit["Documentation"][0].split():
        path = Path(document.removeprefix("file:"))
        assert path.parent == Path(doc_dir) and (HARDWARE / path.name).is_file(), document
    # A group the unit names but the installer never creates stops the service (216/GROUP).
    groups = set(unit["SupplementaryGroups"][0].split())
    assert groups <= set(_install_constant("SERVICE_GROUPS").split())


def test_unit_sandbox_allows_exactly_the_senses_devices_and_bluez() -> None:
    unit = _unit_settings()
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["PrivateTmp"] == ["yes"]
    assert unit["ProtectHome"] == ["yes"]
    assert unit["DevicePolicy"] == ["closed"]
    allowed = {rule.split()[0] for rule in unit["DeviceAllow"]}
    assert {"char-i2c", "char-video4linux", "char-media", "char-dma_heap", "char-alsa"} <= allowed
    # These would hide the devices or cut the daemon off the D-Bus system bus (BlueZ).
    for forbidden in ("PrivateDevices", "PrivateNetwork", "IPAddressDeny", "ProcSubset"):
        assert forbidden not in unit
    families = unit["RestrictAddressFamilies"][0].split()
    assert {"AF_UNIX", "AF_BLUETOOTH", "AF_INET", "AF_INET6", "AF_NETLINK"} <= set(families)


# --- udev rules ------------------------------------------------------------------------------

UDEV_TOKEN = re.compile(
    r'\s*(?P<key>[A-Z_]+(?:\{[^}]+\})?)(?P<op>==|!=|\+=|-=|:=|=)"(?P<value>[^"]*)"\s*,?'
)
UDEV_MATCH_KEYS = {"SUBSYSTEM", "KERNEL", "ACTION", "DRIVERS", "SUBSYSTEMS", "KERNELS"}
UDEV_ASSIGN_KEYS = {"GROUP", "MODE", "OWNER", "SYMLINK"}


def _udev_rules() -> list[dict[str, tuple[str, str]]]:
    rules = []
    for number, line in enumerate(UDEV_RULES.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens: dict[str, tuple[str, str]] = {}
        position = 0
        while position < len(line):
            token = UDEV_TOKEN.match(line, position)
            assert token, f"99-senses.rules:{number}: cannot parse {line[position:]!r}"
            tokens[token["key"]] = (token["op"], token["value"])
            position = token.end()
        matches = {k for k, (op, _) in tokens.items() if op in ("==", "!=")}
        assigns = {k for k, (op, _) in tokens.items() if op not in ("==", "!=")}
        assert matches and matches <= UDEV_MATCH_KEYS, f"line {number}: match keys {matches}"
        assert assigns and assigns <= UDEV_ASSIGN_KEYS, f"line {number}: assignments {assigns}"
        rules.append(tokens)
    return rules


def test_udev_rules_give_the_i2c_bus_to_group_i2c() -> None:
    rules = _udev_rules()
    i2c = [r for r in rules if r.get("SUBSYSTEM") == ("==", "i2c-dev")]
    assert i2c and i2c[0]["GROUP"] == ("=", "i2c") and i2c[0]["MODE"] == ("=", "0660")
    dma_heap = [r for r in rules if r.get("SUBSYSTEM") == ("==", "dma_heap")]
    assert dma_heap and dma_heap[0]["GROUP"] == ("=", "video")


def test_udev_rules_use_only_groups_the_service_user_is_in() -> None:
    groups = set(_install_constant("SERVICE_GROUPS").split())
    for rule in _udev_rules():
        assert rule["GROUP"][1] in groups
        assert rule["MODE"] == ("=", "0660")  # never world-writable
