"""Keras -> TFLite conversion in four modes, with a named ``serving_default`` signature.

The converter is fed a ``tf.function`` whose arguments are named ``image`` (float32 [1, S, S, 3],
raw RGB 0..255) and ``metadata`` (float32 [1, D]) and which returns ``{"probs": ...}``, so every
file carries the signature ``serving_default`` with exactly those input and output names; runtimes
and the Android app feed it by name.

The batch is fixed at 1: the app classifies one photo at a time, a static shape lets XNNPACK (and
the GPU/NNAPI delegates, which do not take dynamic shapes) plan the whole graph once, and the int8
calibrator sees the shapes the phone will run. :class:`mobile_skin.model.runtime.TFLiteRuntime`
feeds larger batches row by row.

Modes:
    ``fp32``: no optimisation; should match Keras to float rounding.
    ``fp16``: float16 weights (half the size), computed in float32 on CPUs.
    ``dynamic``: dynamic-range quantization, int8 weights; activations are quantized on the fly
        by the kernels that support it, the rest stays float.
    ``int8``: full integer quantization (``TFLITE_BUILTINS_INT8`` only), activation ranges from a
        representative dataset; input and output tensors stay float32, so callers feed raw pixels.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf
import tf_keras

from mobile_skin.common.errors import UserError
from mobile_skin.common.formats import formats_of
from mobile_skin.contract.spec import IMAGE_INPUT, METADATA_INPUT, OUTPUT, ModelSpec

#: The conversion modes of the TFLite formats (:data:`mobile_skin.common.formats.FORMATS`).
TFLITE_MODES = tuple(f.mode for f in formats_of("tflite"))
#: The batch size baked into exported TFLite files (see the module docstring).
TFLITE_BATCH = 1

RepresentativeData = Callable[[], Iterator[dict[str, np.ndarray]]]


def serving_function(
    model: tf_keras.Model, spec: ModelSpec, batch: int | None
) -> tf.types.experimental.PolymorphicFunction:
    """A ``tf.function`` ``(image, metadata) -> {"probs": ...}`` calling ``model`` by input name.

    Args:
        model: the Keras model; its inputs must be named as in ``spec``.
        spec: image size and metadata size.
        batch: fixed batch size, or None for a dynamic batch dimension.
    """
    names = sorted(model.input_names)
    if names != sorted(spec.input_names):
        raise UserError(f"model inputs {names} do not match the spec's {sorted(spec.input_names)}")
    size = spec.image_size
    image_spec = tf.TensorSpec([batch, size, size, 3], tf.float32, name=IMAGE_INPUT)
    if spec.encoding is None:

        @tf.function(input_signature=[image_spec])
        def serve(image):
            return {OUTPUT: model({IMAGE_INPUT: image}, training=False)}

    else:
        meta_spec = tf.TensorSpec([batch, spec.encoding.size], tf.float32, name=METADATA_INPUT)

        @tf.function(input_signature=[image_spec, meta_spec])
        def serve(image, metadata):
            return {OUTPUT: model({IMAGE_INPUT: image, METADATA_INPUT: metadata}, training=False)}

    return serve


def convert_tflite(
    model: tf_keras.Model,
    spec: ModelSpec,
    mode: str,
    representative_data: RepresentativeData | None = None,
    float_ops: tuple[str, ...] = (),
    qat: bool = False,
) -> bytes:
    """Convert ``model`` to a TFLite flatbuffer.

    Args:
        model: the Keras model (for ``int8`` also a quantization-aware-trained one).
        spec: the model's spec (image size, metadata).
        mode: one of :data:`TFLITE_MODES`.
        representative_data: for ``int8``, a generator function yielding dicts of inputs by name
            (see :func:`mobile_skin.quant.calibration.representative_dataset`).
        float_ops: for ``int8``, TFLite op types to keep in float32 (selective quantization,
            e.g. :data:`mobile_skin.quant.edge_model.INT8_FLOAT_OPS`); empty: every op int8.
        qat: for ``int8``, ``model`` is quantization-aware (:mod:`mobile_skin.quant.qat`): its
            fake-quant ranges decide, and with ``float_ops`` the layers it left without
            fake-quant stay float (QAT conversion without ``TFLITE_BUILTINS_INT8``; TensorFlow's
            selective-quantization debugger rejects QAT models).

    Returns:
        The ``.tflite`` file contents.
    """
    if mode not in TFLITE_MODES:
        raise UserError(f"unknown TFLite mode {mode!r}; choose from {', '.join(TFLITE_MODES)}")
    if mode == "int8" and representative_data is None and not (qat and float_ops):
        raise ValueError("int8 conversion needs representative_data")
    if mode == "int8" and qat and float_ops:
        return make_converter(model, spec, "fp32_io_int8_qat").convert()
    converter = make_converter(model, spec, mode, representative_data)
    with warnings.catch_warnings():
        # The int8 calibrator inside TensorFlow still uses tf.lite.Interpreter; not ours to fix.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        if mode == "int8" and float_ops:
            # Calibrate, then quantize every op except these types (TensorFlow's documented
            # selective quantization); QUANTIZE/DEQUANTIZE ops go around the float ones.
            options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops))
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_options=options
            )
            return debugger.get_nondebug_quantized_model()
        return converter.convert()


def make_converter(
    model: tf_keras.Model,
    spec: ModelSpec,
    mode: str,
    representative_data: RepresentativeData | None = None,
) -> tf.lite.TFLiteConverter:
    """The configured converter of :func:`convert_tflite` (for callers that drive it further,
    such as TensorFlow's quantization debugger).

    ``mode`` is one of :data:`TFLITE_MODES`, or ``fp32_io_int8_qat`` for a quantization-aware
    model whose fake-quant ranges decide (float32 input and output).
    """
    serve = serving_function(model, spec, TFLITE_BATCH)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], _signature_root(model, serve)
    )
    if mode != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        converter.representative_dataset = representative_data
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if mode in ("int8", "fp32_io_int8_qat"):
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    return converter


def _signature_root(model: tf_keras.Model, serve) -> tf.Module:
    """What the converter saves to keep the ``serving_default`` signature: function and variables.

    Passing the Keras model itself also works, but then the converter traces every layer into the
    SavedModel it writes on the way (about 5x the CPU time on MobileNetV3).
    """
    root = tf.Module()
    root.model_variables = list(model.variables)
    root.serve = serve
    return root


def tflite_quantization_info(model_content: bytes, mode: str) -> dict:
    """What ``model_spec.json`` records about a converted file's quantization.

    The mode and batch; every signature input/output with its dtype, and its (scale, zero point)
    where the tensor itself is quantized; for float inputs/outputs of an int8 file, the parameters
    of the int8 tensor right behind the QUANTIZE (or before the DEQUANTIZE) op, which a caller
    feeding int8 directly would need; and the op types by result dtype (float ops left in an int8
    file show up there).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_content=model_content,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    runner = interpreter.get_signature_runner("serving_default")
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details() if hasattr(interpreter, "_get_ops_details") else []

    def quant(t: dict) -> dict:
        scale, zero = t["quantization"]
        return {"scale": float(scale), "zero_point": int(zero)} if scale else {}

    def boundary(index: int, is_input: bool) -> dict:
        for op in ops:
            if is_input and op["op_name"] == "QUANTIZE" and index in op["inputs"]:
                t = tensors[int(op["outputs"][0])]
            elif not is_input and op["op_name"] == "DEQUANTIZE" and index in op["outputs"]:
                t = tensors[int(op["inputs"][0])]
            else:
                continue
            return {"dtype": np.dtype(t["dtype"]).name, **quant(t)}
        return {}

    def describe(details: dict, is_input: bool) -> dict:
        out = {}
        for name, d in details.items():
            entry = {"dtype": np.dtype(d["dtype"]).name, "shape": [int(s) for s in d["shape"]]}
            entry.update(quant(d))
            inner = boundary(int(d["index"]), is_input) if not entry.get("scale") else {}
            if inner:
                entry["quantized_as"] = inner
            out[name] = entry
        return out

    op_types = Counter(
        f"{op['op_name']}:{np.dtype(op['result_types'][0]).name}"
        for op in ops
        if op["result_types"]
    )
    return {
        "format": "tflite",
        "mode": mode,
        "batch": TFLITE_BATCH,
        "signature": "serving_default",
        "inputs": describe(runner.get_input_details(), True),
        "outputs": describe(runner.get_output_details(), False),
        "ops": dict(sorted(op_types.items())),
        "converter": f"tensorflow {tf.__version__} TFLiteConverter.from_concrete_functions",
    }
