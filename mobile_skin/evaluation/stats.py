"""How far an exported model's answers are from the reference model's: the parity gate's numbers.

Pure NumPy on probability arrays, so every rule of :mod:`mobile_skin.parity.gate` is testable on
hand-made inputs. For one split, :func:`compare` measures an exported model's probabilities
against the reference (Keras) probabilities and the labels:

- raw top-1 agreement with the reference;
- decided-row agreement: agreement on the rows where the reference's top-1 probability beats its
  runner-up by at least a margin. A flip on an undecided row (the reference itself is split
  between two classes) is a numerical tie, not a change of answer;
- the flips counted by the reference's top-2 margin (:data:`FLIP_MARGIN_EDGES`);
- the balanced-accuracy delta with a paired bootstrap 95% interval (rows resampled with
  replacement, the same rows for both models, fixed seed);
- per-class sensitivity (recall) and its delta against the reference;
- expected calibration error (ECE) of each model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np

#: Upper edges of the reference-margin bins the flips are counted in (the last bin is open).
FLIP_MARGIN_EDGES: tuple[float, ...] = (0.01, 0.05, 0.1)
#: Paired-bootstrap resamples and seed (fixed: the interval is reproducible).
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
#: Equal-width confidence bins of the expected calibration error.
ECE_BINS = 15


def top2_margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability of every row (0 for an exact tie)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[1] < 2:
        return np.ones(len(probs))
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def sensitivity(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Recall per class (NaN for a class without examples)."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    support = np.bincount(labels, minlength=num_classes).astype(float)
    hits = np.bincount(labels[predicted == labels], minlength=num_classes).astype(float)
    out = np.full(num_classes, np.nan)
    np.divide(hits, support, out=out, where=support > 0)
    return out


def expected_calibration_error(
    labels: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Top-label ECE: the support-weighted mean |accuracy - confidence| over equal-width bins."""
    probs = np.asarray(probs, dtype=np.float64)
    if not len(probs):
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = np.bincount(which, minlength=bins)
    gap = np.abs(
        np.bincount(which, weights=correct, minlength=bins)
        - np.bincount(which, weights=confidence, minlength=bins)
    )
    return float(gap.sum() / len(probs)) if total.sum() else 0.0


def bootstrap_balanced_accuracy_delta(
    labels: np.ndarray,
    predicted: np.ndarray,
    reference: np.ndarray,
    num_classes: int,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """95% percentile interval of balanced accuracy(predicted) - balanced accuracy(reference).

    Paired: each resample draws N rows with replacement and scores both models on the same
    rows. Balanced accuracy is the mean recall over the classes present in the resample.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if n == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    counts = np.zeros((resamples, n))
    rows = rng.integers(0, n, size=(resamples, n))
    np.add.at(counts, (np.repeat(np.arange(resamples), n), rows.ravel()), 1.0)
    onehot = np.eye(num_classes)[labels]  # (N, C)
    support = counts @ onehot  # (R, C)

    def balanced(pred: np.ndarray) -> np.ndarray:
        hits = counts @ (onehot * (np.asarray(pred) == labels)[:, None])
        recall = np.divide(hits, support, out=np.full_like(hits, np.nan), where=support > 0)
        return np.nanmean(recall, axis=1)

    deltas = balanced(predicted) - balanced(reference)
    low, high = np.percentile(deltas, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class SplitComparison:
    """One model's answers on one split, against the reference (fields are JSON-ready).

    Attributes:
        split: ``test`` or ``val``.
        n: rows.
        accuracy, balanced_accuracy, macro_f1, macro_auc: the model's own metrics.
        ece: its expected calibration error (:data:`ECE_BINS` bins).
        sensitivity: recall per class, in class order (None for an absent class).
        agreement: share of rows with the reference's top-1 class (None for the reference).
        decided_agreement: the same share over the decided rows only.
        decided: number of decided rows (reference margin >= the margin).
        margin: the decided-row margin used.
        flips: rows whose top-1 differs from the reference's.
        flips_by_margin: flips per reference-margin bin (keys like ``"<0.01"``, ``">=0.1"``).
        max_abs_diff, mean_abs_diff: |p - p_reference| over all rows and classes.
        delta_balanced_accuracy: balanced accuracy minus the reference's.
        delta_balanced_accuracy_ci: its paired-bootstrap 95% interval ``[low, high]``.
        delta_sensitivity: per-class sensitivity minus the reference's (None where absent).
        flipped: the flipped rows, ``{"id", "label", "reference", "model", "margin"}``, by margin.
        masked: the model's metrics with metadata fields set to unknown
            (:func:`mobile_skin.evaluation.robustness.condition_metrics`; None for an image-only
            model).
    """

    split: str
    n: int
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    macro_auc: float | None
    ece: float
    sensitivity: list[float | None]
    agreement: float | None = None
    decided_agreement: float | None = None
    decided: int | None = None
    margin: float | None = None
    flips: int | None = None
    flips_by_margin: dict[str, int] | None = None
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    delta_balanced_accuracy: float | None = None
    delta_balanced_accuracy_ci: list[float] | None = None
    delta_sensitivity: list[float | None] | None = None
    flipped: list[dict] = field(default_factory=list)
    masked: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SplitComparison:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def undecided(self) -> int:
        """Rows where the reference's top-2 margin is below :attr:`margin`."""
        return self.n - (self.decided or 0)

    @property
    def decided_flips(self) -> int:
        """Flips on decided rows."""
        if self.decided_agreement is None or not self.decided:
            return 0
        return int(round(self.decided * (1 - self.decided_agreement)))


def margin_bins(edges: Sequence[float] = FLIP_MARGIN_EDGES) -> list[str]:
    """Names of the flip bins: ``<0.01``, ``0.01-0.05``, ..., ``>=0.1``."""
    lows = [None, *edges]
    highs = [*edges, None]
    return [
        f"<{hi:g}" if lo is None else f">={lo:g}" if hi is None else f"{lo:g}-{hi:g}"
        for lo, hi in zip(lows, highs, strict=True)
    ]


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def compare(
    split: str,
    labels: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    reference: np.ndarray | None,
    margin: float,
    *,
    ids: Sequence[str] | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> SplitComparison:
    """Score ``probs`` on ``labels`` and, with a ``reference``, against the reference's answers.

    Non-finite probabilities are scored as zeros and show up as an infinite ``max_abs_diff``.
    """
    from mobile_skin.model.metrics import classification_report

    labels = np.asarray(labels, dtype=np.int64)
    finite = bool(np.isfinite(probs).all())
    probs = np.nan_to_num(np.asarray(probs, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    report = classification_report(labels, probs, classes)
    k = len(classes)
    predicted = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
    sens = sensitivity(labels, predicted, k)
    out = SplitComparison(
        split=split,
        n=int(len(labels)),
        accuracy=report["accuracy"],
        balanced_accuracy=report["balanced_accuracy"],
        macro_f1=report["macro_f1"],
        macro_auc=report["macro_auc"],
        ece=expected_calibration_error(labels, probs),
        sensitivity=_nan_to_none(sens),
    )
    if reference is None:
        return out
    reference = np.asarray(reference, dtype=np.float64)
    ref_pred = reference.argmax(axis=1) if len(reference) else np.zeros(0, np.int64)
    ref_margin = top2_margin(reference) if len(reference) else np.zeros(0)
    same = predicted == ref_pred
    decided = ref_margin >= margin
    diff = np.abs(probs - reference) if finite and len(probs) else np.array([np.inf])
    ref_bal = classification_report(labels, reference, classes)["balanced_accuracy"]
    low, high = bootstrap_balanced_accuracy_delta(
        labels, predicted, ref_pred, k, resamples=resamples, seed=seed
    )
    flipped = np.flatnonzero(~same)
    bins = np.searchsorted(np.asarray(FLIP_MARGIN_EDGES), ref_margin[flipped], side="right")
    names = margin_bins()
    row_ids = list(ids) if ids is not None else [str(i) for i in range(len(labels))]
    out.agreement = float(same.mean()) if len(same) else 0.0
    out.decided = int(decided.sum())
    out.decided_agreement = float(same[decided].mean()) if decided.any() else 1.0
    out.margin = float(margin)
    out.flips = int(len(flipped))
    out.flips_by_margin = {name: int((bins == i).sum()) for i, name in enumerate(names)}
    out.max_abs_diff, out.mean_abs_diff = float(diff.max()), float(diff.mean())
    out.delta_balanced_accuracy = out.balanced_accuracy - ref_bal
    out.delta_balanced_accuracy_ci = [low, high]
    out.delta_sensitivity = _nan_to_none(sens - sensitivity(labels, ref_pred, k))
    out.flipped = [
        {
            "id": row_ids[i],
            "label": classes[labels[i]],
            "reference": classes[ref_pred[i]],
            "model": classes[predicted[i]],
            "margin": round(float(ref_margin[i]), 5),
        }
        for i in flipped[np.argsort(ref_margin[flipped], kind="stable")]
    ]
    return out


def margin_sweep(
    probs: np.ndarray, reference: np.ndarray, margins: Sequence[float]
) -> list[tuple[float, int, float]]:
    """For each margin: (margin, decided rows, decided-row agreement)."""
    ref_margin = top2_margin(reference)
    same = np.asarray(probs).argmax(1) == np.asarray(reference).argmax(1)
    out = []
    for m in margins:
        decided = ref_margin >= m
        out.append(
            (float(m), int(decided.sum()), float(same[decided].mean()) if decided.any() else 1.0)
        )
    return out
