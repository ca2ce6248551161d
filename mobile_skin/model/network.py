"""The backbone registry and the one head every backbone shares.

``image`` (float32, B x S x S x 3, raw RGB 0..255) -> backbone (preprocessing inside) -> feature
map t -> SoftAttention -> MaxPool 2x2 (same) -> ReLU -> Dropout -> Flatten; ``metadata``
(float32, B x D) -> Dense(4096, ReLU); concatenate -> Dense(7, softmax) named ``probs``.

Adding a Keras application is one :class:`Backbone` entry in :data:`BACKBONES`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf
import tf_keras

from mobile_skin.common.config import ModelConfig
from mobile_skin.common.errors import UserError
from mobile_skin.contract.encoding import CLASSES, METADATA_SIZE
from mobile_skin.contract.spec import IMAGE_INPUT, METADATA_INPUT, OUTPUT
from mobile_skin.model.soft_attention import SoftAttention

apps = tf_keras.applications
L = tf_keras.layers

#: The layer MobileNetV3Large[:240] ends at is the input of this layer (docs/design.md, "The
#: model").
MOBILENET_CUT_CONSUMER = "expanded_conv_14/depthwise"
MOBILENET_CUT_INDEX = 239


@dataclass(frozen=True)
class Backbone:
    """One entry of the registry.

    Attributes:
        name: registry key.
        default_size: input side the paper uses.
        min_size: smallest input side the application accepts.
        features: builds the feature map from the raw 0..255 image tensor: ``(image, weights, cfg)
            -> (t, application)``; ``weights`` is ``"imagenet"`` or None.
        int8_float_prefix: the last layer of the network's start that full-integer exports keep
            in float (it and every layer before it); None: the whole body int8.
        int8_float_tail: the first layers of the network's late tail that ``--float-tail``
            keeps in float too (they and every layer after them); empty: no such option.
    """

    name: str
    default_size: int
    min_size: int
    features: Callable[[tf.Tensor, str | None, ModelConfig], tuple[tf.Tensor, tf_keras.Model]]
    int8_float_prefix: str | None = None
    int8_float_tail: tuple[str, ...] = ()


def _mobilenet_v3_large(image, weights, cfg: ModelConfig):
    base = apps.MobileNetV3Large(
        input_tensor=image, include_top=False, weights=weights, include_preprocessing=True
    )
    end = cfg.cut - 1
    if not 1 <= end < len(base.layers):
        raise UserError(f"--cut {cfg.cut} is outside 2..{len(base.layers)} for MobileNetV3Large")
    if cfg.cut == 240:
        consumer = base.get_layer(MOBILENET_CUT_CONSUMER)
        producer = consumer.input.node.layer
        index = base.layers.index(producer)
        assert index == MOBILENET_CUT_INDEX, f"MobileNetV3 cut found at {index}, expected 239"
    return base.layers[end].output, base


def _densenet201(image, weights, cfg: ModelConfig):
    # DenseNet's "torch" preprocessing: (x / 255 - mean) / std, per channel.
    mean = [0.485 * 255, 0.456 * 255, 0.406 * 255]
    var = [(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2]
    x = L.Normalization(mean=mean, variance=var, name="densenet_preprocess")(image)
    base = apps.DenseNet201(input_tensor=x, include_top=False, weights=weights)
    return base.output, base


def _inception_resnet_v2(image, weights, cfg: ModelConfig):
    x = L.Rescaling(1 / 127.5, offset=-1.0, name="inception_preprocess")(image)
    base = apps.InceptionResNetV2(input_tensor=x, include_top=False, weights=weights)
    # Datta et al. cut at layers[-28] of the include_top=True application, which is layers[-26]
    # here (no avg_pool, no predictions): the BatchNormalization of block8_9's first branch.
    return base.layers[-26].output, base


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        # The stem and the first three inverted-residual blocks in float (10 of the 77
        # convolutions): the tensors where int8 rounding costs the most answers, at no
        # measurable cost in speed (reports/int8.md, sections 2 and 6). --float-tail keeps the
        # last three blocks and the attention float too: where a model whose int8 file fails
        # loses its answers, at about 0.9x float32 and twice the size (reports/int8.md, section 6).
        Backbone(
            "mobilenet_v3_large_240",
            224,
            32,
            _mobilenet_v3_large,
            int8_float_prefix="expanded_conv_2/Add",
            int8_float_tail=("expanded_conv_12/expand",),
        ),
        Backbone("densenet201", 224, 32, _densenet201),
        Backbone("inception_resnet_v2", 299, 75, _inception_resnet_v2),
    )
}


def get_backbone(name: str) -> Backbone:
    """The registry entry ``name``, or a one-line error listing the choices."""
    if name not in BACKBONES:
        raise UserError(f"unknown --backbone {name!r}; choose from {', '.join(BACKBONES)}")
    return BACKBONES[name]


def build_model(
    cfg: ModelConfig, image_size: int, metadata_size: int = METADATA_SIZE
) -> tf_keras.Model:
    """Build the classifier.

    Args:
        cfg: model configuration (backbone, cut, weights, metadata branch, head sizes).
        image_size: input side S.
        metadata_size: D, length of the metadata vector (ignored without metadata).

    Raises:
        UserError: unknown backbone, image too small, weights that cannot be downloaded or loaded.
    """
    backbone = get_backbone(cfg.backbone)
    if image_size < backbone.min_size:
        raise UserError(
            f"--image-size {image_size} is too small for {cfg.backbone} "
            f"(minimum {backbone.min_size})"
        )
    weights_path = None
    if cfg.weights == "imagenet":
        weights = "imagenet"
    elif cfg.weights in ("none", "", None):
        weights = None
    else:
        weights, weights_path = None, Path(cfg.weights)
        if not weights_path.is_file():
            raise UserError(f"--weights {cfg.weights}: file not found")

    image = L.Input((image_size, image_size, 3), name=IMAGE_INPUT, dtype="float32")
    try:
        t, base = backbone.features(image, weights, cfg)
    except Exception as err:  # network errors surface as many exception types
        if weights == "imagenet" and _looks_like_download_error(err):
            raise UserError(
                f"could not download ImageNet weights for {cfg.backbone} ({type(err).__name__}); "
                "check the internet connection, or pass --weights none to train from scratch "
                "or --weights PATH to start from a saved model"
            ) from None
        raise
    if cfg.bn_momentum is not None:
        for layer in base.layers:
            if isinstance(layer, L.BatchNormalization):
                layer.momentum = cfg.bn_momentum

    x = SoftAttention(heads=cfg.attention_heads, name="soft_attention")(t)
    x = L.MaxPooling2D(pool_size=2, padding="same", name="attention_pool")(x)
    x = L.ReLU(name="attention_relu")(x)
    x = L.Dropout(cfg.dropout, name="attention_dropout")(x)
    x = L.Flatten(name="attention_flatten")(x)
    inputs = [image]
    if cfg.use_metadata:
        meta = L.Input((metadata_size,), name=METADATA_INPUT, dtype="float32")
        m = L.Dense(cfg.metadata_units, activation="relu", name="metadata_dense")(meta)
        x = L.Concatenate(name="fusion")([x, m])
        inputs.append(meta)
    probs = L.Dense(len(CLASSES), activation="softmax", dtype="float32", name=OUTPUT)(x)
    suffix = "_sa_meta" if cfg.use_metadata else "_sa"
    model = tf_keras.Model(inputs, probs, name=cfg.backbone + suffix)
    if weights_path is not None:
        load_weights(model, weights_path)
    return model


def _looks_like_download_error(err: Exception) -> bool:
    text = f"{type(err).__name__} {err}".lower()
    return any(
        s in text
        for s in ("url", "http", "urlopen", "connection", "resolve", "network", "fetch", "download")
    )


def load_weights(model: tf_keras.Model, path: str | os.PathLike) -> None:
    """Copy weights into ``model`` from a ``.keras`` model or a weights file of the same shape."""
    path = Path(path)
    try:
        if path.suffix == ".keras":
            source = load_model(path)
            model.set_weights(source.get_weights())
        else:
            model.load_weights(str(path))
    except UserError:
        raise
    except Exception as err:
        raise UserError(
            f"--weights {path}: does not load into {model.name} ({str(err).splitlines()[0][:200]})"
        ) from None


def load_model(path: str | os.PathLike) -> tf_keras.Model:
    """Load a saved ``.keras`` model (custom layers and loss included), for inference."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found")
    try:
        return tf_keras.models.load_model(path, compile=False)
    except Exception as err:
        raise UserError(
            f"{path}: not a loadable Keras model ({str(err).splitlines()[0][:200]})"
        ) from None


def soft_attention_layer(model: tf_keras.Model) -> SoftAttention:
    """The model's SoftAttention layer."""
    for layer in model.layers:
        if isinstance(layer, SoftAttention):
            return layer
    raise UserError(f"model {model.name} has no SoftAttention layer")


def attention_model(model: tf_keras.Model) -> tf_keras.Model:
    """A model with the same inputs that outputs ``(probs, alpha)``, alpha (B, H, W, 1)."""
    layer = soft_attention_layer(model)
    alpha = layer.attention(layer.input)
    return tf_keras.Model(model.inputs, [model.output, alpha], name=model.name + "_attention")


def count_depth(model: tf_keras.Model) -> int:
    """Layers that carry weights (convolutions, dense, batch norm, attention), nested included."""
    depth = 0
    for layer in model.layers:
        if isinstance(layer, tf_keras.Model):
            depth += count_depth(layer)
        elif layer.weights:
            depth += 1
    return depth
