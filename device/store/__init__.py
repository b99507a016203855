"""Persistent storage of the station's events (readings, detections, health) for history and
backfill after a BLE reconnect. See :mod:`device.store.sqlite`."""

from device.store.sqlite import EventStore, StoredEvent, StoreError

__all__ = ["EventStore", "StoreError", "StoredEvent"]
