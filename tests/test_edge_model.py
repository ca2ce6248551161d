"""to_edge_model: the same function in float, standard layers only, an int8 graph XNNPACK takes."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from mobile_skin.bench.tflite_profile import list_ops
from mobile_skin.common.config import ModelConfig
from mobile_skin.contract.encoding import METADATA_SIZE
from mobile_skin.model.network import build_model, load_model
from mobile_skin.model.soft_attention import SoftAttention
from mobile_skin.quant.edge_model import rewrite_counts, to_edge_model

L = tf_keras.layers
SIZE = 64
#: MobileNetV3Large[:240]: 18 hard-swish activations, 7 squeeze-excite gates, one attention head.
MOBILENET_COUNTS = {"hard_swish": 18, "se_gate": 7, "attention_head": 1}


def _like_trained(model: tf_keras.Model, seed: int = 0) -> tf_keras.Model:
    """Give the weights values training would, so that the +3, the 1/6 and gamma all matter.

    Fresh BatchNorm layers are the identity at inference and the signal of an untrained
    MobileNetV3 dies out (every input gives the same answer). So: random gamma and beta, then
    the moving statistics of one training-mode batch (momentum 0), which keeps the signal alive.
    """
    rng = np.random.default_rng(seed)
    batchnorms = [layer for layer in model.layers if isinstance(layer, L.BatchNormalization)]
    momenta = [layer.momentum for layer in batchnorms]
    for layer in batchnorms:
        g, b, mean, var = layer.get_weights()
        layer.set_weights([rng.uniform(0.8, 1.2, g.shape), rng.normal(0, 0.2, b.shape), mean, var])
        layer.momentum = 0.0
    for layer in model.layers:
        if isinstance(layer, SoftAttention):
            layer.gamma.assign(0.7)
            layer.conv.kernel.assign(layer.conv.kernel * 5.0)  # more peaked attention maps
    model(_inputs(model, n=16, seed=seed + 100), training=True)
    for layer, momentum in zip(batchnorms, momenta, strict=True):
        layer.momentum = momentum
    return model


def _inputs(model: tf_keras.Model, n: int = 4, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    size = model.input_shape[0][1] if isinstance(model.input_shape, list) else model.input_shape[1]
    out = {"image": rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)}
    if "metadata" in model.input_names:
        out["metadata"] = rng.uniform(0, 1, (n, METADATA_SIZE)).astype(np.float32)
    return out


@pytest.fixture(scope="module", params=[True, False], ids=["metadata", "image_only"])
def pair(request):
    tf_keras.utils.set_random_seed(0)  # the float difference depends on the weights: fix them
    model = build_model(ModelConfig(weights="none", use_metadata=request.param), SIZE)
    return _like_trained(model), to_edge_model(_like_trained(model))


def test_edge_model_gives_the_same_probabilities(pair):
    model, edge = pair
    x = _inputs(model)
    p, q = model.predict(x, verbose=0), edge.predict(x, verbose=0)
    assert p.shape == q.shape == (4, 7)
    assert np.ptp(p, axis=0).max() > 1e-3, "inputs should give different answers"
    assert np.abs(p - q).max() <= 1e-5


def test_every_mobilenet_pattern_is_rewritten_into_standard_layers(pair):
    model, edge = pair
    assert rewrite_counts(model) == MOBILENET_COUNTS
    kinds = {type(layer).__name__ for layer in edge.layers}
    assert "TFOpLambda" not in kinds and "SoftAttention" not in kinds
    assert sorted(edge.input_names) == sorted(model.input_names)
    assert edge.layers[-1].name == "probs" and edge.output.dtype == tf.float32
    assert rewrite_counts(edge) == {k: 0 for k in MOBILENET_COUNTS}


def test_saved_and_loaded_model_is_rewritten_too(smoke_run):
    # A loaded model keeps TFOpLambda constants as keyword arguments (y=3.0), a fresh one
    # positionally; both must match.
    model = load_model(smoke_run.best_model)
    assert rewrite_counts(model) == MOBILENET_COUNTS
    edge = to_edge_model(model)
    x = _inputs(model, n=3)
    assert np.abs(model.predict(x, verbose=0) - edge.predict(x, verbose=0)).max() <= 1e-5


def test_edge_model_saves_and_loads(pair, tmp_path):
    model, edge = pair
    path = tmp_path / "edge.keras"
    edge.save(path)
    again = tf_keras.models.load_model(path, compile=False)
    x = _inputs(model, n=2)
    np.testing.assert_allclose(again.predict(x, verbose=0), edge.predict(x, verbose=0), atol=1e-7)


def _block_model() -> tf_keras.Model:
    """Conv -> BN -> hard-swish -> squeeze-excite, written the way Keras' MobileNetV3 does."""

    def hard_sigmoid(x):
        return L.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)

    image = L.Input((16, 16, 3), name="image")
    x = L.BatchNormalization()(L.Conv2D(16, 3, padding="same", use_bias=False)(image))
    x = L.Multiply()([x, hard_sigmoid(x)])
    s = L.GlobalAveragePooling2D(keepdims=True)(x)
    s = L.Conv2D(16, 1)(L.ReLU()(L.Conv2D(8, 1)(s)))
    x = L.Multiply()([x, hard_sigmoid(s)])
    x = L.BatchNormalization()(L.Conv2D(8, 1, use_bias=False)(x))
    out = L.Dense(3)(L.GlobalAveragePooling2D()(x))
    return _like_trained(tf_keras.Model(image, out))


def _int8(model: tf_keras.Model, shape: tuple[int, ...], samples: int = 8) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: (
        [rng.uniform(0, 255, (1, *shape)).astype(np.float32)] for _ in range(samples)
    )
    return converter.convert()


@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs were expected:UserWarning")
def test_int8_block_runs_whole_in_xnnpack():
    model = _block_model()
    edge = to_edge_model(model)
    assert rewrite_counts(model) == {"hard_swish": 1, "se_gate": 1, "attention_head": 0}
    x = np.random.default_rng(2).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    assert np.abs(model.predict(x, verbose=0) - edge.predict(x, verbose=0)).max() <= 1e-4

    before = list_ops(_int8(model, (16, 16, 3)))
    after = list_ops(_int8(edge, (16, 16, 3)))
    assert [o.name for o in before if o.partition is None] == ["HARD_SWISH"]  # the problem
    assert "HARD_SWISH" not in {o.name for o in after}
    assert all(o.partition == 0 for o in after), [(o.name, o.partition) for o in after]


@pytest.mark.slow
def test_int8_mobilenet_leaves_only_softmax_outside_xnnpack():
    model = _like_trained(build_model(ModelConfig(weights="none"), SIZE))
    ops = list_ops(_int8_two_inputs(to_edge_model(model)))
    assert "HARD_SWISH" not in {o.name for o in ops}
    assert {o.name for o in ops if o.partition is None} <= {"SOFTMAX"}


def _int8_two_inputs(model: tf_keras.Model) -> bytes:
    from mobile_skin.contract.encoding import MetadataEncoding
    from mobile_skin.contract.spec import ModelSpec
    from mobile_skin.export.convert_tflite import convert_tflite

    spec = ModelSpec(image_size=SIZE, encoding=MetadataEncoding())
    rng = np.random.default_rng(0)

    def data():
        for _ in range(8):
            yield {
                "image": rng.uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32),
                "metadata": rng.uniform(0, 1, (1, METADATA_SIZE)).astype(np.float32),
            }

    return convert_tflite(model, spec, "int8", data)
