"""Who may bond with the station, and when: the pairing window and the list of bonded phones.

A phone bonds only while a **pairing window** is open (``senses link pair``, a Home Assistant
button, or automatically for the first minutes after start while no phone is bonded yet),
and only one phone per window. The station displays a 6-digit passkey that the phone's user
types into the phone's own pairing dialog (LE Secure Connections passkey entry: the station
is ``DisplayOnly``), so the bond is protected against a man in the middle.

The rules live here, independent of the Bluetooth stack: :class:`PairingWindow` is driven by
the station's BlueZ agent on the Pi (:mod:`device.link.bluez_agent`) and by the Bumble
station's pairing delegate in tests and the demo (:mod:`device.link.bumble_link`). Every
step becomes a :class:`PairingEvent`, which ``senses link pair`` prints and MQTT publishes.

What the window does with bad input:

* a phone asking to pair while the window is closed is refused (no passkey is shown, so it
  cannot finish);
* a second phone asking while another one is pairing is refused, with its address named;
* a pairing that does not finish (wrong passkey, cancelled on the phone) is reported and the
  window stays open for another try;
* the window closing while a phone is still pairing cancels that pairing, and a bond that
  still appears after the window closed is removed (the transport does it: the event says so);
* a phone that bonded closes the window: one phone per window.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from device.errors import SensesError

log = logging.getLogger(__name__)

DEFAULT_WINDOW_S: Final = 120.0
ATTEMPT_TIMEOUT_S: Final = 30.0
"""SMP gives up a pairing after 30 s (Core 5.4 Vol 3 Part H §3.4): after that an unfinished
attempt no longer holds the window against another phone."""
PASSKEY_DIGITS: Final = 6


class PairingError(SensesError, RuntimeError):
    """A pairing request cannot be carried out; the message says what to do."""


class EventKind(enum.StrEnum):
    OPENED = "opened"
    """The window opened (or was extended); phones may ask to pair."""
    PASSKEY = "passkey"
    """A phone asks to pair: type this passkey into it."""
    BONDED = "bonded"
    """A phone bonded; the window is closed."""
    FAILED = "failed"
    """A phone's pairing did not finish; the window stays open."""
    REFUSED = "refused"
    """A phone was refused (window closed, another phone pairing, no passkey possible)."""
    CLOSED = "closed"
    """The window closed without (another) bond."""
    BLUEZ = "bluez"
    """Something happened to bluetoothd that the user should know about."""


@dataclass(frozen=True)
class PairingEvent:
    kind: EventKind
    message: str
    address: str | None = None
    name: str | None = None
    passkey: str | None = None
    remaining_s: float | None = None
    remove_bond: bool = False
    """The transport must remove this phone's bond (it was made outside a window)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = str(self.kind)
        return {k: v for k, v in data.items() if v is not None and k != "remove_bond"}


def format_passkey(passkey: int) -> str:
    """The passkey as the phone asks for it: six digits, leading zeros kept."""
    if not 0 <= passkey < 10**PASSKEY_DIGITS:
        raise ValueError(f"a passkey has {PASSKEY_DIGITS} digits, got {passkey}")
    return f"{passkey:0{PASSKEY_DIGITS}d}"


def _who(address: str, name: str | None) -> str:
    return f"{name!r} ({address})" if name else address


@dataclass
class _Attempt:
    address: str
    name: str | None
    started_s: float


class PairingWindow:
    """The pairing window's state. Call every method on one asyncio loop (the link's)."""

    def __init__(self, *, allow_just_works: bool = False) -> None:
        self.allow_just_works = allow_just_works
        self.listeners: list[Callable[[PairingEvent], None]] = []
        """Called with every event (the socket's ``pair`` clients, MQTT, the log)."""
        self.on_open_changed: Callable[[bool, float], None] | None = None
        """Called with (open, seconds left) when the window opens or closes: the transport
        makes the adapter pairable or not."""
        self._closes_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._attempt: _Attempt | None = None
        self.opened_by: str | None = None

    # --- state ------------------------------------------------------------------------------

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    @property
    def is_open(self) -> bool:
        return self._closes_at is not None

    @property
    def remaining_s(self) -> float:
        if self._closes_at is None:
            return 0.0
        return max(0.0, self._closes_at - self._now())

    @property
    def pairing(self) -> str | None:
        """The address of the phone pairing now, if any."""
        return None if self._attempt is None else self._attempt.address

    def _emit(self, event: PairingEvent) -> None:
        level = (
            logging.WARNING if event.kind in (EventKind.REFUSED, EventKind.FAILED) else logging.INFO
        )
        log.log(level, "link: pairing: %s", event.message)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("link: a pairing listener failed")

    def _changed(self) -> None:
        if self.on_open_changed is not None:
            try:
                self.on_open_changed(self.is_open, self.remaining_s)
            except Exception:
                log.exception("link: making the adapter (not) pairable failed")

    # --- opening and closing ------------------------------------------------------------------

    def open(self, seconds: float = DEFAULT_WINDOW_S, *, by: str = "senses link pair") -> None:
        """Open the window for ``seconds`` (or extend an open one to that much time left)."""
        if not seconds > 0:
            raise PairingError(f"a pairing window lasts more than 0 s, got {seconds:g}")
        was_open = self.is_open
        self._closes_at = self._now() + seconds
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expired)
        self.opened_by = by
        self._emit(
            PairingEvent(
                EventKind.OPENED,
                f"pairing {'stays' if was_open else 'is'} open for {seconds:.0f} s ({by}): "
                "connect from the Senses app (or the phone's Bluetooth settings) and type the "
                "passkey the station shows into the phone's pairing dialog",
                remaining_s=seconds,
            )
        )
        self._changed()

    def close(self, why: str) -> None:
        """Close the window now; a phone still pairing has its pairing cancelled."""
        if not self.is_open:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._closes_at = None
        attempt, self._attempt = self._attempt, None
        self._changed()
        if attempt is not None:
            self._emit(
                PairingEvent(
                    EventKind.CLOSED,
                    f"the pairing window closed ({why}) while {_who(attempt.address, attempt.name)}"
                    " was still pairing: its pairing is cancelled and no bond is kept. Run "
                    "'senses link pair' again and type the passkey within the window",
                    address=attempt.address,
                    name=attempt.name,
                    remove_bond=True,
                )
            )
        else:
            self._emit(PairingEvent(EventKind.CLOSED, f"the pairing window closed ({why})"))

    def _expired(self) -> None:
        self._timer = None
        self.close("its time ran out")

    # --- what the stack asks ------------------------------------------------------------------

    def _claim(self, address: str, name: str | None) -> PairingEvent | None:
        """Refusal event if ``address`` may not pair now, else None (and it holds the window)."""
        who = _who(address, name)
        if not self.is_open:
            return PairingEvent(
                EventKind.REFUSED,
                f"{who} asked to pair while no pairing window is open: refused. Run "
                "'senses link pair' on the station to let a phone pair",
                address=address,
                name=name,
            )
        attempt = self._attempt
        now = self._now()
        if (
            attempt is not None
            and attempt.address != address
            and now - attempt.started_s < ATTEMPT_TIMEOUT_S
        ):
            return PairingEvent(
                EventKind.REFUSED,
                f"a second phone, {who}, asked to pair while {_who(attempt.address, attempt.name)}"
                " is pairing: refused (one phone per window; run 'senses link pair' again "
                "for the next one)",
                address=address,
                name=name,
            )
        self._attempt = _Attempt(address, name, now)
        return None

    def may_pair(self, address: str, name: str | None) -> bool:
        """A phone sent a pairing request: may it go on? (A stack that asks before choosing
        the method; BlueZ's agent only hears of the passkey.)"""
        refusal = self._claim(address, name)
        if refusal is not None:
            self._emit(refusal)
            return False
        return True

    def passkey_shown(self, address: str, name: str | None, passkey: int) -> bool:
        """The stack shows ``passkey`` for ``address`` (BlueZ's DisplayPasskey). True if the
        passkey may be shown to the user; False and nobody sees it, so the phone cannot finish."""
        refusal = self._claim(address, name)
        if refusal is not None:
            self._emit(refusal)
            return False
        self._emit(
            PairingEvent(
                EventKind.PASSKEY,
                f"{_who(address, name)} asks to pair: type {format_passkey(passkey)} into the "
                "phone's pairing dialog",
                address=address,
                name=name,
                passkey=format_passkey(passkey),
                remaining_s=self.remaining_s,
            )
        )
        return True

    def just_works_asked(self, address: str, name: str | None) -> bool:
        """A phone that cannot type a passkey asks to bond without one: allowed only inside a
        window and with ``[link] allow_just_works``."""
        if not self.allow_just_works:
            self._emit(
                PairingEvent(
                    EventKind.REFUSED,
                    f"{_who(address, name)} asked to pair without a passkey (it cannot type "
                    "one, or chose 'just works'): refused. Pair from a phone that shows a "
                    "passkey field, or set [link] allow_just_works = true (less secure)",
                    address=address,
                    name=name,
                )
            )
            return False
        refusal = self._claim(address, name)
        if refusal is not None:
            self._emit(refusal)
            return False
        return True

    def refused(self, address: str, name: str | None, why: str) -> None:
        """The transport refused something on its own (e.g. numeric comparison)."""
        self._emit(PairingEvent(EventKind.REFUSED, f"{_who(address, name)}: {why}", address, name))

    def bonded(self, address: str, name: str | None) -> bool:
        """The stack reports a new bond. True if it is this window's; False: remove it."""
        attempt = self._attempt
        if self.is_open and (attempt is None or attempt.address == address):
            self._attempt = None
            self._emit(
                PairingEvent(
                    EventKind.BONDED,
                    f"{_who(address, name)} is bonded: its changes (concepts, thresholds) are "
                    "accepted from now on",
                    address=address,
                    name=name,
                )
            )
            self.close("a phone bonded")
            return True
        why = "outside a pairing window" if not self.is_open else "while another phone pairs"
        self._emit(
            PairingEvent(
                EventKind.REFUSED,
                f"{_who(address, name)} finished bonding {why}: its bond is removed",
                address=address,
                name=name,
                remove_bond=True,
            )
        )
        return False

    def failed(self, address: str, why: str) -> None:
        """The phone pairing now gave up or failed (disconnected, cancelled, wrong passkey)."""
        attempt = self._attempt
        if attempt is None or attempt.address != address:
            return
        self._attempt = None
        tail = (
            f"the window stays open for {self.remaining_s:.0f} s: try again on the phone"
            if self.is_open
            else "run 'senses link pair' to try again"
        )
        self._emit(
            PairingEvent(
                EventKind.FAILED,
                f"pairing with {_who(address, attempt.name)} did not finish ({why}); {tail}",
                address=address,
                name=attempt.name,
            )
        )

    def bluez_event(self, message: str) -> None:
        """bluetoothd left or came back while the window matters."""
        if self._attempt is not None:
            self.failed(self._attempt.address, "bluetoothd restarted")
        if self.is_open:
            self._emit(PairingEvent(EventKind.BLUEZ, message, remaining_s=self.remaining_s))


# ------------------------------------------------------------------------- bonded phones


@dataclass
class PhoneRecord:
    address: str
    name: str | None = None
    bonded_at: float | None = None
    """Wall time the station saw it bond (None: bonded before the station kept a record)."""
    last_seen: float | None = None
    """Wall time of its last connection or disconnection."""


class PhoneRegistry:
    """What the station remembers of bonded phones beyond BlueZ's keys: when they bonded and
    were last seen. BlueZ stays the truth of *whether* a phone is bonded; this file only adds
    times (``<data dir>/link/phones.json``, written atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.phones: dict[str, PhoneRecord] = {}
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.phones = {
                str(address): PhoneRecord(
                    address=str(address),
                    name=record.get("name"),
                    bonded_at=record.get("bonded_at"),
                    last_seen=record.get("last_seen"),
                )
                for address, record in data.get("phones", {}).items()
            }
        except FileNotFoundError:
            self.phones = {}
        except (OSError, ValueError, AttributeError) as e:
            # The bonds themselves are BlueZ's; losing our times is not worth refusing to run.
            log.warning(
                "link: %s is unreadable (%s); bonded-since times start afresh", self.path, e
            )
            self.phones = {}

    def save(self) -> None:
        data = {"phones": {a: asdict(r) for a, r in sorted(self.phones.items())}}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=self.path.parent, prefix=".phones-", delete=False, encoding="utf-8"
            ) as f:
                json.dump(data, f, indent=1)
                tmp = Path(f.name)
            os.replace(tmp, self.path)
        except OSError as e:
            log.warning("link: cannot write %s (%s); phone times are not kept", self.path, e)
            with contextlib.suppress(OSError, UnboundLocalError):
                tmp.unlink()

    def bonded(self, address: str, name: str | None, *, at: float | None = None) -> None:
        now = time.time() if at is None else at
        record = self.phones.setdefault(address, PhoneRecord(address))
        record.name = name or record.name
        record.bonded_at = now
        record.last_seen = now
        self.save()

    def seen(self, address: str, name: str | None = None) -> None:
        record = self.phones.setdefault(address, PhoneRecord(address))
        record.name = name or record.name
        record.last_seen = time.time()
        self.save()

    def forget(self, address: str) -> None:
        if self.phones.pop(address, None) is not None:
            self.save()

    def describe(self, address: str, name: str | None) -> PhoneRecord:
        known = self.phones.get(address)
        if known is None:
            return PhoneRecord(address=address, name=name)
        return PhoneRecord(address, name or known.name, known.bonded_at, known.last_seen)
