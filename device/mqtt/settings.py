"""The ``[mqtt]`` section of the station's config.

Example (a Home Assistant box running the Mosquitto add-on)::

    [mqtt]
    enabled = true
    host = "homeassistant.local"
    username = "senses"
    password_file = "/etc/senses/mqtt_password"

Only the shape of the settings is checked here; files (the password file, the CA file) are
read when the sink is built, so a ``SIGHUP`` reload sees a rotated password.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

MQTT_PORT = 1883
MQTTS_PORT = 8883
# Characters MQTT gives a meaning in subscriptions; a topic we publish on must not hold them.
TOPIC_WILDCARDS = ("+", "#")


def _check_topic_prefix(value: str) -> str:
    if any(w in value for w in TOPIC_WILDCARDS):
        raise ValueError("must not contain the MQTT wildcards '+' or '#'")
    if value.startswith("/") or value.endswith("/") or "//" in value:
        raise ValueError("must not start or end with '/' nor contain '//'")
    return value


class MqttConfig(BaseModel):
    """Where to publish, how to log in, and how the outgoing queue behaves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    host: str | None = Field(None, min_length=1, description="the broker's name or address")
    port: int | None = Field(
        None, ge=1, le=65535, description="default 1883, or 8883 when tls = true"
    )
    username: str | None = Field(None, min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = Field(
        None, description="a file holding only the password, so the config can be world-readable"
    )
    tls: bool = False
    ca_file: Path | None = Field(
        None,
        description="PEM file of the CA that signed the broker's certificate; "
        "default: the system's trusted CAs",
    )
    client_id: str | None = Field(None, min_length=1, description='default "senses-<station name>"')
    base_topic: str | None = Field(
        None, min_length=1, description='default "senses/<station name>"'
    )
    discovery_prefix: str = Field("homeassistant", min_length=1)
    retain: bool = Field(
        True, description="retain state messages, so Home Assistant shows them after a restart"
    )
    qos: Literal[0, 1, 2] = 1
    keepalive_s: int = Field(60, ge=5, le=65535)
    connect_timeout_s: float = Field(
        3.0, gt=0, le=30, description="one TCP connect attempt; shutdown waits at most this long"
    )
    reconnect_min_s: int = Field(1, ge=1)
    reconnect_max_s: int = Field(60, ge=1)
    queue_size: int = Field(
        1000, ge=1, description="messages held while the broker is away; the oldest go first"
    )

    @field_validator("base_topic", "discovery_prefix")
    @classmethod
    def _valid_topic_prefix(cls, value: str | None) -> str | None:
        return None if value is None else _check_topic_prefix(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.enabled and self.host is None:
            raise ValueError(
                "host is required when enabled = true: set host to the broker's name or "
                'address, e.g. host = "homeassistant.local"'
            )
        if self.password is not None and self.password_file is not None:
            raise ValueError("give either password or password_file, not both")
        if (self.password is not None or self.password_file is not None) and not self.username:
            raise ValueError("a password needs a username: set username as well")
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is only used with TLS: set tls = true, or remove ca_file")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return MQTTS_PORT if self.tls else MQTT_PORT
