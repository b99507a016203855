"""`senses run` as systemd runs it: status file, SIGHUP reload, SIGTERM shutdown in time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from device.cli import main

SENSES = Path(sys.executable).parent / "senses"
SHUTDOWN_LIMIT_S = 5.0


def _write_config(path: Path, data_dir: Path, *, threshold: float = 0.8, extra: str = "") -> None:
    path.write_text(
        f'[station]\ndata_dir = "{data_dir}"\n'
        '[hardware]\nmode = "emulated"\n'
        "[link]\nenabled = false\n"
        "[nose]\nwarmup_s = 60\ncalibration_s = 60\nsample_period_s = 10\n"
        "[emulation]\nspeed = 600\n"
        f"[eye]\nthreshold = {threshold}\nhysteresis = 0.1\n"
        "[ear]\nenabled = false\n" + extra
    )


class RunningDaemon:
    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [str(SENSES), "run", "--config", str(config), "--log-format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent"},
        )
        self.events: list[dict[str, object]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def wait_for(self, what: str, condition: Callable[[], bool], timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f"the daemon exited while waiting for {what}: {self.stderr()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout_s} s; stderr: {self.stderr()}")
            time.sleep(0.1)

    def health(self, component: str) -> list[dict[str, object]]:
        return [e for e in list(self.events) if e.get("component") == component]

    def stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        assert self.process.stderr is not None
        return self.process.stderr.read()[-3000:]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[RunningDaemon, Path]]:
    config = tmp_path / "senses.toml"
    _write_config(config, tmp_path / "data")
    running = RunningDaemon(config)
    yield running, config
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def test_the_daemon_reloads_on_sighup_refuses_a_broken_config_and_stops_on_sigterm(
    daemon: tuple[RunningDaemon, Path], tmp_path: Path
) -> None:
    running, config = daemon
    running.wait_for("nose readings", lambda: any(e["type"] == "nose" for e in running.events))
    running.wait_for("concept scores", lambda: any(e["type"] == "concept" for e in running.events))

    # A changed eye threshold restarts the eye only; the nose keeps its readings going.
    _write_config(config, tmp_path / "data", threshold=0.9)
    running.process.send_signal(signal.SIGHUP)
    running.wait_for(
        "the reload", lambda: any("reloaded" in str(e["message"]) for e in running.health("config"))
    )
    reloaded = next(e for e in running.health("config") if "reloaded" in str(e["message"]))
    assert reloaded["message"] == "config reloaded; restarted eye"
    nose_before = sum(e["type"] == "nose" for e in running.events)
    running.wait_for(
        "nose readings after the reload",
        lambda: sum(e["type"] == "nose" for e in running.events) > nose_before,
    )

    # A broken file is refused: the daemon says why and keeps running the old config.
    config.write_text("[eye]\nthreshold = 7\n")
    running.process.send_signal(signal.SIGHUP)
    running.wait_for(
        "the refusal", lambda: any("refused" in str(e["message"]) for e in running.health("config"))
    )
    refusal = next(e for e in running.health("config") if "refused" in str(e["message"]))
    assert refusal["status"] == "degraded" and "eye.threshold" in str(refusal["message"])
    assert running.process.poll() is None

    status = json.loads((tmp_path / "data" / "status.json").read_text())
    assert {s["name"] for s in status["senses"]} >= {"nose", "eye"}

    started = time.monotonic()
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=30) == 0
    assert time.monotonic() - started < SHUTDOWN_LIMIT_S


def test_status_reads_what_the_daemon_wrote_and_flags_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "senses.toml"
    _write_config(config, tmp_path / "data")
    assert main(["status", "--config", str(config)]) == 2
    assert "not running" in capsys.readouterr().err
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "status.json").write_text(
        json.dumps(
            {
                "written_at": time.time() - 3600,
                "senses": [
                    {"name": "nose", "running": True, "events_per_min": 6, "restarts": 0},
                    {"name": "eye", "running": True, "restarts": 3, "last_error": "camera gone"},
                ],
            }
        )
    )
    assert main(["status", "--config", str(config), "--json"]) == 1
    shown = json.loads(capsys.readouterr().out)
    assert shown["stale"] is True and shown["senses"][1]["last_error"] == "camera gone"


def _food(running: RunningDaemon) -> list[dict[str, object]]:
    return [e for e in list(running.events) if e.get("type") == "food"]


def test_new_food_from_the_command_line_reaches_the_daemon_and_survives_a_restart(
    daemon: tuple[RunningDaemon, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running, config = daemon
    # Until food is marked in, the station says so instead of guessing.
    running.wait_for(
        "a no-food state", lambda: any(e["food_state"] == "no_food" for e in _food(running))
    )
    assert all(e["label"] is None for e in _food(running))

    assert main(["nose", "new-food", "--config", str(config)]) == 0
    assert "New food marked in" in capsys.readouterr().out
    running.wait_for(
        "the new-food message",
        lambda: any("command line" in str(e.get("message")) for e in running.health("nose.food")),
    )
    running.wait_for(
        "a verdict after the food's baseline",
        lambda: any(e["food_state"] == "ready" and e["label"] for e in _food(running)),
    )
    saved = json.loads((tmp_path / "data" / "food_state.json").read_text())
    assert saved["source"] == "command line" and saved["baseline_rs_kohm"]
    running.process.send_signal(signal.SIGTERM)
    running.process.wait(timeout=10)

    # A restart keeps the food and its baseline: verdicts resume without pressing again.
    again = RunningDaemon(config)
    try:
        again.wait_for(
            "the restored food",
            lambda: any(
                "baseline restored" in str(e.get("message")) for e in again.health("nose.food")
            ),
        )
        again.wait_for(
            "a verdict after the restart",
            lambda: any(e["food_state"] == "ready" for e in _food(again)),
        )
        assert not any(e["food_state"] == "no_food" for e in _food(again))
    finally:
        again.process.kill()


def test_new_food_without_a_running_station_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "senses.toml"
    _write_config(config, tmp_path / "data")
    assert main(["nose", "new-food", "--config", str(config), "--timeout", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "not marked in" in out and "senses run" in out
    assert not (tmp_path / "data" / "new_food.request").exists()
