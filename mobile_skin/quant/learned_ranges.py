"""Activation ranges learnt during quantization-aware fine-tuning (LSQ-style range gradients).

:func:`mobile_skin.quant.qat.quantize_aware` fine-tunes with every fake-quant range fixed at its
calibrated value by default. With ``ranges="learned"`` the activation ranges train too: each
range ``[low, high]`` is its calibrated value times ``exp(a)`` (low) and ``exp(b)`` (high), the
log-factors ``a`` and ``b`` trained by their own Adam optimizer, so that a step moves a range by
the same share whatever its width, and a range that starts at 0 (after a ReLU) stays there.

The gradient of the fake-quant output ``y`` with respect to the range is that of learned step
size quantization (Esser et al., "Learned Step Size Quantization", ICLR 2020), written for a
``[low, high]`` range rather than a step and zero point: with step ``s = (high - low) / 255``,
``u = (x - low) / s`` and ``r = round(u)``, a value inside the range gives
``dy/dhigh = (r - u) / 255`` and ``dy/dlow = (u - r) / 255`` (the rounding error the range can
trade against), a value clipped below gives ``dy/dlow = 1``, above ``dy/dhigh = 1``.
TensorFlow's own gradient of ``fake_quant_with_min_max_vars`` has only the clipped part, which
can widen a range but never narrow it. The forward pass is TensorFlow's op itself, so what trains
is what the converter reads: after :meth:`LearnedRanges.commit` the learnt values sit in the
fake-quant variables.

The image input's range is not learnt (raw pixels are exact at scale 1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from mobile_skin.quant.quantizer_patch import replaced_calls

LEVELS = 255.0
#: The activation quantizer classes whose ranges can be learnt (tfmot's 8-bit scheme's).
_ACTIVATION_QUANTIZERS = (
    tfmot.quantization.keras.quantizers.MovingAverageQuantizer,
    tfmot.quantization.keras.quantizers.AllValuesQuantizer,
)


@tf.custom_gradient
def fake_quant(x: tf.Tensor, low: tf.Tensor, high: tf.Tensor) -> tf.Tensor:
    """8-bit asymmetric fake quantization of ``x`` over ``[low, high]`` (TensorFlow's op,
    ``narrow_range=False``) with the learned-step-size gradient for ``low`` and ``high``."""
    y = tf.quantization.fake_quant_with_min_max_vars(x, low, high, num_bits=8)

    def grad(dy):
        step = (high - low) / LEVELS
        below, above = x < low, x > high
        inside = tf.logical_not(tf.logical_or(below, above))
        u = (x - low) / step
        error = (tf.round(u) - u) / LEVELS
        zeros = tf.zeros_like(dy)
        d_low = tf.reduce_sum(dy * tf.where(below, 1.0, tf.where(inside, -error, 0.0)))
        d_high = tf.reduce_sum(dy * tf.where(above, 1.0, tf.where(inside, error, 0.0)))
        return (
            tf.where(inside, dy, zeros),
            tf.reshape(d_low, tf.shape(low)),
            tf.reshape(d_high, tf.shape(high)),
        )

    return y, grad


class LearnedRanges:
    """Trainable log-factors for the activation ranges ``pairs`` (the ``(min, max)`` fake-quant
    variables :func:`mobile_skin.quant.qat.calibrate` set).

    Use :meth:`active` around the training (and anything traced inside it), hand
    :attr:`variables` to an optimizer, and call :meth:`commit` after it.
    """

    def __init__(self, pairs: Sequence[tuple[tf.Variable, tf.Variable]]):
        #: Per range, by its min variable's id: the variables, the calibrated ends, the
        #: log-factors.
        self._ranges: dict[
            int, tuple[tf.Variable, tf.Variable, tf.Tensor, tf.Tensor, tf.Variable, tf.Variable]
        ] = {}
        for low_var, high_var in pairs:
            low0 = tf.constant(low_var.numpy(), tf.float32)
            high0 = tf.constant(high_var.numpy(), tf.float32)
            a = tf.Variable(tf.zeros_like(low0), name="range_log_low")
            b = tf.Variable(tf.zeros_like(high0), name="range_log_high")
            self._ranges[id(low_var)] = (low_var, high_var, low0, high0, a, b)

    @property
    def variables(self) -> list[tf.Variable]:
        """The trainable log-factors, two per range."""
        return [v for *_, a, b in self._ranges.values() for v in (a, b)]

    def bounds(self, low_var: tf.Variable) -> tuple[tf.Tensor, tf.Tensor]:
        """The current ``(low, high)`` of the range whose min variable is ``low_var``."""
        *_, low0, high0, a, b = self._ranges[id(low_var)]
        return low0 * tf.exp(a), high0 * tf.exp(b)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """While active, the activation quantizers of the learnt ranges compute
        :func:`fake_quant` over :meth:`bounds`; every other quantizer is unchanged."""

        def patched(original):
            def call(quantizer, inputs, training, weights, **kwargs):
                if id(weights["min_var"]) not in self._ranges:
                    return original(quantizer, inputs, training, weights, **kwargs)
                low, high = self.bounds(weights["min_var"])
                return fake_quant(inputs, low, high)

            return call

        with replaced_calls(dict.fromkeys(_ACTIVATION_QUANTIZERS, patched)):
            yield

    def commit(self) -> np.ndarray:
        """Write the learnt ranges into the fake-quant variables (what the converter reads).

        Returns:
            Each range's width after training over its width before.
        """
        ratios = []
        for low_var, high_var, *_ in self._ranges.values():
            low, high = self.bounds(low_var)
            before = float(np.max(high_var.numpy() - low_var.numpy()))
            low_var.assign(low)
            high_var.assign(high)
            ratios.append(float(np.max(high.numpy() - low.numpy())) / max(before, 1e-12))
        return np.asarray(ratios)
