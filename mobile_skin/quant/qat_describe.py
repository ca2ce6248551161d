"""Say in words how each layer of a quantization-aware model is quantized (the ``--qat`` output).

:func:`describe` groups the layers of a model from :func:`mobile_skin.quant.qat.build_qat_model` by
(original layer type, treatment) and reads each treatment from the QuantizeConfig the layer's
wrapper holds, so the lines say what the model does rather than what was intended.
"""

from __future__ import annotations

from collections import Counter

import tensorflow_model_optimization as tfmot
import tf_keras

from mobile_skin.contract.spec import IMAGE_INPUT
from mobile_skin.quant import qat_scheme

qk = tfmot.quantization.keras


def feeds_on(layer: tf_keras.layers.Layer) -> str:
    """Name of the layer whose output ``layer`` takes (its first inbound node)."""
    inbound = layer.inbound_nodes[0].inbound_layers
    return (inbound[0] if isinstance(inbound, list) else inbound).name


def describe(qat_model: tf_keras.Model, origin: dict[str, str]) -> list[str]:
    """One line per (original layer type, quantization) group: "Conv2D x 37: ...".

    Derived from the QuantizeConfig each wrapper holds, so it says what the model does.
    """
    groups: Counter = Counter()
    for layer in qat_model.layers:
        if isinstance(layer, tf_keras.layers.InputLayer):
            continue
        if not isinstance(layer, qk.QuantizeWrapperV2) and type(layer).__name__ != "QuantizeLayer":
            op = qat_scheme.float_op(layer)
            how = (
                f"float32 {op}, not fake-quantized (the int8 file keeps it in float)"
                if op
                else "float32, not fake-quantized (a float region the int8 file keeps)"
            )
            groups[(type(layer).__name__, how)] += 1
        elif type(layer).__name__ == "QuantizeLayer":
            source = feeds_on(layer)
            fixed = "fixed [0, 255], scale 1" if source == IMAGE_INPUT else "calibrated range"
            groups[("InputLayer", f"int8 QUANTIZE of the float input {source!r} ({fixed})")] += 1
        elif isinstance(layer, qk.QuantizeWrapperV2):
            inner = layer.layer
            kind = type(inner).__name__
            label = kind
            if inner.name in origin:
                label = f"{origin[inner.name]} -> {kind}"
            groups[(label, _how(layer))] += 1
    lines = [f"{label} x {count}: {how}" for (label, how), count in sorted(groups.items())]
    return lines


_NOTES = {
    "BatchNormalization": "folded into the preceding convolution by the converter",
    "ConstantAdd": "one ADD",
    "ConstantScale": "one MUL",
    "Dropout": "identity at inference",
}
#: Layers that move int8 values without changing their scale.
_PASS_THROUGH = ("ZeroPadding2D", "MaxPooling2D", "Dropout", "Flatten", "Reshape", "Permute")


def _how(wrapper) -> str:
    """What a QuantizeWrapperV2 quantizes, in words (from its QuantizeConfig)."""
    config, inner = wrapper.quantize_config, wrapper.layer
    kind = type(inner).__name__
    parts = [_NOTES[kind]] if kind in _NOTES else []
    weights = config.get_weights_and_quantizers(inner)
    names = getattr(config, "weight_attrs", None) or [
        qat_scheme.kernel_quantizer(inner)[0] for _ in weights
    ]
    for name, (_, quantizer) in zip(names, weights, strict=True):
        axis = "per-channel" if getattr(quantizer, "per_axis", False) else "per-tensor"
        parts.append(f"int8 {name} {axis} (symmetric)")
    outputs = []
    for activation, _ in config.get_activations_and_quantizers(inner):
        act = getattr(activation, "activation", activation)
        act_name = getattr(act, "__name__", type(act).__name__)
        if act_name in ("softmax", "sigmoid", "tanh"):
            outputs.append(f"int8 input to {act_name} (its output range is fixed by TFLite)")
        elif act_name != "NoOpActivation":
            outputs.append(f"int8 output after {act_name}")
    for quantizer in config.get_output_quantizers(inner):
        if isinstance(quantizer, qk.quantizers.FixedQuantizer):
            low, high = quantizer.init_min, quantizer.init_max
            outputs.append(f"int8 output, fixed range [{low:g}, {high:g}]")
        else:
            outputs.append("int8 output (range calibrated, then fixed while fine-tuning)")
    if not outputs and getattr(inner, "activation", None) is tf_keras.activations.softmax:
        outputs.append("softmax output at TFLite's fixed int8 scale 1/256")
    elif not outputs:
        outputs.append(
            "no fake-quant: keeps its input's int8 scale"
            if kind in _PASS_THROUGH
            else "no fake-quant of its own: fused with the next layer, whose range it uses"
        )
    return "; ".join(parts + outputs)
