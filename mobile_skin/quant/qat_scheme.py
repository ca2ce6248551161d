"""How each layer of the QAT graph is quantized: a tfmot quantize scheme for this model.

tfmot's ``Default8BitQuantizeScheme`` (the TFLite int8 scheme) knows Conv2D, DepthwiseConv2D,
Dense, ReLU, Add, Concatenate, pooling and the shape layers, and folds Conv + BatchNorm (+ ReLU)
so no fake-quant sits between them. This module extends it for what it does not know:

- ``Multiply``, ``Rescaling`` and the graph rewrite's
  :class:`~mobile_skin.quant.qat_graph.ConstantAdd`,
  :class:`~mobile_skin.quant.qat_graph.ConstantScale`,
  :class:`~mobile_skin.quant.qat_graph.ChannelSum`,
  :class:`~mobile_skin.quant.qat_graph.GammaScale`: int8 output (moving-average range), like tfmot's
  ``Add``; the converter turns each into one int8 MUL / ADD / SUM.
- ``ConstantAdd`` feeding a ``ReLU`` (the ``relu6(x + 3)`` of hard-sigmoid / hard-swish): no
  fake-quant between them, as tfmot does for ``Add -> ReLU``, so the converter emits one ADD with a
  fused RELU6 whose output range is the ReLU's.
- ``Conv2D -> ReLU`` (the squeeze-excite blocks' first convolution): tfmot's ``LayerReLUQuantize``
  marks the convolution "no-op", which also leaves its kernel float in the QAT model while the
  converter quantizes it; :class:`KernelReLUQuantize` restores the int8 kernel.
- :class:`~mobile_skin.quant.qat_graph.SpatialSoftmax` and ``Softmax`` layers: output fake-quantized
  to the fixed range [0, 255/256], i.e. exactly TFLite's int8 SOFTMAX output (scale 1/256, zero
  point -128); tfmot leaves a Softmax layer's output unquantized.
- Layers the int8 file keeps in float (:func:`float_tail`: the head's FULLY_CONNECTED,
  CONCATENATION and SOFTMAX, as :data:`mobile_skin.quant.edge_model.INT8_FLOAT_OPS` says) are not
  annotated at all, so they train in float as the file computes them; so are the layers a
  :class:`FloatRegions` names (the exporter's: the backbone's start,
  ``Backbone.int8_float_prefix``).
- ``DepthwiseConv2D``: weights per-channel. tfmot 0.8.1 builds the per-axis range over the
  kernel's last axis, which for a depthwise kernel (kh, kw, C, 1) is the depth multiplier, so it
  is per-tensor in effect (tensorflow/model-optimization#808); TFLite quantizes depthwise weights
  per output channel, which :class:`DepthwiseKernelQuantizer` emulates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from mobile_skin.common.errors import UserError
from mobile_skin.quant.qat_graph import (
    ChannelSum,
    ConstantAdd,
    ConstantScale,
    GammaScale,
    SpatialSoftmax,
)

qk = tfmot.quantization.keras
_PACKAGE = "mobile_skin_qat"

#: TFLite's int8 softmax output range: scale 1/256, zero point -128.
SOFTMAX_RANGE = (0.0, 255.0 / 256.0)


def activation_quantizer() -> qk.quantizers.Quantizer:
    """tfmot's default int8 activation quantizer (asymmetric, per-tensor, moving-average range)."""
    return qk.quantizers.MovingAverageQuantizer(
        num_bits=8, per_axis=False, symmetric=False, narrow_range=False
    )


@tf_keras.saving.register_keras_serializable(package=_PACKAGE)
class OutputQuantizeConfig(qk.QuantizeConfig):
    """No weights; the layer's output is fake-quantized (moving-average or fixed range).

    Args:
        fixed_range: ``(min, max)`` of a fixed output range; None tracks the range from data.
    """

    def __init__(self, fixed_range: tuple[float, float] | None = None):
        self.fixed_range = None if fixed_range is None else tuple(float(v) for v in fixed_range)

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        if self.fixed_range is None:
            return [activation_quantizer()]
        low, high = self.fixed_range
        fixed = qk.quantizers.FixedQuantizer(8, init_min=low, init_max=high, narrow_range=False)
        return [fixed]

    def get_config(self) -> dict:
        return {"fixed_range": self.fixed_range}


@tf_keras.saving.register_keras_serializable(package=_PACKAGE)
class NoOpQuantizeConfig(OutputQuantizeConfig):
    """Nothing quantized: the layer is fused with its consumer in the converted graph."""

    def get_output_quantizers(self, layer):
        return []


def float_op(layer: tf_keras.layers.Layer) -> str | None:
    """The TFLite op type ``layer`` converts to, for the op types a QAT export may keep in float
    (FULLY_CONNECTED, CONCATENATION, SOFTMAX); None for every other layer."""
    if isinstance(layer, tf_keras.layers.Dense):
        return "FULLY_CONNECTED"
    if isinstance(layer, tf_keras.layers.Concatenate):
        return "CONCATENATION"
    if isinstance(layer, tf_keras.layers.Softmax | SpatialSoftmax):
        return "SOFTMAX"
    if isinstance(layer, tf_keras.layers.Activation) and layer.activation in (
        tf_keras.activations.softmax,
    ):
        return "SOFTMAX"
    return None


def float_tail(model: tf_keras.Model, float_ops: tuple[str, ...]) -> set[str]:
    """Names of the layers to leave in float: those converting to an op type in ``float_ops``
    whose outputs go only to other such layers or out of the model.

    A float op feeding an int8 op (the softmax over positions, read by the int8 attention) stays
    int8: the QAT converter needs a fake-quant range on both sides of an op to quantize its
    consumer, and a float region can only end at the model's output.
    """
    kept = {layer.name for layer in model.layers if float_op(layer) in float_ops}
    outputs = {name for name, *_ in _output_refs(model)}
    changed = True
    while changed:
        changed = False
        for layer in model.layers:
            if layer.name not in kept:
                continue
            consumers = {node.outbound_layer.name for node in layer._outbound_nodes}
            if consumers - kept or (not consumers and layer.name not in outputs):
                kept.discard(layer.name)
                changed = True
    return kept


@dataclass(frozen=True)
class FloatRegions:
    """Layers of the QAT graph (:func:`mobile_skin.quant.qat_graph.to_qat_graph` names) to keep in
    float beside the head: a prefix and a tail of the network.

    Attributes:
        prefix_end: the last layer of a float prefix (it and everything it depends on); None
            for no prefix.
        tail_start: the first layers of a float tail (they and everything after them).
    """

    prefix_end: str | None = None
    tail_start: tuple[str, ...] = ()

    def names(self, model: tf_keras.Model) -> set[str]:
        """The layer names in ``model`` the regions cover.

        Raises:
            UserError: a named layer is not in ``model``.
        """
        known = {layer.name for layer in model.layers}
        missing = [n for n in (self.prefix_end, *self.tail_start) if n and n not in known]
        if missing:
            raise UserError(
                f"float regions: no layer named {missing} in the QAT graph (--all-int8 skips "
                "the float start)"
            )
        names = upstream(model, self.prefix_end) if self.prefix_end else set()
        return names | (downstream(model, self.tail_start) if self.tail_start else set())


def upstream(model: tf_keras.Model, last: str) -> set[str]:
    """Names of layer ``last`` and every layer it depends on, inputs excluded: a float prefix
    whose int8 consumers get a fake-quant range on its output (tfmot's ``OutputOnlyConfig``).

    Raises:
        KeyError: no layer is named ``last``.
    """
    layers = {layer.name: layer for layer in model.layers}
    todo, seen = [layers[last]], set()
    while todo:
        layer = todo.pop()
        if layer.name in seen or isinstance(layer, tf_keras.layers.InputLayer):
            continue
        seen.add(layer.name)
        for node in layer._inbound_nodes:
            todo.extend(tf.nest.flatten(node.inbound_layers))
    return seen


def downstream(model: tf_keras.Model, first: Iterable[str]) -> set[str]:
    """Names of the layers ``first`` and every layer that depends on them: a float tail.

    Raises:
        KeyError: a name in ``first`` is not a layer.
    """
    layers = {layer.name: layer for layer in model.layers}
    todo, seen = [layers[name] for name in first], set()
    while todo:
        layer = todo.pop()
        if layer.name in seen:
            continue
        seen.add(layer.name)
        todo.extend(node.outbound_layer for node in layer._outbound_nodes)
    return seen


def _output_refs(model: tf_keras.Model) -> list:
    return model.get_config()["output_layers"]


@tf_keras.saving.register_keras_serializable(package=_PACKAGE)
class DepthwiseKernelQuantizer(qk.quantizers.LastValueQuantizer):
    """Per-output-channel symmetric int8 for a depthwise kernel (kh, kw, C, M).

    The kernel is viewed as (kh, kw, 1, C*M) (a reshape: same element order, and TF's output
    channel c*M + m), quantized per last axis, and viewed back.
    """

    def __init__(self, **_ignored):
        super().__init__(num_bits=8, per_axis=True, symmetric=True, narrow_range=True)

    def build(self, tensor_shape, name, layer):
        channels = int(tensor_shape[-2]) * int(tensor_shape[-1])
        init = {"min": -6.0, "max": 6.0}
        return {
            f"{key}_var": layer.add_weight(
                f"{name}_{key}",
                shape=(channels,),
                initializer=tf_keras.initializers.Constant(value),
                trainable=False,
            )
            for key, value in init.items()
        }

    def __call__(self, inputs, training, weights, **kwargs):
        kh, kw, c, m = inputs.shape
        flat = tf.reshape(inputs, [kh, kw, 1, c * m])
        return tf.reshape(super().__call__(flat, training, weights, **kwargs), inputs.shape)

    def get_config(self) -> dict:
        return {}


def kernel_quantizer(layer: tf_keras.layers.Layer) -> tuple[str, qk.quantizers.Quantizer]:
    """``(attribute, quantizer)`` of a Conv2D / DepthwiseConv2D / Dense kernel, as TFLite
    quantizes it: per output channel for convolutions, per tensor for Dense."""
    if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
        return "depthwise_kernel", DepthwiseKernelQuantizer()
    if isinstance(layer, tf_keras.layers.Conv2D):
        return "kernel", qk.quantizers.LastValueQuantizer(
            num_bits=8, per_axis=True, symmetric=True, narrow_range=True
        )
    return "kernel", qk.quantizers.LastValueQuantizer(
        num_bits=8, per_axis=False, symmetric=True, narrow_range=True
    )


@tf_keras.saving.register_keras_serializable(package=_PACKAGE)
class KernelQuantizeConfig(qk.QuantizeConfig):
    """Conv2D / DepthwiseConv2D / Dense: int8 kernel; int8 after the activation if ``activation``.

    Args:
        activation: fake-quantize the layer's activation output (False when a ReLU that follows
            carries the range, so the converter fuses the two).
    """

    def __init__(self, activation: bool = True):
        self.activation = bool(activation)

    def get_weights_and_quantizers(self, layer):
        attr, quantizer = kernel_quantizer(layer)
        return [(getattr(layer, attr), quantizer)]

    def get_activations_and_quantizers(self, layer):
        return [(layer.activation, activation_quantizer())] if self.activation else []

    def set_quantize_weights(self, layer, quantize_weights):
        setattr(layer, kernel_quantizer(layer)[0], quantize_weights[0])

    def set_quantize_activations(self, layer, quantize_activations):
        if self.activation:
            layer.activation = quantize_activations[0]

    def get_output_quantizers(self, layer):
        return []

    def get_config(self) -> dict:
        return {"activation": self.activation}


#: Layer class -> QuantizeConfig factory, for the classes tfmot's default registry lacks (or,
#: for DepthwiseConv2D, gets per-tensor).
EXTRA_CONFIGS = {
    tf_keras.layers.Multiply: OutputQuantizeConfig,
    tf_keras.layers.Rescaling: OutputQuantizeConfig,
    ConstantAdd: OutputQuantizeConfig,
    ConstantScale: OutputQuantizeConfig,
    ChannelSum: OutputQuantizeConfig,
    GammaScale: OutputQuantizeConfig,
    SpatialSoftmax: lambda: OutputQuantizeConfig(SOFTMAX_RANGE),
    tf_keras.layers.Softmax: lambda: OutputQuantizeConfig(SOFTMAX_RANGE),
    tf_keras.layers.DepthwiseConv2D: KernelQuantizeConfig,
}


class Registry(qk.default_8bit.Default8BitQuantizeRegistry):
    """tfmot's default 8-bit registry plus :data:`EXTRA_CONFIGS`."""

    def supports(self, layer) -> bool:
        return type(layer) in EXTRA_CONFIGS or super().supports(layer)

    def get_quantize_config(self, layer):
        factory = EXTRA_CONFIGS.get(type(layer))
        return factory() if factory else super().get_quantize_config(layer)


def _pattern(class_name: str, inputs=()):
    # Legacy-format configs (which tfmot's transformer reads) name registered layers
    # "package>Class".
    return qk.graph_transformations.transforms.LayerPattern(
        f"(mobile_skin>)?{class_name}", inputs=list(inputs)
    )


class ConstantAddReLUQuantize(qk.graph_transformations.transforms.Transform):
    """``ConstantAdd -> ReLU``: no fake-quant on the add, so ADD and RELU6 fuse into one op."""

    def pattern(self):
        return _pattern("ReLU", [_pattern("ConstantAdd")])

    def replacement(self, match_layer):
        match_layer.input_layers[0].metadata["quantize_config"] = NoOpQuantizeConfig()
        return match_layer

    def custom_objects(self):
        return {"NoOpQuantizeConfig": NoOpQuantizeConfig}


class KernelReLUQuantize(qk.graph_transformations.transforms.Transform):
    """``Conv2D|DepthwiseConv2D|Dense -> ReLU``: keep the int8 kernel, drop only the output FQ.

    tfmot's ``LayerReLUQuantize`` gives the layer a no-op config, which leaves its kernel float
    in the QAT model although the converter quantizes it (the SE blocks' first convolution).
    """

    def pattern(self):
        return _pattern("ReLU", [_pattern("Conv2D|DepthwiseConv2D|Dense")])

    def replacement(self, match_layer):
        kernel = match_layer.input_layers[0]
        config = kernel.metadata.get("quantize_config")
        if config is None or type(config).__name__ == "NoOpQuantizeConfig":
            kernel.metadata["quantize_config"] = KernelQuantizeConfig(activation=False)
        return match_layer

    def custom_objects(self):
        return {"KernelQuantizeConfig": KernelQuantizeConfig}


class LayoutTransform(qk.default_8bit.Default8BitQuantizeLayoutTransform):
    """tfmot's default 8-bit transforms, then :class:`KernelReLUQuantize` and
    :class:`ConstantAddReLUQuantize`."""

    def apply(self, model, layer_quantize_map):
        model, layer_quantize_map = super().apply(model, layer_quantize_map)
        transformer = qk.graph_transformations.model_transformer.ModelTransformer(
            model,
            [KernelReLUQuantize(), ConstantAddReLUQuantize()],
            set(layer_quantize_map),
            layer_quantize_map,
        )
        return transformer.transform()


class Scheme(qk.default_8bit.Default8BitQuantizeScheme):
    """The quantize scheme :func:`mobile_skin.quant.qat.quantize_aware` applies."""

    def get_layout_transformer(self):
        return LayoutTransform()

    def get_quantize_registry(self):
        return Registry()


def custom_objects() -> dict:
    """Everything needed to deserialise a QAT model (use inside ``quantize_scope``)."""
    from mobile_skin.quant.qat_graph import CUSTOM_OBJECTS

    return {
        **CUSTOM_OBJECTS,
        "OutputQuantizeConfig": OutputQuantizeConfig,
        "NoOpQuantizeConfig": NoOpQuantizeConfig,
        "DepthwiseKernelQuantizer": DepthwiseKernelQuantizer,
        "KernelQuantizeConfig": KernelQuantizeConfig,
    }
