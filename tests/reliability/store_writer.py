"""A writer the power-loss test kills with SIGKILL: three senses append to the real store while
the link core turns each committed event into the notifications a phone would receive.

Every notification's seq is printed ("sent <seq>") once the link core produced it, which is
the earliest moment a phone could acknowledge it. The test then checks that each printed seq
survived the kill.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from device.clock import SystemClock
from device.events import ConceptScore, FoodReading, FoodVerdict, Health, HealthStatus, Trend
from device.link.core import LinkCore
from device.store import EventStore
from device.store.sqlite import StoredEvent


def main(path: str) -> None:
    store = EventStore(Path(path))
    core = LinkCore(store, station_name="powerloss", clock=SystemClock())
    out_lock = threading.Lock()

    def phone(stored: StoredEvent) -> None:
        if core.on_stored(stored):
            with out_lock:
                sys.stdout.write(f"sent {stored.seq}\n")
                sys.stdout.flush()

    store.add_listener(phone)
    print("ready", flush=True)

    def food() -> None:
        while True:
            store.append(
                FoodReading(
                    ts=1.0,
                    label=FoodVerdict.FRESH,
                    confidence=0.9,
                    probabilities={
                        "excellent": 0.6,
                        "good": 0.3,
                        "acceptable": 0.05,
                        "spoiled": 0.05,
                    },
                    freshness=0.9,
                    trend=Trend.STEADY,
                    freshness_per_hour=None,
                    warming_up=False,
                )
            )

    def eye() -> None:
        while True:
            store.append_many(
                ConceptScore(
                    ts=2.0, concept="cats", score=0.5, focus_box=(0, 0, 1, 1), fps=9.0, drops=i
                )
                for i in range(5)
            )

    def health() -> None:
        while True:
            store.append(Health(ts=3.0, component="ear", status=HealthStatus.OK, message="x" * 200))

    for target in (food, eye, health):
        threading.Thread(target=target, daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1])
