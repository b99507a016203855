"""The pairing window's rules, without a Bluetooth stack, and the bonded phones' records."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from device.link import pairing as pairing_module
from device.link.pairing import (
    EventKind,
    PairingError,
    PairingEvent,
    PairingWindow,
    PhoneRegistry,
    format_passkey,
)

PHONE = "AA:AA:AA:AA:AA:AA"
OTHER = "BB:BB:BB:BB:BB:BB"


def window_with_events(**kwargs: bool) -> tuple[PairingWindow, list[PairingEvent]]:
    window = PairingWindow(**kwargs)
    events: list[PairingEvent] = []
    window.listeners.append(events.append)
    return window, events


@pytest.mark.asyncio
async def test_the_window_closes_by_itself_and_tells_the_adapter() -> None:
    window, events = window_with_events()
    states: list[bool] = []
    window.on_open_changed = lambda is_open, _left: states.append(is_open)
    window.open(0.1)
    assert window.is_open and 0 < window.remaining_s <= 0.1
    await asyncio.sleep(0.2)
    assert not window.is_open
    assert [e.kind for e in events] == [EventKind.OPENED, EventKind.CLOSED]
    assert "time ran out" in events[-1].message
    assert states == [True, False]
    with pytest.raises(PairingError, match="more than 0 s"):
        window.open(0)


@pytest.mark.asyncio
async def test_one_phone_per_window_and_a_second_phone_is_refused() -> None:
    window, events = window_with_events()
    window.open(60)
    assert window.passkey_shown(PHONE, "Pixel", 4321)
    assert events[-1].passkey == "004321" and "'Pixel'" in events[-1].message
    assert not window.passkey_shown(OTHER, None, 999_999)
    assert events[-1].kind is EventKind.REFUSED and "a second phone" in events[-1].message
    assert not window.bonded(OTHER, None)  # it bonded anyway: the transport removes it
    assert events[-1].remove_bond
    assert window.bonded(PHONE, "Pixel")
    assert not window.is_open  # the window closed with the bond
    assert [e.kind for e in events][-2:] == [EventKind.BONDED, EventKind.CLOSED]


@pytest.mark.asyncio
async def test_an_attempt_that_stalls_past_the_smp_timeout_frees_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pairing_module, "ATTEMPT_TIMEOUT_S", 0.05)
    window, _events = window_with_events()
    window.open(60)
    assert window.passkey_shown(PHONE, None, 1)
    await asyncio.sleep(0.1)
    assert window.passkey_shown(OTHER, None, 2)  # the first phone gave up long ago
    window.close("test")


@pytest.mark.asyncio
async def test_a_failed_attempt_keeps_the_window_open_for_another_try() -> None:
    window, events = window_with_events()
    window.open(60)
    window.passkey_shown(PHONE, None, 1)
    window.failed(PHONE, "it disconnected before bonding: wrong passkey or cancelled")
    assert events[-1].kind is EventKind.FAILED and "try again" in events[-1].message
    assert window.is_open and window.pairing is None
    assert window.passkey_shown(OTHER, None, 2)  # the next phone may go now
    window.close("test")


@pytest.mark.asyncio
async def test_just_works_needs_the_switch_and_the_window() -> None:
    strict, events = window_with_events()
    strict.open(60)
    assert not strict.just_works_asked(PHONE, None)
    assert "allow_just_works" in events[-1].message
    strict.close("test")

    lenient, events = window_with_events(allow_just_works=True)
    assert not lenient.just_works_asked(PHONE, None)  # closed window
    lenient.open(60)
    assert lenient.just_works_asked(PHONE, None)
    lenient.close("test")


@pytest.mark.asyncio
async def test_closing_mid_pairing_says_so_and_asks_to_drop_the_half_made_bond() -> None:
    window, events = window_with_events()
    window.open(60)
    window.passkey_shown(PHONE, None, 1)
    window.close("its time ran out")
    assert events[-1].kind is EventKind.CLOSED and events[-1].remove_bond
    assert "no bond is kept" in events[-1].message
    assert not window.bonded(PHONE, None)  # finishing afterwards does not count


@pytest.mark.asyncio
async def test_a_failing_listener_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    window, events = window_with_events()

    def broken(event: PairingEvent) -> None:
        raise RuntimeError("broken listener")

    window.listeners.insert(0, broken)
    with caplog.at_level(logging.ERROR):
        window.open(60)
    assert events and "broken listener" in caplog.text
    window.close("test")


def test_passkeys_keep_their_leading_zeros() -> None:
    assert format_passkey(42) == "000042"
    with pytest.raises(ValueError):
        format_passkey(1_000_000)


def test_the_registry_keeps_times_and_survives_a_corrupt_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "link" / "phones.json"
    registry = PhoneRegistry(path)
    registry.bonded(PHONE, "Pixel", at=1000.0)
    again = PhoneRegistry(path)
    record = again.describe(PHONE, None)
    assert (record.name, record.bonded_at) == ("Pixel", 1000.0)
    # A phone bonded before the station kept records: times unknown, not made up.
    assert again.describe(OTHER, "Old phone").bonded_at is None
    again.forget(PHONE)
    assert json.loads(path.read_text()) == {"phones": {}}

    path.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        broken = PhoneRegistry(path)
    assert broken.phones == {} and "unreadable" in caplog.text
