"""The station's event store (SQLite, WAL)."""

from device.errors import StoreError
from device.store.sqlite import EventStore, StoredEvent

__all__ = ["EventStore", "StoreError", "StoredEvent"]
