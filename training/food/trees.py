"""Gradient-boosted trees for the food model, and their compilation into a TFLite graph.

**The model.** scikit-learn's :class:`~sklearn.ensemble.GradientBoostingClassifier` (softmax
over the four classes: one regression tree per class and boosting stage) and a
:class:`~sklearn.ensemble.GradientBoostingRegressor` for the total viable count, on the same
feature rows. Trees learn thresholds; with responses that saturate and a sensitivity that
differs from run to run, thresholds transfer to a new run better than an MLP's weights do
(research/enose.md §2.2).

**On the station** the fitted ensemble becomes one TFLite graph of builtin ops, in the GEMM
formulation of Hummingbird (Nakandala et al., "A Tensor Compiler for Unified Machine Learning
Prediction Serving", OSDI 2020), so the device keeps its single runtime
(:mod:`device.inference`). With K trees of at most I internal nodes and L leaves each:

1. for every internal node, the feature it tests is picked from X (Hummingbird's ``X @ A``
   with a one-hot A [F, K·I]; here a gather of the same values, exact and far smaller);
2. ``≤ B`` compares with the node's threshold: 1 where the row goes left;
3. per tree, ``T @ C`` with C[i, l] = +1 when leaf l lies left of node i, −1 when right,
   0 when i is not on its path, counts the left turns taken on each leaf's path;
   ``== D`` (the left turns each leaf's path needs) is 1 at exactly the leaf the row reaches;
4. ``P @ E`` adds up the reached leaves' values (already multiplied by the learning rate),
   per output; plus the initial raw score, then a softmax for the classes.

**Exact agreement.** scikit-learn's trees cast X to float32 and send a row left when
``x ≤ threshold`` with a float64 threshold. For a float32 x that is the same as
``x ≤ t32`` with t32 the largest float32 not above the threshold (:func:`float32_thresholds`),
so the compiled comparison decides every node exactly as scikit-learn does, ties included.
Step 1 copies values; step 3 multiplies 0/1 by 0/±1 and adds small integers: exact.
Only step 4's sums are rounded differently (float32 in a different order), which moves the
probabilities by ~1e-7 and can only flip a verdict on an exact tie (the report counts them).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from training.food.model import MODEL_NAME, PROBABILITIES_OUTPUT, TVC_OUTPUT, Predictions
from training.tflite_export import native_output_to_file
from training.tflite_export import tensorflow as _tf

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: scikit-learn marks a leaf's feature and children with this.
_LEAF = -1


@dataclass(frozen=True)
class TreeSettings:
    """One boosted-trees configuration (the same for the class and the TVC model)."""

    iterations: int = 150
    depth: int = 3
    learning_rate: float = 0.1
    subsample: float = 1.0
    seed: int = 0

    def name(self) -> str:
        return f"{self.iterations} trees of depth {self.depth}, learning rate {self.learning_rate}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "iterations": self.iterations,
            "depth": self.depth,
            "learning_rate": self.learning_rate,
            "subsample": self.subsample,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class FittedTrees:
    """The fitted class and TVC ensembles (inputs: raw feature rows, as float32)."""

    classes: Any  # GradientBoostingClassifier
    tvc: Any  # GradientBoostingRegressor
    n_classes: int

    def predict(self, x: FloatArray) -> Predictions:
        """scikit-learn's own answer, on rows cast to float32 as the station feeds them."""
        x32 = np.asarray(x, dtype=np.float32)
        probabilities = np.zeros((len(x32), self.n_classes))
        # A class absent from the training rows gets probability 0.
        probabilities[:, self.classes.classes_] = self.classes.predict_proba(x32)
        return Predictions(probabilities, np.asarray(self.tvc.predict(x32), dtype=np.float64))


def fit_trees(
    x: FloatArray, labels: IntArray, tvc: FloatArray, settings: TreeSettings, n_classes: int
) -> FittedTrees:
    """Deterministic for given rows and settings (fixed ``random_state``, one thread)."""
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

    common = {
        "n_estimators": settings.iterations,
        "max_depth": settings.depth,
        "learning_rate": settings.learning_rate,
        "subsample": settings.subsample,
        "random_state": settings.seed,
    }
    x32 = np.asarray(x, dtype=np.float32)
    classes = GradientBoostingClassifier(**common).fit(x32, labels)
    # Absolute error: the target is a mean absolute error, and TVC is a step function of
    # time with a plateau per class, which squared error would pull towards the jumps.
    regressor = GradientBoostingRegressor(loss="absolute_error", **common).fit(x32, tvc)
    return FittedTrees(classes, regressor, n_classes)


# --- compilation ------------------------------------------------------------------------------


def float32_thresholds(thresholds: FloatArray) -> npt.NDArray[np.float32]:
    """The largest float32 ≤ each float64 threshold: for float32 x, ``x ≤ t`` ⇔ ``x ≤ t32``."""
    t32 = np.asarray(thresholds, dtype=np.float64).astype(np.float32)
    above = t32.astype(np.float64) > thresholds
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


@dataclass(frozen=True)
class TreeTensors:
    """The GEMM matrices of a forest (K trees, padded to I nodes and L leaves each)."""

    feature_of_node: IntArray  # [K, I], padded nodes test feature 0
    threshold: npt.NDArray[np.float32]  # [K, I], padded nodes +inf (always left)
    path: npt.NDArray[np.float32]  # [K, I, L]: +1 left of node, -1 right, 0 off the path
    left_turns: npt.NDArray[np.float32]  # [K, L], padded leaves −1 (never reached)
    leaf_value: npt.NDArray[np.float32]  # [K, L, outputs]
    initial: npt.NDArray[np.float32]  # [outputs]


def _tree_paths(
    tree: Any,
) -> tuple[list[int], list[float], list[int], list[list[tuple[int, int]]], list[float]]:
    """Internal nodes (feature, threshold), and for each leaf its path [(node position, ±1)]
    and value, of one scikit-learn regression tree."""
    t = tree.tree_
    internal = [n for n in range(t.node_count) if t.children_left[n] != _LEAF]
    position = {n: i for i, n in enumerate(internal)}
    paths: list[list[tuple[int, int]]] = []
    values: list[float] = []

    def walk(node: int, path: list[tuple[int, int]]) -> None:
        if t.children_left[node] == _LEAF:
            paths.append(path)
            values.append(float(t.value[node].reshape(-1)[0]))
            return
        walk(int(t.children_left[node]), [*path, (position[node], 1)])
        walk(int(t.children_right[node]), [*path, (position[node], -1)])

    walk(0, [])
    features = [int(t.feature[n]) for n in internal]
    thresholds = [float(t.threshold[n]) for n in internal]
    return features, thresholds, internal, paths, values


def tree_tensors(fitted: FittedTrees) -> TreeTensors:
    """Hummingbird's GEMM tensors of both ensembles: outputs = 4 class scores, then TVC."""
    n_out = fitted.n_classes + 1
    trees: list[tuple[Any, int, float]] = []  # (tree, output column, scale)
    gb_classes = fitted.classes
    columns = list(gb_classes.classes_)
    for stage in gb_classes.estimators_:
        for k, tree in enumerate(stage):
            # Binary problems have one tree per stage: the score of the second class.
            column = columns[1] if len(columns) == 2 else columns[k]
            trees.append((tree, int(column), gb_classes.learning_rate))
    for stage in fitted.tvc.estimators_:
        trees.append((stage[0], fitted.n_classes, fitted.tvc.learning_rate))
    parsed = [_tree_paths(t) for t, _, _ in trees]
    n_nodes = max(1, *(len(p[0]) for p in parsed))
    n_leaves = max(len(p[3]) for p in parsed)
    k = len(trees)
    feature = np.zeros((k, n_nodes), dtype=np.int64)
    threshold = np.full((k, n_nodes), np.inf, dtype=np.float32)
    path = np.zeros((k, n_nodes, n_leaves), dtype=np.float32)
    left_turns = np.full((k, n_leaves), -1.0, dtype=np.float32)
    leaf_value = np.zeros((k, n_leaves, n_out), dtype=np.float32)
    for i, ((_, column, scale), (features, thresholds, _, paths, values)) in enumerate(
        zip(trees, parsed, strict=True)
    ):
        feature[i, : len(features)] = features
        threshold[i, : len(thresholds)] = float32_thresholds(np.asarray(thresholds))
        for leaf, (steps, value) in enumerate(zip(paths, values, strict=True)):
            for node, side in steps:
                path[i, node, leaf] = side
            left_turns[i, leaf] = sum(1 for _, side in steps if side == 1)
            leaf_value[i, leaf, column] = scale * value
    return TreeTensors(feature, threshold, path, left_turns, leaf_value, _initial(fitted))


def _initial(fitted: FittedTrees) -> npt.NDArray[np.float32]:
    """The raw score before any tree (log prior per class; the TVC median), read back as the
    model's answer minus its trees' answer on one row."""
    row = np.zeros((1, fitted.classes.n_features_in_), dtype=np.float32)
    gb = fitted.classes
    raw = np.asarray(gb.decision_function(row), dtype=np.float64).reshape(-1)
    trees = np.zeros(len(gb.classes_) if len(gb.classes_) > 2 else 1)
    for stage in gb.estimators_:
        trees += gb.learning_rate * np.array([t.predict(row)[0] for t in stage])
    class_initial = np.full(fitted.n_classes, -1e4)  # absent classes: probability 0
    if len(gb.classes_) == 2:  # one score: log-odds of the second class
        class_initial[gb.classes_[0]] = 0.0
        class_initial[gb.classes_[1]] = (raw - trees)[0]
    else:
        class_initial[gb.classes_] = raw - trees
    tvc_trees = sum(fitted.tvc.learning_rate * s[0].predict(row)[0] for s in fitted.tvc.estimators_)
    tvc_initial = float(fitted.tvc.predict(row)[0]) - tvc_trees
    return np.asarray([*class_initial, tvc_initial], dtype=np.float32)


def forest_graph(
    fitted: FittedTrees, n_inputs: int, columns: Sequence[int] | None = None
) -> Callable[[Any], tuple[Any, Any]]:
    """A TF function of the ensemble: raw input rows [N, n_inputs] -> (probabilities [N, C],
    TVC [N, 1]). ``columns``: which input column each of the model's features is (default:
    the first ones, in order), so the forest can be one part of a larger graph."""
    tf = _tf()
    m = tree_tensors(fitted)
    k, n_nodes, n_leaves = m.path.shape
    n_classes = fitted.n_classes
    where = np.arange(n_inputs) if columns is None else np.asarray(columns)
    # The input column each node tests. Hummingbird multiplies by a one-hot matrix here; a
    # gather picks the same values (exactly) from a [K·I] index vector instead of a
    # [F, K·I] matrix, a 20-40x smaller file.
    a = tf.constant(where[m.feature_of_node.reshape(-1)].astype(np.int32))
    b = tf.constant(m.threshold.reshape(1, k * n_nodes))
    c = tf.constant(m.path)
    d = tf.constant(m.left_turns.reshape(k, 1, n_leaves))
    e = tf.constant(m.leaf_value.reshape(k * n_leaves, -1))
    initial = tf.constant(m.initial.reshape(1, -1))

    def graph(features: Any) -> tuple[Any, Any]:
        tested = tf.gather(features, a, axis=1)  # [N, K·I]: the feature each node tests
        left = tf.cast(tf.less_equal(tested, b), tf.float32)
        left = tf.transpose(tf.reshape(left, [-1, k, n_nodes]), [1, 0, 2])  # [K, N, I]
        turns = tf.matmul(left, c)  # [K, N, L]
        reached = tf.cast(tf.equal(turns, d), tf.float32)
        reached = tf.reshape(tf.transpose(reached, [1, 0, 2]), [-1, k * n_leaves])
        scores = tf.matmul(reached, e) + initial  # [N, C + 1]
        return tf.nn.softmax(scores[:, :n_classes]), scores[:, n_classes:]

    return graph


def graph_to_tflite(graph: Callable[[Any], tuple[Any, Any]], n_inputs: int) -> bytes:
    """A float32 TFLite model of ``graph``: input ``features`` [batch, n_inputs], outputs
    ``probabilities`` and ``tvc_log_cfu``; builtin ops only."""
    tf = _tf()

    def named(features: Any) -> dict[str, Any]:
        probabilities, tvc = graph(features)
        return {PROBABILITIES_OUTPUT: probabilities, TVC_OUTPUT: tvc}

    signature = [tf.TensorSpec([None, n_inputs], tf.float32, name="features")]
    function = tf.function(named, input_signature=signature)
    concrete = function.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], function)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with native_output_to_file():
        return bytes(converter.convert())


def compile_to_tflite(fitted: FittedTrees, n_features: int) -> bytes:
    """The ensemble as a float32 TFLite model: input ``features`` [batch, F] (raw feature
    rows), outputs ``probabilities`` [batch, C] and ``tvc_log_cfu`` [batch, 1]."""
    return graph_to_tflite(forest_graph(fitted, n_features), n_features)


def predict_tflite(tflite_model: bytes, x: FloatArray) -> Predictions:
    """What the compiled file says about raw feature rows, through the station's runtime."""
    from device.inference import make_interpreter

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{MODEL_NAME}.tflite"
        path.write_bytes(tflite_model)
        interpreter = make_interpreter(path, num_threads=1)
    (inp,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(inp["index"], [len(x), x.shape[1]], strict=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], np.asarray(x, dtype=np.float32))
    interpreter.invoke()
    by_name = {}
    for detail in interpreter.get_output_details():
        value = np.asarray(interpreter.get_tensor(detail["index"]), dtype=np.float64)
        by_name[int(value.shape[-1])] = value
    n_classes = max(by_name)
    return Predictions(by_name[n_classes], by_name[1][:, 0])


def count_nodes(fitted: FittedTrees) -> int:
    """Internal nodes plus leaves of both ensembles."""
    total = 0
    for gb in (fitted.classes, fitted.tvc):
        total += sum(int(t.tree_.node_count) for stage in gb.estimators_ for t in stage)
    return total
