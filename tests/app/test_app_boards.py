"""Boards made on the phone and AI crops in the app, end to end over the Bumble link.

The station here is the real thing minus the radio: the eye (``build_eye``: backbone,
concepts, AI crops) runs its own thread over a folder of photographs, its events go through
the event store and :class:`LinkCore` to a Bumble GATT server; the phone is the app's
:class:`StationConnection` over a Bumble central. Training is the eye's own
(:func:`device.eye.cav.train_concept`) on a worker thread.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from app_harness import RecordingState, until
from PIL import Image

from device.clock import SystemClock
from device.config import Config
from device.eye.backbone import Backbone
from device.eye.service import EyeSetup, build_eye
from device.eye.settings import DEFAULT_CONCEPTS_DIR
from device.eye.sources import synthetic_stills_dir
from device.link.bumble_link import (
    PHONE_ADDRESS,
    STATION_ADDRESS,
    BumbleLinkServer,
    virtual_device,
    virtual_link,
)
from device.link.core import LinkCore
from device.senses import StationSenses
from device.store import EventStore
from mobile_app.boards import BoardError, BoardItem
from mobile_app.connection import BumbleStationLink, StationConnection

pytestmark = pytest.mark.asyncio(loop_scope="function")

PHOTOS = synthetic_stills_dir()
HOT_DOGS = ["hot_dog", "hotdog_train_0", "hotdog_train_1"]
#: What the camera sees: an unseen hot dog and things that are not hot dogs.
SCENE = ["coffee", "hotdog_test_0", "hotdog_test_0", "brick"]


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return Backbone()


@dataclass
class LiveStation:
    eye: EyeSetup
    store: EventStore
    core: LinkCore
    server: BumbleLinkServer
    air: object
    phone_concepts: Path

    def app(self, *, pair: bool = True, mtu: int = 247) -> tuple[StationConnection, RecordingState]:
        state = RecordingState()
        link = BumbleStationLink(
            virtual_device(self.air, "phone", PHONE_ADDRESS),  # type: ignore[arg-type]
            mtu=mtu,
            pair=pair,
        )
        connection = StationConnection(
            link, state, scan_timeout_s=0.5, backoff_first_s=0.1, control_timeout_s=10.0
        )
        return connection, state


@pytest_asyncio.fixture
async def station(tmp_path: Path, backbone: Backbone) -> AsyncIterator[LiveStation]:
    scene = tmp_path / "scene"
    scene.mkdir()
    for index, name in enumerate(SCENE):
        shutil.copy(PHOTOS / f"{name}.jpg", scene / f"{index}_{name}.jpg")
    config = Config.model_validate(
        {
            "station": {"data_dir": str(tmp_path)},
            "eye": {
                "concepts": [str(DEFAULT_CONCEPTS_DIR / "cats.cav")],
                "source": {
                    "kind": "folder",
                    "path": str(scene),
                    "fps": 8.0,
                    "seconds_per_image": 1.0,
                    "loop": True,
                },
                "cooldown_s": 0.5,
                "events_per_s": 4.0,
            },
        }
    )
    clock = SystemClock()
    eye = build_eye(config, clock, emulated=False, backbone=backbone)
    store = EventStore(tmp_path / "events.db")
    handlers = StationSenses(eye=eye).control_handlers(lambda: [])
    core = LinkCore(
        store, station_name="studio", clock=clock, handlers=handlers, upload_bytes_per_s=200_000
    )
    air = virtual_link()
    server = BumbleLinkServer(virtual_device(air, "studio", STATION_ADDRESS), core)
    await server.start()
    server.attach(store)
    stop = threading.Event()

    def emit(event: object) -> None:
        store.append(event)  # type: ignore[arg-type]

    runner = threading.Thread(target=eye.service.run, args=(emit, stop), daemon=True)
    runner.start()
    yield LiveStation(eye, store, core, server, air, config.eye.phone_concepts_path(tmp_path))
    stop.set()
    runner.join(10)
    assert eye.boards is not None
    eye.boards.close()
    server.detach()
    store.close()


@pytest_asyncio.fixture
async def connected(
    station: LiveStation,
) -> AsyncIterator[Callable[..., asyncio.Future[tuple[StationConnection, RecordingState]]]]:
    tasks: list[tuple[StationConnection, asyncio.Task[None]]] = []

    async def start(
        *, pair: bool = True, mtu: int = 247
    ) -> tuple[StationConnection, RecordingState]:
        connection, state = station.app(pair=pair, mtu=mtu)
        tasks.append((connection, asyncio.create_task(connection.run())))
        await until(lambda: connection.linked and not connection.inbox.holding, 20)
        return connection, state

    yield start  # type: ignore[misc]
    for connection, task in tasks:
        connection.stop()
        await asyncio.wait_for(task, 10)


def _items(names: list[str], role: str = "positive") -> list[BoardItem]:
    return [BoardItem(str(PHOTOS / f"{n}.jpg"), role) for n in names]


async def test_a_board_from_the_phone_becomes_a_live_concept_with_crops_in_the_gallery(
    station: LiveStation,
    connected: Callable[..., asyncio.Future[tuple[StationConnection, RecordingState]]],
) -> None:
    connection, state = await connected()
    assert state.concepts == ["cats"]
    progress: list[tuple[int, int, str]] = []
    cut = asyncio.Event()

    def on_progress(sent: int, total: int, what: str) -> None:
        progress.append((sent, total, what))
        if what == "sending" and sent > total // 3 and not cut.is_set():
            cut.set()  # the phone walks out of range mid-transfer

    async def walk_away() -> None:
        await cut.wait()
        for link in station.server.connections:
            await link.disconnect()

    cutter = asyncio.create_task(walk_away())
    items = [
        *_items(HOT_DOGS),
        BoardItem(str(PHOTOS / "grass.jpg"), "negative"),
        BoardItem(str(PHOTOS / "gravel.jpg"), "negative", "upweight"),
    ]
    outcome = await asyncio.wait_for(
        connection.send_board("hot dogs", items, on_progress), timeout=300
    )
    await cutter
    assert outcome.trained, outcome.message
    # The quality report came back with the answer.
    assert outcome.numbers["accuracy"] >= 0.65 and outcome.numbers["p_value"] < 0.05
    assert 0 < outcome.numbers["stability"] <= 1
    # The transfer was cut and resumed where the station said, not restarted.
    sent = [p for p in progress if p[2] == "sending"]
    assert sent[-1][0] == sent[-1][1]
    assert any(p[2] == "waiting for the station" for p in progress)
    # Selectable on the phone, saved on the station, scored live by the running eye.
    assert state.concepts == ["cats", "hot dogs"]
    assert [p.name for p in station.phone_concepts.glob("*.cav")] == ["hot-dogs.cav"]
    await until(lambda: state.active_concept == "hot dogs", 10)
    await until(
        lambda: (
            state.concept is not None
            and state.concept["concept"] == "hot dogs"
            and (state.concept["score"] or 0) > 0.75
        ),
        30,
    )
    # An unseen hot dog in view took an AI crop: announced, thumbnail fetched, in the gallery.
    await until(lambda: any(item["concept"] == "hot dogs" for item in state.gallery), 30)
    assert await connection.fetch_missing_thumbnails() >= 1
    item = next(i for i in state.gallery if i["thumb"] is not None)
    with Image.open(io.BytesIO(item["thumb"])) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 112
    assert len(item["thumb"]) < 8000 and item["score"] > 0.75 and item["ts"] > 0


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(
            lambda d: d.write_bytes(b"\xff\xd8\xff\xe0" + bytes(300)), "not a picture", id="corrupt"
        ),
        pytest.param(
            lambda d: d.write_text("shopping list: milk"), "not a picture", id="not-an-image"
        ),
        pytest.param(lambda d: d.open("wb").truncate(41_000_000), "too large", id="huge-file"),
    ],
)
async def test_a_bad_picture_is_named_on_the_phone_and_nothing_reaches_the_station(
    station: LiveStation,
    connected: Callable[..., asyncio.Future[tuple[StationConnection, RecordingState]]],
    tmp_path: Path,
    make: Callable[[Path], object],
    expected: str,
) -> None:
    connection, _ = await connected()
    bad = tmp_path / "holiday.jpg"
    make(bad)
    with pytest.raises(BoardError, match=f"holiday.jpg.*{expected}"):
        await connection.send_board("beach", [*_items(HOT_DOGS[:2]), BoardItem(str(bad))])
    assert station.eye.service.concept_names() == ["cats"]
    assert not station.phone_concepts.exists()


async def test_refusals_before_any_upload_are_clear_on_the_phone(
    station: LiveStation,
    connected: Callable[..., asyncio.Future[tuple[StationConnection, RecordingState]]],
) -> None:
    connection, _ = await connected()
    with pytest.raises(BoardError, match="at least 2 different pictures"):
        await connection.send_board("one hot dog", _items(HOT_DOGS[:1]))
    with pytest.raises(BoardError, match="already on the station: choose another name"):
        await connection.send_board("Cats", _items(HOT_DOGS))
    with pytest.raises(BoardError, match="may hold letters"):
        await connection.send_board("../../etc", _items(HOT_DOGS))
    assert station.eye.service.concept_names() == ["cats"]
    assert not station.phone_concepts.exists()


async def test_an_unpaired_phone_cannot_send_a_board(
    station: LiveStation,
    connected: Callable[..., asyncio.Future[tuple[StationConnection, RecordingState]]],
) -> None:
    connection, _ = await connected(pair=False)
    with pytest.raises(BoardError, match=r"paired with its passkey.*senses link pair"):
        await connection.send_board("hot dogs", _items(HOT_DOGS))
    assert station.eye.service.concept_names() == ["cats"]


async def test_a_link_too_narrow_for_pictures_says_so(
    station: LiveStation,
    connected: Callable[..., asyncio.Future[tuple[StationConnection, RecordingState]]],
) -> None:
    connection, _ = await connected(mtu=23)  # a phone that never raised the MTU
    with pytest.raises(BoardError, match="too narrow to send pictures"):
        await connection.send_board("hot dogs", _items(HOT_DOGS))
    assert station.eye.service.concept_names() == ["cats"]


async def test_the_demo_station_takes_ai_crops_whose_thumbnails_reach_the_gallery() -> None:
    from mobile_app.demo import simulated_station

    state = RecordingState()
    async with simulated_station(state, nose=False, scan_timeout_s=0.2, backoff_first_s=0.1) as sim:
        sim.eye_and_ear.concept_period_s = 0.02  # many scores: some are high enough to crop
        await until(lambda: bool(state.gallery), 30)
        assert await sim.connection.fetch_missing_thumbnails() >= 1
        item = next(i for i in state.gallery if i["thumb"] is not None)
        with Image.open(io.BytesIO(item["thumb"])) as thumb:
            assert thumb.format == "JPEG"
        assert item["score"] >= 0.85
