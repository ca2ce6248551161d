"""SoftAttention: the formula against NumPy, a hand-computed case, config and .keras round-trips."""

import numpy as np
import pytest
import tf_keras

from mobile_skin.model.soft_attention import SoftAttention


def numpy_soft_attention(t, kernel, gamma):
    """f = concat(t, gamma * t * sum_k softmax_HW(W_k * t)), W_k a 'same' 3x3 conv, no bias."""
    b, h, w, c = t.shape
    kh, kw, _, k = kernel.shape
    pad = np.pad(t, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    logits = np.zeros((b, h, w, k))
    for i in range(h):
        for j in range(w):
            patch = pad[:, i : i + kh, j : j + kw, :]
            logits[:, i, j, :] = np.einsum("bxyc,xyck->bk", patch, kernel)
    flat = logits.reshape(b, h * w, k)
    flat = np.exp(flat - flat.max(axis=1, keepdims=True))
    flat /= flat.sum(axis=1, keepdims=True)
    alpha = flat.reshape(b, h, w, k).sum(-1, keepdims=True)
    return np.concatenate([t, gamma * t * alpha], axis=-1), alpha


def test_matches_numpy_formula():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(2, 5, 4, 6)).astype(np.float32)
    layer = SoftAttention(heads=3)
    layer.build(t.shape)
    kernel = rng.normal(size=(3, 3, 6, 3)).astype(np.float32)
    layer.conv.kernel.assign(kernel)
    layer.gamma.assign(0.7)
    expected, alpha = numpy_soft_attention(t.astype(np.float64), kernel.astype(np.float64), 0.7)
    np.testing.assert_allclose(layer(t).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(layer.attention(t).numpy(), alpha, atol=1e-6)
    # each head's map sums to one, so alpha sums to K over the positions
    np.testing.assert_allclose(layer.attention(t).numpy().sum(axis=(1, 2, 3)), [3, 3], atol=1e-5)


def test_hand_computed_value():
    # 1x2 map, one channel, one head, kernel picking the centre tap: logits = t = [0, ln 3]
    # softmax -> [1/4, 3/4]; f = [t, gamma * t * alpha] with gamma = 1
    t = np.array([[[[0.0], [np.log(3.0)]]]], np.float32)
    layer = SoftAttention(heads=1)
    layer.build(t.shape)
    kernel = np.zeros((3, 3, 1, 1), np.float32)
    kernel[1, 1, 0, 0] = 1.0
    layer.conv.kernel.assign(kernel)
    out = layer(t).numpy()[0, 0]
    np.testing.assert_allclose(out[:, 0], [0.0, np.log(3.0)], atol=1e-6)
    np.testing.assert_allclose(out[:, 1], [0.0, np.log(3.0) * 0.75], atol=1e-6)


def test_config_round_trip_and_defaults():
    layer = SoftAttention(heads=4, kernel_size=5, gamma_init=0.5, name="sa")
    again = SoftAttention.from_config(layer.get_config())
    assert (again.heads, again.kernel_size, again.gamma_init, again.name) == (4, 5, 0.5, "sa")
    fresh = SoftAttention()
    fresh.build((None, 7, 7, 8))
    assert fresh.heads == 16 and float(fresh.gamma.numpy()) == 1.0
    assert fresh.conv.kernel.shape == (3, 3, 8, 16) and not fresh.conv.use_bias


def test_keras_save_load_equal(tmp_path):
    inp = tf_keras.Input((6, 6, 5))
    model = tf_keras.Model(inp, SoftAttention(heads=2, name="sa")(inp))
    model.get_layer("sa").gamma.assign(1.3)
    x = np.random.default_rng(1).normal(size=(3, 6, 6, 5)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    loaded = tf_keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("sa"), SoftAttention)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    assert loaded.output_shape == (None, 6, 6, 10)


def test_rejects_non_image_input():
    with pytest.raises(ValueError, match="expects"):
        SoftAttention().build((None, 10))
