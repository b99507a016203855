"""The one local channel from the ``senses`` command to the running daemon's link.

A Unix socket (mode 0660: root and the ``senses`` group), by default
``/run/senses/link.sock`` under systemd (``RuntimeDirectory=senses``), configurable as
``[link] control_socket``. The protocol is JSON lines: the client sends one request, the
daemon answers with one line, or with a stream of lines ending in one that has ``"done"``:

* ``{"op": "pair", "seconds": 120}`` → the window's events (``{"event": "passkey",
  "passkey": "123456", ...}``) until a phone bonded or the window closed, then
  ``{"done": true, "ok": <bonded>}``. Closing the connection (Ctrl-C) closes the window.
* ``{"op": "phones"}`` → ``{"ok": true, "phones": [{address, name, bonded_at, last_seen}]}``
* ``{"op": "forget", "address": "AA:BB:..."}`` → ``{"ok": true, "forgotten": {...}}``

Any refusal is ``{"ok": false, "error": "<what to do>"}``. So ``senses link pair``,
``phones`` and ``forget`` act through the daemon, never behind its back on bluetoothd.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final, Protocol

from device.link.pairing import PairingError, PhoneRecord

log = logging.getLogger(__name__)

SOCKET_NAME: Final = "link.sock"
SYSTEMD_RUNTIME_DIR: Final = Path("/run/senses")
SOCKET_MODE: Final = 0o660
MAX_REQUEST_BYTES: Final = 4096
CLIENT_TIMEOUT_S: Final = 10.0
"""A one-line answer (phones, forget) comes within this; ``pair`` streams for its window."""

Send = Callable[[dict[str, Any]], Awaitable[None]]


def default_socket_path(data_dir: Path) -> Path:
    """Where the daemon listens unless ``[link] control_socket`` says otherwise."""
    for variable in ("SENSES_RUNTIME_DIR", "RUNTIME_DIRECTORY"):
        value = os.environ.get(variable)
        if value:
            return Path(value.split(":")[0]) / SOCKET_NAME
    if SYSTEMD_RUNTIME_DIR.is_dir():
        return SYSTEMD_RUNTIME_DIR / SOCKET_NAME
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "senses" / SOCKET_NAME
    return data_dir / SOCKET_NAME


class LinkControl(Protocol):
    """What the daemon's link answers on the socket."""

    async def pair(self, seconds: float | None, send: Send) -> bool: ...

    def phones(self) -> list[PhoneRecord]: ...

    async def forget(self, address: str) -> PhoneRecord: ...


class ControlSocketServer:
    """Serves :class:`LinkControl` on a Unix socket, on the link's event loop."""

    def __init__(self, path: Path, control: LinkControl) -> None:
        self.path = path
        self.control = control
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if await _answers(self.path):
                raise PairingError(
                    f"another station daemon already listens on {self.path}; stop it first "
                    "('systemctl status senses')"
                )
            self.path.unlink()  # left over by a daemon that did not stop cleanly
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path))
        os.chmod(self.path, SOCKET_MODE)
        log.info("link: control socket %s", self.path)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2.0)
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def send(message: dict[str, Any]) -> None:
            writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()

        try:
            line = await asyncio.wait_for(reader.readline(), CLIENT_TIMEOUT_S)
            request = _parse(line)
            await self._answer(request, reader, send)
        except PairingError as e:
            with contextlib.suppress(OSError):
                await send({"ok": False, "done": True, "error": str(e)})
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away
        except Exception:
            log.exception("link: control socket request failed")
            with contextlib.suppress(OSError):
                await send({"ok": False, "done": True, "error": "the daemon failed (see its log)"})
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(
        self, request: dict[str, Any], reader: asyncio.StreamReader, send: Send
    ) -> None:
        op = request.get("op")
        if op == "phones":
            await send({"ok": True, "phones": [asdict(p) for p in self.control.phones()]})
        elif op == "forget":
            address = request.get("address")
            if not isinstance(address, str) or not address:
                raise PairingError("forget needs an address, e.g. 'senses link forget AA:BB:..'")
            forgotten = await self.control.forget(address)
            await send({"ok": True, "forgotten": asdict(forgotten)})
        elif op == "pair":
            seconds = request.get("seconds")
            if seconds is not None and not isinstance(seconds, int | float):
                raise PairingError("pair takes a number of seconds")
            pairing = asyncio.ensure_future(self.control.pair(seconds, send))
            hang_up = asyncio.ensure_future(reader.read(1))  # EOF: the client went away
            done, _ = await asyncio.wait({pairing, hang_up}, return_when=asyncio.FIRST_COMPLETED)
            if pairing not in done:
                pairing.cancel()  # the pair command was interrupted: the window closes
                with contextlib.suppress(asyncio.CancelledError, PairingError):
                    await pairing
                return
            hang_up.cancel()
            await send({"ok": pairing.result(), "done": True})
        else:
            raise PairingError(f"unknown request {op!r}: pair, phones or forget")


def _parse(line: bytes) -> dict[str, Any]:
    if not line or len(line) > MAX_REQUEST_BYTES:
        raise PairingError("send one JSON request line")
    try:
        request = json.loads(line)
    except ValueError as e:
        raise PairingError(f"not a JSON request: {e}") from e
    if not isinstance(request, dict):
        raise PairingError("a request is a JSON object with an 'op'")
    return request


async def _answers(path: Path) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


# ---------------------------------------------------------------------------------- client


def _not_running(path: Path, error: OSError) -> PairingError:
    if isinstance(error, PermissionError):
        return PairingError(
            f"no permission to talk to the station daemon at {path}: run as root (sudo) or "
            "as a member of the group 'senses' ('sudo usermod -aG senses $USER', then log in "
            "again)"
        )
    return PairingError(
        f"the station daemon is not running (nothing listens on {path}): start it with "
        "'sudo systemctl start senses' (or 'senses run'), then try again. If it runs with "
        "another config, pass the same --config (its [link] control_socket)"
    )


def request(
    path: Path, message: dict[str, Any], *, timeout_s: float | None = None
) -> Iterator[dict[str, Any]]:
    """Send ``message`` to the daemon; yield its answer lines until the last one.

    Raises :class:`PairingError` (with what to do) when no daemon listens or access is denied.
    ``timeout_s``: longest wait for any one line (None: wait as long as the daemon streams).
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CLIENT_TIMEOUT_S)
        try:
            sock.connect(str(path))
        except OSError as e:
            raise _not_running(path, e) from e
        sock.sendall(json.dumps(message).encode() + b"\n")
        sock.settimeout(timeout_s)
        with sock.makefile("rb") as lines:
            for raw in lines:
                answer = json.loads(raw)
                yield answer
                if answer.get("done") or "event" not in answer:
                    return
        raise PairingError("the station daemon hung up without answering (see its log)")
    finally:
        sock.close()
