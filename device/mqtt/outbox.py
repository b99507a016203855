"""The bounded queue of messages waiting for the broker.

While the broker is unreachable the station keeps producing events; holding all of them would
grow without limit over a long outage. The outbox keeps the newest ``capacity`` messages, drops
the oldest (a fresher state of the same sensor is more useful than a stale one) and counts
every drop, so the owner can see that Home Assistant missed something.
"""

from __future__ import annotations

import threading
from collections import deque

from device.mqtt.states import OutgoingMessage


class Outbox:
    """Newest-wins FIFO with a drop counter; safe to use from several threads."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"an outbox must hold at least one message (got {capacity})")
        self.capacity = capacity
        self._messages: deque[OutgoingMessage] = deque()
        self._lock = threading.Lock()
        self._dropped = 0

    def put(self, message: OutgoingMessage) -> None:
        with self._lock:
            if len(self._messages) >= self.capacity:
                self._messages.popleft()
                self._dropped += 1
            self._messages.append(message)

    def take_all(self, older: list[OutgoingMessage] | None = None) -> list[OutgoingMessage]:
        """Everything waiting, oldest first, after ``older`` (messages that were sent but never
        acknowledged); the newest ``capacity`` of them. The outbox is empty afterwards."""
        with self._lock:
            messages = [*(older or []), *self._messages]
            self._messages.clear()
            excess = len(messages) - self.capacity
            if excess > 0:
                self._dropped += excess
                messages = messages[excess:]
            return messages

    def count_drop(self) -> None:
        """A message that never reached the outbox (the client's own queue was full)."""
        with self._lock:
            self._dropped += 1

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)
