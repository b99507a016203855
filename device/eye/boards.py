"""Boards made on the phone: a resumable, checksummed upload, then training off the link's loop.

The conversation on the control point (ops in :data:`device.link.protocol.CONTROL_OPS`):

1. ``board_begin`` {upload_id, concept (the name), size, sha256}: the station checks the name
   (well formed, not already a concept here) and the size against the limits of
   :mod:`device.link.boardfile`, and keeps a partial upload under that id. Asked again with
   the same id (after a reconnect) it answers where to resume: ``offset`` = bytes it holds.
2. ``board_chunk`` {upload_id, offset, data, crc32}, in order: a chunk whose CRC-32 does not
   match, or that starts anywhere but at ``offset``, is refused with the offset to send
   next; a chunk sent twice (its answer was lost) is accepted once. The last byte starts the
   check: the whole must match the announced sha256, or the upload is dropped.
3. The board is read and trained on a worker thread (:func:`device.eye.cav.train_concept`,
   with its own backbone interpreter), so neither the link's event loop nor the eye's
   scoring waits. ``board_status`` {upload_id} says "receiving", "training", "trained" (with
   accuracy, AUC, p-value and stability) or "refused" (with the reason, and the numbers when
   the quality check refused it).
4. A trained concept is written to the phone-concepts folder (temp file, then an atomic
   rename: a crash never leaves half a concept) and handed to the running eye, which scores
   it from its next frame; station info lists it, so the phone can select it.

Nothing here touches the running concepts until a concept has passed every check; a cut
transfer leaves only its partial file, deleted when the upload is given up or expires.
"""

from __future__ import annotations

import hashlib
import io
import logging
import queue
import re
import shutil
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from PIL import Image, UnidentifiedImageError

from device.clock import Clock
from device.errors import ConceptError, MoodBoardError
from device.eye.images import BoardPicture, MoodBoard, board_from_pictures
from device.link import boardfile
from device.link.boardfile import BoardFileError, Picture
from device.link.protocol import ResultCode

if TYPE_CHECKING:
    from device.eye.cav import TrainingResult
    from device.eye.service import EyeService

log = logging.getLogger(__name__)

MAX_PARTIAL_UPLOADS: Final = 4
"""Unfinished uploads kept at once; starting another gives up the oldest."""
PARTIAL_MAX_AGE_S: Final = 3600.0
"""An unfinished upload untouched this long is given up (its partial file deleted)."""
MAX_KEPT_OUTCOMES: Final = 16
_UPLOAD_ID: Final = re.compile(r"^[0-9A-Za-z-]{8,40}$")

RECEIVING: Final = "receiving"
TRAINING: Final = "training"
TRAINED: Final = "trained"
REFUSED: Final = "refused"

TrainFunction = Callable[[MoodBoard, str], "TrainingResult"]


@dataclass
class Answer:
    """What a board op answers: a result code, a detail for the phone, result fields."""

    code: ResultCode
    detail: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Upload:
    upload_id: str
    name: str
    size: int
    sha256: bytes
    path: Path
    touched_s: float
    received: int = 0
    state: str = RECEIVING
    detail: str | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def answer(self, code: ResultCode = ResultCode.OK, detail: str | None = None) -> Answer:
        return Answer(
            code,
            detail if detail is not None else self.detail,
            {
                "offset": self.received,
                "size": self.size,
                "state": self.state,
                "concept": self.name,
                **self.report,
            },
        )


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:40] or "concept"


def _too_large(picture: Picture) -> str | None:
    """The link's limit on a picture's side, from its header (pixels are not decoded here)."""
    try:
        with Image.open(io.BytesIO(picture.jpeg)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None  # unreadable: board_from_pictures names it with the other problems
    if max(width, height) <= boardfile.MAX_PICTURE_SIDE_PX:
        return None
    return (
        f"{picture.file} is {width}x{height} pixels; at most {boardfile.MAX_PICTURE_SIDE_PX} "
        f"on a side (the app sends {boardfile.SEND_SIDE_PX} px)"
    )


def mood_board(pictures: list[Picture]) -> MoodBoard:
    """The pictures as a :class:`MoodBoard`, checked as every board is
    (:func:`~device.eye.images.board_from_pictures`) and against the link's size limit;
    :class:`MoodBoardError` lists every problem."""
    too_large = [problem for problem in map(_too_large, pictures) if problem]
    if too_large:
        raise MoodBoardError("the mood board cannot be used:\n  " + "\n  ".join(too_large))
    return board_from_pictures(
        [BoardPicture(p.jpeg, p.role, p.weight, p.file) for p in pictures]  # type: ignore[arg-type]
    )


def quality_fields(report: Any) -> dict[str, Any]:
    """The numbers of a :class:`~device.eye.cav.QualityReport` the phone shows."""
    return {
        "accuracy": float(report.cv_accuracy),
        "auc": float(report.cv_auc),
        "p_value": float(report.p_value),
        "stability": float(report.stability),
    }


class BoardUploads:
    """The station's end of board uploads (see the module docstring). Thread-safe."""

    def __init__(
        self,
        eye: EyeService,
        upload_dir: Path,
        concepts_dir: Path,
        clock: Clock,
        *,
        train: TrainFunction | None = None,
    ) -> None:
        self.eye = eye
        self.upload_dir = Path(upload_dir)
        self.concepts_dir = Path(concepts_dir)
        self.clock = clock
        self._train_fn = train
        self._lock = threading.Lock()
        self._uploads: OrderedDict[str, _Upload] = OrderedDict()
        # One daemon thread trains boards in turn: a station shutting down does not wait
        # for a training to finish (the .cav is written atomically, so none is half-written).
        self._jobs: queue.SimpleQueue[_Upload | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        # Partial uploads from before a restart cannot be resumed (their metadata was in
        # memory): the phone starts them again, so their bytes are only litter.
        shutil.rmtree(self.upload_dir, ignore_errors=True)

    def close(self) -> None:
        """Stop the training thread after the board it trains (if any)."""
        self._jobs.put(None)

    def _work(self) -> None:
        while (upload := self._jobs.get()) is not None:
            self._train(upload)

    # --- the ops ---------------------------------------------------------------------------

    def handle(self, op: str, payload: dict[str, Any]) -> Answer:
        """Answer one board op; never raises for bad input (the answer says what is wrong)."""
        with self._lock:
            self._expire()
            if op == "board_begin":
                return self._begin(payload)
            upload = self._uploads.get(str(payload.get("upload_id") or ""))
            if upload is None:
                return Answer(
                    ResultCode.INVALID_ARGUMENT,
                    "the station holds no such upload (it restarted, or the upload expired): "
                    "send the board again",
                )
            upload.touched_s = self.clock.monotonic()
            if op == "board_chunk":
                return self._chunk(upload, payload)
            return upload.answer()

    def _begin(self, payload: dict[str, Any]) -> Answer:
        upload_id = str(payload.get("upload_id") or "")
        size, digest = payload.get("size"), payload.get("sha256")
        if not _UPLOAD_ID.match(upload_id):
            return Answer(ResultCode.INVALID_ARGUMENT, "board_begin needs an upload_id")
        if not isinstance(digest, bytes) or len(digest) != 32:
            return Answer(ResultCode.INVALID_ARGUMENT, "board_begin needs the board's sha256")
        if not isinstance(size, int) or not 0 < size <= boardfile.MAX_BOARD_BYTES:
            return Answer(
                ResultCode.INVALID_ARGUMENT,
                f"a board may be 1 byte to {boardfile.MAX_BOARD_BYTES // 1000} KB; this one "
                f"is {size} bytes: send fewer or smaller pictures",
            )
        try:
            name = boardfile.check_name(str(payload.get("concept") or ""))
        except BoardFileError as e:
            return Answer(ResultCode.INVALID_ARGUMENT, str(e))
        existing = self._uploads.get(upload_id)
        if existing is not None:
            if (existing.name, existing.size, existing.sha256) != (name, size, digest):
                return Answer(
                    ResultCode.INVALID_ARGUMENT,
                    "this upload id belongs to another board: start with a new id",
                )
            existing.touched_s = self.clock.monotonic()
            return existing.answer()  # resume: "offset" is where to go on
        clash = self._name_clash(name)
        if clash:
            return Answer(ResultCode.INVALID_ARGUMENT, clash)
        receiving = [u for u in self._uploads.values() if u.state == RECEIVING]
        for old in receiving[: max(0, len(receiving) - MAX_PARTIAL_UPLOADS + 1)]:
            self._give_up(old, "a newer upload took its place")
        path = self.upload_dir / f"{upload_id}.part"
        try:
            self.upload_dir.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        except OSError as e:
            log.error("boards: cannot store an upload in %s: %s", self.upload_dir, e)
            return Answer(ResultCode.UNAVAILABLE, f"the station cannot store the board: {e}")
        upload = _Upload(upload_id, name, size, digest, path, self.clock.monotonic())
        self._uploads[upload_id] = upload
        self._trim_outcomes()
        log.info("boards: receiving %r (%d bytes) as upload %s", name, size, upload_id)
        return upload.answer()

    def _chunk(self, upload: _Upload, payload: dict[str, Any]) -> Answer:
        if upload.state != RECEIVING:
            return upload.answer()  # the last chunk's answer was lost: say where it is
        offset, data, crc = payload.get("offset"), payload.get("data"), payload.get("crc32")
        if not isinstance(offset, int) or not isinstance(data, bytes) or not data:
            return upload.answer(ResultCode.INVALID_ARGUMENT, "board_chunk needs offset and data")
        if offset < upload.received and offset + len(data) <= upload.received:
            return upload.answer()  # sent twice: already have it
        if offset != upload.received:
            return upload.answer(
                ResultCode.INVALID_ARGUMENT,
                f"expected the chunk at byte {upload.received}, got {offset}: resume there",
            )
        if crc != zlib.crc32(data):
            return upload.answer(
                ResultCode.INVALID_ARGUMENT,
                f"the chunk at byte {offset} arrived damaged (CRC-32): send it again",
            )
        if offset + len(data) > upload.size:
            return upload.answer(
                ResultCode.INVALID_ARGUMENT,
                f"the chunk goes past the {upload.size} bytes announced",
            )
        try:
            with upload.path.open("ab") as out:
                out.write(data)
        except OSError as e:
            self._give_up(upload, f"the station could not store it ({e})")
            return upload.answer(ResultCode.UNAVAILABLE)
        upload.received += len(data)
        if upload.received == upload.size:
            self._complete(upload)
        return upload.answer()

    # --- checking and training -------------------------------------------------------------

    def _complete(self, upload: _Upload) -> None:
        digest = hashlib.sha256()
        try:
            with upload.path.open("rb") as data:
                for block in iter(lambda: data.read(1 << 16), b""):
                    digest.update(block)
        except OSError as e:
            self._give_up(upload, f"the station could not read it back ({e})")
            return
        if digest.digest() != upload.sha256:
            self._give_up(
                upload, "the board arrived damaged (its sha256 does not match): send it again"
            )
            return
        upload.state = TRAINING
        log.info("boards: %r arrived whole; training", upload.name)
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="board-training", daemon=True)
            self._worker.start()
        self._jobs.put(upload)

    def _train(self, upload: _Upload) -> None:
        """On the worker thread: read the board, train, save, hand the concept to the eye."""
        try:
            blob = upload.path.read_bytes()
            name, pictures = boardfile.decode_board(blob)
            if name != upload.name:
                raise MoodBoardError(f"the board is named {name!r}, announced as {upload.name!r}")
            board = mood_board(pictures)
            result = self._trainer()(board, name)
            numbers = quality_fields(result.report)
            if not result.report.accepted:
                self._finish(
                    upload,
                    REFUSED,
                    f"not a reliable concept: {result.report.refused_because}",
                    numbers,
                )
                return
            self._save_and_add(upload, result, numbers)
        except (BoardFileError, ConceptError) as e:
            self._finish(upload, REFUSED, str(e))
        except Exception as e:
            log.exception("boards: training %r failed", upload.name)
            self._finish(
                upload, REFUSED, f"training failed on the station ({type(e).__name__}: {e})"
            )
        finally:
            upload.path.unlink(missing_ok=True)

    def _save_and_add(
        self, upload: _Upload, result: TrainingResult, numbers: dict[str, Any]
    ) -> None:
        with self._lock:
            clash = self._name_clash(upload.name, ignore=upload)
            if clash:
                self._finish_locked(upload, REFUSED, clash, numbers)
                return
            path = self.concepts_dir / f"{_slug(upload.name)}.cav"
            if path.exists():
                path = self.concepts_dir / f"{_slug(upload.name)}-{result.concept.id[:8]}.cav"
            self.concepts_dir.mkdir(parents=True, exist_ok=True)
            result.concept.save(path)  # a temp file renamed into place (write_cav)
            try:
                self.eye.add_concept(result.concept)
            except ConceptError as e:
                path.unlink(missing_ok=True)
                self._finish_locked(upload, REFUSED, str(e), numbers)
                return
            log.info("boards: concept %r trained from the phone, saved as %s", upload.name, path)
            self._finish_locked(upload, TRAINED, f"“{upload.name}” is ready", numbers)

    def _trainer(self) -> TrainFunction:
        if self._train_fn is None:
            self._train_fn = default_trainer(self.eye)
        return self._train_fn

    # --- bookkeeping -----------------------------------------------------------------------

    def _name_clash(self, name: str, ignore: _Upload | None = None) -> str | None:
        taken = {n.casefold() for n in self.eye.concept_names()}
        busy = {
            u.name.casefold()
            for u in self._uploads.values()
            if u is not ignore and u.state in (RECEIVING, TRAINING)
        }
        if name.casefold() in taken:
            return f"a concept called “{name}” is already on the station: choose another name"
        if name.casefold() in busy:
            return f"a board called “{name}” is already being sent or trained: wait, or rename"
        return None

    def _finish(
        self, upload: _Upload, state: str, detail: str, report: dict[str, Any] | None = None
    ) -> None:
        with self._lock:
            self._finish_locked(upload, state, detail, report)

    def _finish_locked(
        self, upload: _Upload, state: str, detail: str, report: dict[str, Any] | None = None
    ) -> None:
        upload.state, upload.detail, upload.report = state, detail, dict(report or {})
        if state == REFUSED:
            log.warning("boards: %r refused: %s", upload.name, detail)

    def _give_up(self, upload: _Upload, why: str) -> None:
        upload.path.unlink(missing_ok=True)
        upload.received = 0
        self._finish_locked(upload, REFUSED, why)

    def _expire(self) -> None:
        now = self.clock.monotonic()
        for upload in list(self._uploads.values()):
            if upload.state == RECEIVING and now - upload.touched_s > PARTIAL_MAX_AGE_S:
                self._give_up(upload, "the upload stopped for too long: send the board again")

    def _trim_outcomes(self) -> None:
        done = [u for u in self._uploads.values() if u.state in (TRAINED, REFUSED)]
        for old in done[: max(0, len(done) - MAX_KEPT_OUTCOMES)]:
            del self._uploads[old.upload_id]


def default_trainer(eye: EyeService) -> TrainFunction:
    """Train with :func:`device.eye.cav.train_concept` on an interpreter of the eye's backbone
    of its own (one thread), so scoring never waits for training."""
    from device.eye.backbone import Backbone
    from device.eye.cav import train_concept
    from device.eye.negatives import load_bank

    if eye.backbone is None:
        raise ConceptError("the eye has no backbone model: it cannot train a concept")
    backbone = Backbone(eye.backbone.model.folder, num_threads=1)
    bank = load_bank(backbone)

    def train(board: MoodBoard, name: str) -> TrainingResult:
        return train_concept(board, backbone, bank, name)

    return train
