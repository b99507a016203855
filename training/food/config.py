"""Settings of the food model's MLP family and the issue's targets, fixed before looking at
held-out runs. Which family and setting ships is decided by the nested comparison over the
grid of :func:`training.food.families.default_grid` (issue 15); the seed-ensemble, activation
and ablation settings below belong to the earlier MLP-only training (issue 7) and are used by
``training.food.ensemble_check`` and the MLP candidates.

The reasons are given next to each choice, because choosing by the held-out runs would make
the leave-one-run-out figures optimistic. What *was* looked at is disclosed in
``models/food_quality/report.md`` ("How the settings were chosen").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from device.nose.features import FeatureSpec

#: "Fresh" only when the model gives it at least this probability. A person who cannot smell
#: will eat what the station calls fresh; counting that mistake as 4 times as costly as
#: throwing away good food gives the Bayes threshold 4 / (4 + 1) = 0.8. Fixed a priori.
FRESH_THRESHOLD = 0.8

#: Late starts replayed for every held-out run (minutes since the run began): the food went in
#: at minute 1, the station is switched on this late and sees nothing before.
LATE_STARTS_MINUTE: tuple[int, ...] = (600, 900, 1200)
#: The late-start accuracy is measured over this long after each start.
LATE_START_HOURS = 1.0

#: Seeds every activation is trained with to measure reproducibility.
REPRODUCIBILITY_SEEDS: tuple[int, ...] = (0, 1, 2)

#: Members of the seed ensemble: the seeds the reproducibility study trains anyway, so its
#: leave-one-run-out figures cost no extra training. One seed alone can land far off on a
#: held-out run (seed 0 called all of TS1 fresh in the single-model training); averaging the
#: members' probabilities and TVC damps what one seed gets wrong by chance.
ENSEMBLE_SEEDS: tuple[int, ...] = REPRODUCIBILITY_SEEDS
#: Rule, written before the ensemble's held-out figures were seen: ship the ensemble unless
#: its int8 fresh/not mean over the held-out runs is lower than the single-seed mean (the
#: int8 fresh/not mean of each seed alone, averaged over the ensemble's seeds).
#: The last output of ``python -m training.food.ensemble_check`` (ReLU, int8, 20 epochs): the
#: shipped ensemble against an ensemble of 3 other seeds, leave-one-run-out. Shown in report.md.
ENSEMBLE_VS_OTHER_SEEDS: dict[str, str] = {
    "ensemble of seeds 0, 1, 2, fresh/not int8": "TS1 0.643, TS2 0.995, TS3 0.937, TS5 0.986; "
    "mean 0.890",
    "ensemble of seeds 3, 4, 5, fresh/not int8": "TS1 0.414, TS2 0.928, TS3 0.934, TS5 0.881; "
    "mean 0.789",
    "relative difference of P(fresh) between the two": "0.206 (single ReLU networks, seed "
    "pairs: see the table above)",
    "fresh/not verdicts that differ between the two": "11 % (0.1095)",
}
ENSEMBLE_RULE = (
    "ship the seed ensemble unless its int8 fresh/not mean over the held-out runs is lower "
    "than the mean of its seeds' single-model means"
)

#: The shipped features: the response of all nine sensors (no sensor is dropped: the choice
#: would have to be made per fold, and the fault that motivated dropping MQ5/MQ6 is in a
#: *test* run), capped at 0 and with their cross-sensor shape (see device/nose/features.py for
#: why), climate-compensated; no slopes (10/30 min slopes of one-minute means are noise-level
#: in these runs and lengthen the wait for the first verdict from 10 to 40 minutes; the
#: ablation in report.md measures them); no absolute T/RH input (the station's kitchen is not
#: Surabaya's 29-40 °C).
SHIPPED_SPEC = FeatureSpec(
    smooth_minutes=10,
    slope_minutes=(),
    compensate_climate=True,
    include_climate=False,
    cap_rising=True,
    cross_sensor=True,
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the model. Stored in the card."""

    spec: FeatureSpec = field(default_factory=lambda: SHIPPED_SPEC)
    hidden_units: tuple[int, ...] = (8,)
    # What the reproducibility rule picked in the last full training (report.md); a full
    # training applies the rule again, this default serves `--folds first`.
    activation: str = "relu"
    dropout: float = 0.1
    l2: float = 1e-2
    learning_rate: float = 3e-3
    batch_size: int = 256
    epochs: int = 20
    tvc_loss_weight: float = 1.0
    fresh_threshold: float = FRESH_THRESHOLD
    seed: int = 0
    # Empty: one network trained with ``seed``. Otherwise one network per seed listed, their
    # outputs averaged inside the one exported model; what the ensemble rule picked in the last
    # full training (report.md), which applies the rule again.
    ensemble_seeds: tuple[int, ...] = ENSEMBLE_SEEDS

    @property
    def member_seeds(self) -> tuple[int, ...]:
        """The seeds of the networks this configuration trains."""
        return self.ensemble_seeds or (self.seed,)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_spec": self.spec.to_dict(),
            "hidden_units": list(self.hidden_units),
            "activation": self.activation,
            "dropout": self.dropout,
            "l2": self.l2,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "tvc_loss_weight": self.tvc_loss_weight,
            "fresh_threshold": self.fresh_threshold,
            "seed": self.seed,
            "ensemble_seeds": list(self.ensemble_seeds),
        }

    def fit_settings(self) -> dict[str, Any]:
        """Keyword arguments of :func:`training.food.model.fit`."""
        return {
            "hidden_units": self.hidden_units,
            "activation": self.activation,
            "dropout": self.dropout,
            "l2": self.l2,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "tvc_loss_weight": self.tvc_loss_weight,
            "seed": self.seed,
        }


#: What ships. One hidden layer of 8 with strong L2: chosen among four settings compared on the
#: held-out runs (listed in :data:`TRIED`), so its figures are somewhat optimistic. The
#: activation is then picked by the reproducibility rule below.
DEFAULT_CONFIG = TrainConfig()

#: Settings compared on the held-out runs (int8 fresh/not mean, seed 0) before DEFAULT_CONFIG
#: was fixed; reported in report.md.
TRIED: dict[str, str] = {
    "linear (no hidden layer)": "0.869",
    "16-8 SmeLU, L2 1e-3, 30 epochs": "0.84 (TS1 0.71, TS5 0.82)",
    "16-8 ReLU, L2 1e-3, 30 epochs": "0.833",
    "8 SmeLU, L2 1e-2, 20 epochs": "0.893 (seed 0; 0.859 mean of seeds 0-2)",
}

#: Feature ablation: each row removes or adds one group from the shipped features.
ABLATIONS: dict[str, FeatureSpec] = {
    "shipped": SHIPPED_SPEC,
    "without cross-sensor shape": replace(SHIPPED_SPEC, cross_sensor=False),
    "without the cap at 0": replace(SHIPPED_SPEC, cap_rising=False),
    "without climate compensation": replace(SHIPPED_SPEC, compensate_climate=False),
    "plus 10/30 min slopes": replace(SHIPPED_SPEC, slope_minutes=(10, 30)),
}

#: Activations trained with every seed of :data:`REPRODUCIBILITY_SEEDS` (issue 7, point 7).
ACTIVATIONS_COMPARED: tuple[str, ...] = ("smelu", "relu")
#: Rule: ship the activation whose trainings differ less (relative prediction difference of
#: P(fresh)), unless its fresh/not accuracy (mean over seeds and runs) is lower than the
#: other's by more than this. Written after a first comparison had been seen (SmeLU 0.38 vs
#: ReLU 0.25, before the int8 calibration was widened; report.md says so).
ACCURACY_TOLERANCE_FOR_REPRODUCIBILITY = 0.01

#: The issue's targets (leave-one-run-out, int8), checked in report.md and report.json.
TARGET_FRESH_MEAN = 0.95
TARGET_FRESH_WORST_RUN = 0.90
TARGET_4CLASS_MEAN = 0.75
TARGET_TVC_MAE = 0.25
TARGET_LATE_START_GAP = 0.05
TARGET_INT8_AGREEMENT = 0.99
TARGET_MODEL_BYTES = 50 * 1024
