"""The ``[mqtt]`` section of the station's config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
