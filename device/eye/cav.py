"""Training a concept (CAV) from a mood board, and telling the truth about it.

Two linear recipes on L2-normalised embeddings (research/cav.md §1.3, §2):

* ``mbs_sgd``: Mood Board Search / TCAV exactly: ``SGDClassifier`` (hinge loss, alpha 0.01,
  max_iter 1000, tol 1e-3, seeded), positives labelled 0, CAV = ``-coef`` normalised,
  negatives padded from the bank to as many rows as the positives, sample weights honoured.
* ``logistic``: L2-regularised logistic regression with balanced class weights against four
  times as many bank rows as positive rows. More random counter-examples pin down "what is
  *not* the concept" better, and the balanced loss keeps the many negatives from drowning
  the board.

Neither wins everywhere: logistic is better on object boards (cats, hot dogs;
``tests/eye/test_concepts.py``), Mood Board Search's SGD on some abstract boards (light,
texture, colour; ``tests/eye/test_abstract_boards.py``, docs/eye-recipes.md). So by default
(``method="auto"``) the recipe *and* its regularisation strength are chosen per board among
:data:`CANDIDATES` by the cross-validation that is run anyway, and the choice is **nested**:
each outer fold picks its recipe on inner folds of its own training pictures only, so the
printed accuracy and AUC (and the refusal gate built on them) judge the whole procedure
"choose, then train" on pictures it never saw. A forced ``method`` trains that recipe at its
default strength, with plain cross-validation (nothing is chosen, nothing to nest).

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
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from device.errors import MoodBoardError
from device.eye.backbone import Backbone, l2_normalise
from device.eye.concept import BoardImage as StoredBoardImage
from device.eye.concept import Calibration, Concept
from device.eye.images import BoardPicture, MoodBoard, board_from_pictures, board_views
from device.eye.negatives import NegativeBank

Method = Literal["mbs_sgd", "logistic"]
METHODS: Final[tuple[Method, ...]] = ("logistic", "mbs_sgd")
#: The recipe preferred when candidates tie, and the one a board too small to choose gets.
DEFAULT_METHOD: Final[Method] = "logistic"
MethodChoice = Literal["auto", "mbs_sgd", "logistic"]
AUTO: Final = "auto"
METHOD_CHOICES: Final[tuple[MethodChoice, ...]] = ("auto", *METHODS)
MAX_FOLDS: Final = 5
#: Folds of the inner cross-validation that picks a recipe inside each outer fold.
INNER_FOLDS: Final = 3
#: Bank rows per positive row for the ``logistic`` recipe (MBS pads to one per positive).
BANK_ROWS_PER_POSITIVE: Final = 4
LOGISTIC_C: Final = 10.0
MBS_ALPHA: Final = 0.01


@dataclass(frozen=True)
class Recipe:
    """One linear recipe at one regularisation strength (``C`` for logistic, ``alpha`` for
    SGD: a larger C or a smaller alpha fits the board more tightly)."""

    method: Method
    strength: float

    @property
    def label(self) -> str:
        knob = "C" if self.method == "logistic" else "alpha"
        return f"{self.method} {knob}={self.strength:g}"


#: Each recipe at its usual strength, what ``--method`` forces.
DEFAULT_RECIPES: Final[dict[Method, Recipe]] = {
    "logistic": Recipe("logistic", LOGISTIC_C),
    "mbs_sgd": Recipe("mbs_sgd", MBS_ALPHA),
}
#: What ``auto`` chooses among, in order of preference when they tie. Two strengths each:
#: every candidate multiplies the cost of training (see docs/eye-recipes.md).
CANDIDATES: Final[tuple[Recipe, ...]] = (
    Recipe("logistic", LOGISTIC_C),
    Recipe("logistic", 1.0),
    Recipe("mbs_sgd", MBS_ALPHA),
    Recipe("mbs_sgd", 0.1),
)


def as_recipe(recipe: Recipe | Method) -> Recipe:
    return recipe if isinstance(recipe, Recipe) else DEFAULT_RECIPES[recipe]


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
    #: True for extra bank rows only the logistic recipe trains on and that are never
    #: tested (None: none is); see :func:`pad_negatives`.
    train_only: npt.NDArray[np.bool_] | None = None

    @property
    def extra(self) -> npt.NDArray[np.bool_]:
        return self.train_only if self.train_only is not None else np.zeros(self.y.shape[0], bool)

    def take(self, mask: npt.NDArray[np.bool_]) -> Rows:
        return Rows(
            self.x[mask], self.y[mask], self.weight[mask], self.group[mask], self.extra[mask]
        )

    @staticmethod
    def concat(*parts: Rows) -> Rows:
        return Rows(
            np.concatenate([p.x for p in parts]),
            np.concatenate([p.y for p in parts]),
            np.concatenate([p.weight for p in parts]),
            np.concatenate([p.group for p in parts]),
            np.concatenate([p.extra for p in parts]),
        )

    def n_pictures(self, label: int) -> int:
        return len(np.unique(self.group[self.y == label]))


@dataclass(frozen=True)
class LinearFit:
    """A unit direction (the CAV) and the classifier's decision ``x @ coef + bias > 0``."""

    direction: FloatArray
    coef: FloatArray
    bias: float

    def decide(self, x: FloatArray) -> npt.NDArray[np.bool_]:
        decision: npt.NDArray[np.bool_] = (x @ self.coef + self.bias) > 0
        return decision


def fit_direction(rows: Rows, method: Recipe | Method, seed: int) -> LinearFit:
    """Fit one recipe on ``rows``; the direction points towards the concept."""
    # scikit-learn and SciPy are imported where training needs them: they take seconds to
    # import, and every `senses` command (the daemon too) imports this module's CLI.
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    recipe = as_recipe(method)
    if recipe.method == "mbs_sgd":
        sgd = SGDClassifier(alpha=recipe.strength, max_iter=1000, tol=1e-3, random_state=seed)
        # MBS labels positives 0, so its coefficients point away from the concept.
        sgd.fit(rows.x, 1 - rows.y, sample_weight=rows.weight)
        coef = -np.asarray(sgd.coef_[0], dtype=np.float32)
        bias = -float(sgd.intercept_[0])
    else:
        logistic = LogisticRegression(C=recipe.strength, class_weight="balanced", max_iter=2000)
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
    """User negatives plus random bank rows.

    Up to as many negative rows as positive rows, as Mood Board Search pads: these are what
    every recipe is *tested* against, so with a full board of opposite pictures the figures
    say how well the concept is told from its opposite, not from the bank. ``logistic`` gets
    more bank rows on top (up to :data:`BANK_ROWS_PER_POSITIVE` per positive row), marked
    ``train_only``: it trains on them, nothing is tested on them.
    """
    n_positive = positives.x.shape[0]
    n_user = user_negatives.x.shape[0]
    tested = max(n_positive - n_user, 0)
    wanted = tested if method == "mbs_sgd" else max(BANK_ROWS_PER_POSITIVE * n_positive - n_user, 0)
    allowed = np.flatnonzero(~np.isin(bank.groups, list(exclude_groups)))
    chosen = rng.choice(allowed, size=min(wanted, allowed.size), replace=False)
    # Bank groups are numbered after the board's pictures, so they never collide.
    offset = int(max(positives.group.max(initial=0), user_negatives.group.max(initial=0))) + 1
    bank_rows = Rows(
        bank.embeddings[chosen],
        np.zeros(chosen.size, np.int64),
        np.ones(chosen.size),
        bank.groups[chosen] + offset,
        np.arange(chosen.size) >= tested,
    )
    return Rows.concat(user_negatives, bank_rows)


def training_rows(rows: Rows, method: Method) -> Rows:
    """``rows`` as ``method`` trains on them: Mood Board Search leaves out the extra bank rows
    (it pads the negatives only up to the positives' count), logistic takes them all.

    A cross-validation fold left without any other negative keeps the extra rows.
    """
    if method != "mbs_sgd":
        return rows
    kept = rows.take(~rows.extra)
    return kept if (kept.y == 0).any() else rows


def _folds(rows: Rows, k: int, rng: np.random.Generator) -> IntArray:
    """A fold number per row: pictures of each class dealt round-robin, views kept together.

    Negatives that are tested are dealt first, then the pictures only the extra (train-only)
    rows come from, so every fold gets its share of both.
    """
    fold = np.zeros(rows.y.shape[0], np.int64)
    extra = rows.extra
    kinds = (rows.y == 1, (rows.y == 0) & ~extra, (rows.y == 0) & extra)
    dealt: set[int] = set()
    for kind in kinds:
        groups = np.array([g for g in np.unique(rows.group[kind]) if int(g) not in dealt])
        rng.shuffle(groups)
        label = rows.y[kind][0] if kind.any() else 0
        for i, g in enumerate(groups):
            fold[(rows.group == g) & (rows.y == label)] = i % k
            dealt.add(int(g))
    return fold


@dataclass(frozen=True)
class CrossValidation:
    balanced_accuracy: float
    auc: float
    scores: FloatArray  # out-of-fold cosine per row
    labels: IntArray
    #: The recipe each outer fold used (one entry per fold; all the same when not nested).
    picks: tuple[Recipe, ...] = ()

    @property
    def merit(self) -> float:
        """What recipes are chosen by: the refusal gate needs accuracy, ranking needs AUC."""
        return self.balanced_accuracy + self.auc


def cross_validate(
    rows: Rows,
    method: Recipe | Method | tuple[Recipe, ...],
    seed: int,
    folds: int = MAX_FOLDS,
) -> CrossValidation:
    """Out-of-fold balanced accuracy and cosine AUC, k-fold by picture.

    Given several candidate recipes, each fold first picks one on inner folds of its own
    training rows (:func:`select_recipe`): nested cross-validation, so the figures are
    those of the procedure "choose, then train", not of the luckiest candidate.
    """
    from sklearn.metrics import roc_auc_score

    candidates = method if isinstance(method, tuple) else (as_recipe(method),)
    k = min(folds, rows.n_pictures(1))
    rng = np.random.default_rng(seed)
    fold = _folds(rows, k, rng)
    scores = np.zeros(rows.y.shape[0], np.float32)
    correct = np.zeros(rows.y.shape[0], bool)
    picks = []
    tested = ~rows.extra
    for f in range(k):
        test = (fold == f) & tested
        # The extra rows of this fold are left out too: views of one bank picture may be
        # both tested and extra, and must not be trained on while a sibling is tested.
        train = rows.take(fold != f)
        recipe = (
            candidates[0]
            if len(candidates) == 1
            else select_recipe(train, candidates, seed, INNER_FOLDS).chosen
        )
        picks.append(recipe)
        fit = fit_direction(training_rows(train, recipe.method), recipe, seed)
        scores[test] = rows.x[test] @ fit.direction
        correct[test] = fit.decide(rows.x[test]) == (rows.y[test] == 1)
    labels = rows.y[tested]
    recall = [float(correct[tested][labels == label].mean()) for label in (0, 1)]
    return CrossValidation(
        balanced_accuracy=float(np.mean(recall)),
        auc=float(roc_auc_score(labels, scores[tested])),
        scores=scores[tested],
        labels=labels,
        picks=tuple(picks),
    )


@dataclass(frozen=True)
class Selection:
    """The recipe chosen for some rows and every candidate's cross-validation on them."""

    chosen: Recipe
    results: tuple[tuple[Recipe, CrossValidation], ...]

    def why(self) -> str:
        best = dict(self.results)[self.chosen]
        if len(self.results) == 1:
            return f"{self.chosen.label} was asked for (--method)"
        if len({round(cv.merit, 9) for _, cv in self.results}) == 1:
            return f"all candidates tie on this board; {self.chosen.label} is preferred"
        runner = max((r for r in self.results if r[0] != self.chosen), key=lambda r: r[1].merit)
        return (
            f"{self.chosen.label} had the best cross-validated accuracy + AUC "
            f"({best.balanced_accuracy:.2f} + {best.auc:.2f}); next best "
            f"{runner[0].label} ({runner[1].balanced_accuracy:.2f} + {runner[1].auc:.2f})"
        )


def select_recipe(
    rows: Rows, candidates: tuple[Recipe, ...], seed: int, folds: int = MAX_FOLDS
) -> Selection:
    """Cross-validate every candidate on ``rows`` and keep the one with the best
    accuracy + AUC (ties go to the earlier candidate). Too few pictures to cross-validate
    (fewer than two of the concept) keeps the first candidate."""
    if len(candidates) == 1 or rows.n_pictures(1) < 2:
        return Selection(candidates[0], ())
    results = tuple((c, cross_validate(rows, c, seed, folds)) for c in candidates)
    chosen = max(results, key=lambda r: r[1].merit)[0]  # max keeps the first of equals
    return Selection(chosen, results)


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
    """One candidate recipe's plain cross-validation on the whole board (why it was, or was
    not, chosen)."""

    method: Method
    cv_accuracy: float
    cv_auc: float
    strength: float = math.nan
    chosen: bool = False

    @property
    def label(self) -> str:
        return (
            Recipe(self.method, self.strength).label
            if math.isfinite(self.strength)
            else (self.method)
        )


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
    #: The recipe trained (method and strength), how it was picked, and why.
    strength: float = math.nan
    selection: str = "forced"  # "auto" (chosen per board) or "forced" (--method)
    chosen_because: str = ""
    #: How often each recipe won the inner choice in the outer folds (auto only).
    fold_picks: dict[str, int] = field(default_factory=dict)
    training_s: float = math.nan

    @property
    def recipe(self) -> str:
        return Recipe(self.method, self.strength).label

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
                r.label: {"cv_accuracy": r.cv_accuracy, "cv_auc": r.cv_auc} for r in self.comparison
            },
            "refused_because": self.refused_because,
            "strength": self.strength,
            "selection": self.selection,
            "chosen_because": self.chosen_because,
            "nested_cv": self.selection == AUTO,
            "fold_picks": dict(self.fold_picks),
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
    n_pictures: int, views_per_picture: int, bank: NegativeBank, recipe: Recipe, seed: int
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
            positives,
            empty,
            bank,
            recipe.method,
            rng,
            exclude_groups=frozenset(int(g) for g in picked),
        )
        rows = Rows.concat(positives, negatives)
        aucs.append(cross_validate(rows, recipe, seed + run).auc)
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


def _stability(positives: Rows, negatives: Rows, method: Recipe, seed: int) -> float:
    rng = np.random.default_rng(seed + 104729)
    pictures = np.unique(positives.group)
    vectors = []
    for _ in range(BOOTSTRAP_RUNS):
        sample = rng.choice(pictures, size=pictures.size, replace=True)
        if np.unique(sample).size < 2:
            continue
        parts = [positives.take(positives.group == g) for g in sample]
        rows = training_rows(Rows.concat(*parts, negatives), method.method)
        fit = fit_direction(rows, method, seed)
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
    method: MethodChoice = AUTO,
    seed: int = 0,
    compare: bool = True,
) -> TrainingResult:
    """Train, test and calibrate a concept. The report says whether it should be refused.

    ``method="auto"`` chooses the recipe per board (see the module docstring); a recipe name
    forces it. ``compare`` adds the other recipe's cross-validation to a forced report (auto
    reports every candidate anyway).
    """
    from threadpoolctl import threadpool_limits

    # Hundreds of small fits (a board is ~100-200 rows of 1024): BLAS threads only add
    # hand-offs, and on a busy station they fight the senses for the cores (a logistic fit
    # measured 66 ms CPU with OpenBLAS's threads, 8 ms on one).
    with threadpool_limits(limits=1):
        return _train_concept(
            board, backbone, bank, name, method=method, seed=seed, compare=compare
        )


def _train_concept(
    board: MoodBoard,
    backbone: Backbone,
    bank: NegativeBank,
    name: str,
    *,
    method: MethodChoice = AUTO,
    seed: int = 0,
    compare: bool = True,
) -> TrainingResult:
    if not name.strip():
        raise MoodBoardError("a concept needs a name (--name)")
    if method not in METHOD_CHOICES:
        raise MoodBoardError(f"unknown method {method!r}: use one of {', '.join(METHOD_CHOICES)}")
    started_s = time.perf_counter()
    positives, user_negatives = embed_board(board, backbone)
    # auto tests every candidate on the same rows; the pool holds the logistic recipe's extra
    # bank rows, which Mood Board Search's recipe leaves out (training_rows).
    pool_method: Method = "logistic" if method == AUTO else method
    candidates = CANDIDATES if method == AUTO else (DEFAULT_RECIPES[method],)
    rng = np.random.default_rng(seed)
    negatives = pad_negatives(positives, user_negatives, bank, pool_method, rng)
    rows = Rows.concat(positives, negatives)

    selection = select_recipe(rows, candidates, seed)
    recipe = selection.chosen
    runs = [cross_validate(rows, candidates, seed)]
    for run in range(1, CONCEPT_RUNS):
        run_rng = np.random.default_rng(seed + run)
        run_rows = Rows.concat(
            positives, pad_negatives(positives, user_negatives, bank, pool_method, run_rng)
        )
        runs.append(cross_validate(run_rows, candidates, seed + run))
    n_pictures = len(board.positives)
    views = positives.x.shape[0] // max(n_pictures, 1)
    # The null is the chosen recipe on random boards: a nested estimate has no selection
    # bonus to correct for, so the same recipe on pictures that share nothing is its chance.
    null = _null_aucs(n_pictures, views, bank, recipe, seed)
    accuracies = [r.balanced_accuracy for r in runs]
    aucs = [r.auc for r in runs]
    p_value = welch_p_value(aucs, null)
    empirical_p = (1 + sum(a >= float(np.mean(aucs)) for a in null)) / (1 + len(null))

    fit = fit_direction(training_rows(rows, recipe.method), recipe, seed)
    chosen_cv = dict(selection.results).get(recipe) or runs[0]
    calibration = fit_calibration(chosen_cv.scores, chosen_cv.labels)
    stability = _stability(positives, negatives, recipe, seed)
    comparison = [
        MethodResult(c.method, cv.balanced_accuracy, cv.auc, c.strength, c == recipe)
        for c, cv in selection.results
    ]
    if method != AUTO and compare:
        comparison.append(
            MethodResult(
                recipe.method, chosen_cv.balanced_accuracy, chosen_cv.auc, recipe.strength, True
            )
        )
        for other in METHODS:
            if other == method:
                continue
            other_recipe = DEFAULT_RECIPES[other]
            other_rows = Rows.concat(
                positives,
                pad_negatives(positives, user_negatives, bank, other, np.random.default_rng(seed)),
            )
            cv = cross_validate(other_rows, other_recipe, seed)
            comparison.append(
                MethodResult(other, cv.balanced_accuracy, cv.auc, other_recipe.strength)
            )
    fold_picks: dict[str, int] = {}
    if method == AUTO:
        for run_cv in runs:
            for pick in run_cv.picks:
                fold_picks[pick.label] = fold_picks.get(pick.label, 0) + 1

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
        method=recipe.method,
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
        strength=recipe.strength,
        selection="auto" if method == AUTO else "forced",
        chosen_because=selection.why() if method == AUTO else f"{recipe.label} was asked for",
        fold_picks=fold_picks,
        training_s=time.perf_counter() - started_s,
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


def train_from_pictures(
    pictures: Sequence[BoardPicture],
    name: str,
    backbone: Backbone,
    bank: NegativeBank,
    *,
    method: MethodChoice = AUTO,
    seed: int = 0,
) -> TrainingResult:
    """Train a concept from pictures in memory (a board sent by the phone).

    The entry point for boards that are not folders: ``pictures`` are
    :class:`~device.eye.images.BoardPicture` (encoded bytes or RGB pixels, role "positive" or
    "negative", weight). Raises :class:`~device.errors.MoodBoardError` (every problem listed)
    for a board that cannot be used; otherwise returns the concept and its quality report,
    whose ``refused_because`` is the reason to refuse it (None: good to save). Saving (and
    ``--force``-like overrides) is the caller's decision; nothing is written here.
    """
    return train_concept(
        board_from_pictures(pictures), backbone, bank, name, method=method, seed=seed
    )
