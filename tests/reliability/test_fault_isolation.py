"""Fault isolation: one sense's hardware fails, the others keep working, and it heals.

One station runs all three senses on emulated hardware (the nose's chips on an emulated I2C bus
at an accelerated clock, the eye on the emulated USB camera, the ear on the emulated USB
microphone) plus the production BlueZ link against BlueZoo, with the SQLite store in between as
in the daemon. Then, one after the other, as in a shed with a flaky cable:

* an EIO storm on the nose's I2C bus (every chip, 70 % of transfers fail);
* the camera's USB cable is pulled;
* the microphone vanishes from USB;
* bluetoothd goes away.

For each fault the test counts what every sense produced before, during and after it. What a
person watching the app would notice is asserted: the other senses keep their pace, the faulty
one says FAILED or DEGRADED while the fault lasts (and, for the camera and microphone, stops
producing rather than producing nonsense), says OK once the fault is gone, and produces again.
After bluetoothd comes back a phone connects and receives live events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bluezoo_harness import PHONE_ADAPTER, STATION_ADAPTER, BlueZoo

from device.clock import ManualClock, ScaledClock, SystemClock
from device.events import ChannelStatus, Health, HealthStatus, NoseReading
from device.link import protocol, uuids
from device.link.bluez import BluezLink
from device.link.core import LinkCore
from device.runtime import Station, build_nose
from device.sinks import StoreSink
from device.store import EventStore

from .station_harness import SENSES, EventLog, build_all_senses, start, station_config, wait_until

#: The nose replays its recording at this speed: one 10 s sample every 1/6 s of real time.
NOSE_SPEED = 60.0
#: The emulated microphone plays its soundscape this much faster than real time, so a few
#: seconds hold several bird calls (the detector's cost stays a fraction of one core).
EAR_SPEED = 6.0
BASELINE_S = 6.0
FAULT_HOLD_S = 6.0
AFTER_S = 6.0
NOTICE_TIMEOUT_S = 15.0
RECOVERY_TIMEOUT_S = 25.0
#: During another sense's fault a healthy sense must keep at least this share of its
#: baseline pace: the machine is shared and loaded, but a sense that stalls drops to zero.
MIN_PACE_SHARE = 0.3
FAULTY = (HealthStatus.FAILED, HealthStatus.DEGRADED)


@dataclass
class Phase:
    """One fault's timeline (monotonic seconds) and what each sense produced in it."""

    fault: str
    sense: str
    injected_s: float = 0.0
    noticed_s: float = 0.0
    cleared_s: float = 0.0
    recovered_s: float = 0.0
    ended_s: float = 0.0
    during: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"{self.fault:<22} noticed after {self.noticed_s - self.injected_s:4.1f} s, "
            f"healed {self.recovered_s - self.cleared_s:4.1f} s after the fix | during: "
            + ", ".join(f"{s} {n}" for s, n in self.during.items())
            + " | after: "
            + ", ".join(f"{s} {n}" for s, n in self.after.items())
        )


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    return await asyncio.to_thread(wait_until, condition, timeout_s, what)


async def scan_for_station(timeout_s: float) -> BLEDevice | None:
    """Scan from the phone's adapter for the Senses service, as the app does."""
    found: asyncio.Future[BLEDevice] = asyncio.get_running_loop().create_future()

    def seen(device: BLEDevice, adv: AdvertisementData) -> None:
        if uuids.SENSES_SERVICE in adv.service_uuids and not found.done():
            found.set_result(device)

    async with BleakScanner(seen, bluez={"adapter": PHONE_ADAPTER}):
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                return await found
    return None


async def phone_receives_live_events(zoo: BlueZoo) -> set[str]:
    """Connect as a phone, subscribe to every stream, return the event types that arrive."""
    device = None
    for _attempt in range(3):
        device = await scan_for_station(4.0)
        if device is not None:
            break
        await zoo.remove_devices(PHONE_ADAPTER)  # BlueZoo announces a device once per scan
    assert device is not None, "the phone cannot find the station after bluetoothd came back"
    inbox = protocol.Inbox()
    received: set[str] = set()
    async with BleakClient(device, bluez={"adapter": PHONE_ADAPTER}) as client:

        def receiver(uuid: str) -> Callable[[object, bytearray], None]:
            def receive(_characteristic: object, data: bytearray) -> None:
                received.update(m.type for m in inbox.feed(uuid, bytes(data)))

            return receive

        for uuid in uuids.STREAMS.values():
            await client.start_notify(uuid, receiver(uuid))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10.0):
                while not {"nose", "concept"} <= received:
                    await asyncio.sleep(0.1)
    return received


@pytest.mark.asyncio
async def test_a_fault_in_one_sense_leaves_the_others_running_and_heals(
    bluezoo: BlueZoo, tmp_path: Path
) -> None:
    config = station_config(tmp_path / "data")
    config.station.data_dir.mkdir(parents=True)
    log = EventLog()
    store = EventStore(config.store_path)
    # The store first, as in the daemon: the link sends an event once it is committed.
    station = Station(SystemClock(), [StoreSink(store), log])
    built = build_all_senses(config, ScaledClock(NOSE_SPEED))
    assert built.nose is not None and built.nose.emulation is not None
    assert built.eye is not None and built.eye.faults is not None
    assert built.ear is not None and built.ear.microphone is not None
    i2c_faults = built.nose.emulation.faults
    camera = built.eye.faults
    microphone = built.ear.microphone
    microphone.speed = EAR_SPEED
    link = BluezLink(
        LinkCore(
            store,
            station_name="senses-rel",
            clock=SystemClock(),
            handlers=built.control_handlers(station.summary),
        ),
        store,
        SystemClock(),
        adapter=STATION_ADAPTER,
        bus_address=bluezoo.bus_address,
    )
    start(station, built)
    station.add_sense("link", link.run)
    phases: list[Phase] = []
    began_s = time.monotonic()
    try:
        await wait_for(
            lambda: bool(log.health("link", [HealthStatus.OK], began_s, "advertising as")),
            NOTICE_TIMEOUT_S,
            "the link advertises on BlueZoo",
        )
        await wait_for(
            lambda: all(log.produced(s, began_s) for s in SENSES),
            30.0,
            "every sense produces its first event",
        )
        baseline_from_s = time.monotonic()
        await asyncio.sleep(BASELINE_S)
        baseline_to_s = time.monotonic()
        pace = {
            s: log.produced(s, baseline_from_s, baseline_to_s) / (baseline_to_s - baseline_from_s)
            for s in SENSES
        }
        print(f"\nbaseline pace (events/s): { ({s: round(p, 2) for s, p in pace.items()}) }")

        async def run_fault(
            phase: Phase,
            inject: Callable[[], Awaitable[None]],
            clear: Callable[[], Awaitable[None]],
            fault_text: str,
            healed: Callable[[float], bool],
        ) -> None:
            phase.injected_s = time.monotonic()
            await inject()
            phase.noticed_s = await wait_for(
                lambda: bool(log.health(phase.sense, FAULTY, phase.injected_s, fault_text)),
                NOTICE_TIMEOUT_S,
                f"{phase.fault}: {phase.sense} reports FAILED/DEGRADED ({fault_text!r})",
            )
            await asyncio.sleep(FAULT_HOLD_S)
            phase.cleared_s = time.monotonic()
            await clear()
            phase.recovered_s = await wait_for(
                lambda: healed(phase.cleared_s),
                RECOVERY_TIMEOUT_S,
                f"{phase.fault}: {phase.sense} reports OK and produces again after the fix",
            )
            await asyncio.sleep(AFTER_S)
            phase.ended_s = time.monotonic()
            phase.during = {s: log.produced(s, phase.injected_s, phase.cleared_s) for s in SENSES}
            phase.after = {s: log.produced(s, phase.recovered_s, phase.ended_s) for s in SENSES}
            phases.append(phase)
            print(phase.line())

        # --- the nose: an EIO storm on its I2C bus --------------------------------------------
        nose_components_ok = {"nose.adc@0x48", "nose.adc@0x49", "nose.adc@0x4a", "nose.climate"}

        async def storm() -> None:
            i2c_faults.eio_storm(0.7, seed=8)

        async def calm() -> None:
            i2c_faults.clear()

        def nose_healed(since_s: float) -> bool:
            latest = {c: log.latest_health(c) for c in nose_components_ok}
            if any(h is None or h.status is not HealthStatus.OK for h in latest.values()):
                return False
            readings = [
                a.event
                for a in log.snapshot()
                if a.monotonic_s >= since_s and isinstance(a.event, NoseReading)
            ]
            return bool(readings) and all(
                v.status is not ChannelStatus.ERROR for v in readings[-1].sensors
            )

        nose = Phase("I2C EIO storm (nose)", "nose")
        await run_fault(nose, storm, calm, "", nose_healed)
        storm_readings = [
            a.event
            for a in log.snapshot()
            if nose.noticed_s <= a.monotonic_s < nose.cleared_s and isinstance(a.event, NoseReading)
        ]
        assert any(
            r.temperature_c is None or any(v.status is ChannelStatus.ERROR for v in r.sensors)
            for r in storm_readings
        ), "during the storm no reading showed a failed channel: the storm did not reach the nose"
        assert i2c_faults.injected_count > 0

        # --- the eye: the camera's cable is pulled --------------------------------------------
        async def unplug_camera() -> None:
            camera.unplug()

        async def replug_camera() -> None:
            camera.replug()

        def eye_healed(since_s: float) -> bool:
            return bool(
                log.health("eye", [HealthStatus.OK], since_s, "delivers frames again")
            ) and bool(log.produced("eye", since_s))

        eye = Phase("camera unplugged (eye)", "eye")
        await run_fault(eye, unplug_camera, replug_camera, "", eye_healed)
        # Frames already queued may still be scored just after the failure is reported.
        assert log.produced("eye", eye.noticed_s + 1.0, eye.cleared_s) == 0, (
            "the eye kept reporting concept scores with its camera unplugged"
        )

        # --- the ear: the USB microphone vanishes -----------------------------------------------
        async def vanish() -> None:
            microphone.unplug()

        async def come_back() -> None:
            microphone.plug_in()

        def ear_healed(since_s: float) -> bool:
            return bool(log.health("ear", [HealthStatus.OK], since_s, "is back")) and bool(
                log.produced("ear", since_s)
            )

        ear = Phase("microphone vanished (ear)", "ear")
        await run_fault(ear, vanish, come_back, "", ear_healed)
        # Detections open when it vanished are closed and reported before the FAILED event.
        assert log.produced("ear", ear.noticed_s, ear.cleared_s) == 0, (
            "the ear reported bird detections while its microphone was gone"
        )

        # --- the link: bluetoothd goes away and comes back -------------------------------------
        def link_healed(since_s: float) -> bool:
            return bool(log.health("link", [HealthStatus.OK], since_s, "registered with BlueZ"))

        link_phase = Phase("bluetoothd restarted (link)", "link")
        await run_fault(link_phase, bluezoo.stop, bluezoo.start, "left the system bus", link_healed)
        received = await phone_receives_live_events(bluezoo)
        assert {"nose", "concept"} <= received, (
            f"after bluetoothd came back the phone received only {sorted(received)}"
        )
    finally:
        station.stop()
        await asyncio.to_thread(station.join, 10.0)
        store.close()
        print("Health events, as the app lists them:")
        for arrival in log.snapshot():
            if isinstance(arrival.event, Health):
                h, at_s = arrival.event, arrival.monotonic_s - began_s
                print(f"  {at_s:6.1f} s {h.component} {h.status}: {h.message}")

    for phase in phases:
        for sense in SENSES:
            if sense == phase.sense:
                continue
            seconds = phase.cleared_s - phase.injected_s
            expected = pace[sense] * seconds * MIN_PACE_SHARE
            assert phase.during[sense] >= max(1.0, expected), (
                f"{phase.fault}: {sense} produced {phase.during[sense]} events in {seconds:.1f} s "
                f"(baseline pace {pace[sense]:.2f}/s): another sense's fault slowed it down"
            )
        for sense in SENSES:
            assert phase.after[sense] >= 1, (
                f"{phase.fault}: {sense} produced nothing in the {AFTER_S:g} s after the fix"
            )
    summary = {s["name"]: s for s in station.summary()}
    assert all(summary[s]["restarts"] == 0 for s in (*SENSES, "link")), (
        f"a fault escaped its sense and crashed it: {summary}"
    )
    assert summary["eye"]["camera_reconnects"] >= 1
    assert summary["ear"]["reconnects"] >= 1


STORM_SAMPLES = 60
CALM_SAMPLES = 20


def test_an_eio_storm_gives_one_alarm_per_nose_component_not_a_flapping_one(
    tmp_path: Path,
) -> None:
    """Ten simulated minutes of a 70 % EIO storm, then calm: the app shows each nose component
    failing once and recovering once, not a notification every few samples (the BLE link's
    health stream has little bandwidth, and a flickering alarm is ignored)."""
    config = station_config(tmp_path / "data")
    clock = ManualClock()
    nose = build_nose(config, clock, emulated=True)
    assert nose.emulation is not None
    faults = nose.emulation.faults
    service = nose.service

    def run(samples: int) -> list[Health]:
        health: list[Health] = []
        for _ in range(samples):
            health += [e for e in service.step() if isinstance(e, Health)]
            clock.advance(config.nose.sample_period_s)
        return health

    run(3)
    faults.eio_storm(0.7, seed=8)
    during = [h for h in run(STORM_SAMPLES) if h.component.startswith("nose.")]
    faults.clear()
    after = [h for h in run(CALM_SAMPLES) if h.component.startswith("nose.")]
    by_component: dict[str, list[str]] = {}
    for h in during:
        by_component.setdefault(h.component, []).append(str(h.status))
    print(f"\nduring the storm: {by_component}")
    assert faults.injected_count > 0 and by_component, "the storm did not reach the nose"
    # One lucky read may look like a recovery once; after that the alarm must stay up.
    flapping = {c: s for c, s in by_component.items() if s.count("ok") > 1}
    assert not flapping, (
        f"nose components flapped between FAILED and OK during the storm: {flapping}"
    )
    recovered = {h.component for h in after if h.status is HealthStatus.OK}
    assert set(by_component) <= recovered, (
        f"components that never recovered after the storm: {set(by_component) - recovered}"
    )
