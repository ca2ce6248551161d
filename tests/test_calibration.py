"""Calibration samples: per class, from the training split only, seeded, enough for every class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mobile_skin.common.errors import UserError
from mobile_skin.contract.encoding import CLASSES, METADATA_SIZE, MetadataEncoding
from mobile_skin.contract.spec import ModelSpec
from mobile_skin.quant.calibration import (
    calibration_frame,
    calibration_samples,
    per_class_counts,
    representative_dataset,
)


@pytest.mark.parametrize(
    ("sizes", "n", "expected"),
    [
        ([100] * 7, 70, [10] * 7),
        (
            [2, 100, 100, 100, 100, 100, 100],
            62,
            [2, 10, 10, 10, 10, 10, 10],
        ),  # small class gives all
        ([1, 1, 1, 1, 1, 1, 50], 20, [1, 1, 1, 1, 1, 1, 14]),
        ([5, 5], 100, [5, 5]),  # n above the total: everything
        ([10, 20, 30], 4, [1, 1, 2]),  # the remainder goes to the class with most left
        ([0, 10, 10], 6, [0, 3, 3]),  # an absent class gets nothing
    ],
)
def test_per_class_counts_are_as_even_as_the_sizes_allow(sizes, n, expected):
    counts = per_class_counts(sizes, n)
    assert counts.tolist() == expected
    assert counts.sum() == min(n, sum(sizes))
    assert (counts <= np.asarray(sizes)).all()


def _train_frame(sizes: list[int]) -> pd.DataFrame:
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return pd.DataFrame(
        {"label": labels, "image_id": [f"img{i}" for i in range(len(labels))]},
        index=np.arange(1000, 1000 + len(labels)),
    )


def test_calibration_frame_is_seeded_and_per_class():
    train = _train_frame([30, 40, 50, 5, 60, 300, 10])
    a, b = calibration_frame(train, 70, seed=1), calibration_frame(train, 70, seed=1)
    c = calibration_frame(train, 70, seed=2)
    assert a.index.tolist() == b.index.tolist()
    assert a.index.tolist() != c.index.tolist()
    assert a.index.is_unique and set(a.index) <= set(train.index)
    assert np.bincount(a["label"], minlength=7).tolist() == [11, 11, 11, 5, 11, 11, 10]


def test_fewer_samples_than_classes_is_a_user_error():
    with pytest.raises(
        UserError, match="--calibration-samples 6 is smaller than the number of classes"
    ):
        calibration_frame(_train_frame([10] * 7), len(CLASSES) - 1)


def test_samples_are_model_inputs_by_name(synthetic_root):
    from mobile_skin.data.ham10000 import load_ham10000

    frame = load_ham10000(synthetic_root, verify_images=False, log=lambda _m: None)
    spec = ModelSpec(image_size=32, encoding=MetadataEncoding())
    logs: list[str] = []
    samples = calibration_samples(frame, spec, 14, seed=0, log=logs.append)
    assert len(samples) == 14 and "calibration: 14 training images" in logs[0]
    for sample in samples:
        assert sorted(sample) == ["image", "metadata"]
        assert sample["image"].shape == (1, 32, 32, 3) and sample["image"].dtype == np.float32
        assert sample["metadata"].shape == (1, METADATA_SIZE)
        assert 0 <= sample["image"].min() and sample["image"].max() <= 255
    assert len(list(representative_dataset(samples, progress=None)())) == 14
