"""The MQTT sink against a real Mosquitto broker, read back the way Home Assistant reads it.

Each test starts its own ``mosquitto`` (Debian package ``mosquitto``) on a free port on
127.0.0.1 and a paho subscriber that sees what Home Assistant would see: the retained discovery
configs, the JSON states, the station's availability.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device.clock import SystemClock
from device.config import parse_config
from device.errors import ConfigError, MqttConfigError
from device.events import (
    BirdDetection,
    ChannelStatus,
    ConceptScore,
    FoodReading,
    FoodState,
    FoodVerdict,
    Health,
    HealthStatus,
    NoseReading,
    SensorValue,
    Trend,
)
from device.mqtt.discovery import DiscoveryBuilder, Topics
from device.mqtt.settings import MqttConfig
from device.mqtt.sink import MqttSink
from device.mqtt.states import HomeAssistantBridge
from device.runtime import Station

STATION = "Kitchen"
NODE = "senses_kitchen"
BASE = "senses/kitchen"
WAIT_S = 10.0
T0 = datetime(2026, 5, 1, 7, 30, tzinfo=UTC).timestamp()
STATION_ENTITIES = {
    ("sensor", "food_verdict"),
    ("sensor", "food_freshness"),
    ("sensor", "food_state"),
    ("button", "new_food"),
    ("sensor", "temperature"),
    ("sensor", "humidity"),
    ("sensor", "last_bird"),
    ("sensor", "birds_today"),
    ("binary_sensor", "health"),
}
SIMPLE_TEMPLATE = re.compile(r"^\{\{ value_json\.(\w+) \}\}$")


# --- the broker --------------------------------------------------------------------------------


def _mosquitto_executable() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.fail(
            "the MQTT tests need the Mosquitto broker: sudo apt-get install mosquitto "
            "(or `make system-deps`)",
            pytrace=False,
        )
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Broker:
    """One mosquitto process; can be killed and started again on the same port."""

    def __init__(self, executable: str, workdir: Path, extra_config: str = "") -> None:
        self.executable = executable
        self.workdir = workdir
        self.port = _free_port()
        self.extra_config = extra_config
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"

    def start(self) -> None:
        config = self.workdir / "mosquitto.conf"
        # As root mosquitto would switch to the "mosquitto" user, who cannot read our files.
        user = pwd.getpwuid(os.getuid()).pw_name
        listener = self.extra_config or f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
        config.write_text(
            f"user {user}\npersistence false\nlog_dest stderr\n"
            + listener.replace("{port}", str(self.port))
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.executable, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"mosquitto exited at start:\n{self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"mosquitto did not listen on {self.port}:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(WAIT_S)

    def freeze(self) -> None:
        """The broker stops answering (a hung Pi, a saturated link): nothing is acknowledged."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(WAIT_S)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def mosquitto() -> str:
    return _mosquitto_executable()


@pytest.fixture
def broker(mosquitto: str, tmp_path: Path) -> Iterator[Broker]:
    running = Broker(mosquitto, tmp_path)
    running.start()
    yield running
    running.stop()


# --- what Home Assistant sees ---------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    topic: str
    payload: str
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Listener:
    """A paho client subscribed to everything, like Home Assistant's MQTT integration."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.messages: list[Received] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ha-{uuid.uuid4().hex}")
        self.client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert self._subscribed.wait(WAIT_S), "the test subscriber could not subscribe"

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append(
                Received(message.topic, message.payload.decode(), bool(message.retain))
            )
            self._changed.notify_all()

    def wait_for(
        self,
        topic: str,
        match: Callable[[Received], bool] = lambda m: True,
        timeout_s: float = WAIT_S,
    ) -> Received:
        """The first message on ``topic`` that ``match`` accepts, waiting up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for message in self.messages:
                    if message.topic == topic and match(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = sorted({m.topic for m in self.messages})
                    raise AssertionError(f"nothing matching on {topic}; topics seen: {seen}")
                self._changed.wait(remaining)

    def discovery_configs(self, count: int) -> dict[tuple[str, str], Received]:
        """Wait for ``count`` discovery configs of the station, keyed (component, object id)."""
        pattern = re.compile(rf"^homeassistant/(\w+)/{NODE}/(\w+)/config$")
        deadline = time.monotonic() + WAIT_S
        with self._changed:
            while True:
                found = {}
                for message in self.messages:
                    hit = pattern.match(message.topic)
                    if hit:
                        found[(hit.group(1), hit.group(2))] = message
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"only {len(found)} discovery configs: {sorted(found)}"
                self._changed.wait(remaining)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def listen(broker: Broker) -> Iterator[Callable[[], Listener]]:
    opened: list[Listener] = []

    def open_listener() -> Listener:
        opened.append(Listener(broker.port))
        return opened[-1]

    yield open_listener
    for listener in opened:
        listener.close()


def mqtt_config(broker: Broker, **overrides: Any) -> MqttConfig:
    settings: dict[str, Any] = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": broker.port,
        "reconnect_min_s": 1,
        "reconnect_max_s": 1,
        "connect_timeout_s": 1.0,
    }
    settings.update(overrides)
    return MqttConfig(**settings)


@pytest.fixture
def sink(broker: Broker) -> Iterator[MqttSink]:
    running = MqttSink(mqtt_config(broker), station_name=STATION, sw_version="9.9.9", tz=UTC)
    running.start()
    assert running.wait_connected(WAIT_S), running.stats().last_error
    yield running
    running.close()


def rendered_state(config: dict[str, Any], state: Received) -> Any:
    """What Home Assistant shows: the config's value_template applied to the state JSON."""
    template = SIMPLE_TEMPLATE.match(config["value_template"])
    assert template, f"value_template {config['value_template']!r} is not a plain field"
    return state.json()[template.group(1)]


# --- events ------------------------------------------------------------------------------------


def food(
    ts: float, label: FoodVerdict = FoodVerdict.SPOILING, freshness: float = 0.42
) -> FoodReading:
    return FoodReading(
        ts=ts,
        label=label,
        confidence=0.81,
        probabilities={"excellent": 0.02, "good": 0.07, "acceptable": 0.81, "spoiled": 0.1},
        freshness=freshness,
        trend=Trend.WORSENING,
        freshness_per_hour=-0.031,
        warming_up=False,
    )


def bird(start: float, species: str = "Erithacus rubecula") -> BirdDetection:
    return BirdDetection(
        ts=start + 3.0,
        start=start,
        end=start + 3.0,
        species=species,
        confidence_max=0.93,
        confidence_mean=0.71,
        clip="/var/lib/senses/clips/robin.flac",
    )


def concept(ts: float, name: str = "cosy kitchen", score: float = 0.734) -> ConceptScore:
    return ConceptScore(
        ts=ts, concept=name, score=score, focus_box=(0.1, 0.2, 0.5, 0.4), fps=9.5, drops=3
    )


def nose(ts: float, temperature_c: float | None = 4.5) -> NoseReading:
    return NoseReading(
        ts=ts,
        sensors=(SensorValue(name="MQ135", status=ChannelStatus.OK, voltage_v=1.2, ratio=0.8),),
        temperature_c=temperature_c,
        humidity_pct=float("nan"),
        warming_up=False,
    )


# --- tests ---------------------------------------------------------------------------------------


def test_discovery_configs_are_retained_and_describe_one_device(
    sink: MqttSink, listen: Callable[[], Listener]
) -> None:
    listen().discovery_configs(len(STATION_ENTITIES))  # the broker has them all now
    # Connecting after the sink, as Home Assistant does after a restart: only retained
    # messages can tell it about the station.
    ha = listen()
    configs = ha.discovery_configs(len(STATION_ENTITIES))
    assert set(configs) == STATION_ENTITIES
    unique_ids = set()
    for (component, object_id), message in configs.items():
        assert message.retain, f"{component}/{object_id} config is not retained"
        config = message.json()
        unique_ids.add(config["unique_id"])
        if component == "button":  # no state: it sends commands
            assert config["command_topic"].startswith(f"{BASE}/")
            assert config["availability_topic"] == f"{BASE}/status"
            continue
        assert config["state_topic"].startswith(f"{BASE}/")
        assert config["availability_topic"] == f"{BASE}/status"
        assert config["payload_available"] == "online"
        assert config["payload_not_available"] == "offline"
        assert config["device"] == {
            "identifiers": [NODE],
            "name": STATION,
            "model": "Senses",
            "manufacturer": "Senses project",
            "sw_version": "9.9.9",
        }
        assert SIMPLE_TEMPLATE.match(config["value_template"])
    assert len(unique_ids) == len(configs)
    verdict = configs[("sensor", "food_verdict")].json()
    assert verdict["device_class"] == "enum"
    assert verdict["options"] == ["fresh", "spoiling", "spoiled"]
    assert configs[("binary_sensor", "health")].json()["device_class"] == "problem"
    assert configs[("sensor", "food_freshness")].json()["unit_of_measurement"] == "%"
    status = ha.wait_for(f"{BASE}/status")
    assert (status.payload, status.retain) == ("online", True)


def test_events_become_the_states_home_assistant_shows(
    sink: MqttSink, listen: Callable[[], Listener]
) -> None:
    ha = listen()
    configs = {k: m.json() for k, m in ha.discovery_configs(len(STATION_ENTITIES)).items()}

    sink.handle(food(T0))
    food_state = ha.wait_for(f"{BASE}/food")
    # Retained: a Home Assistant that starts later shows the verdict at once.
    assert listen().wait_for(f"{BASE}/food").retain
    assert rendered_state(configs[("sensor", "food_verdict")], food_state) == "spoiling"
    assert rendered_state(configs[("sensor", "food_freshness")], food_state) == 42.0
    attributes = food_state.json()
    assert attributes["confidence"] == 0.81
    assert attributes["trend"] == "worsening"
    assert attributes["freshness_pct_per_hour"] == -3.1

    sink.handle(nose(T0 + 1))
    climate = ha.wait_for(f"{BASE}/climate")
    assert rendered_state(configs[("sensor", "temperature")], climate) == 4.5
    # An unmeasurable value is JSON null (HA: unknown), never NaN, which is not JSON at all.
    assert rendered_state(configs[("sensor", "humidity")], climate) is None

    sink.handle(concept(T0 + 2))
    concept_config = ha.wait_for(f"homeassistant/sensor/{NODE}/concept_cosy_kitchen/config").json()
    assert concept_config["name"] == "Concept cosy kitchen"
    assert concept_config["unit_of_measurement"] == "%"
    score = ha.wait_for(concept_config["state_topic"])
    assert rendered_state(concept_config, score) == 73.4
    assert score.json()["focus_box"] == {"x": 0.1, "y": 0.2, "width": 0.5, "height": 0.4}
    assert (score.json()["fps"], score.json()["drops"]) == (9.5, 3)

    sink.handle(bird(T0 + 3))
    sink.handle(bird(T0 + 60, species="Turdus merula"))
    blackbird = ha.wait_for(f"{BASE}/bird", lambda m: "merula" in m.payload)
    assert rendered_state(configs[("sensor", "last_bird")], blackbird) == "Turdus merula"
    assert rendered_state(configs[("sensor", "birds_today")], blackbird) == 2
    assert blackbird.json()["confidence"] == 0.93
    assert blackbird.json()["clip"].endswith("robin.flac")

    health_config = configs[("binary_sensor", "health")]
    sink.handle(Health(T0 + 4, "ear", HealthStatus.FAILED, "microphone vanished; plug it in"))
    failing = ha.wait_for(f"{BASE}/health")
    assert rendered_state(health_config, failing) == health_config["payload_on"]
    assert failing.json()["problems"] == ["ear: microphone vanished; plug it in"]
    sink.handle(Health(T0 + 5, "ear", HealthStatus.OK, "microphone back"))
    recovered = ha.wait_for(f"{BASE}/health", lambda m: m.json()["problems"] == [])
    assert rendered_state(health_config, recovered) == health_config["payload_off"]
    assert sink.stats().dropped == 0


def test_the_new_food_button_reaches_the_station_and_the_food_state_shows(
    sink: MqttSink, listen: Callable[[], Listener]
) -> None:
    ha = listen()
    configs = {k: m.json() for k, m in ha.discovery_configs(len(STATION_ENTITIES)).items()}
    button = configs[("button", "new_food")]
    pressed = threading.Event()

    def new_food() -> str:
        pressed.set()
        return "New food marked in"

    sink.on_new_food = new_food
    # Home Assistant presses the button: a live (not retained) message on its command topic.
    ha.client.publish(button["command_topic"], "nonsense", qos=1)
    ha.client.publish(button["command_topic"], button["payload_press"], qos=1)
    assert pressed.wait(WAIT_S), "the station never heard the button"

    # Until food is marked in and its baseline taken, the state says so; no verdict.
    sink.handle(
        replace(
            food(T0),
            label=None,
            confidence=None,
            freshness=None,
            probabilities={},
            food_state=FoodState.BASELINE,
            food_in_ts=T0 - 120,
            minutes_to_verdict=8,
        )
    )
    state = ha.wait_for(f"{BASE}/food")
    assert rendered_state(configs[("sensor", "food_state")], state) == "baseline"
    assert rendered_state(configs[("sensor", "food_verdict")], state) is None  # HA: unknown
    assert state.json()["minutes_to_verdict"] == 8
    assert "baseline" in configs[("sensor", "food_state")]["options"]


def test_a_retained_press_does_not_mark_food_in_at_every_reconnect(
    broker: Broker, listen: Callable[[], Listener]
) -> None:
    ha = listen()
    topic = f"{BASE}/command/new_food"
    ha.client.publish(topic, "PRESS", qos=1, retain=True).wait_for_publish(WAIT_S)
    running = MqttSink(mqtt_config(broker), station_name=STATION, sw_version="9.9.9", tz=UTC)
    pressed = threading.Event()
    running.on_new_food = lambda: pressed.set() or "marked"  # type: ignore[func-returns-value]
    running.start()
    try:
        assert running.wait_connected(WAIT_S)
        assert not pressed.wait(1.0)
    finally:
        running.close()
        ha.client.publish(topic, b"", qos=1, retain=True)


def test_daily_bird_count_starts_again_at_midnight() -> None:
    topics = Topics.for_station(STATION, base_topic=None, discovery_prefix="homeassistant")
    bridge = HomeAssistantBridge(DiscoveryBuilder(topics, STATION, "1"), tz=UTC)
    evening = datetime(2026, 5, 1, 23, 50, tzinfo=UTC).timestamp()
    counts = []
    for start in (evening, evening + 300, evening + 900, evening + 1200):
        (message,) = bridge.messages_for(bird(start))
        counts.append(json.loads(message.payload)["detections_today"])
    assert counts == [1, 2, 1, 2]
    assert json.loads(message.payload)["counting_since"] == "2026-05-02T00:00:00+00:00"


def test_the_last_bird_carries_both_names_and_the_model_as_attributes() -> None:
    topics = Topics.for_station(STATION, base_topic=None, discovery_prefix="homeassistant")
    builder = DiscoveryBuilder(topics, STATION, "1")
    bridge = HomeAssistantBridge(builder, tz=UTC)
    detection = dataclasses.replace(
        bird(T0, "European Robin"),
        scientific_name="Erithacus rubecula",
        model_id="yamnet+birdnet-v2.4",
    )
    (message,) = bridge.messages_for(detection)
    state = json.loads(message.payload)
    assert (state["common_name"], state["scientific_name"]) == (
        "European Robin",
        "Erithacus rubecula",
    )
    assert state["model_id"] == "yamnet+birdnet-v2.4"
    [last_bird] = [e for e in builder.station_entities() if e.object_id == "last_bird"]
    assert last_bird.config["json_attributes_topic"] == message.topic


def test_broker_restart_station_never_waits_and_home_assistant_catches_up(
    broker: Broker, listen: Callable[[], Listener]
) -> None:
    queue_size = 50
    config = mqtt_config(broker, queue_size=queue_size)
    with MqttSink(config, station_name=STATION, tz=UTC) as sink:
        assert sink.wait_connected(WAIT_S)
        broker.kill()
        deadline = time.monotonic() + WAIT_S
        while sink.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not sink.connected, "the sink did not notice the broker died"

        events = [food(T0 + i, freshness=1 - i / 200) for i in range(3 * queue_size)]
        started = time.perf_counter()
        for event in events:
            sink.handle(event)
        elapsed_s = time.perf_counter() - started
        # A sink that waited for the network would spend at least connect_timeout_s (1 s) here.
        assert elapsed_s < 1.0, f"handle() waited {elapsed_s:.2f} s while the broker was down"
        stats = sink.stats()
        assert (stats.queued, stats.dropped) == (queue_size, 2 * queue_size)
        assert "lost the MQTT broker" in (stats.last_error or "")

        broker.start()  # a fresh broker: no persistence, it forgot every retained message
        assert sink.wait_connected(WAIT_S), sink.stats().last_error
        ha = listen()
        assert set(ha.discovery_configs(len(STATION_ENTITIES))) == STATION_ENTITIES
        newest_pct = round(events[-1].freshness * 100, 1)
        ha.wait_for(f"{BASE}/food", lambda m: m.json()["freshness_pct"] == newest_pct)
        # What the broker keeps for the next Home Assistant is the newest state, not an old one.
        assert listen().wait_for(f"{BASE}/food").json()["freshness_pct"] == newest_pct
        assert ha.wait_for(f"{BASE}/status").payload == "online"
        assert sink.stats().queued == 0
        assert sink.stats().connects == 2


def test_states_the_broker_never_acknowledged_do_not_overwrite_newer_ones(
    broker: Broker, listen: Callable[[], Listener]
) -> None:
    with MqttSink(mqtt_config(broker), station_name=STATION, tz=UTC) as sink:
        assert sink.wait_connected(WAIT_S)
        broker.freeze()
        for i in range(5):  # handed to the client, written, never acknowledged
            sink.handle(food(T0 + i, freshness=0.9 - i / 100))
        broker.kill()
        deadline = time.monotonic() + WAIT_S
        while sink.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        sink.handle(food(T0 + 10, label=FoodVerdict.SPOILED, freshness=0.05))
        broker.start()
        assert sink.wait_connected(WAIT_S), sink.stats().last_error
        ha = listen()
        ha.wait_for(f"{BASE}/food", lambda m: m.json()["verdict"] == "spoiled")
        time.sleep(0.5)  # let any late resend arrive; it must not be a stale verdict
        verdicts = [m.json()["verdict"] for m in ha.messages if m.topic == f"{BASE}/food"]
        assert verdicts[-1] == "spoiled", f"an older state arrived last: {verdicts}"
        assert listen().wait_for(f"{BASE}/food").json()["verdict"] == "spoiled"


def test_last_will_says_offline_when_the_station_dies(
    broker: Broker, listen: Callable[[], Listener], tmp_path: Path
) -> None:
    script = tmp_path / "station.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            from device.mqtt.settings import MqttConfig
            from device.mqtt.sink import MqttSink
            config = MqttConfig(enabled=True, host="127.0.0.1", port={broker.port})
            sink = MqttSink(config, station_name={STATION!r})
            sink.start()
            assert sink.wait_connected(10)
            print("connected", flush=True)
            time.sleep(60)
            """
        )
    )
    station = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent
    )
    try:
        assert station.stdout is not None
        assert station.stdout.readline().strip() == b"connected"
        ha = listen()
        assert ha.wait_for(f"{BASE}/status").payload == "online"
        station.send_signal(signal.SIGKILL)
        station.wait(WAIT_S)
        offline = ha.wait_for(f"{BASE}/status", lambda m: m.payload == "offline")
        assert offline.topic == f"{BASE}/status"
        # Home Assistant started later still learns that the station is gone.
        assert listen().wait_for(f"{BASE}/status").payload == "offline"
    finally:
        station.kill()
        station.wait(WAIT_S)


def test_close_says_offline_and_stops_publishing(
    sink: MqttSink, listen: Callable[[], Listener]
) -> None:
    ha = listen()
    ha.wait_for(f"{BASE}/status", lambda m: m.payload == "online")
    sink.close()
    ha.wait_for(f"{BASE}/status", lambda m: m.payload == "offline")
    sink.handle(food(T0))  # the station may still emit while shutting down: harmless
    time.sleep(0.3)
    assert not sink.connected
    assert all(m.topic != f"{BASE}/food" for m in ha.messages)


def test_close_returns_promptly_while_the_broker_is_away(broker: Broker) -> None:
    with MqttSink(mqtt_config(broker), station_name=STATION) as sink:
        assert sink.wait_connected(WAIT_S)
        broker.kill()
        time.sleep(1.5)  # the client is now between reconnect attempts
        started = time.perf_counter()
        sink.close()
        # The station's SIGTERM shutdown must finish within 5 s, MQTT included.
        assert time.perf_counter() - started < 3.0
        assert not sink.connected


def test_custom_base_topic_and_discovery_prefix(
    broker: Broker, listen: Callable[[], Listener]
) -> None:
    config = mqtt_config(broker, base_topic="home/shed/nose", discovery_prefix="ha")
    ha = listen()
    with MqttSink(config, station_name="Shed Pi", tz=UTC) as sink:
        assert sink.wait_connected(WAIT_S)
        sink.handle(food(T0))
        state = ha.wait_for("home/shed/nose/food")
        config_message = ha.wait_for("ha/sensor/senses_shed_pi/food_verdict/config")
    assert config_message.json()["state_topic"] == state.topic
    assert config_message.json()["availability_topic"] == "home/shed/nose/status"


# --- bad configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "complaint"),
    [
        ({"enabled": True}, "host is required"),
        ({"enabled": True, "host": "h", "password": "x"}, "needs a username"),
        (
            {"enabled": True, "host": "h", "username": "u", "password": "x", "password_file": "p"},
            "either password or password_file",
        ),
        ({"enabled": True, "host": "h", "base_topic": "senses/#"}, "wildcards"),
        ({"enabled": True, "host": "h", "ca_file": "ca.crt"}, "set tls = true"),
        ({"enabled": True, "host": "h", "port": 70000}, "mqtt.port"),
        ({"enabled": True, "host": "h", "qos": 3}, "mqtt.qos"),
    ],
)
def test_bad_mqtt_section_is_a_config_error_saying_what_to_fix(
    section: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(complaint)) as raised:
        parse_config({"mqtt": section}, source="station.toml")
    assert "station.toml" in str(raised.value)


def test_unusable_files_are_named_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    base = {"enabled": True, "host": "127.0.0.1", "username": "senses"}
    with pytest.raises(MqttConfigError, match=f"password_file {missing} does not exist"):
        MqttSink(MqttConfig(**base, password_file=missing), station_name=STATION)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(MqttConfigError, match="is empty"):
        MqttSink(MqttConfig(**base, password_file=empty), station_name=STATION)
    not_pem = tmp_path / "ca.crt"
    not_pem.write_text("this is not a certificate\n")
    with pytest.raises(MqttConfigError, match="not a PEM certificate file"):
        MqttSink(MqttConfig(**base, tls=True, ca_file=not_pem), station_name=STATION)
    with pytest.raises(MqttConfigError, match=r"ca_file .* does not exist"):
        MqttSink(MqttConfig(**base, tls=True, ca_file=missing), station_name=STATION)
    with pytest.raises(MqttConfigError, match=r"mqtt\.host is not set"):
        MqttSink(MqttConfig(), station_name=STATION)


# --- logging in, TLS ---------------------------------------------------------------------------


def test_password_file_logs_in_and_a_wrong_password_is_reported(
    mosquitto: str, tmp_path: Path
) -> None:
    users = tmp_path / "mosquitto.passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(users), "senses", "s3cret word"], check=True
    )
    secured = Broker(
        mosquitto,
        tmp_path,
        "listener {port} 127.0.0.1\nallow_anonymous false\n" + f"password_file {users}\n",
    )
    secured.start()
    try:
        good = tmp_path / "password"
        good.write_text("s3cret word\n")  # as `echo` writes it: the newline is not the password
        config = mqtt_config(secured, username="senses", password_file=good)
        with MqttSink(config, station_name=STATION) as sink:
            assert sink.wait_connected(WAIT_S), sink.stats().last_error

        wrong = mqtt_config(secured, username="senses", password="guess")
        with MqttSink(wrong, station_name=STATION) as sink:
            deadline = time.monotonic() + WAIT_S
            while sink.stats().last_error is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not sink.connected
            assert "refused the connection" in (sink.stats().last_error or "")
            assert "mqtt.username and the password" in (sink.stats().last_error or "")
    finally:
        secured.stop()


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
        "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    return key, cert


def _make_server_certificate(folder: Path, ca_key: Path, ca_cert: Path) -> tuple[Path, Path]:
    key, request, cert = folder / "server.key", folder / "server.csr", folder / "server.crt"
    names = folder / "server.ext"
    names.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", str(key), "-out", str(request),
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(names), "-out", str(cert),
    )  # fmt: skip
    return key, cert


def test_tls_broker_is_verified_against_the_ca_file(mosquitto: str, tmp_path: Path) -> None:
    ca_key, ca_cert = _make_ca(tmp_path, "station-ca")
    _, stranger_cert = _make_ca(tmp_path, "stranger-ca")
    server_key, server_cert = _make_server_certificate(tmp_path, ca_key, ca_cert)
    secured = Broker(
        mosquitto,
        tmp_path,
        "listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"cafile {ca_cert}\ncertfile {server_cert}\nkeyfile {server_key}\n",
    )
    secured.start()
    try:
        config = mqtt_config(secured, tls=True, ca_file=ca_cert)
        with MqttSink(config, station_name=STATION) as sink:
            assert sink.wait_connected(WAIT_S), sink.stats().last_error
            assert sink.stats().last_error is None

        # A broker whose certificate our CA did not sign is refused: no data to an impostor.
        impostor = mqtt_config(secured, tls=True, ca_file=stranger_cert)
        with MqttSink(impostor, station_name=STATION) as sink:
            deadline = time.monotonic() + WAIT_S
            while sink.stats().last_error is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not sink.connected
            assert "mqtt.ca_file" in (sink.stats().last_error or "")
    finally:
        secured.stop()


def test_the_documented_config_example_is_valid() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "mqtt.md").read_text(encoding="utf-8")
    example = re.search(r"```toml\n(.*?)```", docs, re.DOTALL)
    assert example, "docs/mqtt.md lost its config example"
    config = parse_config(tomllib.loads(example.group(1)), source="docs/mqtt.md")
    assert config.mqtt.enabled
    assert config.mqtt.host == "homeassistant.local"
    assert config.mqtt.effective_port == 1883


def test_the_station_runtime_feeds_home_assistant(
    sink: MqttSink, listen: Callable[[], Listener]
) -> None:
    station = Station(SystemClock(), [sink])
    ha = listen()
    station.emit(bird(T0))
    assert ha.wait_for(f"{BASE}/bird").json()["species"] == "Erithacus rubecula"
    assert station.sinks == [sink], "the station dropped the MQTT sink"


def test_pressing_the_button_marks_food_in_on_a_running_station(
    broker: Broker, listen: Callable[[], Listener], tmp_path: Path
) -> None:
    """`senses run` with MQTT on: Home Assistant's button reaches the nose, which takes the
    food's baseline and then gives verdicts, all seen on the food topic."""
    config = tmp_path / "senses.toml"
    config.write_text(
        f'[station]\nname = "{STATION}"\ndata_dir = "{tmp_path / "data"}"\n'
        '[hardware]\nmode = "emulated"\n[link]\nenabled = false\n'
        "[nose]\nwarmup_s = 60\ncalibration_s = 60\nsample_period_s = 10\n"
        "[emulation]\nspeed = 600\n[eye]\nenabled = false\n[ear]\nenabled = false\n"
        f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\n'
        "reconnect_min_s = 1\nreconnect_max_s = 1\n"
    )
    ha = listen()
    station = subprocess.Popen(
        [sys.executable, "-m", "device.cli", "run", "--config", str(config), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent"},
    )
    try:
        for attempt in range(6):  # the station starts (imports, model) slowly on a busy machine
            try:
                button = ha.wait_for(f"homeassistant/button/{NODE}/new_food/config").json()
                break
            except AssertionError:
                assert station.poll() is None and attempt < 5, "the station did not start"
        no_food = ha.wait_for(f"{BASE}/food", lambda m: m.json()["food_state"] == "no_food")
        assert no_food.json()["verdict"] is None
        ha.client.publish(button["command_topic"], button["payload_press"], qos=1)
        baseline = ha.wait_for(f"{BASE}/food", lambda m: m.json()["food_state"] == "baseline")
        assert baseline.json()["food_in"] is not None
        # The model needs its window of minutes after the baseline (130 for the shipped one):
        # about 14 s at 600x.
        verdict = ha.wait_for(
            f"{BASE}/food", lambda m: m.json()["food_state"] == "ready", timeout_s=60.0
        )
        assert verdict.json()["verdict"] in {"fresh", "spoiling", "spoiled"}
    finally:
        station.send_signal(signal.SIGTERM)
        try:
            station.wait(timeout=10)
        except subprocess.TimeoutExpired:
            station.kill()


def test_the_pair_button_opens_a_window_and_the_passkey_reaches_home_assistant(
    sink: MqttSink, listen: Callable[[], Listener]
) -> None:
    pressed = threading.Event()
    sink.enable_pairing(pressed.set)  # the daemon does this once its link runs
    ha = listen()
    button = json.loads(ha.wait_for(f"homeassistant/button/{NODE}/pair_phone/config").payload)
    assert button["name"] == "Pair a phone" and "state_topic" not in button
    ha.client.publish(button["command_topic"], button["payload_press"], qos=1)
    assert pressed.wait(WAIT_S), "pressing the button did not reach the station"

    sensor = json.loads(ha.wait_for(f"homeassistant/sensor/{NODE}/pairing/config").payload)
    sink.publish_pairing("passkey", "'Pixel' asks to pair: type 012345", "012345")
    # The sensor shows the passkey while a phone waits for it, else the window's state.
    assert sensor["value_template"] == "{{ value_json.passkey or value_json.state }}"
    state = ha.wait_for(sensor["state_topic"], lambda m: "012345" in m.payload).json()
    assert (state["passkey"], state["state"]) == ("012345", "passkey")  # leading zero kept
    assert "type 012345" in state["message"]
    sink.publish_pairing("bonded", "'Pixel' is bonded")
    state = ha.wait_for(sensor["state_topic"], lambda m: "bonded" in m.payload).json()
    assert (state["passkey"], state["state"]) == (None, "bonded")
