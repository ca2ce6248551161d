"""Learnt activation ranges: the range gradient by hand, a range that learns to fit its values,
and the learnt values landing in the variables the converter reads."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from mobile_skin.quant import learned_ranges as lr
from mobile_skin.quant import qat


def test_range_gradient_by_hand():
    low, high = tf.constant(-1.0), tf.constant(2.0)  # step 3/255, zero exact
    x = tf.constant([-3.0, 0.4 * 3.0 / 255, 5.0])  # below, 0.4 of a step above 0, above
    with tf.GradientTape() as tape:
        tape.watch([x, low, high])
        y = lr.fake_quant(x, low, high)
        total = tf.reduce_sum(y)
    np.testing.assert_allclose(
        y, tf.quantization.fake_quant_with_min_max_vars(x, low, high, num_bits=8)
    )
    dx, d_low, d_high = tape.gradient(total, [x, low, high])
    np.testing.assert_array_equal(dx, [0.0, 1.0, 0.0])  # straight through inside only
    u = (0.4 * 3.0 / 255 + 1.0) / (3.0 / 255)  # the inside value's position in steps: 85.4
    error = (np.round(u) - u) / 255  # rounds down by 0.4 of a step
    assert abs(error + 0.4 / 255) < 1e-6
    np.testing.assert_allclose(d_low, 1.0 - error, rtol=1e-5)  # clipped below: 1
    np.testing.assert_allclose(d_high, 1.0 + error, rtol=1e-5)  # clipped above: 1


def test_a_range_too_wide_narrows_and_one_too_narrow_widens():
    """Minimising the quantization error of values in [0, 1]: a range of [0, 10] shrinks
    (TensorFlow's own gradient has no term that could narrow it), one of [0, 0.3] grows, and
    a low end at 0 stays at 0."""
    values = tf.constant(np.random.default_rng(0).uniform(0.0, 1.0, 4096), tf.float32)
    for start, lower, upper in ((10.0, 0.8, 2.5), (0.3, 0.8, 1.3)):
        low_var, high_var = tf.Variable(0.0), tf.Variable(start)
        ranges = lr.LearnedRanges([(low_var, high_var)])
        optimizer = tf_keras.optimizers.Adam(0.05)
        for _ in range(150):
            with tf.GradientTape() as tape:
                low, high = ranges.bounds(low_var)
                loss = tf.reduce_mean((lr.fake_quant(values, low, high) - values) ** 2)
            grads = tape.gradient(loss, ranges.variables)
            optimizer.apply_gradients(zip(grads, ranges.variables, strict=True))
        ratio = ranges.commit()
        assert lower < float(high_var.numpy()) < upper, (start, high_var.numpy())
        assert float(low_var.numpy()) == 0.0
        np.testing.assert_allclose(ratio, high_var.numpy() / start, rtol=1e-5)


def _tiny_qat_model():
    x = tf_keras.Input((6,), name="x")
    h = tf_keras.layers.Dense(8, activation="relu", name="hidden")(x)
    y = tf_keras.layers.Dense(3, name="out")(h)
    return tfmot.quantization.keras.quantize_model(tf_keras.Model(x, y))


def test_learnt_ranges_land_where_the_converter_reads_them():
    """While active, the learnt ranges compute the model; after ``commit`` the plain model (what
    the converter traces) computes the same, and ranges not handed over stay untouched."""
    tf_keras.utils.set_random_seed(0)
    model = _tiny_qat_model()
    inputs = np.random.default_rng(1).normal(size=(32, 6)).astype("float32")
    pairs = qat.calibrate(model, [inputs], method="minmax")
    assert len(pairs) == 3  # the input, the hidden ReLU and the output
    learnt, untouched = pairs[1:], pairs[0]
    before = [v.numpy().copy() for v in untouched]
    ranges = lr.LearnedRanges(learnt)
    for i, var in enumerate(ranges.variables):
        var.assign(tf.fill(var.shape, -0.3 if i % 2 else 0.2))  # shrink every high, move lows
    plain = model(inputs, training=False).numpy()
    with ranges.active():
        during = model(inputs, training=False).numpy()
    assert not np.allclose(during, plain)
    ranges.commit()
    np.testing.assert_array_equal(model(inputs, training=False).numpy(), during)
    for var, want in zip(untouched, before, strict=True):
        np.testing.assert_array_equal(var.numpy(), want)


def test_quantizer_calls_come_back_after_an_error():
    """Every patch of tfmot's quantizers (calibration, bit widths, learnt ranges) goes through
    :func:`replaced_calls`: inside, the class computes the replacement; after, even when the
    block raised, the original."""
    import pytest

    from mobile_skin.quant.quantizer_patch import replaced_calls

    cls = tfmot.quantization.keras.quantizers.MovingAverageQuantizer
    original = cls.__call__
    seen = []

    def make(previous):
        seen.append(previous)
        return lambda self, inputs, training, weights, **kwargs: "replaced"

    with pytest.raises(RuntimeError), replaced_calls({cls: make}):
        assert cls.__call__(None, None, False, {}) == "replaced"
        raise RuntimeError("inside")
    assert seen == [original] and cls.__call__ is original
