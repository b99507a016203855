"""The eye as a sense: events, rate limits, AI crops, controls and what happens when parts fail.

Everything is real: the shipped backbone, the shipped "cats" concept, OpenCV; only the camera
is emulated (hardware/sim/camera.py) where a camera is needed.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from device.cli import main
from device.clock import ManualClock
from device.config import Config
from device.events import ConceptScore, Event, Health, HealthStatus
from device.eye.backbone import Backbone
from device.eye.concept import load_concept
from device.eye.frames import Frame
from device.eye.images import load_image
from device.eye.service import EyeService, build_eye
from device.eye.settings import DEFAULT_CONCEPTS_DIR, EyeConfig
from device.eye.snapshots import SnapshotStore
from device.eye.sources import synthetic_stills_dir

CATS = DEFAULT_CONCEPTS_DIR / "cats.cav"
FPS = 15.0


def _photo(name: str) -> np.ndarray:
    return load_image(synthetic_stills_dir() / f"{name}.jpg")


def _config(tmp_path: Path, **eye: object) -> Config:
    settings = {"concepts": [CATS], "snapshot_dir": tmp_path / "snaps", **eye}
    return Config.model_validate({"station": {"data_dir": str(tmp_path)}, "eye": settings})


def _feed(service: EyeService, clock: ManualClock, frames: list[np.ndarray]) -> list[Event]:
    """Score frames one by one at 15 fps of virtual time, as the capture thread would."""
    events: list[Event] = []
    for index, rgb in enumerate(frames):
        events += service.process(Frame(rgb, clock.wall(), clock.monotonic(), index), drops=0)
        clock.advance(1 / FPS)
    return events


def _scores(events: list[Event]) -> list[ConceptScore]:
    return [e for e in events if isinstance(e, ConceptScore)]


def test_a_cat_coming_into_view_takes_one_ai_crop(tmp_path: Path, backbone: Backbone) -> None:
    clock = ManualClock()
    setup = build_eye(_config(tmp_path), clock, emulated=True, backbone=backbone)
    frames = [_photo("coffee")] * 8 + [_photo("cat_test_0")] * 20
    events = _feed(setup.service, clock, frames)
    scores = _scores(events)
    assert scores[0].score < 0.3 and scores[-1].score > 0.9
    assert len(setup.service.saved) == 1  # one AI crop: hysteresis keeps it from repeating
    snapshot = setup.service.saved[0]
    crop, frame = load_image(snapshot.crop), load_image(snapshot.frame)
    assert frame.shape == _photo("cat_test_0").shape
    assert crop.shape[0] < frame.shape[0]  # the focus crop, cut from the full frame
    assert "cats" in snapshot.crop.name and snapshot.crop.parent == tmp_path / "snaps"


def test_events_are_rate_limited_per_concept(tmp_path: Path, backbone: Backbone) -> None:
    clock = ManualClock()
    setup = build_eye(
        _config(tmp_path, events_per_s=2.0, crop_mode="none"),
        clock,
        emulated=True,
        backbone=backbone,
    )
    events = _feed(setup.service, clock, [_photo("coffee")] * 45)  # 3 s at 15 fps
    scores = _scores(events)
    assert 6 <= len(scores) <= 7  # 2 a second, not 15
    assert scores[-1].fps == pytest.approx(FPS, rel=0.01)
    assert all(0 <= v <= 1 for s in scores for v in s.focus_box)


def test_the_link_can_pick_a_concept_and_a_threshold(tmp_path: Path, backbone: Backbone) -> None:
    cats_too = tmp_path / "kittens.cav"
    dataclasses.replace(load_concept(CATS, backbone), name="kittens").save(cats_too)
    clock = ManualClock()
    service = build_eye(
        _config(tmp_path, concepts=[CATS, cats_too]), clock, emulated=True, backbone=backbone
    ).service
    assert service.concept_names() == ["cats", "kittens"]
    assert {s.concept for s in _scores(_feed(service, clock, [_photo("pets")]))} == {
        "cats",
        "kittens",
    }
    assert service.select_concept("kittens")
    assert not service.select_concept("dogs")
    assert {s.concept for s in _scores(_feed(service, clock, [_photo("pets")] * 8))} == {"kittens"}
    assert service.set_threshold(0.95)
    assert not service.set_threshold(0.0) and not service.set_threshold(1.5)
    assert not service.set_threshold(0.05)  # below the hysteresis: could never re-arm


def test_a_missing_backbone_is_a_health_event_not_a_crash(tmp_path: Path) -> None:
    config = _config(tmp_path).model_copy(
        update={"inference": Config().inference.model_copy(update={"models_dir": tmp_path})}
    )
    setup = build_eye(config, ManualClock(), emulated=True)
    events: list[Event] = []
    setup.service.run(events.append, threading.Event())  # returns at once: nothing to score
    assert [(e.component, e.status) for e in events if isinstance(e, Health)] == [
        ("eye.model", HealthStatus.FAILED)
    ]
    assert "mobilenet_v1_embedding" in events[0].message


def test_a_corrupt_concept_is_reported_and_the_good_one_still_runs(
    tmp_path: Path, backbone: Backbone
) -> None:
    corrupt = tmp_path / "broken.cav"
    corrupt.write_bytes(CATS.read_bytes()[:200])
    clock = ManualClock()
    setup = build_eye(
        _config(tmp_path, concepts=[corrupt, CATS]), clock, emulated=True, backbone=backbone
    )
    health = [e for e in setup.events if isinstance(e, Health)]
    assert [(h.component, h.status) for h in health] == [("eye.concept", HealthStatus.FAILED)]
    assert "broken.cav" in health[0].message
    assert setup.service.concept_names() == ["cats"]


def test_a_full_disk_degrades_ai_crops_but_scoring_goes_on(
    tmp_path: Path, backbone: Backbone
) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the snapshot folder should be")
    clock = ManualClock()
    setup = build_eye(
        _config(tmp_path, snapshot_dir=blocker / "snaps"), clock, emulated=True, backbone=backbone
    )
    events = _feed(setup.service, clock, [_photo("cat_test_0")] * 3)
    degraded = [e for e in events if isinstance(e, Health)]
    assert [(h.component, h.status) for h in degraded] == [("eye.snapshots", HealthStatus.DEGRADED)]
    assert "snapshot_dir" in degraded[0].message
    assert len(_scores(events)) >= 1


def test_snapshot_retention_keeps_the_newest_within_the_limits(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, max_snapshots=2)
    frame = _photo("cat_test_0")
    for second in range(3):
        store.save(frame, (0.25, 0.25, 0.5, 0.5), concept="cats", score=0.9, ts=1e9 + second)
    kept = store.snapshots()
    assert len(kept) == 2 and all(s.crop.exists() and s.frame.exists() for s in kept)
    assert "20010909T014641" in kept[0].crop.name  # the oldest (1e9 + 0 s) was deleted
    tiny_budget = SnapshotStore(tmp_path, max_snapshots=10, budget_bytes=1)
    tiny_budget.enforce_limits()
    assert len(tiny_budget.snapshots()) == 1  # the newest stays even over budget


def test_eye_settings_refuse_a_hysteresis_that_never_rearms(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="re-arm"):
        EyeConfig(threshold=0.5, hysteresis=0.6)
    with pytest.raises(ValueError, match="needs a path"):
        EyeConfig.model_validate({"source": {"kind": "video"}})


def test_a_finite_source_ends_the_run_and_a_second_run_starts_over(
    tmp_path: Path, backbone: Backbone
) -> None:
    slides = tmp_path / "slides"
    slides.mkdir()
    for name in ("coffee", "cat_test_0"):
        (slides / f"{name}.jpg").write_bytes((synthetic_stills_dir() / f"{name}.jpg").read_bytes())
    config = _config(
        tmp_path,
        events_per_s=30.0,
        source={
            "kind": "folder",
            "path": str(slides),
            "loop": False,
            "fps": 5.0,
            "seconds_per_image": 1.0,
        },
    )
    setup = build_eye(config, ManualClock(), emulated=False, backbone=backbone)
    for _ in range(2):  # the runtime calls run again after a crash: it must start afresh
        events: list[Event] = []
        setup.service.run(events.append, threading.Event())
        scores = _scores(events)
        assert 1 <= len(scores) <= 10  # at most 2 slides × 5 frames, fewer if frames dropped
        assert scores[-1].drops <= 10


def test_senses_eye_watch_prints_live_scores_as_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    slides = tmp_path / "slides"
    slides.mkdir()
    (slides / "cat.jpg").write_bytes((synthetic_stills_dir() / "cat_test_0.jpg").read_bytes())
    monkeypatch.setenv("SENSES_DATA_DIR", str(tmp_path))
    argv = ["eye", "watch", "--concept", str(CATS), "--source", f"folder:{slides}", "--json"]
    assert main([*argv, "--seconds", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and {line["type"] for line in lines} == {"concept"}
    assert lines[-1]["concept"] == "cats" and lines[-1]["score"] > 0.5
    assert any(tmp_path.glob("eye_snapshots/*_crop.jpg"))  # the cat triggered an AI crop
