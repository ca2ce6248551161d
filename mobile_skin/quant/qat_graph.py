"""Rewrite a trained model into an equivalent graph that tensorflow-model-optimization can quantize.

tfmot 0.8.1 wraps whole Keras layers; it cannot wrap what tf_keras' MobileNetV3 builds from raw
TensorFlow ops (``TFOpLambda`` layers: the ``x + 3`` and ``* 1/6`` of every hard-sigmoid and
hard-swish), and it knows nothing about :class:`~mobile_skin.model.soft_attention.SoftAttention`,
whose internal tensors (attention logits, softmax maps, their sum, the scaled product) each need
their own int8 range in the converted file. :func:`to_qat_graph` therefore rebuilds the model with:

- every ``TFOpLambda`` add / multiply by a Python scalar replaced by :class:`ConstantAdd` /
  :class:`ConstantScale` (the same single TensorFlow op, so the float result is bit-identical);
- the ``Rescaling`` preprocessing (``x * scale + offset``) split into a ConstantScale and a
  ConstantAdd, the MUL and ADD the converter emits for it, so each gets its own int8 range;
- :class:`SoftAttention` expanded into its steps as separate layers: ``Conv2D`` (the W_k),
  :class:`SpatialSoftmax`, :class:`ChannelSum` (alpha), :class:`GammaScale` (gamma * t),
  ``Multiply`` ((gamma * t) * alpha) and ``Concatenate`` (named like the original layer), which
  compute the same ops in the same order.

Every other layer, and every weight, is kept. The rewrite is pure graph surgery on the model's
config; :mod:`mobile_skin.quant.qat_scheme` says how each resulting layer type is quantized.
"""

from __future__ import annotations

import copy

import tensorflow as tf
import tf_keras

from mobile_skin.common.errors import UserError
from mobile_skin.model.soft_attention import SoftAttention

_PACKAGE = "mobile_skin"

#: TFOpLambda functions with a scalar second operand -> (replacement class name, new name stem).
SCALAR_OPS = {
    "__operators__.add": ("ConstantAdd", "const_add"),
    "math.add": ("ConstantAdd", "const_add"),
    "math.multiply": ("ConstantScale", "const_scale"),
}


@tf_keras.saving.register_keras_serializable(package=_PACKAGE)
class ConstantAdd(tf_keras.layers.Layer):
    """``x + value`` for a Python scalar ``value`` (replaces ``tf.__operators__.add(x, value)``)."""

    def __init__(self, value: float, **kwargs):
        super().__init__(**kwargs)
        self.value = float(value)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.add(x, tf.constant(self.value, x.dtype))

    def get_config(self) -> dict:
        return {**super().get_config(), "value": self.value}


@tf_keras.saving.register_keras_serializable(package=_PACKAGE)
class ConstantScale(tf_keras.layers.Layer):
    """``x * value`` for a Python scalar ``value`` (replaces ``tf.math.multiply(x, value)``)."""

    def __init__(self, value: float, **kwargs):
        super().__init__(**kwargs)
        self.value = float(value)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.multiply(x, tf.constant(self.value, x.dtype))

    def get_config(self) -> dict:
        return {**super().get_config(), "value": self.value}


@tf_keras.saving.register_keras_serializable(package=_PACKAGE)
class SpatialSoftmax(tf_keras.layers.Layer):
    """Softmax over the H*W positions of each channel: (B, H, W, K) -> (B, H, W, K).

    The same reshape -> softmax(axis=1) -> reshape as :meth:`SoftAttention.head_maps`.
    """

    def call(self, logits: tf.Tensor) -> tf.Tensor:
        h, w, k = logits.shape[1], logits.shape[2], logits.shape[3]
        if h is None or w is None:
            dyn = tf.shape(logits)
            h, w = dyn[1], dyn[2]
        flat = tf.reshape(logits, tf.stack([-1, h * w, k]))
        probs = tf.nn.softmax(tf.cast(flat, tf.float32), axis=1)
        return tf.cast(tf.reshape(probs, tf.stack([-1, h, w, k])), logits.dtype)


@tf_keras.saving.register_keras_serializable(package=_PACKAGE)
class ChannelSum(tf_keras.layers.Layer):
    """Sum over the channel axis, kept: (B, H, W, K) -> (B, H, W, 1)."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(x, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(tf.TensorShape(input_shape).as_list()[:-1] + [1])


@tf_keras.saving.register_keras_serializable(package=_PACKAGE)
class GammaScale(tf_keras.layers.Layer):
    """``gamma * x`` with a learnable scalar gamma (SoftAttention's gamma)."""

    def __init__(self, gamma_init: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.gamma_init = float(gamma_init)

    def build(self, input_shape):
        self.gamma = self.add_weight(
            name="gamma",
            shape=(),
            initializer=tf_keras.initializers.Constant(self.gamma_init),
            trainable=True,
        )
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.gamma, x.dtype) * x

    def get_config(self) -> dict:
        return {**super().get_config(), "gamma_init": self.gamma_init}


#: The layer classes this module introduces, for deserialisation scopes.
CUSTOM_OBJECTS = {
    cls.__name__: cls
    for cls in (ConstantAdd, ConstantScale, SpatialSoftmax, ChannelSum, GammaScale)
}


def _entry(layer: tf_keras.layers.Layer, inbound: list) -> dict:
    """A functional-config layer entry for ``layer`` fed by ``inbound`` ([name, 0, 0, {}] refs)."""
    entry = tf_keras.layers.serialize(layer)
    entry.pop("build_config", None)
    entry["name"] = layer.name
    entry["inbound_nodes"] = [inbound]
    return entry


def _scalar_op(entry: dict) -> tuple[str, float] | None:
    """``(function, constant)`` when ``entry`` is a TFOpLambda of one tensor and one scalar."""
    if entry["class_name"] != "TFOpLambda":
        return None
    function = entry["config"].get("function")
    nodes = entry["inbound_nodes"]
    if function not in SCALAR_OPS or len(nodes) != 1 or not _is_ref(nodes[0]):
        return None
    kwargs = nodes[0][3] if len(nodes[0]) > 3 else {}
    value = kwargs.get("y")
    extra = set(kwargs) - {"y", "name"}
    if isinstance(value, bool) or not isinstance(value, int | float) or extra:
        return None
    return function, float(value)


def _is_ref(node: list) -> bool:
    """A TFOpLambda node is one ``[layer, node_index, tensor_index, kwargs]`` reference."""
    return bool(node) and isinstance(node[0], str)


def _scalar_rescaling(entry: dict) -> bool:
    """A Rescaling by scalars (as every Keras application's preprocessing is)."""
    config = entry["config"]
    return all(
        isinstance(config.get(key), int | float) and not isinstance(config.get(key), bool)
        for key in ("scale", "offset")
    )


def _split_rescaling(entry: dict) -> list[dict]:
    """``x * scale + offset`` as ConstantScale then ConstantAdd (the converter's MUL and ADD)."""
    name, config = entry["name"], entry["config"]
    source = [entry["inbound_nodes"][0][0][:3] + [{}]]
    steps = [_entry(ConstantScale(config["scale"], name=f"{name}/scale"), source)]
    if config["offset"] != 0:
        add = ConstantAdd(config["offset"], name=f"{name}/offset")
        steps.append(_entry(add, [[f"{name}/scale", 0, 0, {}]]))
    return steps


def _expand_soft_attention(entry: dict, layer: SoftAttention) -> list[dict]:
    """The config entries of SoftAttention's steps; the last one keeps the layer's name."""
    name = entry["name"]
    source = [entry["inbound_nodes"][0][0][:3] + [{}]]
    conv = tf_keras.layers.Conv2D(
        layer.heads,
        layer.kernel_size,
        padding="same",
        use_bias=False,
        name=f"{name}/conv",
    )
    steps = [
        _entry(conv, source),
        _entry(SpatialSoftmax(name=f"{name}/softmax"), [[f"{name}/conv", 0, 0, {}]]),
        _entry(ChannelSum(name=f"{name}/alpha"), [[f"{name}/softmax", 0, 0, {}]]),
        _entry(GammaScale(layer.gamma_init, name=f"{name}/gamma"), source),
        _entry(
            tf_keras.layers.Multiply(name=f"{name}/attended"),
            [[f"{name}/gamma", 0, 0, {}], [f"{name}/alpha", 0, 0, {}]],
        ),
        _entry(
            tf_keras.layers.Concatenate(axis=-1, name=name),
            [source[0], [f"{name}/attended", 0, 0, {}]],
        ),
    ]
    return steps


def to_qat_graph(model: tf_keras.Model) -> tuple[tf_keras.Model, dict[str, str]]:
    """Rebuild ``model`` with tfmot-quantizable layers, computing the same function.

    Args:
        model: a functional tf_keras model (e.g. from
            :func:`mobile_skin.model.network.build_model`).

    Returns:
        The new model (same inputs, outputs and weights) and a map from each new layer name to
        what it replaces (``"TFOpLambda __operators__.add"``, ``"SoftAttention"``); layers kept
        as they were are not in the map.

    Raises:
        UserError: ``model`` is not a functional model, or a TFOpLambda it holds is not a
            tensor-and-scalar add or multiply (nothing else is known to be quantizable).
    """
    if not getattr(model, "_is_graph_network", False):
        raise UserError(f"model {model.name}: QAT needs a functional Keras model")
    config = copy.deepcopy(model.get_config())
    renames: dict[str, str] = {}
    origin: dict[str, str] = {}
    layers: list[dict] = []
    used = {layer.name for layer in model.layers}
    for entry in config["layers"]:
        if entry["class_name"] == "TFOpLambda":
            op = _scalar_op(entry)
            if op is None:
                raise UserError(
                    f"layer {entry['name']} (TFOpLambda {entry['config'].get('function')}) "
                    "cannot be quantization-aware trained; only tensor-and-scalar "
                    f"{', '.join(sorted(SCALAR_OPS))} are rewritten"
                )
            function, value = op
            cls_name, stem = SCALAR_OPS[function]
            new_name = _unique(f"{stem}{_suffix(entry['name'])}", used)
            used.add(new_name)
            layer = CUSTOM_OBJECTS[cls_name](value, name=new_name)
            inbound = [entry["inbound_nodes"][0][:3] + [{}]]
            layers.append(_entry(layer, inbound))
            renames[entry["name"]] = new_name
            origin[new_name] = f"TFOpLambda {function}"
        elif entry["class_name"] == "Rescaling" and _scalar_rescaling(entry):
            steps = _split_rescaling(entry)
            layers.extend(steps)
            renames[entry["name"]] = steps[-1]["name"]
            origin.update({step["name"]: "Rescaling" for step in steps})
        elif entry["class_name"] == "SoftAttention":
            steps = _expand_soft_attention(entry, model.get_layer(entry["name"]))
            layers.extend(steps)
            origin.update({step["name"]: "SoftAttention" for step in steps})
        else:
            layers.append(entry)
    for entry in layers:
        for node in entry["inbound_nodes"]:
            for ref in [node] if _is_ref(node) else node:
                ref[0] = renames.get(ref[0], ref[0])
    for key in ("input_layers", "output_layers"):
        for ref in config[key]:
            ref[0] = renames.get(ref[0], ref[0])
    config["layers"] = layers
    config["name"] = model.name + "_qat_graph"
    with tf_keras.saving.custom_object_scope(CUSTOM_OBJECTS):
        rebuilt = tf_keras.Model.from_config(config)
    _copy_weights(model, rebuilt)
    return rebuilt, origin


def _suffix(name: str) -> str:
    """``tf.math.multiply_12`` -> ``_12``; ``tf.math.multiply`` -> ``""``."""
    tail = name.rsplit("_", 1)
    return f"_{tail[1]}" if len(tail) == 2 and tail[1].isdigit() else ""


def _unique(name: str, used: set[str]) -> str:
    candidate, i = name, 0
    while candidate in used:
        i += 1
        candidate = f"{name}_{i}"
    return candidate


def _copy_weights(source: tf_keras.Model, target: tf_keras.Model) -> None:
    """Copy every weight of ``source`` into ``target`` by layer name (SoftAttention by parts)."""
    copied = 0
    for layer in source.layers:
        if isinstance(layer, SoftAttention):
            target.get_layer(f"{layer.name}/conv").set_weights(layer.conv.get_weights())
            target.get_layer(f"{layer.name}/gamma").set_weights([layer.gamma.numpy()])
            copied += len(layer.weights)
        elif layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())
            copied += len(layer.weights)
    expected = len(source.weights)
    if copied != expected or len(target.weights) != expected:
        raise AssertionError(
            f"QAT graph rewrite copied {copied} of {expected} weights "
            f"(target has {len(target.weights)})"
        )
