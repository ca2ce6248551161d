"""Class weights, the weighted cross-entropy, and the metrics against scikit-learn and by hand."""

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import balanced_accuracy_score, f1_score, precision_score, recall_score

from mobile_skin.model.losses import WeightedCategoricalCrossentropy, class_weights
from mobile_skin.model.metrics import classification_report, confusion_matrix, from_confusion


def test_class_weights_by_hand():
    labels = [0] * 6 + [1] * 3 + [2] * 1  # N = 10, C = 4 (class 3 absent)
    w = class_weights(labels, 4)
    np.testing.assert_allclose(w, [10 / (4 * 6), 10 / (4 * 3), 10 / (4 * 1), 0.0], rtol=1e-6)


def test_weighted_cross_entropy_by_hand():
    y = np.array([[1, 0, 0], [0, 0, 1]], np.float32)
    p = np.array([[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]], np.float32)
    loss = WeightedCategoricalCrossentropy([2.0, 1.0, 0.5])
    expected = np.mean([2.0 * -np.log(0.5), 0.5 * -np.log(0.6)])
    assert float(loss(tf.constant(y), tf.constant(p))) == pytest.approx(expected, rel=1e-5)
    plain = WeightedCategoricalCrossentropy(None)
    assert float(plain(y, p)) == pytest.approx(np.mean([-np.log(0.5), -np.log(0.6)]), rel=1e-5)
    again = WeightedCategoricalCrossentropy.from_config(loss.get_config())
    assert again.weights == [2.0, 1.0, 0.5]


def test_hand_worked_three_class_confusion():
    #            predicted: a  b  c
    cm = np.array(
        [
            [5, 1, 0],  # true a (6)
            [2, 3, 1],  # true b (6)
            [0, 0, 4],
        ]
    )  # true c (4)      total 16
    m = from_confusion(cm)
    assert m["accuracy"] == pytest.approx(12 / 16)
    np.testing.assert_allclose(m["sensitivity"], [5 / 6, 3 / 6, 4 / 4])
    # specificity a: TN = 16 - 5 - 1 - 2 = 8, FP = 2 -> 8/10
    np.testing.assert_allclose(m["specificity"], [8 / 10, 9 / 10, 11 / 12])
    np.testing.assert_allclose(m["precision"], [5 / 7, 3 / 4, 4 / 5])
    np.testing.assert_allclose(m["f1"], [10 / 13, 6 / 10, 8 / 9])  # 2TP / (2TP + FP + FN)
    assert m["balanced_accuracy"] == pytest.approx((5 / 6 + 3 / 6 + 1) / 3)
    np.testing.assert_allclose(m["ovr_accuracy"], [13 / 16, 12 / 16, 15 / 16])
    assert m["mean_sens_spec"] == pytest.approx(
        np.mean([(5/6 + 8/10) / 2, (3/6 + 9/10) / 2, (1 + 11/12) / 2])
    )  # fmt: skip


def test_against_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 300)
    probs = rng.dirichlet(np.ones(7), 300)
    probs[np.arange(300), y] += rng.random(300)  # better than chance
    probs /= probs.sum(1, keepdims=True)
    pred = probs.argmax(1)
    r = classification_report(y, probs, list("abcdefg"))
    assert r["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert r["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert r["macro_precision"] == pytest.approx(
        precision_score(y, pred, average="macro", zero_division=0)
    )
    assert r["macro_sensitivity"] == pytest.approx(recall_score(y, pred, average="macro"))
    assert np.array_equal(np.array(r["confusion"]), confusion_matrix(y, pred, 7))
    from sklearn.metrics import roc_auc_score

    assert r["macro_auc"] == pytest.approx(
        roc_auc_score(y, probs, multi_class="ovr", average="macro")
    )


def test_absent_class_has_no_auc():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0], [0.6, 0.4, 0], [0.3, 0.7, 0], [0.2, 0.8, 0]])
    r = classification_report(y, probs, ["a", "b", "c"])
    assert r["per_class"][2]["auc"] is None
    assert r["balanced_accuracy"] == 1.0  # averaged over classes present, as scikit-learn does
