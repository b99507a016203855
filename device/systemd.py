"""Tell systemd how the daemon is doing: the sd_notify protocol, without libsystemd.

``senses run`` is a ``Type=notify`` service (hardware/systemd/senses.service). systemd hands it
``$NOTIFY_SOCKET``, an AF_UNIX datagram socket (a path, or ``@name`` in the abstract namespace),
and waits for ``READY=1`` before it counts the service as started. With ``WatchdogSec=`` it also
sets ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID`` and restarts the service when ``WATCHDOG=1`` stops
arriving: that is what catches a daemon that hangs without crashing. Protocol: sd_notify(3),
sd_watchdog_enabled(3).

Outside systemd (tests, a laptop, ``senses demo``) ``$NOTIFY_SOCKET`` is unset and every
function here does nothing and returns ``False``. A notification that cannot be delivered is
logged, never raised: the station keeps sensing even if systemd stopped listening.

Why not a dependency: ``systemd-python`` needs libsystemd headers to build, and ``sdnotify``
has not been released since 2017; the protocol is one datagram.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from device.errors import SystemdEnvironmentError

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"
#: systemd truncates the STATUS= shown by ``systemctl status`` to one line anyway; longer text
#: only costs datagram bytes.
STATUS_MAX_CHARS = 200


def _socket_address(value: str) -> str:
    if value.startswith("@"):
        # The abstract namespace: a leading NUL byte instead of a file name.
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    raise SystemdEnvironmentError(
        f"${NOTIFY_SOCKET_ENV}={value!r} is not an AF_UNIX socket (a path or @name); this "
        "station speaks only that. Unset it when not running under systemd."
    )


def notify(assignment: str, *more: str) -> bool:
    """Send ``KEY=value`` assignments to systemd in one datagram.

    Returns ``True`` when systemd received them, ``False`` outside systemd or when the
    socket is gone (logged as a warning).
    """
    value = os.environ.get(NOTIFY_SOCKET_ENV)
    if not value:
        return False
    address = _socket_address(value)
    message = "\n".join((assignment, *more)).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as e:
        log.warning("could not notify systemd at %s (%s): %s", value, assignment, e)
        return False
    return True


def one_line(text: str) -> str:
    """``text`` as one status line: a newline would start a new sd_notify assignment."""
    line = "; ".join(part.strip() for part in text.splitlines() if part.strip())
    return line if len(line) <= STATUS_MAX_CHARS else line[: STATUS_MAX_CHARS - 1] + "…"


def notify_ready(status: str | None = None) -> bool:
    """The senses are open and producing: systemd now counts the service as started.

    Send it after models are loaded and sensors opened, not before: ``systemctl start``
    (and anything ordered ``After=senses.service``) waits for it.
    """
    return notify("READY=1", *([f"STATUS={one_line(status)}"] if status else []))


def notify_reloading() -> bool:
    """A reload (``SIGHUP``) began; send :func:`notify_ready` when the new config runs.

    ``MONOTONIC_USEC`` lets systemd tell this reload from an older one (sd_notify(3)).
    """
    now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={now_us}")


def notify_stopping() -> bool:
    """Shutdown began: systemd shows "deactivating" and stops expecting watchdog pings."""
    return notify("STOPPING=1")


def notify_status(text: str) -> bool:
    """A one-line, human-readable state for ``systemctl status`` (e.g. a failing sense)."""
    return notify(f"STATUS={one_line(text)}")


def notify_watchdog() -> bool:
    """I am alive. Send it every :func:`watchdog_interval_s` seconds, only while healthy."""
    return notify("WATCHDOG=1")


def watchdog_interval_s() -> float | None:
    """How often to call :func:`notify_watchdog`, or ``None`` when no watchdog is armed.

    Half of ``WatchdogSec=``, as sd_watchdog_enabled(3) advises, so that one late ping is
    not yet a restart. ``None`` also when ``$WATCHDOG_PID`` names another process: the
    variables leaked to a child, which must not ping for its parent.
    """
    usec_text = os.environ.get(WATCHDOG_USEC_ENV)
    if not usec_text:
        return None
    pid_text = os.environ.get(WATCHDOG_PID_ENV)
    if pid_text:
        try:
            pid = int(pid_text)
        except ValueError as e:
            raise SystemdEnvironmentError(
                f"${WATCHDOG_PID_ENV}={pid_text!r} is not a process id; systemd sets it, so "
                f"unset {WATCHDOG_PID_ENV} and {WATCHDOG_USEC_ENV} outside systemd"
            ) from e
        if pid != os.getpid():
            return None
    try:
        usec = int(usec_text)
    except ValueError as e:
        raise SystemdEnvironmentError(
            f"${WATCHDOG_USEC_ENV}={usec_text!r} is not a whole number of microseconds; "
            f"systemd sets it from WatchdogSec=, so unset it outside systemd"
        ) from e
    if usec <= 0:
        raise SystemdEnvironmentError(
            f"${WATCHDOG_USEC_ENV}={usec_text!r} must be a positive number of microseconds; "
            "set WatchdogSec= in the unit instead of this variable"
        )
    return usec / 1_000_000 / 2
