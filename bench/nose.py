"""Benchmark: how many ADC samples a second the nose pipeline sustains on one core.

The ADS1115 converts at most 860 samples a second (TI SBAS444). This measures, side by side in
one run, how many single-channel samples our code sustains on one core when the chip itself
is instant (an emulated ADS1115 on a ManualClock, so no time is spent waiting for
conversions): the driver alone (config write, OS-bit poll, conversion read), and the whole
nose pipeline (driver, volts → Rs → Rs/R0 → ppm, health, one-minute aggregation, features
and the food model once a minute). A ratio above 1 means the CPU is not what limits the
nose; the chip and the I2C bus are.

The emulated chip runs in the same process, so its own cost is counted against us: the
figures are lower bounds. On a Pi, I2C transfers at 100 kHz add about 0.3 ms per transfer
that no CPU benchmark sees.

    python -m bench.nose [--json] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from device.clock import ManualClock
from device.config import AdcConfig, Config
from device.events import FoodReading
from device.nose.ads1115 import ADS1115
from device.runtime import build_nose

ADS1115_MAX_SPS = 860
#: Minutes after food-in before the first verdict when the model does not say (it does).
FEATURE_WINDOW_MINUTES = 130


def _rate(work: Callable[[], int], seconds: float, min_calls: int = 1) -> float:
    """Units of work per CPU-second of this thread, over about ``seconds`` and at least
    ``min_calls`` calls (wall time alone would cut the run short on a loaded machine)."""
    done = 0
    calls = 0
    cpu_start = time.thread_time()
    wall_end = time.perf_counter() + seconds
    while time.perf_counter() < wall_end or calls < min_calls:
        done += work()
        calls += 1
    return done / max(time.thread_time() - cpu_start, 1e-9)


def _bench_config(data_dir: Path) -> Config:
    config = Config()
    adcs = [AdcConfig(address=a.address, data_rate_sps=ADS1115_MAX_SPS) for a in config.nose.adcs]
    return config.model_copy(
        update={
            "station": config.station.model_copy(update={"data_dir": data_dir}),
            "nose": config.nose.model_copy(
                update={
                    "adcs": adcs,
                    "conversions_per_sample": 1,
                    "warmup_s": 0.0,
                    "calibration_s": 600.0,
                    "sample_period_s": 10.0,
                }
            ),
        }
    )


def run(seconds: float = 4.0) -> dict[str, Any]:
    config = _bench_config(Path(tempfile.mkdtemp(prefix="senses-bench-")))
    clock = ManualClock()
    setup = build_nose(
        config,
        clock,
        emulated=True,
        calibrate_after_warmup=True,
        calibration_max_spread=None,
        food_in_at_start="bench",  # verdicts only come once food is marked in
    )
    assert setup.emulation is not None
    driver = ADS1115(setup.bus, 0x48, clock=clock)

    def one_conversion() -> int:
        driver.read_voltage(0, pga_v=4.096, data_rate_sps=ADS1115_MAX_SPS)
        return 1

    channels = len(config.nose.sensors)
    verdicts = 0

    def one_pipeline_sample() -> int:
        nonlocal verdicts
        events = setup.service.step()
        verdicts += sum(1 for e in events if isinstance(e, FoodReading) and e.label is not None)
        clock.advance(config.nose.sample_period_s)
        return channels

    driver_sps = _rate(one_conversion, seconds / 2)
    # Enough samples for the calibration and one full feature window, so the classifier's
    # cost is part of the figure however slow the machine is today.
    food = setup.service.food
    first_verdict_minutes = (
        food.minutes_to_first_verdict if food is not None else FEATURE_WINDOW_MINUTES
    )
    first_verdict_samples = int(
        (config.nose.calibration_s + 60.0 * (first_verdict_minutes + 10))
        / config.nose.sample_period_s
    )
    pipeline_sps = _rate(one_pipeline_sample, seconds / 2, first_verdict_samples)
    return {
        "ads1115_max_sps": ADS1115_MAX_SPS,
        "driver_samples_per_s": round(driver_sps, 1),
        "pipeline_samples_per_s": round(pipeline_sps, 1),
        "driver_vs_ads1115": round(driver_sps / ADS1115_MAX_SPS, 2),
        "pipeline_vs_ads1115": round(pipeline_sps / ADS1115_MAX_SPS, 2),
        "pipeline_food_verdicts": verdicts,
        "note": "one core, CPU time; emulated chip cost included; I2C wire time excluded",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.nose", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    result = run(args.seconds)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"nose pipeline: {result['pipeline_samples_per_s']:.0f} samples/s on one core = "
            f"{result['pipeline_vs_ads1115']:.2f}× the ADS1115's {ADS1115_MAX_SPS} SPS "
            f"(driver alone {result['driver_vs_ads1115']:.2f}×)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
