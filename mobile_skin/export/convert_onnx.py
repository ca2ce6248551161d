"""Keras -> ONNX conversion (tf2onnx) and int8 static quantization (onnxruntime).

The graph is converted from the same kind of named ``tf.function`` as the TFLite export (see
:func:`mobile_skin.export.convert_tflite.serving_function`), with a dynamic batch dimension
(onnxruntime handles it without cost, and servers batch): inputs ``image`` [batch, S, S, 3] and
``metadata`` [batch, D], output ``probs`` [batch, C].

int8: onnxruntime's ``quantize_static`` in QDQ format, uint8 activations and int8 per-channel
weights, least-squares activation ranges and a logit bias correction (:func:`quantize_onnx`), on
the same training-split samples the TFLite int8 export uses, after onnxruntime's recommended
pre-processing (onnx shape inference and graph optimisation).
The caller can keep some op types in float (:func:`mobile_skin.export.exporter` keeps the ops the
TFLite int8 export keeps in float, the classifier head, mapped by :data:`TFLITE_TO_ONNX_OPS`).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tf_keras
from onnxruntime.quantization import CalibrationDataReader

from mobile_skin.common.errors import UserError
from mobile_skin.contract.spec import ModelSpec
from mobile_skin.export.convert_tflite import serving_function
from mobile_skin.quant import logit_correction as lc

DEFAULT_OPSET = 17
#: QDQ with per-channel weights needs opset 13; tf2onnx 1.17 writes up to 18.
MIN_OPSET = 13
BATCH_DIM = "batch"
#: TFLite op type -> the ONNX op types tf2onnx writes for it (for keeping the same ops float).
TFLITE_TO_ONNX_OPS = {
    "FULLY_CONNECTED": ("Gemm", "MatMul"),
    "CONCATENATION": ("Concat",),
    "SOFTMAX": ("Softmax",),
}


def max_opset() -> int:
    """The highest opset the installed tf2onnx can write."""
    from tf2onnx import constants

    return max(constants.OPSET_TO_IR_VERSION)


def check_opset(opset: int) -> None:
    """Raise :class:`UserError` unless tf2onnx can write ``opset`` and int8 QDQ can use it."""
    import tf2onnx

    top = max_opset()
    if not MIN_OPSET <= opset <= top:
        raise UserError(
            f"--opset {opset} is outside {MIN_OPSET}..{top} (tf2onnx {tf2onnx.__version__})"
        )


def convert_onnx(model: tf_keras.Model, spec: ModelSpec, opset: int = DEFAULT_OPSET):
    """Convert ``model`` to an ``onnx.ModelProto`` with inputs/outputs named as in ``spec``.

    Raises:
        UserError: ``opset`` outside what tf2onnx supports for this export.
    """
    import onnx
    import tf2onnx

    check_opset(opset)
    serve = serving_function(model, spec, batch=None)
    proto, _ = tf2onnx.convert.from_function(
        serve, input_signature=serve.input_signature, opset=opset
    )
    _inline_captured_constants(proto, serve, spec.input_names)
    for value in list(proto.graph.input) + list(proto.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if not dim.HasField("dim_value"):
            dim.dim_param = BATCH_DIM
    onnx.checker.check_model(proto)
    return proto


def _inline_captured_constants(proto, serve, names) -> None:
    """Turn the constants a function captures back into initializers.

    tf2onnx's ``from_function`` lists every non-resource tensor the function captures as a graph
    input, e.g. the mean and variance a Keras ``Normalization`` layer holds as eager tensors
    (DenseNet201's preprocessing): the file would then need them fed at run time.
    """
    import tensorflow as tf
    from onnx import numpy_helper

    concrete = serve.get_concrete_function()
    values = {
        inner.name: outer.numpy()
        for outer, inner in zip(
            concrete.captured_inputs, concrete.graph.internal_captures, strict=True
        )
        if outer.dtype != tf.resource
    }
    for value in list(proto.graph.input):
        if value.name not in names and value.name in values:
            proto.graph.input.remove(value)
            proto.graph.initializer.append(numpy_helper.from_array(values[value.name], value.name))


class SampleReader(CalibrationDataReader):
    """An onnxruntime calibration data reader over calibration samples (dicts by input name)."""

    def __init__(self, samples: Sequence[dict[str, np.ndarray]], names: Sequence[str]) -> None:
        from tqdm.auto import tqdm

        self._names = list(names)
        self._it = iter(tqdm(samples, desc="calibrating", leave=False))

    def get_next(self) -> dict[str, np.ndarray] | None:
        sample = next(self._it, None)
        return None if sample is None else {k: sample[k] for k in self._names}


def quantize_onnx(
    fp32_model,
    out_path: str | Path,
    samples: Sequence[dict[str, np.ndarray]],
    float_op_types: Sequence[str] = (),
    *,
    activations: str = "uint8",
    ranges: str = "least_squares",
    logit_correction: str | None = lc.DEFAULT_ESTIMATOR,
    float_prefix_end: str | None = None,
    float_tail_start: Sequence[str] = (),
) -> lc.Correction | None:
    """Statically quantize an fp32 ``onnx.ModelProto`` to 8 bits (QDQ) and write it to ``out_path``.

    The recipe (:data:`INT8_RECIPE`; reports/int8.md compares the alternatives):

    - uint8 activations with int8 per-channel weights (U8S8): the only activation type
      onnxruntime's x86 QDQ fusion turns into QLinearConv / QLinearMul / QLinearAdd; with int8
      activations most convolutions stay DequantizeLinear -> float Conv -> QuantizeLinear and
      the file runs 2.5x slower than float32;
    - least-squares activation ranges (:func:`least_squares_ranges`: the min/max range narrowed
      per tensor where the tails are rare), given to ``quantize_static`` as
      ``TensorQuantOverrides``;
    - the float head's bias corrected for the mean logit shift on the calibration samples
      (:mod:`mobile_skin.quant.logit_correction`).

    Args:
        fp32_model: the converted float model.
        out_path: where the quantized model goes (pass a temp path and rename it for atomicity).
        samples: calibration inputs, e.g. from
            :func:`mobile_skin.quant.calibration.calibration_samples`.
        float_op_types: ONNX op types to leave in float (e.g. :func:`onnx_float_ops` of the TFLite
            int8 export's float ops); empty: quantize everything onnxruntime can.
        activations, ranges, logit_correction: the recipe's parts, for comparisons
            (``benchmarks/int8_methods.py``): ``"uint8"`` or ``"int8"`` activations,
            ``"least_squares"`` or ``"minmax"`` ranges, the logit correction's estimator
            (:data:`mobile_skin.quant.logit_correction.ESTIMATORS`) or None for none.
        float_prefix_end: a Keras layer name; the node computing it and every node it depends
            on stay float (:func:`prefix_nodes`). None: no float prefix.
        float_tail_start: Keras layer names; their nodes and every node that depends on them
            stay float (:func:`tail_nodes`). Empty: no float tail.

    Returns:
        The :class:`mobile_skin.quant.logit_correction.Correction` measured (None without one).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    names = [i.name for i in fp32_model.graph.input]
    with tempfile.TemporaryDirectory(prefix="onnx_int8_") as tmp:
        fp32_path, pre_path = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx"
        onnx.save(fp32_model, fp32_path)
        # onnx shape inference is enough (tf2onnx leaves only the batch dimension symbolic);
        # the symbolic pass would need sympy, which nothing else here uses.
        quant_pre_process(str(fp32_path), str(pre_path), skip_symbolic_shape=True)
        graph = onnx.load(str(pre_path)).graph
        keep_float = [n.name for n in graph.node if n.op_type in set(float_op_types)]
        if float_prefix_end:
            keep_float += prefix_nodes(graph, float_prefix_end)
        for layer in float_tail_start:
            keep_float += tail_nodes(graph, layer)
        options = dict(
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=False,  # VNNI / ARM dotprod do not saturate u8 x s8 products
            activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=keep_float,
        )
        if ranges == "least_squares":
            minmax = Path(tmp) / "minmax.onnx"
            quantize_static(str(pre_path), str(minmax), SampleReader(samples, names), **options)
            tensors = [t for t in activation_tensors(onnx.load(str(minmax))) if t not in names]
            narrowed = least_squares_ranges(pre_path, tensors, samples)
            options["extra_options"] = {
                "TensorQuantOverrides": {
                    t: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}]
                    for t, (lo, hi) in narrowed.items()
                }
            }
        quantize_static(str(pre_path), str(out_path), SampleReader(samples, names), **options)
        correction = None
        if logit_correction:
            reference = lc.predictions(lc.onnx_predict(fp32_path), samples)
            corrected, correction = lc.correct_onnx_on_samples(
                out_path, reference, samples, logit_correction
            )
            if corrected is not None and correction.applied:
                onnx.save(corrected, str(out_path))
    return correction


def prefix_nodes(graph, layer: str) -> list[str]:
    """Names of the last node tf2onnx made of Keras layer ``layer`` (its name holds
    ``/<layer>/``) and of every node it depends on.

    Raises:
        UserError: no node comes from ``layer``.
    """
    ends = [n for n in graph.node if f"/{layer}/" in n.name]
    if not ends:
        raise UserError(
            f"ONNX int8: no node of layer {layer!r} to end the float start at (--all-int8 skips it)"
        )
    producer = {out: n for n in graph.node for out in n.output}
    return _reachable([ends[-1]], lambda n: (producer[i] for i in n.input if i in producer))


def tail_nodes(graph, layer: str) -> list[str]:
    """Names of the nodes tf2onnx made of Keras layer ``layer`` (their names hold ``/<layer>/``)
    and of every node that depends on them.

    Raises:
        UserError: no node comes from ``layer``.
    """
    starts = [n for n in graph.node if f"/{layer}/" in n.name]
    if not starts:
        raise UserError(f"ONNX int8: no node of layer {layer!r} to start the float tail at")
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return _reachable(starts, lambda n: (c for out in n.output for c in consumers.get(out, ())))


def _reachable(starts: Sequence, step: Callable) -> list[str]:
    """Names of the nodes ``starts`` and of every node reached from them by ``step`` (a node's
    producers, or its consumers)."""
    todo, seen = list(starts), {}
    while todo:
        node = todo.pop()
        if node.name not in seen:
            seen[node.name] = node
            todo.extend(step(node))
    return list(seen)


#: What :func:`quantize_onnx` does, as recorded in each int8 file's ``model_spec.json``.
INT8_RECIPE = {
    "quant_format": "QDQ",
    "activation_type": "uint8",
    "weight_type": "int8",
    "per_channel": True,
    "ranges": "least squares over min/max narrowed per tensor (4096-bin histograms)",
    "logit_correction": "head bias minus the calibration images' logit shift, where it does not "
    "lower their agreement (quantization.logit_correction says which estimator and whether)",
}
#: Histogram bins and the range factors :func:`least_squares_ranges` tries.
RANGE_BINS = 4096
RANGE_FACTORS = np.round(np.arange(1.0, 0.30, -0.03), 2)


def activation_tensors(model) -> list[str]:
    """The tensors a QDQ model quantizes with a QuantizeLinear (weights excluded)."""
    inits = {i.name for i in model.graph.initializer}
    return [n.input[0] for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits]  # fmt: skip


def quantization_error(centers, counts, low: float, high: float, levels: int = 255) -> float:
    """Mean squared error of quantizing a histogram (bin centres, counts) to ``levels`` + 1
    steps over ``[low, high]`` (zero exactly representable)."""
    scale = (high - low) / levels
    if scale <= 0:
        return 0.0
    zero = np.clip(np.round(-low / scale), 0, levels)
    q = np.clip(np.round(centers / scale) + zero, 0, levels)
    err = (scale * (q - zero) - centers) ** 2
    return float((counts * err).sum() / max(counts.sum(), 1))


def least_squares_ranges(
    model_path: Path, tensors: Sequence[str], samples: Sequence[dict[str, np.ndarray]]
) -> dict[str, tuple[float, float]]:
    """Per tensor, the range ``[a * min, b * max]`` (a, b in :data:`RANGE_FACTORS`) whose 8-bit
    quantization of the tensor's values on the samples has the least squared error: clipping
    rare tails buys a finer step for every other value. Two passes over the samples (min/max,
    then a :data:`RANGE_BINS`-bin histogram per tensor), so memory stays small."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    present = {o.name for o in model.graph.output}
    for t in tensors:
        if t not in present:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()]
    tensors = list(tensors)
    low = dict.fromkeys(tensors, 0.0)
    high = dict.fromkeys(tensors, 0.0)
    for sample in samples:
        for t, v in zip(tensors, session.run(tensors, {k: sample[k] for k in names}), strict=True):
            low[t], high[t] = min(low[t], float(v.min())), max(high[t], float(v.max()))
    hist = {t: np.zeros(RANGE_BINS) for t in tensors}
    for sample in samples:
        for t, v in zip(tensors, session.run(tensors, {k: sample[k] for k in names}), strict=True):
            if high[t] > low[t]:
                hist[t] += np.histogram(v.ravel(), bins=RANGE_BINS, range=(low[t], high[t]))[0]
    out = {}
    for t in tensors:
        edges = np.linspace(low[t], high[t], RANGE_BINS + 1)
        centers = (edges[:-1] + edges[1:]) / 2
        best = (quantization_error(centers, hist[t], low[t], high[t]), low[t], high[t])
        for fa in RANGE_FACTORS if low[t] < 0 else (1.0,):
            for fb in RANGE_FACTORS if high[t] > 0 else (1.0,):
                err = quantization_error(centers, hist[t], fa * low[t], fb * high[t])
                if err < best[0] - 1e-15:
                    best = (err, fa * low[t], fb * high[t])
        out[t] = (best[1], best[2])
    return out


def onnx_float_ops(tflite_ops: Sequence[str]) -> tuple[str, ...]:
    """The ONNX op types of TFLite op types (e.g. ``FULLY_CONNECTED`` -> ``Gemm``, ``MatMul``)."""
    return tuple(op for name in tflite_ops for op in TFLITE_TO_ONNX_OPS.get(name, ()))


def onnx_quantization_info(path: str | Path, mode: str, opset: int, samples: int = 0) -> dict:
    """What ``model_spec.json`` records about an exported ONNX file.

    Mode, opset, input/output dtypes and shapes, the node types (QuantizeLinear/DequantizeLinear
    counts show how much of an int8 graph is quantized), and for int8 the quantization recipe.
    """
    import onnx

    proto = onnx.load(str(path))

    def describe(values) -> dict:
        out = {}
        for v in values:
            t = v.type.tensor_type
            shape = [d.dim_param or d.dim_value for d in t.shape.dim]
            out[v.name] = {
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                "shape": shape,
            }
        return out

    info = {
        "format": "onnx",
        "mode": mode,
        "opset": opset,
        "batch": BATCH_DIM,
        "inputs": describe(proto.graph.input),
        "outputs": describe(proto.graph.output),
        "ops": dict(sorted(Counter(n.op_type for n in proto.graph.node).items())),
    }
    if mode == "int8":
        info.update(
            INT8_RECIPE, calibration={"method": "MinMax + least squares", "samples": samples}
        )
    return info
