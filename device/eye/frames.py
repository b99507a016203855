"""Frames on their way from a source to the scorer: a newest-wins queue and a capture thread.

The camera delivers frames at its own pace; the backbone scores them at its own. A slower
scorer must never make the camera back up (a V4L2 driver then drops frames itself, or a
video file lags further and further behind), so the queue between them is bounded and
*newest wins*: when it is full the oldest frame is thrown away and counted. The count
travels with each ``ConceptScore`` as ``drops``, so a user sees that scoring is the bottleneck.

The capture thread owns the source. A camera that is missing or unplugged is reported as a
``Health`` event and reopened with exponential backoff; nothing crashes.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from device.clock import Clock
from device.errors import FrameSourceError, HardwareError
from device.events import Health, HealthStatus
from device.eye.sources import FrameSource

log = logging.getLogger(__name__)

CAMERA_COMPONENT: Final = "eye.camera"
RECONNECT_FIRST_S: Final = 0.5
RECONNECT_MAX_S: Final = 30.0


@dataclass(frozen=True)
class Frame:
    """One picture: RGB uint8 (height, width, 3), when it was taken, and its number.

    ``model_input`` is the whole frame already prepared for the backbone (square, resized),
    when the capture thread made it: then the scoring thread only runs the model.
    """

    rgb: npt.NDArray[np.uint8]
    ts: float
    monotonic_s: float
    index: int
    model_input: npt.NDArray[np.uint8] | None = None


class FrameQueue:
    """A bounded queue where the newest frame wins; what it throws away is counted."""

    def __init__(self, capacity: int = 2) -> None:
        if capacity < 1:
            raise ValueError(f"a frame queue needs room for at least one frame, got {capacity}")
        self.capacity = capacity
        self._frames: collections.deque[Frame] = collections.deque()
        self._ready = threading.Condition()
        self._closed = False
        self.drops = 0
        """Frames thrown away unseen because the consumer was behind."""
        self.puts = 0

    def put(self, frame: Frame) -> None:
        with self._ready:
            if len(self._frames) == self.capacity:
                self._frames.popleft()
                self.drops += 1
            self._frames.append(frame)
            self.puts += 1
            self._ready.notify()

    def put_when_room(self, frame: Frame, stop: threading.Event) -> bool:
        """Wait for room, then add ``frame`` (nothing is dropped); False if ``stop`` came first.

        For sources that are not live (files read as fast as they decode): there waiting
        costs nothing, and dropping would only waste the decoding.
        """
        with self._ready:
            while len(self._frames) == self.capacity:
                if stop.is_set() or self._closed:
                    return False
                self._ready.wait(0.05)
        self.put(frame)
        return True

    def get(self, timeout_s: float | None = None) -> Frame | None:
        """The oldest waiting frame; ``None`` after ``timeout_s`` or once closed and empty."""
        with self._ready:
            if not self._frames and not self._closed:
                self._ready.wait(timeout_s)
            frame = self._frames.popleft() if self._frames else None
            self._ready.notify_all()  # a producer may be waiting for room (put_when_room)
            return frame

    def close(self) -> None:
        """No more frames will come: wake the consumer."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    @property
    def closed(self) -> bool:
        with self._ready:
            return self._closed and not self._frames

    def __len__(self) -> int:
        with self._ready:
            return len(self._frames)


class CaptureThread:
    """Reads ``source`` into ``queue`` on its own thread, reconnecting when the camera fails.

    ``on_health`` is called (from this thread) with a FAILED event when the source fails
    and an OK event when it delivers again. When the source ends (a video without loop)
    the queue is closed. Paced sources (files, stills) are read at their ``fps`` on
    ``clock``, unless ``paced`` is False (benchmarks read files as fast as they decode;
    then the thread waits for room in the queue rather than decode frames to drop).

    ``prepare`` (optional) turns each frame into the backbone's full-frame input here, on the
    capture thread: decoding, colour conversion and resizing of frame n+1 then run while the
    scoring thread invokes the model on frame n (OpenCV and the TFLite invoke both release
    the GIL), so the scorer's rate approaches the model's own.
    """

    def __init__(
        self,
        source: FrameSource,
        queue: FrameQueue,
        clock: Clock,
        on_health: Callable[[Health], None],
        *,
        paced: bool = True,
        reconnect_first_s: float = RECONNECT_FIRST_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
        prepare: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]] | None = None,
    ) -> None:
        self.source = source
        self.prepare = prepare
        self.queue = queue
        self.clock = clock
        self.on_health = on_health
        self.paced = paced
        self.reconnect_first_s = reconnect_first_s
        self.reconnect_max_s = reconnect_max_s
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="eye-capture", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the thread to end (a finite source played out); True if it has."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return True

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _health(self, status: HealthStatus, message: str) -> None:
        self.on_health(
            Health(ts=self.clock.wall(), component=CAMERA_COMPONENT, status=status, message=message)
        )

    def _run(self) -> None:
        try:
            self._capture()
        except FrameSourceError as e:
            # A missing or undecodable file does not heal by retrying: say so, and end.
            log.error("%s cannot be used: %s", self.source.name, e)
            self._health(HealthStatus.FAILED, str(e))
        finally:
            self.source.close()
            self.queue.close()

    def _capture(self) -> None:
        backoff_s = self.reconnect_first_s
        failing = False
        index = 0
        next_due_s = self.clock.monotonic()
        while not self._stop.is_set():
            try:
                if not self.source.is_open:
                    self.source.open()
                rgb = self.source.read()
            except HardwareError as e:
                self.source.close()
                log.log(
                    logging.DEBUG if failing else logging.WARNING,
                    "%s failed: %s",
                    self.source.name,
                    e,
                )
                if not failing:
                    # One FAILED per outage, not one per retry: the link has little bandwidth.
                    self._health(
                        HealthStatus.FAILED,
                        f"{e}; retrying every {backoff_s:g} s, backing off to "
                        f"{self.reconnect_max_s:g} s",
                    )
                failing = True
                if self.clock.wait(backoff_s, self._stop):
                    return
                self.reconnects += 1
                backoff_s = min(backoff_s * 2, self.reconnect_max_s)
                next_due_s = self.clock.monotonic()
                continue
            if rgb is None:
                return
            if failing:
                failing = False
                backoff_s = self.reconnect_first_s
                self._health(HealthStatus.OK, f"{self.source.name} delivers frames again")
            ts, monotonic_s = self.clock.wall(), self.clock.monotonic()
            model_input = self.prepare(rgb) if self.prepare is not None else None
            frame = Frame(rgb, ts, monotonic_s, index, model_input)
            if not self.paced:
                if not self.queue.put_when_room(frame, self._stop):
                    return
            else:
                self.queue.put(frame)
            index += 1
            fps = self.source.fps if self.paced else None
            if fps is not None:
                # Fixed due times, so decoding time does not slow a 25 fps video to 20.
                now_s = self.clock.monotonic()
                next_due_s = max(next_due_s + 1.0 / fps, now_s)
                if self.clock.wait(next_due_s - now_s, self._stop):
                    return
