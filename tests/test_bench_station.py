"""`senses bench station` in quick mode: it launches the real daemon and reports every figure.

No timing is asserted (the machine is shared); what is asserted is what a user of the bench
relies on: systemd's READY=1 arrived, every sense produced an event, the CPU table covers each
sense's threads, and memory and shutdown were measured.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from bench import station
from device.errors import BenchError
from device.runtime import KNOWN_SENSES


@pytest.fixture(scope="module")
def quick_result() -> dict[str, object]:
    # One launch shared by the tests below: each launch loads every model (seconds of CPU).
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert station.main(["--quick", "--json"]) == 0
    result: dict[str, object] = json.loads(out.getvalue())
    return result


def test_ready_was_received_with_every_sense_running(quick_result: dict[str, object]) -> None:
    startup = quick_result["startup"]
    assert isinstance(startup, dict)
    (launch,) = startup["runs"]
    assert launch["ready_s"] > 0
    assert startup["ready_s_median"] == launch["ready_s"]
    # The STATUS= line sent with READY=1 is what `systemctl status` shows.
    assert launch["ready_status"] == "; ".join(f"{sense}: ok" for sense in KNOWN_SENSES)
    assert launch["exit_code"] == 0, "the daemon must exit cleanly on SIGTERM"
    assert launch["shutdown_s"] > 0


def test_every_sense_produced_its_first_event(quick_result: dict[str, object]) -> None:
    startup = quick_result["startup"]
    assert isinstance(startup, dict)
    for sense in KNOWN_SENSES:
        first_s = startup["first_event_s_median"][sense]
        assert first_s is not None, f"{sense} printed no event"
        assert first_s > 0


def test_cpu_is_split_by_sense_and_adds_up_to_the_process(
    quick_result: dict[str, object],
) -> None:
    cpu = quick_result["cpu"]
    assert isinstance(cpu, dict)
    groups = cpu["groups"]
    assert set(KNOWN_SENSES) <= set(groups)
    # The kernel names the threads after the Python ones: each sense's worker is found.
    names = {thread["name"] for thread in cpu["threads"]}
    assert {f"sense-{sense}" for sense in KNOWN_SENSES} <= names
    assert sum(g["cpu_s"] for g in groups.values()) == pytest.approx(
        cpu["process"]["cpu_s"], abs=0.05 * len(groups)
    )
    for share in groups.values():
        assert 0 <= share["share_of_process"] <= 1.01
    # The eye scores frames all the time: it cannot have used no CPU at all.
    assert groups["eye"]["cpu_s"] > 0


def test_memory_and_targets_are_reported(quick_result: dict[str, object]) -> None:
    memory = quick_result["memory"]
    assert isinstance(memory, dict)
    assert 0 < memory["vm_rss_mb"] <= memory["vm_hwm_mb"]
    assert memory["threads"] >= len(KNOWN_SENSES)
    assert quick_result["targets"] == {
        "ready_s_max": station.TARGET_READY_S,
        "rss_mb_max": station.TARGET_RSS_MB,
        "shutdown_s_max": station.TARGET_SHUTDOWN_S,
    }
    meets = quick_result["meets"]
    assert isinstance(meets, dict)
    assert set(meets) == {"ready", "rss", "peak_rss", "shutdown", "every_sense_produced"}
    assert meets["every_sense_produced"] is True


def test_a_daemon_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    config = tmp_path / "senses.toml"
    config.write_text("[nose]\nsample_period_s = -1\n")
    launched = station.LaunchedStation(config, tmp_path, 1)
    try:
        with pytest.raises(BenchError, match="before READY=1") as error:
            launched.wait_ready(timeout_s=60)
    finally:
        launched.stop()
    assert "sample_period_s" in str(error.value)


def test_bad_options_say_what_to_change() -> None:
    with pytest.raises(BenchError, match="--runs must be at least 1"):
        station.run(runs=0)
