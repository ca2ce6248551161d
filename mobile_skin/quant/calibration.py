"""Calibration samples for int8 quantization: N training-split images drawn per class.

TFLite's full-integer converter (representative dataset) and onnxruntime's static quantization
(calibration data reader) both estimate activation ranges from these samples. They come from the
run's TRAINING split only (never test), drawn as evenly over the classes as the class sizes allow
(a class with fewer images than its share gives all it has, the rest is shared among the others),
with a fixed seed, and go through the same pipeline as evaluation (no augmentation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from mobile_skin.common.errors import UserError
from mobile_skin.contract.encoding import CLASSES
from mobile_skin.contract.spec import ModelSpec

DEFAULT_SAMPLES = 300

Sample = dict[str, np.ndarray]


def per_class_counts(class_sizes: Sequence[int], n: int) -> np.ndarray:
    """How many samples to take from each class: as equal as the sizes allow, summing to ``n``.

    Water-filling: every class gets an equal share, capped at its size; what a small class cannot
    give is shared among the others. Leftover single samples go to the classes with the most
    images left. If ``n`` is at least the total, every image is taken.
    """
    sizes = np.asarray(class_sizes, dtype=np.int64)
    take = np.zeros_like(sizes)
    remaining = min(int(n), int(sizes.sum()))
    while remaining > 0:
        open_ = np.flatnonzero(take < sizes)
        share = remaining // len(open_)
        if share == 0:
            room = sizes[open_] - take[open_]
            order = open_[np.argsort(-room, kind="stable")]
            take[order[:remaining]] += 1
            break
        add = np.minimum(share, sizes[open_] - take[open_])
        take[open_] += add
        remaining -= int(add.sum())
    return take


def check_sample_count(n: int) -> None:
    """Raise :class:`UserError` when ``n`` is smaller than the number of classes."""
    if n < len(CLASSES):
        raise UserError(
            f"--calibration-samples {n} is smaller than the number of classes ({len(CLASSES)}); "
            f"int8 calibration needs at least one image per class (default {DEFAULT_SAMPLES})"
        )


def calibration_frame(train: pd.DataFrame, n: int = DEFAULT_SAMPLES, seed: int = 0) -> pd.DataFrame:
    """Pick ``n`` rows of the training split per class (see :func:`per_class_counts`), seeded.

    Raises:
        UserError: ``n`` is smaller than the number of classes, or the split is empty.
    """
    check_sample_count(n)
    if train.empty:
        raise UserError("the training split is empty; nothing to calibrate int8 quantization on")
    rng = np.random.default_rng(seed)
    labels = train["label"].to_numpy()
    sizes = [int((labels == c).sum()) for c in range(len(CLASSES))]
    picks = []
    for c, k in enumerate(per_class_counts(sizes, n)):
        rows = np.flatnonzero(labels == c)
        picks.extend(rng.choice(rows, size=int(k), replace=False).tolist())
    return train.iloc[sorted(picks)]


def calibration_samples(
    train: pd.DataFrame,
    spec: ModelSpec,
    n: int = DEFAULT_SAMPLES,
    seed: int = 0,
    *,
    log: Callable[[str], None] = print,
) -> list[Sample]:
    """The calibration inputs: one dict ``{"image": (1,S,S,3), "metadata": (1,D)}`` per sample.

    Args:
        train: the run's training-split rows.
        spec: image size and metadata encoding of the model.
        n: number of samples (default 300).
        seed: sampling seed.
        log: where the one-line summary goes.
    """
    from mobile_skin.contract.pipeline import make_dataset

    rows = calibration_frame(train, n, seed)
    counts = rows["label"].value_counts().reindex(range(len(CLASSES)), fill_value=0)
    summary = ", ".join(f"{c} {counts[i]}" for i, c in enumerate(CLASSES))
    note = f" (the training split has only {len(rows)})" if len(rows) < n else ""
    log(f"calibration: {len(rows)} training images{note}: {summary}")
    ds = make_dataset(rows, spec.image_size, 1, encoding=spec.encoding, labels=False, cache=False)
    return [{k: v.numpy() for k, v in batch.items()} for batch in ds]


def representative_dataset(
    samples: Sequence[Sample], *, progress: str | None = "calibrating"
) -> Callable[[], Iterator[Sample]]:
    """A TFLite ``representative_dataset``: yields each sample as a dict keyed by input name."""

    def generate() -> Iterator[Sample]:
        from tqdm.auto import tqdm

        yield from tqdm(samples, desc=progress, disable=progress is None, leave=False)

    return generate
