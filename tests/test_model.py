"""The backbone registry, the MobileNetV3 cut, the shared head, weights handling."""

import numpy as np
import pytest
import tf_keras

from mobile_skin.common.config import ModelConfig
from mobile_skin.common.errors import UserError
from mobile_skin.contract.encoding import METADATA_SIZE
from mobile_skin.model.network import (
    BACKBONES,
    MOBILENET_CUT_INDEX,
    attention_model,
    build_model,
    count_depth,
    load_model,
)
from mobile_skin.model.soft_attention import SoftAttention


def cfg(**kw):
    return ModelConfig(weights="none", **kw)


def test_mobilenet_cut_is_layer_239_with_7x7x960_at_224():
    base = tf_keras.applications.MobileNetV3Large(
        input_shape=(224, 224, 3), include_top=False, weights=None
    )
    assert len(base.layers) == 263
    consumer = base.get_layer("expanded_conv_14/depthwise")
    assert (
        base.layers.index(consumer._inbound_nodes[0].inbound_layers) == MOBILENET_CUT_INDEX == 239
    )
    model = build_model(cfg(), 224)
    t = model.get_layer("soft_attention").input
    assert tuple(t.shape) == (None, 7, 7, 960)
    hard_swish = t.node.layer  # layer names are numbered per session; structure is not
    assert type(hard_swish).__name__ == "Multiply"
    assert "expanded_conv_14/expand/BatchNorm" in [
        n.name for n in hard_swish._inbound_nodes[0].inbound_layers
    ]


def test_head_and_named_io():
    model = build_model(cfg(), 64)
    assert model.input_names == ["image", "metadata"]
    assert model.output_names == ["probs"]
    assert model.get_layer("metadata_dense").units == 4096
    assert model.get_layer("attention_dropout").rate == 0.5
    x = {
        "image": np.full((2, 64, 64, 3), 128, np.float32),
        "metadata": np.zeros((2, METADATA_SIZE), np.float32),
    }
    probs = model(x).numpy()
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_image_only_variant():
    model = build_model(cfg(use_metadata=False), 64)
    assert model.input_names == ["image"]
    assert "metadata_dense" not in [layer.name for layer in model.layers]


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_builds_at_its_smallest_size(name):
    size = BACKBONES[name].min_size
    model = build_model(cfg(backbone=name), size)
    x = {
        "image": np.zeros((1, size, size, 3), np.float32),
        "metadata": np.zeros((1, METADATA_SIZE), np.float32),
    }
    assert model(x).shape == (1, 7)
    assert isinstance(model.get_layer("soft_attention"), SoftAttention)
    assert count_depth(model) > 50


def test_cut_is_a_parameter():
    t200 = build_model(cfg(cut=200), 64).get_layer("soft_attention").input
    t263 = build_model(cfg(cut=263), 64).get_layer("soft_attention").input
    assert (t200.shape[-1], t263.shape[-1]) == (672, 960)
    with pytest.raises(UserError, match="--cut 400"):
        build_model(cfg(cut=400), 64)


def test_bn_momentum_is_applied():
    model = build_model(cfg(bn_momentum=0.9), 32)
    bn = tf_keras.layers.BatchNormalization
    moms = {layer.momentum for layer in model.layers if isinstance(layer, bn)}
    assert moms == {0.9}


def test_user_errors():
    with pytest.raises(UserError, match="unknown --backbone 'resnet'"):
        build_model(cfg(backbone="resnet"), 64)
    with pytest.raises(UserError, match="--image-size 50 is too small for inception_resnet_v2"):
        build_model(cfg(backbone="inception_resnet_v2"), 50)
    with pytest.raises(UserError, match="--weights /nope.keras: file not found"):
        build_model(ModelConfig(weights="/nope.keras"), 64)


def test_failed_imagenet_download_names_weights_none(monkeypatch):
    from tf_keras.src.applications import mobilenet_v3

    def offline(*args, **kwargs):
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/x.h5: [Errno -3] name resolution"
        )

    monkeypatch.setattr(mobilenet_v3.data_utils, "get_file", offline)
    with pytest.raises(UserError, match="could not download ImageNet weights.*--weights none"):
        build_model(ModelConfig(weights="imagenet"), 64)


def test_weights_path_loads_and_mismatch_is_refused(tmp_path):
    source = build_model(cfg(), 64)
    source.get_layer("probs").bias.assign(np.arange(7, dtype=np.float32))
    source.save(tmp_path / "m.keras")
    again = build_model(ModelConfig(weights=str(tmp_path / "m.keras")), 64)
    np.testing.assert_array_equal(again.get_layer("probs").bias.numpy(), np.arange(7))
    with pytest.raises(UserError, match="does not load into"):
        build_model(ModelConfig(weights=str(tmp_path / "m.keras"), use_metadata=False), 64)
    (tmp_path / "bad.keras").write_bytes(b"garbage")
    with pytest.raises(UserError, match="bad.keras: not a loadable Keras model"):
        load_model(tmp_path / "bad.keras")


def test_attention_model_exposes_alpha():
    model = build_model(cfg(), 96)
    probs, alpha = attention_model(model)(
        {
            "image": np.zeros((1, 96, 96, 3), np.float32),
            "metadata": np.zeros((1, METADATA_SIZE), np.float32),
        }
    )
    assert alpha.shape == (1, 3, 3, 1)
    assert float(alpha.numpy().sum()) == pytest.approx(16, rel=1e-4)  # 16 heads, each sums to 1
