"""Food in the box: its own baseline, verdicts after it, and that state across restarts.

Training measures every beef run against the run's first minutes *with the meat already in
the box* (:data:`~device.nose.features.BASELINE_MINUTES`, ``training/food/evaluate.py``). The
station does the same: when someone says "new food in the box" (the app's button, a bonded
``new_food`` control-point operation; ``senses nose new-food``; the Home Assistant button),
:class:`FoodTracker` averages the following readings into one-minute rows exactly as the
classifier does, takes the median of the first ``BASELINE_MINUTES`` rows as the food's
:class:`~device.nose.features.Baseline` (the same :meth:`Baseline.from_clean_air` training
calls) and feeds those rows and every later one to the
:class:`~device.nose.classifier.FoodClassifier`, so the first verdict comes when the window
is full, at the same minute after food-in as in training. The clean-air R0 of ``senses nose
calibrate`` stays what it was for: ratios and ppm.

Until food is marked in the station says so (``FoodReading.food_state`` is ``no_food``, one
reading a minute, no label) rather than guessing against clean air, which the model never saw.

Bad input, and what happens:

* **New food marked in again** (a second press, or new food): the baseline starts over from
  the next reading; the earlier verdicts stay in the event store.
* **Marked in during warm-up**: accepted; minutes measured while a heater is still warming are
  not baseline minutes, so the baseline starts with the first warm minute.
* **A sensor or the climate chip gives nothing for a whole minute during the baseline** (it was
  unplugged): the baseline starts over from the next complete minute, with a Health message
  (once per interruption), so the baseline's minutes are contiguous as in training.
* **Power lost during the baseline**: the state file says food went in but has no baseline;
  after the restart the baseline starts over (Health message). Power lost *after* the baseline:
  it is restored and verdicts resume once the window has refilled. A model whose features look
  back to food-in (:attr:`~device.nose.features.FeatureSpec.since_food_in`) must not lose
  that history, which would look like food just put in: every minute since food-in is also
  appended to a minutes file beside the state (:class:`MinuteLog`), read back after a restart,
  and the minutes the station was off are interpolated (:mod:`device.nose.classifier`).
* **A baseline with no change in any gas reading at all** (every sensor's Rs identical to
  within :data:`FLAT_SPREAD` for all its minutes: sensors not connected or stuck):
  ``no_change``, no verdicts, a Health message that says to check the wiring and press "New
  food" again.

The state (when food went in, its source, the baseline) is saved atomically to a JSON file
in the data folder after every change, so a power cut leaves the old file or the new one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from device.clock import Clock
from device.errors import CalibrationError, ModelError
from device.events import (
    Event,
    FoodReading,
    FoodState,
    Health,
    HealthStatus,
    NoseReading,
    Trend,
)
from device.files import write_json_atomically, write_text_atomically
from device.nose.classifier import FoodClassifier, FoodModelConfig, Model
from device.nose.features import BASELINE_MINUTES, Baseline
from device.nose.minutes import MinuteAggregator, MinuteRow

log = logging.getLogger(__name__)

COMPONENT = "nose.food"
FOOD_STATE_FORMAT = 1
#: The station answers a request of ``senses nose new-food`` next to it, in a file named
#: like the request plus this; the CLI reads and deletes it.
ANSWER_SUFFIX = ".answer"
#: Largest relative spread ((max − min) / median of a sensor's Rs over the baseline minutes)
#: that still counts as "no change at all". Real MQ sensors wobble and drift by far more over
#: ten minutes (0.5–20 % in the beef runs' first minutes); a sensor that is not connected reads
#: the same value every time.
FLAT_SPREAD = 1e-3
#: A request from the CLI older than this (seconds, real time) was written while the station
#: was not running; it is dropped rather than marking food in hours late.
REQUEST_MAX_AGE_S = 300.0
#: Permissions of the request and answer files: the CLI may run as another user (root).
SHARED_FILE_MODE = 0o644


@dataclass(frozen=True)
class FoodMark:
    """The station's answer to "new food in the box"."""

    accepted: bool
    message: str


@dataclass(frozen=True)
class SavedFoodState:
    """What survives a restart: when food went in, from where, and its baseline (once taken)."""

    food_in_ts: float
    source: str
    baseline: dict[str, float] | None  # Rs kΩ per sensor name
    temperature_c: float | None
    humidity_pct: float | None
    no_change: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FOOD_STATE_FORMAT,
            "food_in_ts": self.food_in_ts,
            "source": self.source,
            "baseline_rs_kohm": self.baseline,
            "baseline_temperature_c": self.temperature_c,
            "baseline_humidity_pct": self.humidity_pct,
            "no_change": self.no_change,
        }

    @classmethod
    def from_dict(cls, data: Any) -> SavedFoodState:
        if not isinstance(data, dict) or data.get("format") != FOOD_STATE_FORMAT:
            raise ValueError(f"not a food state of format {FOOD_STATE_FORMAT}")
        baseline = data["baseline_rs_kohm"]
        return cls(
            food_in_ts=float(data["food_in_ts"]),
            source=str(data["source"]),
            baseline=None if baseline is None else {str(k): float(v) for k, v in baseline.items()},
            temperature_c=_optional_float(data["baseline_temperature_c"]),
            humidity_pct=_optional_float(data["baseline_humidity_pct"]),
            no_change=bool(data.get("no_change", False)),
        )

    def save(self, path: Path) -> None:
        write_json_atomically(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> SavedFoodState | None:
        """None when there is no file; raises ``ValueError``/``OSError`` for a damaged one."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return cls.from_dict(json.loads(text))


class MinuteLog:
    """The minutes since food-in, one CSV line each, for models that look back to food-in.

    Appending a line a minute costs nothing; the file is cut back to the last
    ``keep_minutes`` (the model's window) when it holds twice that, so food left in for
    months does not fill the card. A damaged line (power cut mid-write) is skipped when read.
    """

    def __init__(self, path: Path, sensors: tuple[str, ...], keep_minutes: int) -> None:
        self.path = path
        self.sensors = sensors
        self.keep_minutes = keep_minutes
        self._lines: int | None = None

    @property
    def header(self) -> str:
        return ",".join(
            ("ts", "index", "warming_up", *self.sensors, "temperature_c", "humidity_pct")
        )

    @staticmethod
    def _line(row: MinuteRow) -> str:
        values = [*row.rs_kohm.tolist(), row.temperature_c, row.humidity_pct]
        return ",".join(
            [repr(row.ts), str(row.index), str(int(row.warming_up))] + [repr(v) for v in values]
        )

    def clear(self) -> None:
        self._lines = 0
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def append(self, row: MinuteRow) -> None:
        """Raises ``OSError`` when the file cannot be written."""
        if self._lines is None:
            self._lines = len(self._read_lines())
        if self._lines == 0:
            self.path.write_text(self.header + "\n", encoding="utf-8")
        with self.path.open("a", encoding="utf-8") as f:
            f.write(self._line(row) + "\n")
        self._lines += 1
        if self._lines > 2 * self.keep_minutes:
            kept = self._read_lines()[-self.keep_minutes :]
            write_text_atomically(self.path, "\n".join([self.header, *kept]) + "\n")
            self._lines = len(kept)

    def _read_lines(self) -> list[str]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        if not lines or lines[0] != self.header:
            return []  # another model's sensors, or not ours: start a new history
        return lines[1:]

    def rows_since(self, food_in_ts: float) -> list[MinuteRow]:
        """The kept minutes from ``food_in_ts`` on, oldest first; damaged lines skipped."""
        rows: list[MinuteRow] = []
        width = 3 + len(self.sensors) + 2
        for line in self._read_lines():
            parts = line.split(",")
            if len(parts) != width:
                continue
            try:
                values = [float(v) for v in parts[3:]]
                row = MinuteRow(
                    index=int(parts[1]),
                    ts=float(parts[0]),
                    rs_kohm=np.asarray(values[: len(self.sensors)], dtype=np.float64),
                    temperature_c=values[-2],
                    humidity_pct=values[-1],
                    warming_up=parts[2] == "1",
                )
            except ValueError:
                continue
            if row.ts >= food_in_ts and (not rows or row.ts > rows[-1].ts):
                rows.append(row)
        return rows


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def describe_food_state(state: FoodState, minutes_to_verdict: int | None) -> str:
    """What a person is told when there is no verdict (dashboard, replay)."""
    wait = f"; first verdict in {minutes_to_verdict} min" if minutes_to_verdict else ""
    return {
        FoodState.NO_FOOD: "no food marked in: press New food when you put food in the box",
        FoodState.BASELINE: f"taking the food's baseline{wait}",
        FoodState.STARTING: f"gathering readings{wait}",
        FoodState.READY: "verdict",
        FoodState.NO_CHANGE: "no change in the gas readings: check the sensors, then New food",
    }[state]


def _flat(rows: list[MinuteRow]) -> bool:
    """True when no sensor's Rs changed at all over ``rows`` (see :data:`FLAT_SPREAD`)."""
    rs = np.stack([r.rs_kohm for r in rows])
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = (np.max(rs, axis=0) - np.min(rs, axis=0)) / np.abs(np.median(rs, axis=0))
    return bool(np.all(~(spread > FLAT_SPREAD)))  # NaN (no reading) counts as flat


class FoodTracker:
    """The food-in flow of one nose: marks, the food's baseline, verdicts, saved state.

    :meth:`mark_food_in` may be called from any thread (the link, MQTT); it only queues the
    mark, which the nose's own thread applies at its next :meth:`add`. Everything else runs on
    the nose's thread.
    """

    def __init__(
        self,
        model: Model,
        clock: Clock,
        *,
        trend_minutes: int = 30,
        state_path: Path | None = None,
        request_path: Path | None = None,
    ) -> None:
        self.model = model
        self.clock = clock
        self.trend_minutes = trend_minutes
        self.settings = FoodModelConfig.from_card(model.card)
        self.sensors = self.settings.spec.sensors
        self.state_path = state_path
        self.request_path = request_path
        self.state = FoodState.NO_FOOD
        self.food_in_ts: float | None = None
        self.source: str | None = None
        self.classifier: FoodClassifier | None = None
        self._minutes = MinuteAggregator(self.sensors)
        self._baseline_rows: list[MinuteRow] = []
        self._interrupted = False
        self._warming_up = False
        self._lock = threading.Lock()
        self._pending: list[tuple[float, str]] = []
        self._events: list[Event] = []
        self.minute_log = (
            MinuteLog(
                state_path.with_name(state_path.stem + ".minutes.csv"),
                self.sensors,
                self.settings.spec.window_minutes,
            )
            if state_path is not None and self.settings.spec.since_food_in
            else None
        )
        self._log_failed = False
        self._restore()

    # --- marks, from any thread ----------------------------------------------------------

    @property
    def minutes_to_first_verdict(self) -> int:
        return max(BASELINE_MINUTES, self.settings.spec.first_row_minutes)

    def mark_food_in(self, source: str) -> FoodMark:
        """New food is in the box: take its baseline from the next reading on."""
        with self._lock:
            again = bool(self._pending) or self.state is not FoodState.NO_FOOD
            self._pending.append((self.clock.wall(), source))
            warming = self._warming_up
        if again:
            message = (
                "New food marked in again: the baseline starts over "
                f"({BASELINE_MINUTES} min, first verdict in about "
                f"{self.minutes_to_first_verdict} min); earlier verdicts stay in the history."
            )
        else:
            message = (
                f"New food marked in: its first {BASELINE_MINUTES} min in the box are its "
                f"baseline; the first verdict comes in about {self.minutes_to_first_verdict} min."
            )
        if warming:
            message += " The heaters are still warming up: the baseline starts when they are warm."
        log.info("food marked in from %s: %s", source, message)
        return FoodMark(True, message)

    # --- the nose's thread ---------------------------------------------------------------

    def add(self, reading: NoseReading) -> list[Event]:
        """Take one reading; return the food events it produced (state, verdicts, health)."""
        self._warming_up = reading.warming_up
        self._take_request()
        events, self._events = self._events, []
        with self._lock:
            pending, self._pending = self._pending, []
        for ts, source in pending:
            events.extend(self._start(ts, source))
        if pending:
            # Say so at once, not at the end of the minute: the app shows "taking baseline".
            events.append(self._state_reading(reading.ts, reading.warming_up))
        row = self._minutes.add(reading)
        if row is not None:
            events.extend(self._on_minute(row))
        return events

    def flush(self) -> list[Event]:
        """Close the minute in progress (end of a replay or a demo)."""
        row = self._minutes.flush()
        return self._on_minute(row) if row is not None else []

    def _health(self, status: HealthStatus, message: str) -> Health:
        return Health(ts=self.clock.wall(), component=COMPONENT, status=status, message=message)

    def _start(self, ts: float, source: str) -> list[Event]:
        self.state = FoodState.BASELINE
        self.food_in_ts = ts
        self.source = source
        self.classifier = None
        self._minutes = MinuteAggregator(self.sensors)  # minutes count from the food-in mark
        self._baseline_rows = []
        self._interrupted = False
        self._save(SavedFoodState(ts, source, None, None, None))
        if self.minute_log is not None:
            with contextlib.suppress(OSError):
                self.minute_log.clear()  # the earlier food's minutes; an append reports errors
        return [
            self._health(
                HealthStatus.OK,
                f"new food in the box ({source}): taking its baseline, "
                f"first verdict in about {self.minutes_to_first_verdict} min",
            )
        ]

    def _on_minute(self, row: MinuteRow) -> list[Event]:
        if self.state is FoodState.BASELINE:
            return self._baseline_minute(row)
        if self.classifier is None:  # no food, or no change
            return [self._state_reading(row.ts, row.warming_up)]
        self._log_minute(row)
        verdict = self.classifier.add_minute(row)
        if verdict is None:
            self.state = FoodState.STARTING
            return [self._state_reading(row.ts, row.warming_up)]
        self.state = FoodState.READY
        return [
            replace(
                verdict,
                food_state=FoodState.READY,
                food_in_ts=self.food_in_ts,
                minutes_to_verdict=0,
            )
        ]

    def _baseline_minute(self, row: MinuteRow) -> list[Event]:
        events: list[Event] = []
        if row.warming_up:
            self._baseline_rows = []  # warming minutes are not the food's baseline
            return [self._state_reading(row.ts, True)]
        missing = [s for s, v in zip(self.sensors, row.rs_kohm, strict=True) if math.isnan(v)]
        if math.isnan(row.temperature_c) or math.isnan(row.humidity_pct):
            missing.append("the temperature/humidity sensor")
        gap = bool(self._baseline_rows) and row.index != self._baseline_rows[-1].index + 1
        if missing or gap:
            if not self._interrupted:
                why = f"no reading from {', '.join(missing)}" if missing else "readings stopped"
                events.append(
                    self._health(
                        HealthStatus.DEGRADED,
                        f"food baseline interrupted ({why} for a minute): it starts over "
                        "when every sensor reads again; check the wiring",
                    )
                )
            self._interrupted = bool(missing)
            self._baseline_rows = [] if missing else [row]
            events.append(self._state_reading(row.ts, row.warming_up))
            return events
        self._interrupted = False
        self._baseline_rows.append(row)
        if len(self._baseline_rows) < BASELINE_MINUTES:
            return [self._state_reading(row.ts, row.warming_up)]
        return self._finish_baseline(row)

    def _finish_baseline(self, row: MinuteRow) -> list[Event]:
        rows, self._baseline_rows = self._baseline_rows, []
        assert self.food_in_ts is not None and self.source is not None
        problem = None
        baseline = None
        if _flat(rows):
            problem = (
                f"no change at all in any gas reading over the food's {BASELINE_MINUTES}-min "
                "baseline: are the sensors connected and their heaters powered? Fix that, then "
                "press New food again"
            )
        else:
            try:
                baseline = Baseline.from_clean_air(
                    np.stack([r.rs_kohm for r in rows]),
                    np.asarray([r.temperature_c for r in rows]),
                    np.asarray([r.humidity_pct for r in rows]),
                )
                self.classifier = FoodClassifier(
                    self.model,
                    baseline,
                    trend_minutes=self.trend_minutes,
                    settings=self.settings,
                )
            except (CalibrationError, ModelError) as e:
                problem = f"the food baseline is unusable ({e}); press New food again"
        if problem is not None or baseline is None:
            self.state = FoodState.NO_CHANGE
            self._save(SavedFoodState(self.food_in_ts, self.source, None, None, None, True))
            return [
                self._health(HealthStatus.DEGRADED, problem or "no baseline"),
                self._state_reading(row.ts, row.warming_up),
            ]
        self._save(
            SavedFoodState(
                self.food_in_ts,
                self.source,
                dict(zip(self.sensors, baseline.rs_kohm.tolist(), strict=True)),
                baseline.temperature_c,
                baseline.humidity_pct,
            )
        )
        self.state = FoodState.STARTING
        last: list[Event] = []
        # The baseline's minutes are also the first of the window, as in training.
        for baseline_row in rows:
            last = self._on_minute(baseline_row)
        wait = self.classifier.minutes_to_verdict if self.classifier is not None else 0
        done = self._health(
            HealthStatus.OK,
            f"food baseline taken from {BASELINE_MINUTES} minutes; "
            + (f"first verdict in {wait} min" if wait else "verdicts start now"),
        )
        return [done, *last]

    def _state_reading(self, ts: float, warming_up: bool) -> FoodReading:
        if self.state is FoodState.BASELINE:
            left = BASELINE_MINUTES - len(self._baseline_rows)
            to_verdict: int | None = left + max(
                0, self.settings.spec.first_row_minutes - BASELINE_MINUTES
            )
        elif self.state is FoodState.STARTING and self.classifier is not None:
            to_verdict = max(1, self.classifier.minutes_to_verdict)
        else:
            to_verdict = None
        return FoodReading(
            ts=ts,
            label=None,
            confidence=None,
            probabilities={},
            freshness=None,
            trend=Trend.UNKNOWN,
            freshness_per_hour=None,
            warming_up=warming_up,
            food_state=self.state,
            food_in_ts=self.food_in_ts,
            minutes_to_verdict=to_verdict,
        )

    # --- persistence and the CLI's requests ------------------------------------------------

    def _log_minute(self, row: MinuteRow) -> None:
        if self.minute_log is None:
            return
        try:
            self.minute_log.append(row)
            self._log_failed = False
        except OSError as e:
            if not self._log_failed:
                # Verdicts go on; only a restart would lose the history since food-in.
                self._events.append(
                    self._health(
                        HealthStatus.DEGRADED,
                        f"cannot keep the minutes since food-in in {self.minute_log.path} ({e}); "
                        "after a restart the verdicts would wait for a new food baseline: free "
                        "some space or fix the permissions",
                    )
                )
            self._log_failed = True

    def _save(self, state: SavedFoodState) -> None:
        if self.state_path is None:
            return
        try:
            state.save(self.state_path)
        except OSError as e:
            # Verdicts go on; only a restart would forget the food.
            self._events.append(
                self._health(
                    HealthStatus.DEGRADED,
                    f"cannot save the food state to {self.state_path} ({e}); a restart "
                    "would forget the food: free some space or fix the permissions",
                )
            )

    def _restore(self) -> None:
        if self.state_path is None:
            return
        try:
            saved = SavedFoodState.load(self.state_path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            kept = self.state_path.with_suffix(".damaged")
            try:
                os.replace(self.state_path, kept)
            except OSError:
                kept = self.state_path
            self._events.append(
                self._health(
                    HealthStatus.DEGRADED,
                    f"the saved food state is damaged ({e!r}; kept as {kept.name}): press "
                    "New food to take the food's baseline again",
                )
            )
            return
        if saved is None:
            return
        self.food_in_ts, self.source = saved.food_in_ts, saved.source
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(saved.food_in_ts))
        if saved.no_change:
            self.state = FoodState.NO_CHANGE
            self._events.append(
                self._health(
                    HealthStatus.DEGRADED,
                    f"the food put in at {when} has no usable baseline (no change in the gas "
                    "readings): check the sensors, then press New food again",
                )
            )
            return
        missing = [s for s in self.sensors if saved.baseline is None or s not in saved.baseline]
        if (
            saved.baseline is None
            or missing
            or saved.temperature_c is None
            or saved.humidity_pct is None
        ):
            reason = (
                "the station restarted during the food baseline"
                if saved.baseline is None
                else f"the food model now needs {', '.join(missing)}, which the baseline lacks"
            )
            self.state = FoodState.BASELINE
            self._save(SavedFoodState(saved.food_in_ts, saved.source, None, None, None))
            self._events.append(
                self._health(
                    HealthStatus.DEGRADED,
                    f"{reason}: the baseline of the food put in at {when} starts over now",
                )
            )
            return
        try:
            baseline = Baseline(
                rs_kohm=np.asarray([saved.baseline[s] for s in self.sensors]),
                temperature_c=saved.temperature_c,
                humidity_pct=saved.humidity_pct,
            )
        except CalibrationError as e:
            self.state = FoodState.NO_CHANGE
            self._events.append(
                self._health(HealthStatus.DEGRADED, f"saved food baseline unusable: {e}")
            )
            return
        self.classifier = FoodClassifier(
            self.model, baseline, trend_minutes=self.trend_minutes, settings=self.settings
        )
        if self.minute_log is not None:
            history = self.minute_log.rows_since(saved.food_in_ts)
            if not history:
                # The history since food-in is gone (the file was lost): this food's verdicts
                # would treat it as just put in, which could call spoiled food fresh.
                self.classifier = None
                self.state = FoodState.NO_FOOD
                self._events.append(
                    self._health(
                        HealthStatus.DEGRADED,
                        f"the minutes since the food went in at {when} are lost "
                        f"({self.minute_log.path.name} is missing or unreadable): press New food "
                        "to start again with this food",
                    )
                )
                return
            self.classifier.restore(history)
        self.state = FoodState.STARTING
        wait = self.classifier.minutes_to_verdict
        resume = (
            f"after {wait} min of readings"
            if wait
            else "with the next minute (the minutes since food-in were kept)"
        )
        self._events.append(
            self._health(
                HealthStatus.OK,
                f"food put in at {when} ({saved.source}): baseline restored; verdicts resume "
                + resume,
            )
        )

    def _take_request(self) -> None:
        """Apply a request ``senses nose new-food`` left in the data folder, and answer it."""
        path = self.request_path
        if path is None or not path.exists():
            return
        try:
            request = json.loads(path.read_text(encoding="utf-8"))
            path.unlink(missing_ok=True)
            request_id = str(request["id"])
            written = float(request["written"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("ignoring an unreadable new-food request %s: %s", path, e)
            path.unlink(missing_ok=True)
            return
        if time.time() - written > REQUEST_MAX_AGE_S:
            answer = FoodMark(False, "the request was too old (the station was not running)")
        else:
            answer = self.mark_food_in(str(request.get("source", "command line")))
        try:
            write_json_atomically(
                path.with_name(path.name + ANSWER_SUFFIX),
                {"id": request_id, "accepted": answer.accepted, "message": answer.message},
                mode=SHARED_FILE_MODE,
            )
        except OSError as e:
            log.warning("cannot answer the new-food request: %s", e)


def request_new_food(
    request: Path, *, source: str = "command line", timeout_s: float = 15.0
) -> FoodMark:
    """Ask the station to mark new food in through its request file; wait for its answer.

    ``request`` is ``Config.food_request_path`` (in the data folder). The running station's
    nose looks for it at every sample, deletes it and answers in the same folder (name +
    :data:`ANSWER_SUFFIX`). Raises :class:`TimeoutError` (after removing the request, so it is
    not applied hours later) when no station picks it up within ``timeout_s``.
    """
    answer = request.with_name(request.name + ANSWER_SUFFIX)
    request_id = uuid.uuid4().hex
    with contextlib.suppress(OSError):  # an old answer: ours is told apart by its id anyway
        answer.unlink(missing_ok=True)
    write_json_atomically(
        request,
        {"id": request_id, "written": time.time(), "source": source},
        mode=SHARED_FILE_MODE,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            data = json.loads(answer.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            time.sleep(0.1)
            continue
        if data.get("id") == request_id:
            with contextlib.suppress(OSError):  # the station's file; it is replaced next time
                answer.unlink(missing_ok=True)
            return FoodMark(bool(data["accepted"]), str(data["message"]))
        time.sleep(0.1)
    with contextlib.suppress(FileNotFoundError):
        request.unlink()
    raise TimeoutError(
        f"no station picked up the request in {timeout_s:.0f} s: is `senses run` running "
        f"with its data in {request.parent}? (start it, then run this again)"
    )
