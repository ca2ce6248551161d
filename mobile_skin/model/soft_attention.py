"""Soft-Attention (Datta et al. 2021) as docs/design.md states it.

For a feature map ``t`` of shape (B, H, W, C)::

    a_k   = softmax over the H*W positions of (W_k * t)      k = 1..K  (W_k: 3x3 conv over all C)
    alpha = sum_k a_k                                         (B, H, W, 1)
    f     = concat(t, gamma * t * alpha)                      (B, H, W, 2C)

``gamma`` is a learnable scalar initialised to 1. The K convolutions are one ``Conv2D`` with K
filters and no bias (a per-head constant cancels in the softmax). Unlike the public reference
code, there is no ReLU before the softmax (the formula has none) and no Conv3D.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras


@tf_keras.saving.register_keras_serializable(package="mobile_skin")
class SoftAttention(tf_keras.layers.Layer):
    """Multi-head soft attention over spatial positions.

    Args:
        heads: K, the number of attention maps.
        kernel_size: side of the W_k convolution.
        gamma_init: initial value of the learnable scale gamma.
    """

    def __init__(self, heads: int = 16, kernel_size: int = 3, gamma_init: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.heads = int(heads)
        self.kernel_size = int(kernel_size)
        self.gamma_init = float(gamma_init)
        self.conv = tf_keras.layers.Conv2D(
            self.heads, self.kernel_size, padding="same", use_bias=False, name="attention_conv"
        )

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"SoftAttention expects (B, H, W, C) input, got {input_shape}")
        self.conv.build(input_shape)
        self.gamma = self.add_weight(
            name="gamma",
            shape=(),
            initializer=tf_keras.initializers.Constant(self.gamma_init),
            trainable=True,
        )
        super().build(input_shape)

    def head_maps(self, t: tf.Tensor) -> tf.Tensor:
        """The K attention maps a_k, (B, H, W, K); each sums to 1 over H*W."""
        logits = self.conv(t)
        h, w = t.shape[1], t.shape[2]
        if h is None or w is None:
            dyn = tf.shape(logits)
            h, w = dyn[1], dyn[2]
        flat = tf.reshape(logits, tf.stack([-1, h * w, self.heads]))
        probs = tf.nn.softmax(tf.cast(flat, tf.float32), axis=1)
        return tf.cast(tf.reshape(probs, tf.stack([-1, h, w, self.heads])), t.dtype)

    def attention(self, t: tf.Tensor) -> tf.Tensor:
        """The summed attention map alpha, (B, H, W, 1), for visualisation."""
        return tf.reduce_sum(self.head_maps(t), axis=-1, keepdims=True)

    def call(self, t: tf.Tensor) -> tf.Tensor:
        alpha = self.attention(t)
        gamma = tf.cast(self.gamma, t.dtype)
        return tf.concat([t, gamma * t * alpha], axis=-1)

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        return tf.TensorShape(shape[:-1] + [None if shape[-1] is None else 2 * shape[-1]])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "heads": self.heads,
            "kernel_size": self.kernel_size,
            "gamma_init": self.gamma_init,
        }
