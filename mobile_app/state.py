"""The companion app's state: what the screens show, as a plain Python model.

No Kivy here, so every rule (what raises an alert, what counts as today, what is kept) is
tested without a window. Events come in as decoded :class:`~device.link.protocol.Message` s
(from the BLE link, live or backfilled), connection changes come from
:mod:`mobile_app.connection`, and the UI reads the attributes and redraws when a listener
fires.

Alerts (:class:`Alert`) are raised on transitions only, never repeatedly for one condition:

* food turns *spoiling* or *spoiled* (a worsening of the trusted verdict; verdicts made while
  a sensor warms up are shown but never alert, as the station marks them untrustworthy);
* a species heard for the first time this local day;
* the station out of reach for longer than :attr:`Settings.disconnected_alert_after_s`
  (once per outage, raised by :meth:`AppState.tick`);
* a station component that reports ``failed`` (once until it recovers).

Histories are persisted with :meth:`AppState.save` / :meth:`AppState.load`, so the app
remembers what happened while the phone was away, and it resumes the backfill from
:attr:`AppState.last_seq`.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import enum
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from device.link.protocol import EVENT_TYPES, Message

log = logging.getLogger(__name__)

STATE_FORMAT: Final = 1
"""Version of the persisted state file; another version is ignored (the app starts empty)."""

NOSE_HISTORY_S: Final = 6 * 3600.0
MAX_NOSE_POINTS: Final = 2400
"""Per series: 6 h at the station's 10 s sample period is 2160 points."""
FOOD_HISTORY_S: Final = 48 * 3600.0
MAX_FOOD_POINTS: Final = 2000
MAX_BIRDS: Final = 200
MAX_ALERTS: Final = 100
HOURS_PER_DAY: Final = 24

AlertKind = Literal["food", "new_species", "disconnected", "station"]
Severity = Literal["info", "warning", "danger"]
_SEVERITY_RANK: Final[dict[str, int]] = {"info": 0, "warning": 1, "danger": 2}
_FOOD_RANK: Final[dict[str, int]] = {"fresh": 0, "spoiling": 1, "spoiled": 2}


class ConnectionState(enum.StrEnum):
    """Where the app is with the station's BLE link."""

    IDLE = "idle"
    """Not trying (stopped, or not started yet)."""
    SCANNING = "scanning"
    CONNECTING = "connecting"
    BACKFILLING = "backfilling"
    """Linked, fetching what happened while away; live events wait until it is done."""
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    """The link dropped or an attempt failed; a retry is scheduled (see ``reconnect_at``)."""

    @property
    def label(self) -> str:
        """What the status bar says."""
        return _LABELS[self]

    @property
    def linked(self) -> bool:
        """True while a BLE link to the station is up."""
        return self in (ConnectionState.BACKFILLING, ConnectionState.CONNECTED)


_LABELS: Final = {
    ConnectionState.IDLE: "Not connected",
    ConnectionState.SCANNING: "Looking for the station…",
    ConnectionState.CONNECTING: "Connecting…",
    ConnectionState.BACKFILLING: "Catching up…",
    ConnectionState.CONNECTED: "Connected",
    ConnectionState.DISCONNECTED: "Disconnected",
}


# ---------------------------------------------------------------------------------- settings


@dataclass
class Settings:
    """What the user can change on the settings screen (saved as JSON)."""

    alert_on_spoiling: bool = True
    alert_on_spoiled: bool = True
    alert_new_species: bool = True
    alert_disconnected: bool = True
    disconnected_alert_after_s: float = 600
    temperature_unit: Literal["C", "F"] = "C"
    concept_threshold: float = 0.7
    """A concept score at or above this counts as "seen" (:attr:`AppState.concept_match`)."""
    species_min_confidence: float = 0.5
    """Bird detections below this (their ``confidence_max``) are ignored altogether."""

    def save(self, path: Path | str) -> None:
        """Write the settings as JSON (atomically: a crash never leaves half a file)."""
        _write_json(Path(path), dataclasses.asdict(self))

    @classmethod
    def load(cls, path: Path | str) -> Settings:
        """The settings in ``path``; defaults if it is missing. Never raises for a bad file:
        an unreadable file gives all defaults, a bad value its field's default, each with a
        logged warning."""
        path = Path(path)
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            log.warning("settings: cannot read %s (%s); using the defaults", path, e)
            return cls()
        if not isinstance(raw, dict):
            log.warning("settings: %s is not a JSON object; using the defaults", path)
            return cls()
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "settings") -> Settings:
        """Settings from a plain dict; unknown keys and bad values are logged and skipped."""
        defaults = cls()
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in raw:
                continue
            value, default = raw[f.name], getattr(defaults, f.name)
            checked = _check_setting(f.name, value, default)
            if checked is None:
                log.warning(
                    "settings: %s: %s = %r is not valid; using %r", source, f.name, value, default
                )
            else:
                values[f.name] = checked
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            log.warning("settings: %s: ignoring unknown keys %s", source, sorted(unknown))
        return cls(**values)

    def temperature(self, celsius: float) -> float:
        """``celsius`` in the unit the user chose."""
        return celsius * 9 / 5 + 32 if self.temperature_unit == "F" else celsius

    def format_temperature(self, celsius: float | None) -> str:
        """E.g. "4.5 °C", "40.1 °F", or "–" when unknown."""
        if celsius is None:
            return "–"
        return f"{self.temperature(celsius):.1f} °{self.temperature_unit}"


def _check_setting(name: str, value: Any, default: Any) -> Any:
    """``value`` if it is acceptable for the setting ``name``, else None."""
    if isinstance(default, bool):
        return value if isinstance(value, bool) else None
    if name == "temperature_unit":
        return value if value in ("C", "F") else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    number = float(value)
    if name in ("concept_threshold", "species_min_confidence"):
        return number if 0.0 <= number <= 1.0 else None
    return number if number > 0 else None  # disconnected_alert_after_s


# ------------------------------------------------------------------------------------ alerts


@dataclass(frozen=True)
class Alert:
    """Something the user should notice: a banner in the app, a notification on the phone."""

    ts: float
    kind: AlertKind
    title: str
    message: str
    severity: Severity = "info"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Alert:
        return cls(
            ts=float(raw["ts"]),
            kind=raw["kind"],
            title=str(raw["title"]),
            message=str(raw["message"]),
            severity=raw.get("severity", "info"),
        )


# --------------------------------------------------------------------------------- app state


def local_day(ts: float) -> str:
    """The local calendar day of Unix time ``ts``, as "YYYY-MM-DD"."""
    return datetime.fromtimestamp(ts).date().isoformat()


def _local_hour(ts: float) -> int:
    return datetime.fromtimestamp(ts).hour


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class AppState:
    """Everything the screens show. Feed it with :meth:`apply`, :meth:`set_connection` and
    :meth:`tick`; each returns the alerts it raised (they are also in :attr:`alerts`).

    Not thread-safe: call it from the app's event loop (bleak and Bumble callbacks already
    run there).
    """

    def __init__(
        self, settings: Settings | None = None, *, now: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self.now = now
        # Link
        self.connection = ConnectionState.IDLE
        self.connected_since: float | None = None
        self.disconnected_since: float | None = None
        """When the current outage began (None while linked or idle)."""
        self.reconnect_at: float | None = None
        """When the next connection attempt starts (set by the connection while waiting)."""
        self.station_name: str | None = None
        self.station_address: str | None = None
        """The station the app connects to (remembered once one has been found)."""
        self.link_problem: str | None = None
        """A problem with the link worth showing while connected (e.g. not paired)."""
        self.last_seq = 0
        """Highest event seq applied: the next backfill starts here."""
        self.newest_seq: dict[str, int] = {}
        """Highest seq applied per event type (duplicates are recognised per stream)."""
        # Nose and food
        self.food: dict[str, Any] | None = None
        self.food_history: list[tuple[float, float, str]] = []
        """(ts, freshness 0-1, label) of trusted verdicts (not warming up), oldest first."""
        self.nose: dict[str, Any] | None = None
        self.nose_history: dict[str, list[tuple[float, float]]] = {}
        """Series such as "temperature_c", "MQ135.rs_kohm", "MQ135.ratio", "NH3_ppm":
        (ts, value), oldest first, the last 6 h."""
        self.sensor_status: dict[str, str] = {}
        # Eye
        self.concept: dict[str, Any] | None = None
        self.concepts: list[str] = []
        self.active_concept: str | None = None
        # Ear
        self.birds: list[dict[str, Any]] = []
        """Recent detections at or above the confidence setting, newest first."""
        self.today: str | None = None
        """The local day that species_today and birds_by_hour count."""
        self.species_today: dict[str, int] = {}
        self.birds_by_hour: dict[str, list[int]] = {}
        self.scientific_names: dict[str, str] = {}
        """Common name -> scientific name, as the station's species model gave them."""
        self.species_model: str | None = None
        """Which models name the birds at the station (station info), e.g. BirdNET."""
        # Station
        self.health: dict[str, dict[str, Any]] = {}
        # Alerts
        self.alerts: list[Alert] = []
        self.banner: Alert | None = None
        self._trusted_food: str | None = None
        self._concepts_from_station = False
        self._outage_alerted = False
        self._failed: set[str] = set()
        self._listeners: list[Callable[[], None]] = []
        self._alert_listeners: list[Callable[[Alert], None]] = []
        self._batch_depth = 0
        self._dirty = False

    # --- listeners ---------------------------------------------------------------------------

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every change (the UI schedules a redraw)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def add_alert_listener(self, callback: Callable[[Alert], None]) -> None:
        """Call ``callback(alert)`` for each new alert (e.g. to post a phone notification)."""
        self._alert_listeners.append(callback)

    def remove_alert_listener(self, callback: Callable[[Alert], None]) -> None:
        with contextlib.suppress(ValueError):
            self._alert_listeners.remove(callback)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Tell listeners once, at the end, about all changes made inside (a backfill page)."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0 and self._dirty:
                self._notify()

    def _changed(self) -> None:
        if self._batch_depth:
            self._dirty = True
        else:
            self._notify()

    def _notify(self) -> None:
        self._dirty = False
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                # A broken redraw must not stop the link from feeding the state.
                log.exception("state listener %r failed", callback)

    # --- alerts ------------------------------------------------------------------------------

    def _raise(self, alert: Alert, out: list[Alert]) -> None:
        out.append(alert)
        self.alerts.insert(0, alert)
        del self.alerts[MAX_ALERTS:]
        # A calmer alert does not hide a more serious one still on screen.
        if self.banner is None or (
            _SEVERITY_RANK[alert.severity] >= _SEVERITY_RANK[self.banner.severity]
        ):
            self.banner = alert
        for callback in list(self._alert_listeners):
            try:
                callback(alert)
            except Exception:
                log.exception("alert listener %r failed", callback)

    def dismiss_banner(self) -> None:
        if self.banner is not None:
            self.banner = None
            self._changed()

    def clear_alerts(self) -> None:
        self.alerts.clear()
        self.banner = None
        self._changed()

    # --- connection --------------------------------------------------------------------------

    def set_connection(self, state: ConnectionState) -> list[Alert]:
        """Record a connection change. The outage clock starts when the link is lost (or
        the first attempt starts) and stops once linked again or stopped by the user."""
        state = ConnectionState(state)
        if state == self.connection:
            return []
        now = self.now()
        self.connection = state
        if state.linked:
            if self.connected_since is None:
                self.connected_since = now
            self.disconnected_since = None
            self.reconnect_at = None
            self._outage_alerted = False
            if self.banner is not None and self.banner.kind == "disconnected":
                self.banner = None
        elif state is ConnectionState.IDLE:
            self.connected_since = None
            self.disconnected_since = None
            self.reconnect_at = None
            self._outage_alerted = False
        else:
            self.connected_since = None
            if self.disconnected_since is None:
                self.disconnected_since = now
        if state is not ConnectionState.DISCONNECTED:
            self.reconnect_at = None
        alerts = self._check_outage(now)
        self._changed()
        return alerts

    def tick(self) -> list[Alert]:
        """Call about once a second: raises the "disconnected too long" alert when due."""
        now = self.now()
        alerts = self._check_outage(now)
        if self._roll_day(local_day(now)) or alerts:
            self._changed()
        return alerts

    def schedule_reconnect(self, at: float | None) -> None:
        """Show when the next attempt starts (the connection calls it while backing off)."""
        self.reconnect_at = at
        self._changed()

    def _check_outage(self, now: float) -> list[Alert]:
        out: list[Alert] = []
        since = self.disconnected_since
        if (
            since is None
            or self._outage_alerted
            or not self.settings.alert_disconnected
            or now - since < self.settings.disconnected_alert_after_s
        ):
            return out
        self._outage_alerted = True
        name = self.station_name or "The station"
        self._raise(
            Alert(
                ts=now,
                kind="disconnected",
                title="Station out of reach",
                message=f"{name} has been disconnected for {_duration(now - since)}.",
                severity="warning",
            ),
            out,
        )
        return out

    # --- events ------------------------------------------------------------------------------

    def apply(self, message: Message) -> list[Alert]:
        """One decoded message in; the alerts it raised out. An event whose seq was already
        applied for its stream is ignored (backfill and live can overlap)."""
        out: list[Alert] = []
        if message.type == "station_info":
            self._apply_station_info(message.payload)
            self._changed()
            return out
        if message.type not in EVENT_TYPES:
            return out  # control results are the connection's business
        if message.seq <= self.newest_seq.get(message.type, 0):
            log.debug("state: %s seq %d already applied", message.type, message.seq)
            return out
        self.newest_seq[message.type] = message.seq
        self.last_seq = max(self.last_seq, message.seq)
        payload = message.payload
        if message.type == "food":
            self._apply_food(payload, out)
        elif message.type == "nose":
            self._apply_nose(payload)
        elif message.type == "concept":
            self._apply_concept(payload)
        elif message.type == "bird":
            self._apply_bird(payload, out)
        elif message.type == "health":
            self._apply_health(payload, out)
        self._changed()
        return out

    def _apply_station_info(self, info: Mapping[str, Any]) -> None:
        name = info.get("station_name")
        if name:
            self.station_name = str(name)
        concepts = info.get("concepts")  # absent when the station has no camera
        if isinstance(concepts, list):
            self.concepts = [str(c) for c in concepts]
            self._concepts_from_station = True
        active = info.get("active_concept")
        if isinstance(active, str) and active:
            self.active_concept = active
        species_model = info.get("species_model")  # absent: an older station, or no ear
        if isinstance(species_model, str) and species_model:
            self.species_model = species_model
        newest = info.get("newest_seq")
        if isinstance(newest, int) and newest < self.last_seq:
            # The station's store was reset: its seqs start again, so ours must too, or every
            # new event would look like a duplicate. The histories stay.
            log.warning(
                "state: the station's newest seq %d is below ours (%d): its event store was "
                "reset; starting over from 0",
                newest,
                self.last_seq,
            )
            self.last_seq = 0
            self.newest_seq = {}

    def _apply_food(self, food: dict[str, Any], out: list[Alert]) -> None:
        ts = _number(food.get("ts")) or self.now()
        self.food = food
        label = food.get("label")
        if food.get("warming_up") or label not in _FOOD_RANK:
            return  # shown, never trusted: no history point, no alert
        freshness = _number(food.get("freshness"))
        if freshness is not None:
            _append_bounded(self.food_history, (ts, freshness, str(label)), MAX_FOOD_POINTS)
            _drop_before(self.food_history, ts - FOOD_HISTORY_S)
        previous = self._trusted_food
        self._trusted_food = str(label)
        if _FOOD_RANK[str(label)] <= _FOOD_RANK.get(previous or "fresh", 0):
            return  # only a worsening is news; back to fresh rearms the alerts
        if label == "spoiling" and self.settings.alert_on_spoiling:
            self._raise(
                Alert(
                    ts,
                    "food",
                    "Food is spoiling",
                    "The food in the box is starting to spoil: use it soon.",
                    "warning",
                ),
                out,
            )
        elif label == "spoiled" and self.settings.alert_on_spoiled:
            self._raise(
                Alert(
                    ts,
                    "food",
                    "Food is spoiled",
                    "The food in the box has spoiled: do not eat it.",
                    "danger",
                ),
                out,
            )

    def _apply_nose(self, nose: dict[str, Any]) -> None:
        ts = _number(nose.get("ts"))
        if ts is None:
            return
        self.nose = nose
        points: dict[str, float | None] = {
            "temperature_c": _number(nose.get("temperature_c")),
            "humidity_pct": _number(nose.get("humidity_pct")),
        }
        for sensor in nose.get("sensors") or []:
            name = str(sensor.get("name"))
            if sensor.get("status"):
                self.sensor_status[name] = str(sensor["status"])
            points[f"{name}.rs_kohm"] = _number(sensor.get("rs_kohm"))
            points[f"{name}.ratio"] = _number(sensor.get("ratio"))
            for gas, ppm in (sensor.get("ppm") or {}).items():
                # Several sensors may estimate one gas; the first in the station's sensor
                # order (its configuration) is the series, so a chart never mixes two curves.
                points.setdefault(f"{gas}_ppm", _number(ppm))
        for key, value in points.items():
            if value is None:
                continue
            series = self.nose_history.setdefault(key, [])
            if series and ts < series[-1][0]:
                continue  # older than what we have (a backfilled overlap): charts stay sorted
            _append_bounded(series, (ts, value), MAX_NOSE_POINTS)
            _drop_before(series, ts - NOSE_HISTORY_S)

    def _apply_concept(self, concept: dict[str, Any]) -> None:
        self.concept = concept
        name = concept.get("concept")
        if name:
            self.active_concept = str(name)
            if not self._concepts_from_station and name not in self.concepts:
                self.concepts.append(str(name))

    def _apply_bird(self, bird: dict[str, Any], out: list[Alert]) -> None:
        confidence = _number(bird.get("confidence_max")) or 0.0
        species = bird.get("species")
        ts = _number(bird.get("ts"))
        if not species or ts is None or confidence < self.settings.species_min_confidence:
            return
        self.birds.insert(0, bird)
        self.birds.sort(key=lambda b: b.get("ts") or 0.0, reverse=True)  # backfill can be late
        del self.birds[MAX_BIRDS:]
        day = local_day(ts)
        self._roll_day(day)
        if day != self.today:
            return  # an earlier day's detection (backfilled): listed, not counted
        species = str(species)
        scientific = bird.get("scientific_name")  # None from stations before BirdNET
        if isinstance(scientific, str) and scientific:
            self.scientific_names[species] = scientific
        first_today = species not in self.species_today
        self.species_today[species] = self.species_today.get(species, 0) + 1
        self.birds_by_hour.setdefault(species, [0] * HOURS_PER_DAY)[_local_hour(ts)] += 1
        if first_today and self.settings.alert_new_species:
            self._raise(
                Alert(
                    ts,
                    "new_species",
                    f"New today: {species}",
                    f"{species} heard for the first time today ({confidence:.0%} confident).",
                    "info",
                ),
                out,
            )

    def _roll_day(self, day: str) -> bool:
        """Start counting a new day once the clock or a detection has reached it."""
        if self.today is not None and day <= self.today:
            return False
        self.today = day
        self.species_today = {}
        self.birds_by_hour = {}
        return True

    def _apply_health(self, health: dict[str, Any], out: list[Alert]) -> None:
        component = str(health.get("component") or "station")
        self.health[component] = health
        if health.get("status") != "failed":
            self._failed.discard(component)
            return
        if component in self._failed:
            return  # still the same failure
        self._failed.add(component)
        self._raise(
            Alert(
                _number(health.get("ts")) or self.now(),
                "station",
                f"Station problem: {component}",
                str(health.get("message") or f"{component} failed"),
                "warning",
            ),
            out,
        )

    def set_active_concept(self, name: str) -> None:
        """The station accepted ``name`` as the concept its camera scores."""
        self.active_concept = name
        if name not in self.concepts:
            self.concepts.append(name)
        self._changed()

    # --- derived -----------------------------------------------------------------------------

    @property
    def concept_match(self) -> bool | None:
        """Whether the latest concept score reaches the threshold (None: no score yet)."""
        score = None if self.concept is None else _number(self.concept.get("score"))
        return None if score is None else score >= self.settings.concept_threshold

    # --- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything worth remembering across app restarts (not the live connection)."""
        return {
            "format": STATE_FORMAT,
            "station_name": self.station_name,
            "station_address": self.station_address,
            "last_seq": self.last_seq,
            "newest_seq": self.newest_seq,
            "food": self.food,
            "food_history": self.food_history,
            "trusted_food": self._trusted_food,
            "nose": self.nose,
            "nose_history": self.nose_history,
            "sensor_status": self.sensor_status,
            "concept": self.concept,
            "concepts": self.concepts,
            "concepts_from_station": self._concepts_from_station,
            "active_concept": self.active_concept,
            "birds": self.birds,
            "today": self.today,
            "species_today": self.species_today,
            "birds_by_hour": self.birds_by_hour,
            "scientific_names": self.scientific_names,
            "species_model": self.species_model,
            "health": self.health,
            "failed": sorted(self._failed),
            "alerts": [a.to_dict() for a in self.alerts],
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        settings: Settings | None = None,
        *,
        now: Callable[[], float] = time.time,
    ) -> AppState:
        """A state restored from :meth:`to_dict`. Raises ValueError (or KeyError/TypeError)
        for data that is not such a dict; :meth:`load` turns that into a fresh state."""
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"state format {data.get('format')!r}, expected {STATE_FORMAT}")
        state = cls(settings, now=now)
        state.station_name = data.get("station_name")
        state.station_address = data.get("station_address")
        state.last_seq = int(data.get("last_seq", 0))
        state.newest_seq = {str(k): int(v) for k, v in data.get("newest_seq", {}).items()}
        state.food = data.get("food")
        state.food_history = [
            (float(ts), float(f), str(label)) for ts, f, label in data.get("food_history", [])
        ]
        state._trusted_food = data.get("trusted_food")
        state.nose = data.get("nose")
        state.nose_history = {
            str(k): [(float(ts), float(v)) for ts, v in series]
            for k, series in data.get("nose_history", {}).items()
        }
        state.sensor_status = {str(k): str(v) for k, v in data.get("sensor_status", {}).items()}
        state.concept = data.get("concept")
        state.concepts = [str(c) for c in data.get("concepts", [])]
        state._concepts_from_station = bool(data.get("concepts_from_station", False))
        state.active_concept = data.get("active_concept")
        state.birds = list(data.get("birds", []))[:MAX_BIRDS]
        state.today = data.get("today")
        state.species_today = {str(k): int(v) for k, v in data.get("species_today", {}).items()}
        state.birds_by_hour = {
            str(k): [int(n) for n in v] for k, v in data.get("birds_by_hour", {}).items()
        }
        state.scientific_names = {
            str(k): str(v) for k, v in data.get("scientific_names", {}).items()
        }
        species_model = data.get("species_model")
        state.species_model = str(species_model) if species_model else None
        state.health = dict(data.get("health", {}))
        state._failed = set(data.get("failed", []))
        state.alerts = [Alert.from_dict(a) for a in data.get("alerts", [])][:MAX_ALERTS]
        state._roll_day(local_day(now()))  # a new day may have begun while the app was shut
        return state

    def save(self, path: Path | str) -> None:
        """Write :meth:`to_dict` as JSON, atomically."""
        _write_json(Path(path), self.to_dict())

    @classmethod
    def load(
        cls,
        path: Path | str,
        settings: Settings | None = None,
        *,
        now: Callable[[], float] = time.time,
    ) -> AppState:
        """The state saved in ``path``, or a fresh one (with a logged warning) if the file is
        missing, unreadable or from another version. Never raises for a bad file."""
        path = Path(path)
        if not path.exists():
            return cls(settings, now=now)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")), settings, now=now)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("state: cannot restore %s (%s); starting with an empty history", path, e)
            return cls(settings, now=now)


# ------------------------------------------------------------------------------------ helpers


def _append_bounded(series: list[Any], item: Any, limit: int) -> None:
    series.append(item)
    if len(series) > limit:
        del series[: len(series) - limit]


def _drop_before(series: list[Any], oldest_ts: float) -> None:
    """Drop the points of a ts-sorted series older than ``oldest_ts``."""
    if series and series[0][0] < oldest_ts:
        del series[: bisect.bisect_left(series, oldest_ts, key=lambda point: point[0])]


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{max(minutes, 1)} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
