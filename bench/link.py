"""Benchmark: the BLE link's latency, throughput and bytes per event.

Over Bumble's in-process virtual link (two real host stacks, virtual controllers, no radio;
device/link/bumble_link.py), at ATT_MTU 23 (the minimum, what a phone that never negotiates
gets) and 247 (one LE data-length-extension PDU):

* notification latency: an event handed to the event store (commit, listener, encode, frames,
  ATT notifications, reassembly, decode on the phone side), p50/p99 over a paced run;
* events/s: a burst appended as fast as a sense thread can, until the phone decoded the last.

And, without a link, bytes per event: the protocol's message (header + CBOR) against compact
JSON of the same ``to_dict()``, for each event type (target: at most 25 %).

Both ends share one Python process and one event loop, so the figures measure our code plus
Bumble's, not a radio: on a real link the connection interval (7.5-50 ms) dominates latency.

    python -m bench.link [--json] [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from device.clock import SystemClock
from device.events import (
    ChannelStatus,
    Event,
    FoodReading,
    FoodVerdict,
    Health,
    HealthStatus,
    NoseReading,
    SensorValue,
    Trend,
)
from device.link import protocol
from device.link.bumble_link import open_virtual_link
from device.link.core import LinkCore
from device.link.protocol import Message
from device.store import EventStore

MTUS = (23, 247)
TARGET_BYTES_RATIO = 0.25
TARGET_P99_MS = 50.0
PACE_S = 0.01
ADS1115_LSB_V = 4.096 / 32768  # readings come in ADC steps, as the real ones do
SENSORS = ("MQ135", "MQ136", "MQ2", "MQ3", "MQ4", "MQ5", "MQ6", "MQ8", "MQ9")  # default config
GASES_BY_SENSOR = {
    "MQ135": ("NH3", "CO2", "alcohol", "toluene"),
    "MQ136": ("H2S",),
    "MQ4": ("CH4", "LPG"),
    "MQ9": ("LPG", "CH4", "CO"),
}


def nose_reading(rng: random.Random, ts: float) -> NoseReading:
    """Nine channels with the full-precision floats the pipeline computes."""
    sensors = []
    for name in SENSORS:
        voltage_v = rng.randrange(4000, 16000) * ADS1115_LSB_V
        rs_kohm = 20.0 * (5.0 - voltage_v) / voltage_v
        ratio = rs_kohm / rng.uniform(10, 40)
        ppm = {gas: rng.uniform(10, 900) for gas in GASES_BY_SENSOR.get(name, ())}
        sensors.append(SensorValue(name, ChannelStatus.OK, voltage_v, rs_kohm, ratio, ppm))
    return NoseReading(
        ts=ts,
        sensors=tuple(sensors),
        temperature_c=rng.uniform(3, 8),
        humidity_pct=rng.uniform(60, 90),
        warming_up=False,
    )


def food_reading(rng: random.Random, ts: float) -> FoodReading:
    raw = [rng.random() for _ in range(4)]
    probabilities = dict(
        zip(
            ("excellent", "good", "acceptable", "spoiled"), (p / sum(raw) for p in raw), strict=True
        )
    )
    best = max(probabilities, key=lambda k: probabilities[k])
    return FoodReading(
        ts=ts,
        label=FoodVerdict.SPOILED if best == "spoiled" else FoodVerdict.FRESH,
        confidence=probabilities[best],
        probabilities=probabilities,
        freshness=rng.random(),
        trend=Trend.STEADY,
        freshness_per_hour=rng.uniform(-0.05, 0.0),
        warming_up=False,
    )


def health(ts: float) -> Health:
    return Health(
        ts=ts, component="nose.sensor.MQ3", status=HealthStatus.OK, message="MQ3 reads normally"
    )


def sample_payloads(seed: int = 1) -> dict[str, dict[str, Any]]:
    """One event of each type, as the store hands them to the link (to_dict through JSON)."""
    rng = random.Random(seed)
    ts = time.time()
    concept = {
        "type": "concept",
        "ts": ts,
        "concept": "a cat on the sofa",
        "score": rng.random(),
        "focus_box": [rng.random() for _ in range(4)],
        "fps": rng.uniform(10, 15),
        "drops": 3,
    }
    bird = {
        "type": "bird",
        "ts": ts,
        "start": ts - rng.uniform(3, 6),
        "end": ts - rng.uniform(0, 2),
        "species": "Turdus merula",
        "confidence_max": rng.random(),
        "confidence_mean": rng.random(),
        "clip": "2025-10-09T06-13-20.flac",
    }
    events: dict[str, Any] = {
        "nose": nose_reading(rng, ts).to_dict(),
        "food": food_reading(rng, ts).to_dict(),
        "concept": concept,
        "bird": bird,
        "health": health(ts).to_dict(),
    }
    return {kind: json.loads(json.dumps(payload)) for kind, payload in events.items()}


def sizes() -> dict[str, Any]:
    """Bytes per event: protocol message vs compact JSON, and on air at each MTU."""
    out: dict[str, Any] = {}
    total_message = total_json = 0
    for kind, payload in sample_payloads().items():
        message = protocol.encode_message(kind, 123_456, payload)
        json_bytes = len(json.dumps(payload, separators=(",", ":")).encode())
        total_message += len(message)
        total_json += json_bytes
        out[kind] = {
            "protocol_bytes": len(message),
            "json_bytes": json_bytes,
            "ratio": round(len(message) / json_bytes, 3),
            **{
                f"on_air_bytes_mtu{mtu}": sum(len(f) for f in protocol.split(message, mtu - 3))
                for mtu in MTUS
            },
        }
    out["all"] = {
        "protocol_bytes": total_message,
        "json_bytes": total_json,
        "ratio": round(total_message / total_json, 3),
    }
    return out


def _mixed_event(rng: random.Random, i: int) -> Event:
    """Mostly nose readings (the steady stream), a food verdict every 10th, health every 50th."""
    ts = time.time()
    if i % 50 == 49:
        return health(ts)
    if i % 10 == 9:
        return food_reading(rng, ts)
    return nose_reading(rng, ts)


async def _over_link(mtu: int, events: int, pace_s: float) -> dict[str, Any]:
    rng = random.Random(mtu)
    with tempfile.TemporaryDirectory() as folder:
        store = EventStore(Path(folder) / "events.db")
        core = LinkCore(store, station_name="bench", clock=SystemClock())
        decoded_at: dict[int, float] = {}

        def on_event(message: Message) -> None:
            decoded_at[message.seq] = time.perf_counter()

        server, phone = await open_virtual_link(core, store, mtu=mtu, on_event=on_event)
        try:
            # Paced: one event at a time, as senses produce them.
            to_send = [_mixed_event(rng, i) for i in range(events)]
            handed: list[tuple[float, int]] = []

            def paced() -> None:
                for event in to_send:
                    started = time.perf_counter()
                    handed.append((started, store.append(event)))
                    time.sleep(pace_s)

            await asyncio.to_thread(paced)
            await phone.wait_for_seq(handed[-1][1], timeout_s=30)
            latencies_ms = sorted((decoded_at[seq] - t0) * 1000 for t0, seq in handed)

            # Burst: as fast as one sense thread can append.
            burst = [_mixed_event(rng, i) for i in range(events)]

            def flood() -> int:
                return [store.append(event) for event in burst][-1]

            started = time.perf_counter()
            last = await asyncio.to_thread(flood)
            await phone.wait_for_seq(last, timeout_s=60)
            elapsed_s = time.perf_counter() - started
        finally:
            server.detach()
            await phone.disconnect()
            store.close()
    quantiles = statistics.quantiles(latencies_ms, n=100, method="inclusive")
    return {
        "mtu": phone.mtu,
        "events": events,
        "latency_ms_p50": round(statistics.median(latencies_ms), 3),
        "latency_ms_p99": round(quantiles[98], 3),
        "latency_ms_max": round(latencies_ms[-1], 3),
        "events_per_s": round(len(burst) / elapsed_s, 1),
        "lost": phone.inbox.dropped,
        "duplicates": phone.inbox.duplicates,
    }


def run(events: int = 200, pace_s: float = PACE_S) -> dict[str, Any]:
    """Latency and throughput at each MTU, and bytes per event; see the module docstring."""
    over_link = {f"mtu{mtu}": asyncio.run(_over_link(mtu, events, pace_s)) for mtu in MTUS}
    size = sizes()
    return {
        "link": over_link,
        "bytes": size,
        "targets": {"bytes_ratio_max": TARGET_BYTES_RATIO, "latency_ms_p99_max": TARGET_P99_MS},
        "meets": {
            "latency_p99": all(r["latency_ms_p99"] <= TARGET_P99_MS for r in over_link.values()),
            "bytes_ratio_continuous_streams": all(
                size[kind]["ratio"] <= TARGET_BYTES_RATIO for kind in ("nose", "food")
            ),
            "bytes_ratio_all_types": size["all"]["ratio"] <= TARGET_BYTES_RATIO,
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.link", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--events", type=int, default=200, help="events per run (default 200)")
    args = parser.parse_args(argv)
    result = run(args.events)
    if args.json:
        print(json.dumps(result))
        return 0
    for name, r in result["link"].items():
        print(
            f"{name}: latency p50 {r['latency_ms_p50']:.2f} ms, p99 {r['latency_ms_p99']:.2f} ms;"
            f" {r['events_per_s']:.0f} events/s"
        )
    for kind, s in result["bytes"].items():
        print(
            f"{kind:>8}: {s['protocol_bytes']:5d} B vs JSON {s['json_bytes']:5d} B"
            f" = {s['ratio']:.0%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
