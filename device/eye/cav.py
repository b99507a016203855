"""Training a concept (CAV) from a mood board, and telling the truth about it.

Two linear recipes on L2-normalised embeddings (research/cav.md §1.3, §2):

* ``mbs_sgd``: Mood Board Search / TCAV exactly: ``SGDClassifier`` (hinge loss, alpha 0.01,
  max_iter 1000, tol 1e-3, seeded), positives labelled 0, CAV = ``-coef`` normalised,
  negatives padded from the bank to as many rows as the positives, sample weights honoured.
* ``logistic`` (the default): L2-regularised logistic regression with balanced class weights
  against four times as many bank rows as positive rows. More random counter-examples pin
  down "what is *not* the concept" better, and the balanced loss keeps the many negatives
  from drowning the board; ``tests/eye/test_concepts.py`` prints the comparison.

Honesty (what MBS lacks; TCAV's tests, adapted to a handful of images):

* cross-validation: k-fold by *picture* (views of one picture never straddle folds), giving
  out-of-fold balanced accuracy and AUC of the cosine score;
* significance: the same cross-validation on random "boards" drawn from the bank (pictures
  that share nothing) gives a null distribution; Welch's t-test (one-sided) of the concept's
  cosine AUCs over reseeded runs against it gives the p-value, as TCAV tests concept against
  random CAVs;
* stability: mean pairwise cosine of CAVs trained on bootstrap resamples of the board;
* calibration: a logistic curve from raw cosine to 0-1 fitted on the out-of-fold scores of
  board pictures against bank pictures, so 0.5 means the same for every concept.

A concept whose p-value is 0.05 or more, or whose cross-validated accuracy is below
:data:`MIN_CV_ACCURACY`, is refused unless forced.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from device.errors import MoodBoardError
from device.eye.backbone import Backbone, l2_normalise
from device.eye.concept import BoardImage as StoredBoardImage
from device.eye.concept import Calibration, Concept
from device.eye.images import MoodBoard, board_views
from device.eye.negatives import NegativeBank

Method = Literal["mbs_sgd", "logistic"]
METHODS: Final[tuple[Method, ...]] = ("logistic", "mbs_sgd")
DEFAULT_METHOD: Final[Method] = "logistic"
MAX_FOLDS: Final = 5
#: Bank rows per positive row for the ``logistic`` recipe (MBS pads to one per positive).
BANK_ROWS_PER_POSITIVE: Final = 4
LOGISTIC_C: Final = 10.0
CONCEPT_RUNS: Final = 5
NULL_RUNS: Final = 20
BOOTSTRAP_RUNS: Final = 10
SIGNIFICANCE_LEVEL: Final = 0.05
#: Out-of-fold balanced accuracy below this is too close to chance (0.5) to call a concept.
MIN_CV_ACCURACY: Final = 0.65

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Rows:
    """Embeddings with labels (1 = concept), sample weights and picture groups."""

    x: FloatArray
    y: IntArray
    weight: npt.NDArray[np.float64]
    group: IntArray

    def take(self, mask: npt.NDArray[np.bool_]) -> Rows:
        return Rows(self.x[mask], self.y[mask], self.weight[mask], self.group[mask])

    @staticmethod
    def concat(*parts: Rows) -> Rows:
        return Rows(
            np.concatenate([p.x for p in parts]),
            np.concatenate([p.y for p in parts]),
            np.concatenate([p.weight for p in parts]),
            np.concatenate([p.group for p in parts]),
        )


@dataclass(frozen=True)
class LinearFit:
    """A unit direction (the CAV) and the classifier's decision ``x @ coef + bias > 0``."""

    direction: FloatArray
    coef: FloatArray
    bias: float

    def decide(self, x: FloatArray) -> npt.NDArray[np.bool_]:
        decision: npt.NDArray[np.bool_] = (x @ self.coef + self.bias) > 0
        return decision


def fit_direction(rows: Rows, method: Method, seed: int) -> LinearFit:
    """Fit one recipe on ``rows``; the direction points towards the concept."""
    # scikit-learn and SciPy are imported where training needs them: they take seconds to
    # import, and every `senses` command (the daemon too) imports this module's CLI.
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    if method == "mbs_sgd":
        sgd = SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3, random_state=seed)
        # MBS labels positives 0, so its coefficients point away from the concept.
        sgd.fit(rows.x, 1 - rows.y, sample_weight=rows.weight)
        coef = -np.asarray(sgd.coef_[0], dtype=np.float32)
        bias = -float(sgd.intercept_[0])
    else:
        logistic = LogisticRegression(C=LOGISTIC_C, class_weight="balanced", max_iter=2000)
        logistic.fit(rows.x, rows.y, sample_weight=rows.weight)
        coef = np.asarray(logistic.coef_[0], dtype=np.float32)
        bias = float(logistic.intercept_[0])
    norm = float(np.linalg.norm(coef))
    if norm == 0 or not math.isfinite(norm):
        direction = np.zeros_like(coef)
    else:
        direction = (coef / norm).astype(np.float32)
    return LinearFit(direction, coef, bias)


def pad_negatives(
    positives: Rows,
    user_negatives: Rows,
    bank: NegativeBank,
    method: Method,
    rng: np.random.Generator,
    exclude_groups: frozenset[int] = frozenset(),
) -> Rows:
    """User negatives plus random bank rows (MBS: up to as many rows as positives)."""
    n_positive = positives.x.shape[0]
    wanted = n_positive if method == "mbs_sgd" else BANK_ROWS_PER_POSITIVE * n_positive
    wanted = max(wanted - user_negatives.x.shape[0], 0)
    allowed = np.flatnonzero(~np.isin(bank.groups, list(exclude_groups)))
    chosen = rng.choice(allowed, size=min(wanted, allowed.size), replace=False)
    # Bank groups are numbered after the board's pictures, so they never collide.
    offset = int(max(positives.group.max(initial=0), user_negatives.group.max(initial=0))) + 1
    bank_rows = Rows(
        bank.embeddings[chosen],
        np.zeros(chosen.size, np.int64),
        np.ones(chosen.size),
        bank.groups[chosen] + offset,
    )
    return Rows.concat(user_negatives, bank_rows)


def _folds(rows: Rows, k: int, rng: np.random.Generator) -> IntArray:
    """A fold number per row: pictures of each class dealt round-robin, views kept together."""
    fold = np.zeros(rows.y.shape[0], np.int64)
    for label in (0, 1):
        groups = np.unique(rows.group[rows.y == label])
        rng.shuffle(groups)
        for i, g in enumerate(groups):
            fold[(rows.group == g) & (rows.y == label)] = i % k
    return fold


@dataclass(frozen=True)
class CrossValidation:
    balanced_accuracy: float
    auc: float
    scores: FloatArray  # out-of-fold cosine per row
    labels: IntArray


def cross_validate(rows: Rows, method: Method, seed: int) -> CrossValidation:
    from sklearn.metrics import roc_auc_score

    """Out-of-fold balanced accuracy and cosine AUC, k-fold by picture."""
    n_pictures = len(np.unique(rows.group[rows.y == 1]))
    k = min(MAX_FOLDS, n_pictures)
    rng = np.random.default_rng(seed)
    fold = _folds(rows, k, rng)
    scores = np.zeros(rows.y.shape[0], np.float32)
    correct = np.zeros(rows.y.shape[0], bool)
    for f in range(k):
        test = fold == f
        train = rows.take(~test)
        fit = fit_direction(train, method, seed)
        scores[test] = rows.x[test] @ fit.direction
        correct[test] = fit.decide(rows.x[test]) == (rows.y[test] == 1)
    recall = [float(correct[rows.y == label].mean()) for label in (0, 1)]
    return CrossValidation(
        balanced_accuracy=float(np.mean(recall)),
        auc=float(roc_auc_score(rows.y, scores)),
        scores=scores,
        labels=rows.y,
    )


def fit_calibration(scores: FloatArray, labels: IntArray) -> Calibration:
    from sklearn.linear_model import LogisticRegression

    """A logistic curve from raw cosine to P(concept), balanced between the two classes."""
    mean, std = float(scores.mean()), float(scores.std()) or 1.0
    logistic = LogisticRegression(C=1.0, class_weight="balanced")
    logistic.fit(((scores - mean) / std).reshape(-1, 1), labels)
    a, b = float(logistic.coef_[0, 0]), float(logistic.intercept_[0])
    slope = max(a / std, 1e-3)
    return Calibration(slope=slope, intercept=b - slope * mean)


@dataclass(frozen=True)
class MethodResult:
    method: Method
    cv_accuracy: float
    cv_auc: float


@dataclass
class QualityReport:
    """What ``senses eye train`` prints, and what the ``.cav`` file keeps under ``quality``."""

    name: str
    method: Method
    n_positive: int
    n_negative_user: int
    n_negative_bank: int
    cv_accuracy: float
    cv_auc: float
    cv_accuracy_runs: list[float]
    null_auc_mean: float
    null_auc_std: float
    p_value: float
    empirical_p: float
    stability: float
    calibration_midpoint: float
    comparison: list[MethodResult] = field(default_factory=list)
    refused_because: str | None = None

    @property
    def accepted(self) -> bool:
        return self.refused_because is None

    def to_record(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "n_pos": self.n_positive,
            "n_neg": self.n_negative_user + self.n_negative_bank,
            "n_neg_user": self.n_negative_user,
            "n_neg_bank": self.n_negative_bank,
            "cv_accuracy": self.cv_accuracy,
            "cv_auc": self.cv_auc,
            "p_value": self.p_value,
            "empirical_p": self.empirical_p,
            "null_auc_mean": self.null_auc_mean,
            "stability": self.stability,
            "negatives": "user opposite images + shipped negative bank (negative_bank.npz)",
            "comparison": {
                r.method: {"cv_accuracy": r.cv_accuracy, "cv_auc": r.cv_auc}
                for r in self.comparison
            },
            "refused_because": self.refused_because,
        }


@dataclass(frozen=True)
class TrainingResult:
    concept: Concept
    report: QualityReport


def embed_board(board: MoodBoard, backbone: Backbone) -> tuple[Rows, Rows]:
    """Positive and user-negative rows: the augmented views of every board picture."""

    def rows(images: tuple[Any, ...], label: int, first_group: int) -> Rows:
        if not images:
            return Rows(
                np.zeros((0, backbone.dim), np.float32),
                np.zeros(0, np.int64),
                np.zeros(0),
                np.zeros(0, np.int64),
            )
        xs, ws, gs = [], [], []
        for i, image in enumerate(images):
            views = board_views(image.pixels, backbone.input_size)
            xs.append(backbone.embed(np.stack(views)))
            ws.extend([image.weight] * len(views))
            gs.extend([first_group + i] * len(views))
        x = np.concatenate(xs)
        return Rows(x, np.full(x.shape[0], label, np.int64), np.asarray(ws), np.asarray(gs))

    positives = rows(board.positives, 1, 0)
    negatives = rows(board.negatives, 0, len(board.positives))
    return positives, negatives


def _null_aucs(
    n_pictures: int, views_per_picture: int, bank: NegativeBank, method: Method, seed: int
) -> list[float]:
    """CV AUCs of random "concepts": bank pictures that share nothing, vs the rest."""
    rng = np.random.default_rng(seed + 7919)
    groups = np.unique(bank.groups)
    aucs = []
    for run in range(NULL_RUNS):
        picked = rng.choice(groups, size=min(n_pictures, groups.size - 1), replace=False)
        rows_idx: list[int] = []
        for g in picked:
            members = np.flatnonzero(bank.groups == g)
            rows_idx.extend(
                int(i) for i in rng.choice(members, min(views_per_picture, members.size), False)
            )
        idx = np.asarray(rows_idx)
        positives = Rows(
            bank.embeddings[idx], np.ones(idx.size, np.int64), np.ones(idx.size), bank.groups[idx]
        )
        empty = Rows(
            np.zeros((0, bank.embeddings.shape[1]), np.float32),
            np.zeros(0, np.int64),
            np.zeros(0),
            np.zeros(0, np.int64),
        )
        negatives = pad_negatives(
            positives, empty, bank, method, rng, exclude_groups=frozenset(int(g) for g in picked)
        )
        rows = Rows.concat(positives, negatives)
        aucs.append(cross_validate(rows, method, seed + run).auc)
    return aucs


def welch_p_value(concept: list[float], null: list[float]) -> float:
    """One-sided Welch t-test: P(the concept's runs beat the null's by chance).

    Written out rather than ``scipy.stats.ttest_ind`` because a perfect board gives runs
    that are all 1.0, which scipy flags as a precision loss although the test is well defined
    (all the variance is then the null's).
    """
    a, b = np.asarray(concept, np.float64), np.asarray(null, np.float64)
    var = a.var(ddof=1) / a.size + b.var(ddof=1) / b.size
    difference = float(a.mean() - b.mean())
    if var == 0:
        return 0.0 if difference > 0 else 1.0
    t = difference / math.sqrt(var)
    dof = var**2 / (
        (a.var(ddof=1) / a.size) ** 2 / (a.size - 1) + (b.var(ddof=1) / b.size) ** 2 / (b.size - 1)
    )
    from scipy import stats

    return float(stats.t.sf(t, dof))


def _stability(positives: Rows, negatives: Rows, method: Method, seed: int) -> float:
    rng = np.random.default_rng(seed + 104729)
    pictures = np.unique(positives.group)
    vectors = []
    for _ in range(BOOTSTRAP_RUNS):
        sample = rng.choice(pictures, size=pictures.size, replace=True)
        if np.unique(sample).size < 2:
            continue
        parts = [positives.take(positives.group == g) for g in sample]
        fit = fit_direction(Rows.concat(*parts, negatives), method, seed)
        vectors.append(fit.direction)
    if len(vectors) < 2:
        return float("nan")
    v = np.stack(vectors)
    cosines = v @ v.T
    upper = cosines[np.triu_indices(len(vectors), k=1)]
    return float(upper.mean())


def train_concept(
    board: MoodBoard,
    backbone: Backbone,
    bank: NegativeBank,
    name: str,
    *,
    method: Method = DEFAULT_METHOD,
    seed: int = 0,
    compare: bool = True,
) -> TrainingResult:
    """Train, test and calibrate a concept. The report says whether it should be refused."""
    if not name.strip():
        raise MoodBoardError("a concept needs a name (--name)")
    positives, user_negatives = embed_board(board, backbone)
    rng = np.random.default_rng(seed)
    negatives = pad_negatives(positives, user_negatives, bank, method, rng)
    rows = Rows.concat(positives, negatives)

    runs = [cross_validate(rows, method, seed)]
    for run in range(1, CONCEPT_RUNS):
        run_rng = np.random.default_rng(seed + run)
        run_rows = Rows.concat(
            positives, pad_negatives(positives, user_negatives, bank, method, run_rng)
        )
        runs.append(cross_validate(run_rows, method, seed + run))
    n_pictures = len(board.positives)
    views = positives.x.shape[0] // max(n_pictures, 1)
    null = _null_aucs(n_pictures, views, bank, method, seed)
    accuracies = [r.balanced_accuracy for r in runs]
    aucs = [r.auc for r in runs]
    p_value = welch_p_value(aucs, null)
    empirical_p = (1 + sum(a >= float(np.mean(aucs)) for a in null)) / (1 + len(null))

    fit = fit_direction(rows, method, seed)
    calibration = fit_calibration(runs[0].scores, runs[0].labels)
    stability = _stability(positives, negatives, method, seed)
    comparison = []
    if compare:
        for other in METHODS:
            if other == method:
                comparison.append(MethodResult(method, runs[0].balanced_accuracy, runs[0].auc))
                continue
            other_rows = Rows.concat(
                positives,
                pad_negatives(positives, user_negatives, bank, other, np.random.default_rng(seed)),
            )
            cv = cross_validate(other_rows, other, seed)
            comparison.append(MethodResult(other, cv.balanced_accuracy, cv.auc))

    cv_accuracy = float(np.mean(accuracies))
    refused = None
    if p_value >= SIGNIFICANCE_LEVEL:
        refused = (
            f"the backbone cannot tell this board from random pictures (p = {p_value:.3f} "
            f">= {SIGNIFICANCE_LEVEL})"
        )
    elif cv_accuracy < MIN_CV_ACCURACY:
        refused = (
            f"cross-validated accuracy {cv_accuracy:.2f} is too close to chance "
            f"(needs {MIN_CV_ACCURACY})"
        )
    report = QualityReport(
        name=name,
        method=method,
        n_positive=n_pictures,
        n_negative_user=len(board.negatives),
        n_negative_bank=int(negatives.x.shape[0] - user_negatives.x.shape[0]),
        cv_accuracy=cv_accuracy,
        cv_auc=float(np.mean([r.auc for r in runs])),
        cv_accuracy_runs=accuracies,
        null_auc_mean=float(np.mean(null)),
        null_auc_std=float(np.std(null)),
        p_value=p_value,
        empirical_p=empirical_p,
        stability=stability,
        calibration_midpoint=calibration.midpoint,
        comparison=comparison,
        refused_because=refused,
    )
    bank_scores = bank.embeddings @ fit.direction
    top5 = np.sort(bank_scores)[-5:]
    stored_board = tuple(
        StoredBoardImage(image.sha256, image.weight, role, image.path.name)
        for role, images in (("positive", board.positives), ("negative", board.negatives))
        for image in images
    )
    concept = Concept(
        name=name,
        vector=l2_normalise(fit.direction[np.newaxis])[0],
        calibration=calibration,
        id=str(uuid.uuid4()),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        backbone_name=backbone.name,
        backbone_sha256=backbone.sha256,
        model_layer=backbone.layer,
        preprocessing=backbone.preprocessing,
        quality=report.to_record(),
        board=stored_board,
        score_stats={
            "mean": float(bank_scores.mean()),
            "stddev": float(bank_scores.std()),
            "max": float(bank_scores.max()),
            "min": float(bank_scores.min()),
            "top_5_mean": float(top5.mean()),
        },
    )
    return TrainingResult(concept, report)
