"""``senses-train birds``: build the examples, cross-validate by file, train, export, report.

1. Every recording of the :data:`~training.birds.dataset.MANIFEST` is read at the front end's
   rate and cut into the station's windows by :func:`device.ear.frontend.patches_from_waveform`
   (the same log-mel code the station runs); each window gets the label it overlaps most.
2. Augmented examples (:mod:`training.birds.augment`): bird recordings re-cut half a hop
   later (time shift), every labelled bird window mixed into real negative windows and
   generated backgrounds at several SNRs with a random gain, negatives at other gains, and
   generated "no bird" windows. Each example remembers the split groups it came from.
3. All patches go once through the YAMNet backbone (:class:`device.ear.backbone.YamnetBackbone`,
   the station's model file): 1024-d embeddings for the head, and YAMNet's own bird-class
   scores as the presence baseline.
4. Leave-one-group-out (:mod:`training.birds.splits`): per fold a head is trained on the
   examples that touch no held-out group, put behind YAMNet's bird gate
   (:func:`training.birds.head.gated_model`), exported to int8 and run on the held-out
   recordings' windows. The pooled held-out scores make the report.
5. The shipped head is trained on every trainable example, gated and written with its card.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.ear.backbone import YamnetBackbone
from device.ear.frontend import FrontendConfig, patches_from_waveform
from device.errors import BirdDataError
from training.birds import augment
from training.birds.augment import AugmentConfig
from training.birds.dataset import (
    IGNORE,
    LABELS,
    MANIFEST,
    NO_BIRD,
    LoadedRecording,
    Role,
    load_recording,
    window_labels,
)
from training.birds.head import (
    BirdGate,
    HeadConfig,
    check_bird_gate,
    export_int8,
    fit_head,
    gated_model,
    predict_float,
    read_bird_gate,
    run_int8,
)
from training.birds.splits import SYNTHETIC_GROUP, Fold, cross_validation_folds, make_fold

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NO_BIRD_INDEX = LABELS.index(NO_BIRD)
BIRD_CLASSES = [i for i, label in enumerate(LABELS) if label != NO_BIRD]
#: The station reports a species when its probability reaches this (its default
#: ``ear.threshold``); fixed before any evaluation.
PRESENCE_THRESHOLD = 0.5
#: YAMNet's own bird classes as presence: a window is "bird" when its highest bird-class score
#: reaches this. The station rule asks for both the head and this gate (report.py, scorers).
YAMNET_GATE_THRESHOLD = 0.2
#: Further YAMNet thresholds shown in the report.
YAMNET_THRESHOLDS = (0.1, 0.5)
BACKBONE_BATCH = 64


@dataclass(frozen=True)
class TrainSettings:
    """The whole run's settings (stored in the card)."""

    head: HeadConfig = field(default_factory=HeadConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    quick: bool = False


@dataclass
class Examples:
    """Every window training and evaluation use, in one table."""

    patches: list[npt.NDArray[np.float32]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    groups: list[frozenset[str]] = field(default_factory=list)
    augmented: list[bool] = field(default_factory=list)
    trainable: list[bool] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    stems: list[str] = field(default_factory=list)
    starts_s: list[float] = field(default_factory=list)

    def add(
        self,
        patches: npt.NDArray[np.float32],
        labels: Sequence[int] | IntArray,
        groups: frozenset[str],
        kind: str,
        *,
        trainable: bool = True,
        stem: str = "",
        starts_s: Sequence[float] | None = None,
    ) -> None:
        n = len(patches)
        if len(labels) != n:
            raise ValueError(f"{n} patches but {len(labels)} labels ({kind})")
        self.patches.extend(patches)
        self.labels.extend(int(v) for v in labels)
        self.groups.extend([groups] * n)
        self.augmented.extend([kind != "original"] * n)
        self.trainable.extend([trainable] * n)
        self.kinds.extend([kind] * n)
        self.stems.extend([stem] * n)
        self.starts_s.extend(starts_s if starts_s is not None else [0.0] * n)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Embedded:
    """The examples after the backbone, as arrays."""

    embeddings: FloatArray  # (n, 1024)
    yamnet_bird: FloatArray  # (n,) highest YAMNet bird-class score
    labels: IntArray
    groups: list[frozenset[str]]
    augmented: npt.NDArray[np.bool_]
    trainable: npt.NDArray[np.bool_]
    kinds: list[str]
    stems: list[str]
    starts_s: FloatArray


@dataclass(frozen=True)
class FoldOutcome:
    """One fold: what it held out, how big it was, how far float and int8 agree."""

    name: str
    train_examples: int
    test_windows: int
    agreement_class: float  # same arg-max class
    agreement_presence: float  # same bird/no-bird decision at PRESENCE_THRESHOLD
    max_abs_probability_difference: float


@dataclass
class Outcome:
    """Everything the report needs."""

    settings: TrainSettings
    data_dir: Path
    frontend_config: FrontendConfig
    recordings: list[LoadedRecording]
    embedded: Embedded
    folds: list[FoldOutcome]
    held_out_float: FloatArray  # (n, classes) of the gated head, NaN where not held out
    held_out_int8: FloatArray
    held_out_head_alone: FloatArray  # the float head without YAMNet's bird gate
    shipped_int8: FloatArray  # the shipped int8 model (gated head) on every example
    shipped_head_alone: FloatArray  # the shipped head without the gate, float
    tflite_model: bytes
    parameters: int
    gate: BirdGate
    yamnet_bird_classes: list[int]
    backbone_sha256: str  # the backbone file the embeddings came from
    gate_difference: float  # max |YAMNet bird score - the gate's recomputation|
    wall_time_s: float = 0.0
    timings_s: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # what report.json holds


def patch_geometry(config: FrontendConfig) -> tuple[int, float, float]:
    """Samples in one patch, the patch's span in seconds, and the hop between patches."""
    samples = round(config.patch_duration_s * config.sample_rate)
    return samples, config.patch_duration_s, config.patch_hop_s


def load_all(data_dir: Path, sample_rate: int) -> list[LoadedRecording]:
    """Every manifest recording; all missing or broken files are named in one error."""
    loaded, problems = [], []
    for entry in MANIFEST:
        try:
            loaded.append(load_recording(data_dir, entry, sample_rate))
        except BirdDataError as e:
            problems.append(str(e))
    if problems:
        raise BirdDataError(
            f"{len(problems)} of {len(MANIFEST)} recordings cannot be used:\n  "
            + "\n  ".join(problems)
        )
    return loaded


def build_examples(
    recordings: Sequence[LoadedRecording],
    config: AugmentConfig,
    seed: int,
    frontend_config: FrontendConfig = FrontendConfig(),  # noqa: B008
) -> Examples:
    """Original windows of every recording plus the augmented ones (module docstring)."""
    rate = int(frontend_config.sample_rate)
    patch_samples, patch_s, hop_s = patch_geometry(frontend_config)
    rng = np.random.default_rng(seed)
    examples = Examples()

    bird_windows: list[tuple[npt.NDArray[np.float32], int, str]] = []
    backgrounds: list[tuple[npt.NDArray[np.float32], str]] = []
    for recording in recordings:
        entry = recording.entry
        group = frozenset({entry.group})
        trainable = entry.role not in (Role.HARD_CASE, Role.UNLABELLED)
        patches, starts = patches_from_waveform(recording.waveform, rate, frontend_config)
        starts = np.asarray(starts, dtype=np.float64)
        labels = window_labels(recording.segments, starts, patch_s)
        if entry.role is Role.UNLABELLED:
            labels = np.full(len(starts), IGNORE, dtype=np.int64)
        examples.add(
            patches,
            labels,
            group,
            "original",
            trainable=trainable,
            stem=entry.stem,
            starts_s=starts.tolist(),
        )
        if not trainable:
            continue
        for start, label in zip(starts, labels, strict=True):
            window = augment.cut_window(recording.waveform, round(start * rate), patch_samples)
            if label == NO_BIRD_INDEX and entry.role is Role.NEGATIVE:
                backgrounds.append((window, entry.group))
            elif label not in (IGNORE, NO_BIRD_INDEX):
                bird_windows.append((window, int(label), entry.group))
        if entry.role is Role.NEGATIVE:
            for _ in range(config.negative_gain_copies):
                gained = augment.apply_gain(recording.waveform, rng.uniform(*config.gain_db))
                patches, _ = patches_from_waveform(gained, rate, frontend_config)
                examples.add(patches, [NO_BIRD_INDEX] * len(patches), group, "gain")
        else:
            for fraction in config.shift_fractions:
                offset = round(fraction * hop_s * rate)
                patches, shifted = patches_from_waveform(
                    recording.waveform[offset:], rate, frontend_config
                )
                shifted_starts = np.asarray(shifted, dtype=np.float64) + offset / rate
                labels = window_labels(recording.segments, shifted_starts, patch_s)
                examples.add(patches, labels, group, "shift")

    synthetic = [
        augment.synthetic_background(
            augment.SYNTHETIC_KINDS[i % len(augment.SYNTHETIC_KINDS)], patch_samples, rate, rng
        )
        for i in range(config.synthetic_windows)
    ]
    backgrounds += [(window, SYNTHETIC_GROUP) for window in synthetic]
    if synthetic:
        examples.add(
            window_patches(synthetic, frontend_config),
            [NO_BIRD_INDEX] * len(synthetic),
            frozenset({SYNTHETIC_GROUP}),
            "synthetic",
        )

    if not backgrounds or not bird_windows:
        raise BirdDataError("no bird windows or no backgrounds to mix: check the manifest")
    mixtures, mixture_labels, mixture_groups = [], [], []
    for call, label, call_group in bird_windows:
        for _ in range(config.mixes_per_bird_window):
            background, background_group = backgrounds[rng.integers(len(backgrounds))]
            mixed = augment.mix_at_snr(call, background, float(rng.choice(config.snr_db)))
            mixtures.append(augment.apply_gain(mixed, rng.uniform(*config.gain_db)))
            mixture_labels.append(label)
            mixture_groups.append(frozenset({call_group, background_group}))
    if mixtures:
        for patch, label, groups in zip(
            window_patches(mixtures, frontend_config), mixture_labels, mixture_groups, strict=True
        ):
            examples.add(patch[np.newaxis], [label], groups, "mix")
    return examples


def window_patches(
    windows: Sequence[npt.NDArray[np.float32]], config: FrontendConfig
) -> npt.NDArray[np.float32]:
    """The one patch of each one-patch waveform at the front end's rate, in one front-end pass.

    The windows are laid end to end on a grid of whole patch hops with silence between them,
    so patch ``k * stride`` of the stream holds exactly window ``k`` (the log-mel front end has
    no state across frames and 16 kHz input is not resampled); the patches in between are
    dropped. A test checks this against one front-end call per window.
    """
    patch_samples, _, _ = patch_geometry(config)
    hop_samples = config.patch_hop_frames * config.hop_samples
    stride = -(-patch_samples // hop_samples)
    stream = np.zeros(len(windows) * stride * hop_samples, dtype=np.float32)
    for k, window in enumerate(windows):
        if len(window) != patch_samples:
            raise ValueError(f"window {k} has {len(window)} samples, expected {patch_samples}")
        stream[k * stride * hop_samples : k * stride * hop_samples + patch_samples] = window
    patches, _ = patches_from_waveform(stream, config.sample_rate, config)
    return np.asarray(patches[::stride][: len(windows)], dtype=np.float32)


def embed(examples: Examples, backbone: YamnetBackbone, progress: bool) -> Embedded:
    """Run every patch through the station's YAMNet backbone."""
    from tqdm import tqdm

    patches = np.stack(examples.patches).astype(np.float32)
    embeddings, bird_scores = [], []
    with tqdm(total=len(patches), unit="window", desc="YAMNet", disable=not progress) as bar:
        for start in range(0, len(patches), BACKBONE_BATCH):
            scores, embedding = backbone.run(patches[start : start + BACKBONE_BATCH])
            embeddings.append(np.asarray(embedding, dtype=np.float64))
            bird_scores.append(np.asarray(backbone.bird_presence(scores), dtype=np.float64))
            bar.update(len(scores))
    return Embedded(
        embeddings=np.concatenate(embeddings),
        yamnet_bird=np.concatenate(bird_scores),
        labels=np.asarray(examples.labels, dtype=np.int64),
        groups=examples.groups,
        augmented=np.asarray(examples.augmented),
        trainable=np.asarray(examples.trainable),
        kinds=examples.kinds,
        stems=examples.stems,
        starts_s=np.asarray(examples.starts_s, dtype=np.float64),
    )


def presence(probabilities: FloatArray) -> FloatArray:
    """The highest bird-class probability: a window is reported when it reaches the station's
    threshold (device/ear/detections.py reports each label at or over it)."""
    return np.asarray(probabilities[:, BIRD_CLASSES].max(axis=1), dtype=np.float64)


def _train_rows(data: Embedded, indices: IntArray) -> IntArray:
    return np.asarray(indices[data.labels[indices] != IGNORE], dtype=np.int64)


def run_fold(
    data: Embedded,
    fold: Fold,
    config: HeadConfig,
    gate: BirdGate,
    out: tuple[FloatArray, FloatArray, FloatArray],
    on_epoch: Callable[[], None],
) -> FoldOutcome:
    """Train on ``fold.train``; fill the held-out rows of ``out`` (gated float, gated int8,
    head alone)."""
    rows = _train_rows(data, fold.train)
    head = fit_head(data.embeddings[rows], data.labels[rows], config, on_epoch)
    model = gated_model(head, gate)
    test_x = data.embeddings[fold.test]
    as_float = predict_float(model, test_x)
    as_int8 = run_int8(export_int8(model, data.embeddings[rows], config.seed), test_x)
    out[0][fold.test] = as_float
    out[1][fold.test] = as_int8
    out[2][fold.test] = predict_float(head, test_x)
    return FoldOutcome(
        name=fold.name,
        train_examples=len(rows),
        test_windows=len(fold.test),
        agreement_class=float(np.mean(as_float.argmax(1) == as_int8.argmax(1))),
        agreement_presence=float(
            np.mean(
                (presence(as_float) >= PRESENCE_THRESHOLD)
                == (presence(as_int8) >= PRESENCE_THRESHOLD)
            )
        ),
        max_abs_probability_difference=float(np.max(np.abs(as_float - as_int8))),
    )


def train_birds(
    data_dir: Path, out_dir: Path, settings: TrainSettings, *, progress: bool = True
) -> Outcome:
    """The whole job: examples, cross-validation, shipped head, model folder."""
    from tqdm import tqdm

    from training.birds.report import write_model_folder

    started = time.monotonic()
    timings: dict[str, float] = {}
    backbone = YamnetBackbone()
    frontend_config = backbone.frontend_config
    recordings = load_all(data_dir, frontend_config.sample_rate)
    examples = build_examples(recordings, settings.augment, settings.head.seed, frontend_config)
    timings["read and augment"] = time.monotonic() - started
    data = embed(examples, backbone, progress)
    timings["backbone"] = time.monotonic() - started - sum(timings.values())

    folds = [
        make_fold(held_out, data.groups, data.augmented, data.trainable)
        for held_out in cross_validation_folds(settings.quick)
    ]
    gate = read_bird_gate(backbone, YAMNET_GATE_THRESHOLD)
    shape = (len(data.labels), len(LABELS))
    held_out = (np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan))
    outcomes = []
    epochs = settings.head.epochs
    with tqdm(
        total=(len(folds) + 1) * epochs, unit="epoch", disable=not progress, leave=False
    ) as bar:
        for fold in folds:
            bar.set_description(f"held out {fold.name}")
            outcomes.append(
                run_fold(data, fold, settings.head, gate, held_out, lambda: bar.update(1))
            )
        bar.set_description("shipped head")
        rows = _train_rows(data, np.flatnonzero(data.trainable))
        head = fit_head(
            data.embeddings[rows], data.labels[rows], settings.head, lambda: bar.update(1)
        )
        model = gated_model(head, gate)
        tflite_model = export_int8(model, data.embeddings[rows], settings.head.seed)
    timings["heads"] = time.monotonic() - started - sum(timings.values())
    outcome = Outcome(
        settings=settings,
        data_dir=data_dir,
        frontend_config=frontend_config,
        recordings=list(recordings),
        embedded=data,
        folds=outcomes,
        held_out_float=held_out[0],
        held_out_int8=held_out[1],
        held_out_head_alone=held_out[2],
        shipped_int8=run_int8(tflite_model, data.embeddings),
        shipped_head_alone=predict_float(head, data.embeddings),
        tflite_model=tflite_model,
        parameters=int(model.count_params()),
        gate=gate,
        yamnet_bird_classes=list(backbone.bird_class_indices),
        backbone_sha256=backbone.model.card.sha256,
        gate_difference=check_bird_gate(gate, data.embeddings, data.yamnet_bird),
        timings_s=timings,
    )
    outcome.wall_time_s = time.monotonic() - started
    outcome.metrics = write_model_folder(out_dir, outcome)
    # The open-set rule (device/ear/openset.py) belongs to the head: fitted on the same data.
    from training.birds.openset import write_open_set

    write_open_set(data_dir, out_dir, backbone)
    return outcome
