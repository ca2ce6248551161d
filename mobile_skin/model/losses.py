"""Class weights and the class-weighted categorical cross-entropy of the paper."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras


def class_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """``W_c = N / (C * N_c)`` from the training labels; 0 for a class with no examples."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(float)
    total = counts.sum()
    with np.errstate(divide="ignore"):
        weights = np.where(counts > 0, total / (num_classes * counts), 0.0)
    return weights.astype(np.float32)


@tf_keras.saving.register_keras_serializable(package="mobile_skin")
class WeightedCategoricalCrossentropy(tf_keras.losses.Loss):
    """``-w_y * log p_y`` per example (one-hot ``y_true``), averaged over the batch.

    Args:
        weights: one weight per class (see :func:`class_weights`); None means all ones.
    """

    def __init__(
        self, weights: Sequence[float] | None = None, name: str = "weighted_cce", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.weights = None if weights is None else [float(w) for w in weights]

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, tf.float32)
        y_pred = tf.cast(y_pred, tf.float32)
        ce = tf_keras.losses.categorical_crossentropy(y_true, y_pred)
        if self.weights is None:
            return ce
        w = tf.reduce_sum(y_true * tf.constant(self.weights, tf.float32), axis=-1)
        return w * ce

    def get_config(self) -> dict:
        return {**super().get_config(), "weights": self.weights}
