"""The MQTT sink: the station's events as Home Assistant entities, over paho-mqtt.

Lifecycle::

    sink = MqttSink(config.mqtt, station_name=config.station.name)   # checks files, no network
    sink.start()          # returns at once; paho's network thread connects and reconnects
    station = Station(clock, [..., sink])
    ...
    sink.close()          # says "offline", disconnects; bounded by connect_timeout_s + 1 s

``handle()`` is called under the station's lock, so it never waits for the network: while
connected it hands the message to paho (an append to paho's queue; the socket is written on
paho's network thread), otherwise it puts it in a bounded :class:`~device.mqtt.outbox.Outbox`
that drops and counts the oldest. On every (re)connect the network thread publishes the
discovery configs, then what waited in the outbox, then the latest state of every other topic,
so a broker restarted without persistence, or a Home Assistant restarted meanwhile, is whole
again. The broker announces "offline" on the status topic (the last will) when the station
dies without saying goodbye.

Lock order: ``_lock`` is taken before paho's own locks, never after; the callbacks paho calls
while holding its locks (``on_publish``, ``on_disconnect``) therefore never take ``_lock``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from device import __version__
from device.errors import MqttConfigError
from device.events import Event
from device.mqtt.credentials import read_password, tls_context
from device.mqtt.discovery import (
    PAYLOAD_OFFLINE,
    PAYLOAD_ONLINE,
    PAYLOAD_PAIR,
    PAYLOAD_PRESS,
    DiscoveryBuilder,
    Topics,
    slug,
)
from device.mqtt.outbox import Outbox
from device.mqtt.settings import MqttConfig
from device.mqtt.states import HomeAssistantBridge, OutgoingMessage

log = logging.getLogger(__name__)

GOODBYE_TIMEOUT_S = 1.0
# Paho holds qos>0 messages until the broker acknowledges them. On a reconnect it is handed the
# unacknowledged and queued messages (up to queue_size) plus the announcements (status, the
# discovery configs, the latest state per topic) at once; its own limit leaves room for all.
PAHO_QUEUE_FACTOR = 2
PAHO_QUEUE_ANNOUNCEMENT_ROOM = 100


@dataclass(frozen=True)
class MqttStats:
    """What the sink did so far, for the health summary and ``senses doctor``."""

    connected: bool
    connects: int
    published: int
    queued: int
    dropped: int
    last_error: str | None


class MqttSink:
    """Publishes the station's events to an MQTT broker with Home Assistant discovery."""

    def __init__(
        self,
        config: MqttConfig,
        *,
        station_name: str,
        sw_version: str = __version__,
        tz: tzinfo | None = None,
    ) -> None:
        """Check the settings and files and build the client; nothing touches the network.

        ``tz`` is the time zone of the daily bird count (default: the system's).
        Raises :class:`~device.errors.MqttConfigError` for a missing host, an unreadable
        password file or a bad CA file.
        """
        if config.host is None:
            raise MqttConfigError(
                "mqtt.host is not set: set it to the broker's name or address, "
                'e.g. host = "homeassistant.local"'
            )
        self.config = config
        self.host = config.host
        self.port = config.effective_port
        self.topics = Topics.for_station(
            station_name, base_topic=config.base_topic, discovery_prefix=config.discovery_prefix
        )
        self.bridge = HomeAssistantBridge(
            DiscoveryBuilder(self.topics, station_name, sw_version), tz=tz
        )
        self._outbox = Outbox(config.queue_size)
        # Orders every hand-off to paho: the bridge's memory, the outbox and "connected".
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._closed = False
        self._started = False
        self._counter_lock = threading.Lock()
        self._published = 0
        self._connects = 0
        self._last_error: str | None = None
        self.on_new_food: Callable[[], str] | None = None
        """Called (on paho's thread) when Home Assistant's "New food in the box" button is
        pressed; returns what the station said. Set by the daemon once the nose runs."""
        self._client = self._build_client(
            config, config.client_id or f"senses-{slug(station_name)}"
        )
        self._on_pair: Callable[[], None] | None = None

    def _build_client(self, config: MqttConfig, client_id: str) -> mqtt.Client:
        password = read_password(config)
        context = tls_context(config)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if config.username is not None:
            client.username_pw_set(config.username, password)
        if context is not None:
            client.tls_set_context(context)
        client.will_set(self.topics.status, PAYLOAD_OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
        client.connect_timeout = config.connect_timeout_s
        client.max_queued_messages_set(
            config.queue_size * PAHO_QUEUE_FACTOR + PAHO_QUEUE_ANNOUNCEMENT_ROOM
        )
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # The station's side: called under the station's lock, must never wait for the network.

    def handle(self, event: Event) -> None:
        with self._lock:
            if self._closed:
                return
            for message in self.bridge.messages_for(event):
                if self._connected.is_set():
                    self._publish(message)
                elif not message.is_discovery:
                    # Discovery configs are all announced again on connect.
                    self._outbox.put(message)

    def enable_pairing(self, on_press: Callable[[], None]) -> None:
        """Offer Home Assistant a "Pair a phone" button (``on_press`` runs on paho's thread
        when pressed) and a pairing state with the passkey."""
        with self._lock:
            first = self._on_pair is None
            self._on_pair = on_press
            self.bridge.pairing_enabled = True
            if not first:
                return
            if self._connected.is_set():  # already connected: announce and listen now
                self._client.subscribe(self.topics.pairing_command, qos=1)
                for entity in self.bridge.discovery.pairing_entities():
                    self._publish(self.bridge.config_message(entity))

    def publish_pairing(self, kind: str, message: str, passkey: str | None = None) -> None:
        """The pairing window's news (from any thread); Home Assistant shows the passkey."""
        with self._lock:
            if self._closed:
                return
            outgoing = self.bridge.pairing_message(kind, message, passkey)
            if self._connected.is_set():
                self._publish(outgoing)
            else:
                self._outbox.put(outgoing)

    def start(self) -> None:
        """Connect in the background; returns at once, retries with backoff until close()."""
        if self._started:
            return
        self._started = True
        self._client.connect_async(self.host, self.port, keepalive=self.config.keepalive_s)
        self._client.loop_start()

    def close(self) -> None:
        """Say "offline" (so HA marks the entities unavailable at once), disconnect, stop."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            goodbye = None
            if self._connected.is_set():
                goodbye = self._client.publish(
                    self.topics.status, PAYLOAD_OFFLINE, qos=1, retain=True
                )
        if goodbye is not None and goodbye.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            try:
                goodbye.wait_for_publish(GOODBYE_TIMEOUT_S)
            except (RuntimeError, ValueError):
                log.debug("could not say goodbye to the broker", exc_info=True)
        self._client.disconnect()
        if self._started:
            self._client.loop_stop()
        self._connected.clear()

    def __enter__(self) -> MqttSink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait until the broker accepted us and the announcements are queued."""
        return self._connected.wait(timeout_s)

    def stats(self) -> MqttStats:
        with self._counter_lock:
            published, connects, last_error = self._published, self._connects, self._last_error
        return MqttStats(
            connected=self.connected,
            connects=connects,
            published=published,
            queued=len(self._outbox),
            dropped=self._outbox.dropped,
            last_error=last_error,
        )

    def _publish(self, message: OutgoingMessage) -> None:
        """Hand one message to paho (no network I/O here). Caller holds ``_lock``."""
        retain = message.is_discovery or self.config.retain
        info = self._client.publish(message.topic, message.payload, self.config.qos, retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            self._outbox.count_drop()
        elif info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self.config.qos == 0:
            # The connection died a moment ago; paho keeps qos>0 messages itself, not qos 0.
            self._outbox.put(message)

    # Paho's side: these run on paho's network thread.

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._set_error(
                f"broker {self.host}:{self.port} refused the connection: {reason_code} "
                "(check mqtt.username and the password)"
            )
            return
        with self._lock:
            if self._closed:
                return
            # States sent before the connection broke but never acknowledged: paho would resend
            # them after everything below, so an old state would end up retained over a newer.
            unacknowledged = self._unacknowledged_states(client.drop_out_messages())
            client.publish(self.topics.status, PAYLOAD_ONLINE, qos=1, retain=True)
            # The HA button's presses (clean session: subscribe again on every connect).
            client.subscribe(self.topics.new_food, qos=1)
            if self._on_pair is not None:
                client.subscribe(self.topics.pairing_command, qos=1)
            announcements = self.bridge.announcements()
            for message in announcements:
                if message.is_discovery:
                    self._publish(message)
            waiting = self._outbox.take_all(older=unacknowledged)
            for message in waiting:
                self._publish(message)
            flushed = {m.topic for m in waiting}
            for message in announcements:
                if not message.is_discovery and message.topic not in flushed:
                    self._publish(message)
            self._connected.set()
        with self._counter_lock:
            self._connects += 1
            self._last_error = None
        log.info(
            "MQTT connected to %s:%d; sent %d messages that waited, %d dropped so far",
            self.host,
            self.port,
            len(waiting),
            self._outbox.dropped,
        )

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """Home Assistant's buttons: new food in the box, and pair a phone."""
        commands: dict[str, tuple[str, str, Callable[[], object] | None]] = {
            self.topics.new_food: (PAYLOAD_PRESS, "New food pressed", self.on_new_food),
            self.topics.pairing_command: (PAYLOAD_PAIR, "Pair a phone pressed", self._on_pair),
        }
        if message.topic not in commands:
            return
        expected, pressed, handler = commands[message.topic]
        if message.retain:
            # A retained press would act again at every reconnect: only live presses count.
            log.warning("MQTT: ignoring a retained message on %s", message.topic)
            return
        payload = message.payload.decode("utf-8", errors="replace").strip()
        if payload != expected:
            log.warning("MQTT: %s got %r, expected %r", message.topic, payload, expected)
            return
        if handler is None:
            log.warning("MQTT: %s, but this station cannot do it (no nose, or no link)", pressed)
            return
        try:
            answer = handler()
            log.info("MQTT: %s in Home Assistant%s", pressed, f": {answer}" if answer else "")
        except Exception:
            log.exception("MQTT: acting on %s failed", pressed)

    def _unacknowledged_states(self, dropped: list[mqtt.MQTTMessage]) -> list[OutgoingMessage]:
        """Paho's leftovers as our messages; discovery and status are announced afresh anyway."""
        discovery = f"{self.topics.discovery_prefix}/"
        return [
            OutgoingMessage(m.topic, m.payload.decode())
            for m in dropped
            if not m.topic.startswith(discovery) and m.topic != self.topics.status
        ]

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # Paho does not pass the exception; these are the causes a user can act on.
        causes = "is it running? are mqtt.host and mqtt.port right?"
        if self.config.tls:
            causes += (
                " does the broker speak TLS on that port, with a certificate for that host "
                "signed by mqtt.ca_file (or a system CA when ca_file is unset)?"
            )
        self._set_error(
            f"cannot connect to the MQTT broker at {self.host}:{self.port} ({causes}); "
            "retrying with backoff"
        )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._closed:
            self._set_error(
                f"lost the MQTT broker at {self.host}:{self.port}; "
                f"holding up to {self.config.queue_size} messages while reconnecting"
            )

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._counter_lock:
            self._published += 1

    def _set_error(self, message: str) -> None:
        with self._counter_lock:
            repeated = message == self._last_error
            self._last_error = message
        # A broker that stays away would otherwise log once per retry, for hours.
        (log.debug if repeated else log.warning)("%s", message)
