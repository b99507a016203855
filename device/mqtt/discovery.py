"""Home Assistant MQTT discovery: the topics the station publishes on and the entity configs.

Home Assistant reads a retained JSON config per entity on
``<discovery prefix>/<component>/<node id>/<object id>/config`` and from then on shows the
entity, reading its value from the JSON on ``state_topic`` through ``value_template``. Every
entity here belongs to one HA *device* (the station) and goes "unavailable" when the station's
status topic says ``offline`` (the broker publishes that as the station's last will).

Reference: https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from device.events import FoodState, FoodVerdict

PAYLOAD_ONLINE = "online"
PAYLOAD_OFFLINE = "offline"
PAYLOAD_PROBLEM = "ON"
PAYLOAD_NO_PROBLEM = "OFF"
PAYLOAD_PRESS = "PRESS"


PAYLOAD_PAIR = "PAIR"
"""What the "Pair a phone" button publishes."""


def slug(text: str) -> str:
    """A name made safe for MQTT topics and HA ids: ``"Cosy Kitchen!"`` -> ``cosy_kitchen``.

    HA allows only ``[a-zA-Z0-9_-]`` in a discovery topic's node and object ids.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    return cleaned or "unnamed"


@dataclass(frozen=True)
class Topics:
    """Every topic of one station: states below ``base``, configs below the discovery prefix."""

    base: str
    discovery_prefix: str
    node_id: str
    status: str
    food: str
    climate: str
    bird: str
    health: str
    pairing: str = ""
    """The pairing window's state, with the passkey to type while a phone pairs."""
    pairing_command: str = ""
    """Where Home Assistant's "Pair a phone" button publishes."""

    @classmethod
    def for_station(
        cls, station_name: str, *, base_topic: str | None, discovery_prefix: str
    ) -> Topics:
        base = base_topic if base_topic is not None else f"senses/{slug(station_name)}"
        return cls(
            base=base,
            discovery_prefix=discovery_prefix,
            node_id=f"senses_{slug(station_name)}",
            status=f"{base}/status",
            food=f"{base}/food",
            climate=f"{base}/climate",
            bird=f"{base}/bird",
            health=f"{base}/health",
            pairing=f"{base}/pairing",
            pairing_command=f"{base}/pairing/set",
        )

    def concept(self, concept: str) -> str:
        return f"{self.base}/concept/{slug(concept)}"

    @property
    def new_food(self) -> str:
        """Command topic of the "New food in the box" button (the station subscribes)."""
        return f"{self.base}/command/new_food"

    def discovery(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node_id}/{object_id}/config"


@dataclass(frozen=True)
class Entity:
    """One Home Assistant entity: where its config goes and what it says."""

    component: str
    object_id: str
    config: Mapping[str, Any]


@dataclass(frozen=True)
class DiscoveryBuilder:
    """Builds the entity configs of one station, all under one HA device."""

    topics: Topics
    station_name: str
    sw_version: str

    @property
    def device(self) -> dict[str, Any]:
        return {
            "identifiers": [self.topics.node_id],
            "name": self.station_name,
            "model": "Senses",
            "manufacturer": "Senses project",
            "sw_version": self.sw_version,
        }

    def _entity(
        self,
        component: str,
        object_id: str,
        *,
        name: str,
        state_topic: str,
        value_template: str,
        **extra: Any,
    ) -> Entity:
        config: dict[str, Any] = {
            "name": name,
            "unique_id": f"{self.topics.node_id}_{object_id}",
            "state_topic": state_topic,
            "value_template": value_template,
            "json_attributes_topic": state_topic,
            "availability_topic": self.topics.status,
            "payload_available": PAYLOAD_ONLINE,
            "payload_not_available": PAYLOAD_OFFLINE,
            "device": self.device,
            "origin": {"name": "Senses", "sw_version": self.sw_version},
        }
        config.update(extra)
        return Entity(component=component, object_id=object_id, config=config)

    def station_entities(self) -> list[Entity]:
        """The entities every station has, whichever senses are switched on."""
        t = self.topics
        return [
            self._entity(
                "sensor",
                "food_verdict",
                name="Food verdict",
                state_topic=t.food,
                value_template="{{ value_json.verdict }}",
                device_class="enum",
                options=[v.value for v in FoodVerdict],
                icon="mdi:food-steak",
            ),
            self._entity(
                "sensor",
                "food_freshness",
                name="Food freshness",
                state_topic=t.food,
                value_template="{{ value_json.freshness_pct }}",
                unit_of_measurement="%",
                state_class="measurement",
                icon="mdi:leaf",
            ),
            self._entity(
                "sensor",
                "food_state",
                name="Food state",
                state_topic=t.food,
                value_template="{{ value_json.food_state }}",
                device_class="enum",
                options=[s.value for s in FoodState],
                icon="mdi:food-drumstick-outline",
            ),
            self.new_food_button(),
            self._entity(
                "sensor",
                "temperature",
                name="Box temperature",
                state_topic=t.climate,
                value_template="{{ value_json.temperature_c }}",
                device_class="temperature",
                unit_of_measurement="°C",
                state_class="measurement",
            ),
            self._entity(
                "sensor",
                "humidity",
                name="Box humidity",
                state_topic=t.climate,
                value_template="{{ value_json.humidity_pct }}",
                device_class="humidity",
                unit_of_measurement="%",
                state_class="measurement",
            ),
            self._entity(
                "sensor",
                "last_bird",
                name="Last bird",
                state_topic=t.bird,
                value_template="{{ value_json.species }}",
                icon="mdi:bird",
            ),
            self._entity(
                "sensor",
                "birds_today",
                name="Bird detections today",
                state_topic=t.bird,
                value_template="{{ value_json.detections_today }}",
                state_class="total_increasing",
                icon="mdi:counter",
            ),
            self._entity(
                "binary_sensor",
                "health",
                name="Station problem",
                state_topic=t.health,
                value_template="{{ value_json.state }}",
                device_class="problem",
                entity_category="diagnostic",
                payload_on=PAYLOAD_PROBLEM,
                payload_off=PAYLOAD_NO_PROBLEM,
            ),
        ]

    def new_food_button(self) -> Entity:
        """A button: pressing it tells the station new food is in the box (it subscribes to
        the command topic and takes the food's baseline, like the app's button)."""
        config: dict[str, Any] = {
            "name": "New food in the box",
            "unique_id": f"{self.topics.node_id}_new_food",
            "command_topic": self.topics.new_food,
            "payload_press": PAYLOAD_PRESS,
            "availability_topic": self.topics.status,
            "payload_available": PAYLOAD_ONLINE,
            "payload_not_available": PAYLOAD_OFFLINE,
            "device": self.device,
            "origin": {"name": "Senses", "sw_version": self.sw_version},
            "icon": "mdi:food-steak",
        }
        return Entity(component="button", object_id="new_food", config=config)

    def pairing_entities(self) -> list[Entity]:
        """A "Pair a phone" button and the pairing state (passkey included while a phone
        pairs); announced when the station runs its pairing agent."""
        t = self.topics
        button = self._entity(
            "button",
            "pair_phone",
            name="Pair a phone",
            state_topic=t.pairing,
            value_template="{{ value_json.state }}",
            command_topic=t.pairing_command,
            payload_press=PAYLOAD_PAIR,
            icon="mdi:cellphone-link",
        )
        config = {
            k: v
            for k, v in button.config.items()
            if k not in ("state_topic", "value_template", "json_attributes_topic")
        }
        return [
            Entity(button.component, button.object_id, config),
            self._entity(
                "sensor",
                "pairing",
                name="Pairing passkey",
                state_topic=t.pairing,
                value_template="{{ value_json.passkey or value_json.state }}",
                icon="mdi:form-textbox-password",
            ),
        ]

    def concept_entity(self, concept: str) -> Entity:
        """A concept's score; announced when the camera first scores that concept."""
        return self._entity(
            "sensor",
            f"concept_{slug(concept)}",
            name=f"Concept {concept}",
            state_topic=self.topics.concept(concept),
            value_template="{{ value_json.score_pct }}",
            unit_of_measurement="%",
            state_class="measurement",
            icon="mdi:image-search",
        )
