"""The parity gate's statistics on hand-computed inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from mobile_skin.evaluation.stats import (
    bootstrap_balanced_accuracy_delta,
    compare,
    expected_calibration_error,
    margin_bins,
    margin_sweep,
    sensitivity,
    top2_margin,
)


def test_top2_margin_and_sensitivity():
    probs = np.array([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [0.1, 0.2, 0.7]])
    np.testing.assert_allclose(top2_margin(probs), [0.2, 0.0, 0.5])
    got = sensitivity(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 3)
    np.testing.assert_array_equal(got[:2], [0.5, 1.0])
    assert np.isnan(got[2])  # no examples of class 2


def test_expected_calibration_error_by_hand():
    # Two bins used: confidence 0.95 (2 rows, 1 right: |0.5 - 0.95|) and 0.55 (2 rows, both
    # right: |1 - 0.55|); ECE = (2 * 0.45 + 2 * 0.45) / 4.
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.45, 0.55]])
    labels = np.array([0, 1, 0, 1])
    assert expected_calibration_error(labels, probs) == pytest.approx(0.45)
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(np.array([0, 1]), perfect) == 0.0


def test_bootstrap_is_reproducible_with_its_seed_and_brackets_the_delta():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    reference = np.where(rng.random(400) < 0.8, labels, (labels + 1) % 4)
    predicted = np.where(rng.random(400) < 0.1, (reference + 1) % 4, reference)
    a = bootstrap_balanced_accuracy_delta(labels, predicted, reference, 4, resamples=500, seed=3)
    b = bootstrap_balanced_accuracy_delta(labels, predicted, reference, 4, resamples=500, seed=3)
    c = bootstrap_balanced_accuracy_delta(labels, predicted, reference, 4, resamples=500, seed=4)
    assert a == b and a != c
    delta = balanced_accuracy_score(labels, predicted) - balanced_accuracy_score(labels, reference)
    assert a[0] < delta < a[1] and a[1] - a[0] < 0.1
    same = bootstrap_balanced_accuracy_delta(labels, reference, reference, 4, resamples=100)
    assert same == (0.0, 0.0)  # paired: identical answers give a zero-width interval


def test_compare_counts_flips_by_reference_margin():
    reference = np.array(
        [
            [0.50, 0.495, 0.005],
            [0.60, 0.57, 0.03],
            [0.55, 0.48, 0.07],
            [0.8, 0.1, 0.1],
            [0.9, 0.05, 0.05],
        ]
    )
    probs = reference[:, [1, 0, 2]]  # every row's top two swapped: five flips
    probs[4] = reference[4]  # ...but the last
    labels = np.array([0, 1, 0, 0, 0])
    c = compare("test", labels, probs, ["a", "b", "c"], reference, 0.05, ids=list("vwxyz"))
    assert c.flips == 4 and c.agreement == pytest.approx(0.2)
    assert c.flips_by_margin == {"<0.01": 1, "0.01-0.05": 1, "0.05-0.1": 1, ">=0.1": 1}
    assert c.decided == 3 and c.decided_agreement == pytest.approx(1 / 3) and c.decided_flips == 2
    assert [f["id"] for f in c.flipped] == ["v", "w", "x", "y"]  # by margin
    assert c.flipped[1] == {"id": "w", "label": "b", "reference": "a", "model": "b", "margin": 0.03}
    assert margin_bins() == list(c.flips_by_margin)
    assert margin_sweep(probs, reference, [0.0, 0.05, 0.5]) == [
        (0.0, 5, pytest.approx(0.2)),
        (0.05, 3, pytest.approx(1 / 3)),
        (0.5, 2, 0.5),
    ]
    # Per-class sensitivity and its change: class b's only row went from wrong to right.
    assert c.delta_sensitivity[1] == 1.0 and c.sensitivity[2] is None
