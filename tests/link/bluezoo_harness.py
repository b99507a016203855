"""A BlueZ stand-in for tests: a private D-Bus daemon with BlueZoo on it.

BlueZoo (``pip install bluezoo``, GPL-2.0, a test tool only) implements ``org.bluez``
in user space: adapters, LE advertising, GATT applications and the client-side GATT objects
bleak reads. The fixtures here start

* a private ``dbus-daemon`` (Debian package ``dbus``), used as the *system* bus by pointing
  ``DBUS_SYSTEM_BUS_ADDRESS`` at it, so neither the machine's bus nor its bluetoothd is touched;
* ``bluezoo --auto-enable --scan-interval 1`` with two adapters: ``hci0`` is the station,
  ``hci1`` the phone that bleak scans and connects from.

No radio, kernel module or root is needed. When ``dbus-daemon`` is missing the tests skip on a
developer machine and fail in CI (``CI`` set), where they must run.

Import the fixtures into a test module (``from bluezoo_harness import bluezoo, ...``); they are
kept out of ``conftest.py`` so that file stays shared with the other link tests.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import pytest_asyncio
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

STATION_ADAPTER = "hci0"
PHONE_ADAPTER = "hci1"
STATION_ADDRESS = "00:11:22:33:44:55"
PHONE_ADDRESS = "00:AA:BB:CC:DD:EE"
STARTUP_DEADLINE_S = 10.0
STOP_DEADLINE_S = 5.0
INSTALL_HINT = "apt-get install -y dbus"


def _missing(what: str) -> NoReturn:
    """Skip on a developer machine, fail in CI: CI must run the BlueZ tests."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI must run the BlueZoo tests ({INSTALL_HINT})", pytrace=False)
    pytest.skip(f"{what} ({INSTALL_HINT} to run the BlueZoo tests)")


def _bluezoo_command() -> list[str]:
    # The console script sits next to the interpreter in a venv; the module works anywhere.
    script = Path(sys.executable).with_name("bluezoo")
    if script.exists():
        return [str(script)]
    return [
        sys.executable,
        "-c",
        "import sys; from bluezoo import bluezoo; sys.exit(bluezoo.main())",
    ]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class DBusDaemon:
    """A private message bus; ``address`` is what DBUS_SYSTEM_BUS_ADDRESS points at."""

    address: str
    process: subprocess.Popen[bytes]

    async def call(
        self,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: list[Any] | None = None,
        destination: str = "org.bluez",
    ) -> Message:
        """One method call on a fresh connection; the reply (which may be an error)."""
        bus = await MessageBus(bus_address=self.address).connect()
        try:
            return await bus.call(
                Message(
                    destination=destination,
                    path=path,
                    interface=interface,
                    member=member,
                    signature=signature,
                    body=body or [],
                )
            )
        finally:
            bus.disconnect()

    async def managed_objects(self) -> dict[str, dict[str, dict[str, Variant]]]:
        reply = await self.call("/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
        if reply.message_type == MessageType.ERROR:
            return {}
        objects: dict[str, dict[str, dict[str, Variant]]] = reply.body[0]
        return objects


@dataclass
class BlueZoo:
    """BlueZoo on a private bus: ``hci0`` (the station) and ``hci1`` (the phone)."""

    bus: DBusDaemon
    log_path: Path
    adapters: tuple[str, ...] = (STATION_ADDRESS, PHONE_ADDRESS)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bus_address(self) -> str:
        return self.bus.address

    async def start(self, *, adapters: tuple[str, ...] | None = None) -> None:
        """Start BlueZoo (as bluetoothd starting) and wait until every adapter is powered."""
        if adapters is not None:
            self.adapters = adapters
        command = [*_bluezoo_command(), "--auto-enable", "--scan-interval", "1"]
        for address in self.adapters:
            command += ["-a", address]
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus.address}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        await self._wait_powered(len(self.adapters))
        if self.adapters:
            # BlueZoo reports an LE advertiser only when the advertisement says
            # Discoverable=true or the advertising adapter is discoverable; set both
            # paths up as on a station (timeout 0: discoverable until told otherwise).
            await self.set_adapter(STATION_ADAPTER, "DiscoverableTimeout", Variant("u", 0))
            await self.set_adapter(STATION_ADAPTER, "Discoverable", Variant("b", True))

    async def stop(self) -> None:
        """Stop BlueZoo, as bluetoothd exiting: org.bluez leaves the bus."""
        if self.process is not None:
            await asyncio.to_thread(_stop, self.process)
            self.process = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def set_adapter(self, adapter: str, name: str, value: Variant) -> None:
        reply = await self.bus.call(
            f"/org/bluez/{adapter}",
            "org.freedesktop.DBus.Properties",
            "Set",
            "ssv",
            ["org.bluez.Adapter1", name, value],
        )
        if reply.message_type == MessageType.ERROR:
            raise AssertionError(f"setting {adapter}.{name}: {reply.error_name} {reply.body}")

    async def remove_devices(self, adapter: str) -> None:
        """Forget every device ``adapter`` has seen, so the next scan reports them afresh.

        BlueZoo announces a device once (InterfacesAdded) and never again while it is known,
        so a scan retry must start from an empty device list to see anything.
        """
        prefix = f"/org/bluez/{adapter}/dev_"
        for path in await self.bus.managed_objects():
            if path.startswith(prefix) and path.count("/") == 4:
                await self.bus.call(
                    f"/org/bluez/{adapter}", "org.bluez.Adapter1", "RemoveDevice", "o", [path]
                )

    async def _wait_powered(self, count: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_DEADLINE_S
        while loop.time() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"bluezoo exited: {self.log_path.read_text()[-2000:]}")
            objects = await self.bus.managed_objects()
            adapters = [o.get("org.bluez.Adapter1") for o in objects.values()]
            powered = [a for a in adapters if a is not None and a["Powered"].value]
            if objects and len(powered) == count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"bluezoo not ready after {STARTUP_DEADLINE_S} s: {self.log_path.read_text()[-2000:]}"
        )


def _start_dbus_daemon(tmp_path: Path) -> DBusDaemon:
    executable = shutil.which("dbus-daemon")
    if executable is None:
        _missing("dbus-daemon is not installed")
    socket = tmp_path / "system_bus_socket"
    log_path = tmp_path / "dbus-daemon.log"
    with log_path.open("wb") as log:
        # The session configuration: no policy to satisfy, and it only listens where told.
        process = subprocess.Popen(
            [
                executable,
                "--session",
                "--nofork",
                "--print-address",
                f"--address=unix:path={socket}",
            ],
            stdout=subprocess.PIPE,
            stderr=log,
        )
    assert process.stdout is not None
    address = process.stdout.readline().decode().strip()
    if not address:
        _stop(process)
        raise AssertionError(f"dbus-daemon printed no address: {log_path.read_text()}")
    return DBusDaemon(address=address, process=process)


@pytest.fixture
def dbus_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DBusDaemon]:
    """A private bus that this test sees as the system bus, with nothing on it yet."""
    daemon = _start_dbus_daemon(tmp_path)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", daemon.address)
    try:
        yield daemon
    finally:
        _stop(daemon.process)


@pytest_asyncio.fixture
async def bluezoo(dbus_daemon: DBusDaemon, tmp_path: Path) -> AsyncIterator[BlueZoo]:
    """BlueZoo with a powered, discoverable station adapter (hci0) and a phone adapter (hci1).

    Its log is ``bluezoo.log`` in the test's tmp_path, and is shown when a test fails.
    """
    if importlib.util.find_spec("bluezoo") is None:
        _missing("BlueZoo is not installed (pip install -e '.[dev]')")
    zoo = BlueZoo(bus=dbus_daemon, log_path=tmp_path / "bluezoo.log")
    await zoo.start()
    try:
        yield zoo
    finally:
        await zoo.stop()
        # Captured output: pytest shows it only for a failed test.
        print(f"--- {zoo.log_path} (last lines) ---")
        print("\n".join(zoo.log_path.read_text(errors="replace").splitlines()[-60:]))
