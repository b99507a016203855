"""device.systemd against a real AF_UNIX datagram socket standing where systemd's would be.

systemd's side of sd_notify is a datagram socket that reads newline-separated assignments;
these tests bind one (a file, or a name in the abstract namespace), point $NOTIFY_SOCKET at
it as systemd does, and read what the station sent.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device import systemd
from device.errors import SensesError, SystemdEnvironmentError

RECEIVE_TIMEOUT_S = 5.0


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """systemd's end: a bound datagram socket whose path is in $NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(RECEIVE_TIMEOUT_S)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def _received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode("utf-8").split("\n")


def test_ready_reaches_systemd_with_a_status_line(notify_socket: socket.socket) -> None:
    assert systemd.notify_ready("nose, eye and ear running") is True
    assert _received(notify_socket) == ["READY=1", "STATUS=nose, eye and ear running"]


def test_each_notification_is_one_datagram_systemd_understands(
    notify_socket: socket.socket,
) -> None:
    assert systemd.notify_watchdog()
    assert systemd.notify_status("eye: camera unplugged, retrying")
    assert systemd.notify_stopping()
    assert _received(notify_socket) == ["WATCHDOG=1"]
    assert _received(notify_socket) == ["STATUS=eye: camera unplugged, retrying"]
    assert _received(notify_socket) == ["STOPPING=1"]


def test_reloading_carries_the_monotonic_time_systemd_compares(
    notify_socket: socket.socket,
) -> None:
    before_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert systemd.notify_reloading()
    reloading, stamp = _received(notify_socket)
    after_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert reloading == "RELOADING=1"
    key, value = stamp.split("=")
    assert key == "MONOTONIC_USEC"
    assert before_us <= int(value) <= after_us


def test_a_multiline_error_cannot_inject_another_assignment(
    notify_socket: socket.socket,
) -> None:
    # A sense's error message (e.g. a config error listing bad keys) spans lines; a raw
    # newline would make systemd read "READY=1" as a separate, forged assignment.
    systemd.notify_status("nose failed:\nREADY=1\n  I2C bus 1 not found")
    assert _received(notify_socket) == ["STATUS=nose failed:; READY=1; I2C bus 1 not found"]


def test_a_long_status_is_shortened_to_what_systemctl_shows(
    notify_socket: socket.socket,
) -> None:
    systemd.notify_status("x" * 1000)
    (status,) = _received(notify_socket)
    assert status.startswith("STATUS=xxx")
    assert len(status.removeprefix("STATUS=")) == systemd.STATUS_MAX_CHARS


def test_abstract_namespace_sockets_are_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"senses-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(RECEIVE_TIMEOUT_S)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify_ready()
        assert _received(sock) == ["READY=1"]


def test_a_daemon_process_notifies_the_socket_its_parent_bound(
    notify_socket: socket.socket,
) -> None:
    # As under systemd: the socket belongs to another process, the daemon only inherits
    # $NOTIFY_SOCKET.
    subprocess.run(
        [sys.executable, "-c", "from device import systemd; assert systemd.notify_ready('up')"],
        check=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert _received(notify_socket) == ["READY=1", "STATUS=up"]


def test_outside_systemd_every_call_is_a_quiet_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)
    assert systemd.notify_ready("up") is False
    assert systemd.notify_watchdog() is False
    assert systemd.notify_status("fine") is False
    assert systemd.notify_stopping() is False
    assert systemd.notify_reloading() is False
    assert systemd.watchdog_interval_s() is None


def test_a_vanished_systemd_socket_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert systemd.notify_watchdog() is False
    assert "could not notify systemd" in caplog.text
    assert "WATCHDOG=1" in caplog.text


def test_a_notify_socket_that_is_not_af_unix_is_refused_with_advice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    with pytest.raises(SystemdEnvironmentError, match=r"AF_UNIX.*Unset it") as caught:
        systemd.notify_ready()
    assert isinstance(caught.value, SensesError)
    assert isinstance(caught.value, ValueError)


def test_watchdog_pings_at_half_of_watchdog_sec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")  # WatchdogSec=30
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval_s() == pytest.approx(15.0)
    monkeypatch.delenv("WATCHDOG_PID")  # systemd may omit it; then the watchdog is ours
    assert systemd.watchdog_interval_s() == pytest.approx(15.0)


def test_a_child_that_inherited_the_watchdog_does_not_ping_for_its_parent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_interval_s() is None


@pytest.mark.parametrize(
    ("usec", "pid", "named"),
    [("thirty", None, "WATCHDOG_USEC"), ("0", None, "WATCHDOG_USEC"), ("30", "me", "WATCHDOG_PID")],
)
def test_malformed_watchdog_variables_are_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch, usec: str, pid: str | None, named: str
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is None:
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_PID", pid)
    with pytest.raises(SystemdEnvironmentError, match=named):
        systemd.watchdog_interval_s()
