"""``senses run``: the station as a service.

All enabled senses, the store, the BLE link and the optional MQTT output run together. The
main thread only supervises: it writes the status file, pings systemd's watchdog, reloads
the config on ``SIGHUP`` and shuts down on ``SIGTERM`` within :data:`SHUTDOWN_BUDGET_S`.

Reload restarts only what changed: a sense whose config section (or the hardware, inference
or station section it depends on) differs is stopped and rebuilt; the others keep running,
and so does the link, unless its own section changed. A config file that no longer
validates is refused with a Health event, and the running config stays.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from device import systemd
from device.clock import Clock, ScaledClock, SystemClock
from device.config import Config, load_config
from device.errors import ConfigError
from device.events import Health, HealthStatus
from device.link.core import LinkCore
from device.runtime import Station, build_nose
from device.senses import StationSenses, build_station_senses, enabled_senses
from device.sinks import JsonLinesSink, Sink, StoreSink
from device.status import STATUS_FILE, StatusWriter
from device.store import EventStore
from device.threads import name_os_threads

log = logging.getLogger(__name__)

#: systemd's TimeoutStopSec is 10 s; we aim to be gone in half.
SHUTDOWN_BUDGET_S = 5.0
MAIN_LOOP_S = 0.5
#: Sections every sense depends on: a change there restarts them all.
SHARED_SECTIONS = ("hardware", "inference", "station", "emulation")


class Daemon:
    def __init__(self, config_path: Path | None, *, console: Console, print_events: bool) -> None:
        self.config_path = config_path
        self.console = console
        self.config = load_config(config_path)
        self.emulated = self.config.hardware.use_emulation()
        self.nose_clock: Clock = (
            ScaledClock(self.config.emulation.speed) if self.emulated else SystemClock()
        )
        self.realtime = SystemClock()
        self.store = EventStore(self.config.store_path)
        sinks: list[Sink] = [StoreSink(self.store)]  # first: the link sends committed events
        if print_events:
            sinks.append(JsonLinesSink(sys.stdout))
        self.mqtt = self._open_mqtt(self.config)
        if self.mqtt is not None:
            sinks.append(self.mqtt)
        self.station = Station(self.nose_clock, sinks)
        self.senses = StationSenses()
        self.link_core: LinkCore | None = None
        self.link: Any = None
        """The BluezLink sense, once started (the MQTT pairing button opens its window)."""
        self.started_s = time.monotonic()
        self._reload = threading.Event()
        self._stop = threading.Event()
        self.status = StatusWriter(
            self.config.station.data_dir / STATUS_FILE,
            self.station.summary,
            extra={"station": self.config.station.name, "config": str(config_path or "")},
        )

    # --- building ---------------------------------------------------------------------------

    def _open_mqtt(self, config: Config) -> Any:
        if not config.mqtt.enabled:
            return None
        from device.mqtt.sink import MqttSink

        sink = MqttSink(config.mqtt, station_name=config.station.name)
        sink.on_new_food = self._new_food_from_home_assistant
        sink.start()
        return sink

    def _new_food_from_home_assistant(self) -> str:
        """Home Assistant's "New food in the box" (on paho's thread; the nose may have been
        rebuilt by a reload since the sink started, so it is looked up now)."""
        nose = getattr(self, "senses", StationSenses()).nose
        if nose is None:
            return "not marked in: the nose is not running"
        return nose.service.mark_food_in("Home Assistant").message

    def _build(self, names: list[str]) -> StationSenses:
        config = self.config
        return build_station_senses(
            config,
            names,
            emulated=self.emulated,
            nose=lambda: build_nose(
                config,
                self.nose_clock,
                emulated=self.emulated,
                scene_hold_s=config.nose.warmup_s + config.nose.calibration_s,
                preheated_s=0.0,
            ),
            realtime_clock=self.realtime,
        )

    def _start(self, built: StationSenses) -> None:
        for sense in built.senses:
            for event in sense.events:
                self.station.emit(event)
            self.station.add_sense(sense.name, sense.run, counters=sense.counters)
        for name in ("nose", "eye", "ear"):
            if getattr(built, name) is not None:
                setattr(self.senses, name, getattr(built, name))
        self.senses.senses = [
            *(s for s in self.senses.senses if s.name not in {b.name for b in built.senses}),
            *built.senses,
        ]

    def _start_link(self) -> None:
        if not self.config.link.enabled:
            return
        from device.link.bluez import BluezLink
        from device.link.bluez_agent import BluezPairing
        from device.link.cli import socket_path
        from device.link.pairing import PairingWindow, PhoneRegistry

        # The link runs on the real clock even when the nose is emulated at speed: its rate
        # limits and retries are about phones and BlueZ, which live in real time.
        self.link_core = LinkCore(
            self.store,
            station_name=self.config.station.name,
            clock=self.realtime,
            handlers=self.senses.control_handlers(self.station.summary),
            allow_just_works=self.config.link.allow_just_works,
        )
        link_config = self.config.link
        window = PairingWindow(allow_just_works=link_config.allow_just_works)
        pairing = BluezPairing(
            window,
            PhoneRegistry(self.config.station.data_dir / "link" / "phones.json"),
            auto_window_s=link_config.auto_pair_window_s,
            started_s=self.started_s,
        )
        self.link = BluezLink(
            self.link_core,
            self.store,
            self.realtime,
            adapter=link_config.adapter,
            pairing=pairing,
            control_socket=socket_path(self.config),
            pair_window_s=link_config.pair_window_s,
        )
        self.station.add_sense("link", self.link.run)
        if self.mqtt is not None:
            # Home Assistant: a "Pair a phone" button, and the passkey in the pairing state.
            mqtt = self.mqtt
            window.listeners.append(
                lambda event: mqtt.publish_pairing(str(event.kind), event.message, event.passkey)
            )
            mqtt.enable_pairing(lambda: self.link.open_pairing_window(by="Home Assistant"))

    # --- reload -----------------------------------------------------------------------------

    def reload(self) -> None:
        systemd.notify_reloading()
        try:
            new = load_config(self.config_path)
        except ConfigError as e:
            log.error("config reload refused: %s", e)
            self.station.emit(
                Health(
                    ts=self.realtime.wall(),
                    component="config",
                    status=HealthStatus.DEGRADED,
                    message=f"reload refused, still running the previous config: {e}",
                )
            )
            systemd.notify_ready("reload refused: see the log")
            return
        old, self.config = self.config, new
        shared_changed = any(getattr(old, s) != getattr(new, s) for s in SHARED_SECTIONS)
        restart = [
            name
            for name in ("nose", "eye", "ear")
            if shared_changed or getattr(old, name) != getattr(new, name)
        ]
        for name in restart:
            self.station.stop_sense(name)
            setattr(self.senses, name, None)
        wanted = [name for name in restart if getattr(new, name).enabled]
        self._start(self._build(wanted))
        if old.mqtt != new.mqtt or old.station.name != new.station.name:
            # A new sink reads the password file again (it may have been rotated).
            if self.mqtt is not None:
                self.station.sinks = [s for s in self.station.sinks if s is not self.mqtt]
                self.mqtt.close()
            self.mqtt = self._open_mqtt(new)
            if self.mqtt is not None:
                self.station.sinks.append(self.mqtt)
        if shared_changed or old.link != new.link:
            self.station.stop_sense("link")
            self._start_link()
        elif self.link_core is not None:
            # Same link, new senses: the control point must reach the new eye and ear.
            self.link_core.handlers = self.senses.control_handlers(self.station.summary)
        log.info("config reloaded; restarted: %s", ", ".join(restart) or "nothing")
        self.station.emit(
            Health(
                ts=self.realtime.wall(),
                component="config",
                status=HealthStatus.OK,
                message=f"config reloaded; restarted {', '.join(restart) or 'nothing'}",
            )
        )
        systemd.notify_ready(self._status_line())

    # --- running ----------------------------------------------------------------------------

    def _status_line(self) -> str:
        parts = []
        for s in self.station.summary():
            state = "ok" if s["running"] and not s["last_error"] else s["last_error"] or "stopped"
            parts.append(f"{s['name']}: {state}")
        return "; ".join(parts)

    def run(self, seconds: float | None = None) -> int:
        name_os_threads()
        signal.signal(signal.SIGTERM, lambda signum, frame: self._stop.set())
        signal.signal(signal.SIGHUP, lambda signum, frame: self._reload.set())
        if self.emulated:
            self.console.print(
                "no I2C bus at "
                f"{self.config.hardware.i2c_device_path()}: running on emulated hardware "
                f"(hardware.mode = {self.config.hardware.mode!r})"
            )
        self._start(self._build(enabled_senses(self.config)))
        self._start_link()
        systemd.notify_ready(self._status_line())
        watchdog_s = systemd.watchdog_interval_s()
        deadline = None if seconds is None else time.monotonic() + seconds
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if self._reload.is_set():
                    self._reload.clear()
                    self.reload()
                self.status.maybe_write()
                if watchdog_s is not None:
                    systemd.notify_watchdog()
                self._stop.wait(MAIN_LOOP_S if watchdog_s is None else min(MAIN_LOOP_S, watchdog_s))
        except KeyboardInterrupt:
            pass
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        systemd.notify_stopping()
        started = time.monotonic()
        self.station.stop()
        self.station.join(timeout_s=SHUTDOWN_BUDGET_S - 1.0)
        for sense in self.senses.senses:
            if sense.finish is not None:
                for event in sense.finish():
                    self.station.emit(event)
        self.status.maybe_write()
        if self.mqtt is not None:
            self.mqtt.close()
        self.store.close()
        log.info("stopped in %.2f s", time.monotonic() - started)
