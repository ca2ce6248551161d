"""Int8 TFLite recipes side by side: which one keeps the trained model's answers, at what speed.

``python benchmarks/int8_methods.py RUN`` builds one ``.tflite`` per recipe in :data:`METHODS`
from the run's model, scores each on the run's test and validation splits against Keras (the
parity gate's statistics, :mod:`mobile_skin.evaluation.stats`), counts its XNNPACK partitions, and,
with ``--time``, times every file round-robin against the float32 file in one process (batch 1).
Results merge into ``benchmarks/results/int8_methods_<run>.json`` and ``.md`` by recipe name, so
slow recipes (QAT) can be run on their own.

Recipes (every one keeps the exporter's float head,
:data:`mobile_skin.quant.edge_model.INT8_FLOAT_OPS`, and starts from the exporter's
:func:`mobile_skin.quant.edge_model.to_edge_model` graph):

- ``ptq``: TensorFlow's post-training full-integer quantization, min/max ranges from the 300
  per-class calibration images (what ``export/to_tflite.py --int8`` wrote before this table);
- ``ptq_cal1000``: the same with 1,000 calibration images;
- ``ptq_float_mean``: also the squeeze-excite ``MEAN`` ops in float (the TensorFlow quantization
  debugger tutorial's fix for MobileNetV3); ``ptq_float_dw`` the depthwise convolutions in float
  (``ptq_float_dw_mul`` and the ``MUL`` ops: the hard-swish and squeeze-excite products), the ops
  XNNPACK's int8 kernels run slower than its float ones on an AVX-512 host
  (``benchmarks/profile_tflite.py FP32 INT8 --compare``);
- ``debugger_top{N}``: TensorFlow's quantization debugger ranks every int8 tensor by
  RMSE / scale on the calibration images; the ``N`` worst stay float;
- ``aeq``: the LiteRT quantizer (``ai-edge-quantizer``), static int8 (``static_wi8_ai8``) with
  the head ops ``no_quantize``; ``aeq_a16w8`` the same with 16-bit activations
  (``static_wi8_ai16``: what the activations' share of the error costs in speed);
- ``qat{E}``: quantization-aware training (:mod:`mobile_skin.quant.qat`) for ``E`` epochs (``qat0``:
  the least-squares ranges alone, no training); ``qat{E}_{REGION}`` keeps a region of
  :data:`FLOAT_REGIONS` float too (``qat8_block2+lbc`` is what ``export/to_tflite.py --int8``
  writes, ``qat8_block2_late+lbc`` what ``--int8 --float-tail`` does; ``qat8_block0+lbc``
  was); ``qat{E}_block0_lsq`` also trains the activation ranges
  (:mod:`mobile_skin.quant.learned_ranges`);
- ``NAME+lbc``: recipe ``NAME`` with the float head's bias corrected for the mean logit shift on
  the calibration images (:mod:`mobile_skin.quant.logit_correction`); ``NAME+ce`` with the shift
  fitted by cross-entropy instead (its ``cross_entropy`` estimator);
- ``onnx_u8s8_ls_lbc``: onnxruntime's static quantization with the exporter's recipe
  (:func:`mobile_skin.export.convert_onnx.quantize_onnx`), ``_block2`` / ``_block0`` / ``_stem``
  with that float start (``onnx_u8s8_ls_lbc_block2`` is what ``export/to_onnx.py --int8`` writes,
  ``_block2_late`` what ``--int8 --float-tail`` does; ``onnx_u8s8_ls_lbc_block0`` was); the other
  ``onnx_`` rows vary its parts (``_ce``: the cross-entropy estimator of the logit correction);
- ``onnx_nncf``: NNCF post-training quantization of the ONNX file (``nncf``, the ``bench``
  extra), the exporter's float head, made U8S8 so onnxruntime fuses it (:func:`onnx_nncf`);
  ``onnx_nncf_lbc`` the same with the logit bias correction.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mobile_skin.common.errors import UserError

if TYPE_CHECKING:
    from mobile_skin.data.run import RunData

#: The splits every recipe is scored on (the parity gate's).
SPLITS = ("test", "val")


@dataclass
class Context:
    """Everything the recipes share, loaded once per run."""

    paths: object
    cfg: object
    spec: object
    model: object
    edge: object
    train: object
    val: object
    samples: list
    data: dict
    reference: dict
    out_dir: Path
    log: Callable[[str], None] = print
    cache: dict = field(default_factory=dict)


def load_context(run: RunData, out_dir: Path | None = None, log=print) -> Context:
    """The run's model, rewrite, calibration samples, splits and Keras reference."""
    from mobile_skin.model.network import load_model
    from mobile_skin.model.runtime import KerasRuntime
    from mobile_skin.parity import gate as parity
    from mobile_skin.quant import calibration, edge_model

    paths, cfg, spec = run.paths, run.cfg, run.spec
    model = load_model(paths.best_model)
    data = {n: parity.SplitData.from_frame(n, run.rows(n), spec) for n in SPLITS}
    keras = KerasRuntime(model, paths.best_model)
    reference, _ = parity.keras_reference(
        paths.best_model, paths.export_root, keras, data, spec, latency_runs=0, log=log
    )
    train = run.rows("train")
    samples = calibration.calibration_samples(
        train, spec, calibration.DEFAULT_SAMPLES, cfg.data.seed, log=log
    )
    out = out_dir or paths.export_root / "int8_methods"
    out.mkdir(parents=True, exist_ok=True)
    return Context(
        paths, cfg, spec, model, edge_model.to_edge_model(model), train,
        run.rows("val"), samples, data, reference, out, log,
    )  # fmt: skip


def _representative(samples):
    from mobile_skin.quant.calibration import representative_dataset

    return representative_dataset(samples)


def ptq(ctx: Context, extra_float_ops: tuple[str, ...] = (), samples=None) -> bytes:
    """Post-training int8 with the float head (plus ``extra_float_ops``)."""
    from mobile_skin.export.convert_tflite import convert_tflite
    from mobile_skin.quant.edge_model import INT8_FLOAT_OPS

    data = _representative(samples if samples is not None else ctx.samples)
    return convert_tflite(ctx.edge, ctx.spec, "int8", data, (*INT8_FLOAT_OPS, *extra_float_ops))


def ptq_more_samples(ctx: Context, n: int) -> bytes:
    from mobile_skin.quant.calibration import calibration_samples

    samples = calibration_samples(ctx.train, ctx.spec, n, ctx.cfg.data.seed, log=ctx.log)
    return ptq(ctx, samples=samples)


def float_model(ctx: Context) -> bytes:
    """The float32 file every recipe is timed against."""
    from mobile_skin.export.convert_tflite import convert_tflite

    if "fp32" not in ctx.cache:
        ctx.cache["fp32"] = convert_tflite(ctx.edge, ctx.spec, "fp32")
    return ctx.cache["fp32"]


def _input_order(content: bytes) -> list[str]:
    """The spec input names in the order the interpreter lists its inputs."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_content=content).get_input_details()
    names = []
    for d in details:
        name = d["name"]
        names.append("metadata" if "metadata" in name else "image")
    return names


def layer_errors(ctx: Context) -> list[tuple[str, float]]:
    """Every int8 tensor of the ``ptq`` recipe with its RMSE / scale on the calibration
    images (TensorFlow's quantization debugger), worst first."""
    import tensorflow as tf

    from mobile_skin.export.convert_tflite import make_converter
    from mobile_skin.quant.edge_model import INT8_FLOAT_OPS

    if "layer_errors" in ctx.cache:
        return ctx.cache["layer_errors"]
    converter = make_converter(ctx.edge, ctx.spec, "int8", _representative(ctx.samples))
    order = _input_order(float_model(ctx))

    def debug_data():
        for s in ctx.samples[:100]:
            yield [s[name] for name in order]

    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(INT8_FLOAT_OPS))
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=debug_data, debug_options=options
    )
    debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    import pandas as pd

    buffer.seek(0)
    stats = pd.read_csv(buffer)
    stats["rmse_scale"] = np.sqrt(stats["mean_squared_error"]) / stats["scale"]
    ctx.cache["tensor_order"] = list(stats.sort_values("tensor_idx")["tensor_name"])
    stats = stats.sort_values("rmse_scale", ascending=False)
    ctx.cache["layer_errors"] = list(zip(stats["tensor_name"], stats["rmse_scale"], strict=True))
    return ctx.cache["layer_errors"]


def debugger_prefix(ctx: Context, n: int) -> bytes:
    """``ptq`` with the first ``n`` quantized tensors (the stem and the first blocks, where the
    sensitivity probe finds the most error per op) left in float."""
    layer_errors(ctx)
    return _denylisted(ctx, ctx.cache["tensor_order"][:n], f"prefix{n}")


def debugger_denylist(ctx: Context, n: int) -> bytes:
    """``ptq`` with the ``n`` tensors of largest RMSE / scale left in float."""
    worst = [name for name, _ in layer_errors(ctx)[:n]]
    return _denylisted(ctx, worst, f"debugger_top{n}")


def _denylisted(ctx: Context, nodes: list[str], label: str) -> bytes:
    """Post-training int8 with the head ops and the tensors ``nodes`` in float."""
    import tensorflow as tf

    from mobile_skin.export.convert_tflite import make_converter
    from mobile_skin.quant.edge_model import INT8_FLOAT_OPS

    ctx.log(f"{label}: float tensors {nodes}")
    converter = make_converter(ctx.edge, ctx.spec, "int8", _representative(ctx.samples))
    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_ops=list(INT8_FLOAT_OPS), denylisted_nodes=nodes
    )
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_options=options)
    return debugger.get_nondebug_quantized_model()


def aeq(ctx: Context, activation_bits: int = 8) -> bytes:
    """The LiteRT quantizer: static int8 weights and ``activation_bits`` activations everywhere
    but the head ops."""
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer, recipe

    from mobile_skin.quant.edge_model import INT8_FLOAT_OPS

    base = recipe.static_wi8_ai8() if activation_bits == 8 else recipe.static_wi8_ai16()
    q = quantizer.Quantizer(float_model(ctx), base)
    # The head stays float, and so do the model's input and output (callers feed raw pixels).
    for op in (*INT8_FLOAT_OPS, "INPUT", "OUTPUT"):
        q.update_quantization_recipe(
            regex=".*",
            operation_name=qtyping.TFLOperationName(op),
            algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE,
        )
    calibration = {"serving_default": [dict(s) for s in ctx.samples]}
    result = q.quantize(q.calibrate(calibration, num_threads=2), enable_progress_report=False)
    return bytes(result.quantized_model)


#: Float regions of the QAT graph tried beside the head (MobileNetV3Large layer names): the
#: tensors the sensitivity probe ranks worst (reports/int8_profile.md, section 4.1) are the stem,
#: the first blocks and the attention's output. ``block2`` is the exporter's float start
#: (``Backbone.int8_float_prefix``); ``block0`` was, until the seeded default-recipe model.
FLOAT_REGIONS = {
    "stem": {"prefix_end": "multiply"},
    "block0": {"prefix_end": "expanded_conv/Add"},
    "tail": {"tail_start": ("soft_attention", "attention_pool/features")},
    "stem_tail": {"prefix_end": "multiply",
                  "tail_start": ("soft_attention", "attention_pool/features")},
    # the last three blocks (5x5 at 160 px) and the attention: where the default recipe's
    # model is most sensitive (benchmarks/int8_sensitivity.py)
    "block0_late": {"prefix_end": "expanded_conv/Add", "tail_start": ("expanded_conv_12/expand",)},
    "block0_13": {"prefix_end": "expanded_conv/Add", "tail_start": ("expanded_conv_13/expand",)},
    "block0_14": {"prefix_end": "expanded_conv/Add", "tail_start": ("expanded_conv_14/expand",)},
    # the start through block 1 or 2: after the stem and block 0, the probe's most harmful
    # tensors on the seeded default-recipe model (re_lu_2, re_lu_3, expanded_conv_2/Add)
    "block1": {"prefix_end": "expanded_conv_1/project/BatchNorm"},
    "block2": {"prefix_end": "expanded_conv_2/Add"},
    # the exporter's float start and the late tail: the validation-split probe of the dropout-0
    # twin (md000_e30_s0) ranks the last three blocks and the attention worst (reports/int8.md)
    "block2_late": {"prefix_end": "expanded_conv_2/Add",
                    "tail_start": ("expanded_conv_12/expand",)},
}  # fmt: skip


def float_regions(name: str):
    """:data:`FLOAT_REGIONS` entry ``name`` as a
    :class:`mobile_skin.quant.qat_scheme.FloatRegions`."""
    from mobile_skin.quant.qat_scheme import FloatRegions

    return FloatRegions(**FLOAT_REGIONS[name])


def qat(
    ctx: Context,
    epochs: int,
    learning_rate: float | None = None,
    epsilon: float | None = None,
    regions: str | None = None,
    ranges: str = "fixed",
) -> bytes:
    """Quantization-aware training for ``epochs`` epochs, then the int8 conversion; ``regions``
    names an entry of :data:`FLOAT_REGIONS` to keep in float too; ``ranges`` says whether the
    activation ranges train (:data:`mobile_skin.quant.qat.RANGES`)."""
    from mobile_skin.common.config import QAT_LEARNING_RATE
    from mobile_skin.export.convert_tflite import convert_tflite
    from mobile_skin.quant.edge_model import INT8_FLOAT_OPS
    from mobile_skin.quant.qat import QatData, quantize_aware

    lr = learning_rate or QAT_LEARNING_RATE
    history = ctx.out_dir / (
        f"qat{epochs}_lr{lr:g}" + (f"_eps{epsilon:g}" if epsilon else "")
        + (f"_{regions}" if regions else "") + ("_lsq" if ranges == "learned" else "")
    )  # fmt: skip
    regions_float = float_regions(regions) if regions else None
    data = QatData.from_config(ctx.cfg, ctx.spec, ctx.train, ctx.val, history)
    if epsilon is not None:
        data.adam_epsilon = epsilon
    qat_model, _ = quantize_aware(
        data, ctx.edge, epochs=epochs, learning_rate=lr, log=ctx.log, float_regions=regions_float,
        ranges=ranges,
    )  # fmt: skip
    return convert_tflite(qat_model, ctx.spec, "int8", None, INT8_FLOAT_OPS, qat=True)


def with_logit_correction(ctx: Context, base: str, estimator: str = "mean_log") -> bytes:
    """Recipe ``base`` (its file if already built, else built now) with the head's bias
    corrected for the logit shift on the calibration images (:mod:`logit_correction`,
    ``estimator`` one of its :data:`~mobile_skin.quant.logit_correction.ESTIMATORS`)."""
    from mobile_skin.model.runtime import KerasRuntime
    from mobile_skin.quant import logit_correction as lc

    path = ctx.out_dir / f"{base}.tflite"
    content = path.read_bytes() if path.is_file() else METHODS[base][0](ctx)
    if "calib_reference" not in ctx.cache:
        keras = KerasRuntime(ctx.model)
        ctx.cache["calib_reference"] = lc.predictions(keras.predict, ctx.samples)
    corrected, correction = lc.correct_tflite_on_samples(
        content, ctx.cache["calib_reference"], ctx.samples, estimator
    )
    ctx.log(f"{base}: {correction}")
    return corrected


def onnx_float(ctx: Context) -> bytes:
    """The float32 ONNX file the ONNX recipes are timed against."""
    from mobile_skin.export.convert_onnx import convert_onnx

    if "onnx_fp32" not in ctx.cache:
        ctx.cache["onnx_fp32"] = convert_onnx(ctx.edge, ctx.spec).SerializeToString()
    return ctx.cache["onnx_fp32"]


def onnx_int8(ctx: Context, **recipe) -> bytes:
    """onnxruntime static quantization with the exporter's head policy and ``recipe``."""
    import tempfile

    import onnx

    from mobile_skin.export.convert_onnx import onnx_float_ops, quantize_onnx
    from mobile_skin.quant.edge_model import INT8_FLOAT_OPS

    proto = onnx.load_from_string(onnx_float(ctx))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.onnx"
        correction = quantize_onnx(
            proto, out, ctx.samples, onnx_float_ops(INT8_FLOAT_OPS), **recipe
        )
        if correction is not None:
            ctx.log(str(correction))
        return out.read_bytes()


def onnx_nncf(ctx: Context) -> bytes:
    """NNCF post-training quantization (``MIXED`` preset: symmetric int8 per-channel weights,
    asymmetric per-tensor activations; fast bias correction) of the float ONNX file on the
    calibration samples, with the exporter's float head (the op types :func:`onnx_int8` keeps
    float). NNCF writes int8 activations wherever a tensor's range is below zero and per-channel
    activations before depthwise convolutions; onnxruntime fuses neither into ``QLinearConv``, so
    activations are forced per tensor and their Q/DQ pairs are moved to uint8 (exact: zero point
    + 128)."""
    import logging

    try:
        import nncf
    except ImportError as e:
        raise UserError("onnx_nncf needs nncf: pip install -e '.[bench]'") from e
    import onnx
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        QuantizationParameters,
    )

    from mobile_skin.export.convert_onnx import onnx_float_ops
    from mobile_skin.quant.edge_model import INT8_FLOAT_OPS

    nncf.set_log_level(logging.WARNING)
    proto = onnx.load_from_string(onnx_float(ctx))
    names = [i.name for i in proto.graph.input]
    start = time.perf_counter()
    quantized = nncf.quantize(
        proto,
        nncf.Dataset(ctx.samples, lambda s: {k: s[k] for k in names}),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(ctx.samples),
        fast_bias_correction=True,
        ignored_scope=nncf.IgnoredScope(types=list(onnx_float_ops(INT8_FLOAT_OPS)), validate=False),
        advanced_parameters=AdvancedQuantizationParameters(
            activations_quantization_params=QuantizationParameters(per_channel=False)
        ),
    )
    ctx.log(f"onnx_nncf: quantized in {time.perf_counter() - start:.1f} s")
    _activations_to_uint8(quantized)
    return quantized.SerializeToString()


def _activations_to_uint8(model) -> None:
    """Move a QDQ ``onnx.ModelProto``'s int8 activation Q/DQ pairs to uint8 (zero point + 128,
    the same real values), in place; weights stay int8."""
    from onnx import TensorProto, numpy_helper

    nodes, inits = model.graph.node, {i.name: i for i in model.graph.initializer}
    quantized = {n.output[0] for n in nodes if n.op_type == "QuantizeLinear"}
    activation_q = [n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] not in inits]
    zero_points = {n.input[2] for n in activation_q if len(n.input) > 2} | {
        n.input[2] for n in nodes
        if n.op_type == "DequantizeLinear" and n.input[0] in quantized and len(n.input) > 2
    }  # fmt: skip
    for name in zero_points:
        if inits[name].data_type == TensorProto.INT8:
            values = numpy_helper.to_array(inits[name]).astype(np.int16) + 128
            inits[name].CopyFrom(numpy_helper.from_array(values.astype(np.uint8), name))
    outputs = {n.output[0] for n in activation_q if len(n.input) > 2}
    for value in model.graph.value_info:
        if value.name in outputs and value.type.tensor_type.elem_type == TensorProto.INT8:
            value.type.tensor_type.elem_type = TensorProto.UINT8


def onnx_with_logit_correction(ctx: Context, base: str) -> bytes:
    """ONNX recipe ``base`` (its file if already built, else built now) with the float head's
    bias corrected for the mean logit shift against the float ONNX file on the calibration
    samples, as :func:`mobile_skin.export.convert_onnx.quantize_onnx` does."""
    import tempfile

    from mobile_skin.quant import logit_correction as lc

    path = ctx.out_dir / f"{base}.onnx"
    content = path.read_bytes() if path.is_file() else METHODS[base][0](ctx)
    with tempfile.TemporaryDirectory() as tmp:
        fp32, quantized = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        fp32.write_bytes(onnx_float(ctx))
        quantized.write_bytes(content)
        if "onnx_calib_reference" not in ctx.cache:
            reference = lc.predictions(lc.onnx_predict(fp32), ctx.samples)
            ctx.cache["onnx_calib_reference"] = reference
        model, correction = lc.correct_onnx_on_samples(
            quantized, ctx.cache["onnx_calib_reference"], ctx.samples, "mean_log"
        )
    if model is None:
        raise UserError(f"{base}: no float head bias feeding 'probs' to correct")
    ctx.log(f"{base}: {correction}")
    return model.SerializeToString()


#: Recipe name -> (builder, one-line description).
METHODS: dict[str, tuple[Callable[[Context], bytes], str]] = {
    "ptq": (ptq, "post-training int8, min/max ranges, 300 calibration images"),
    "ptq_cal1000": (lambda c: ptq_more_samples(c, 1000), "post-training int8, 1,000 images"),
    "ptq_float_mean": (lambda c: ptq(c, ("MEAN",)), "post-training int8, MEAN ops float"),
    "ptq_float_dw": (
        lambda c: ptq(c, ("DEPTHWISE_CONV_2D",)),
        "post-training int8, depthwise convolutions float",
    ),
    "ptq_float_dw_mul": (
        lambda c: ptq(c, ("DEPTHWISE_CONV_2D", "MUL")),
        "post-training int8, depthwise convolutions and MULs float",
    ),
    "debugger_top5": (lambda c: debugger_denylist(c, 5), "5 worst tensors float (debugger)"),
    "debugger_top15": (lambda c: debugger_denylist(c, 15), "15 worst tensors float (debugger)"),
    "aeq": (aeq, "LiteRT quantizer static_wi8_ai8, head no_quantize"),
    "aeq_a16w8": (lambda c: aeq(c, 16), "LiteRT quantizer static_wi8_ai16 (16-bit activations)"),
    "qat0": (lambda c: qat(c, 0), "QAT graph, least-squares ranges, no training"),
    "qat2": (lambda c: qat(c, 2), "QAT, 2 epochs distillation (ranges fixed)"),
    "qat8": (lambda c: qat(c, 8), "QAT, 8 epochs distillation (ranges fixed)"),
    "qat2_lr1e-4": (lambda c: qat(c, 2, 1e-4), "QAT, 2 epochs at lr 1e-4"),
    "qat8_lr1e-4": (lambda c: qat(c, 8, 1e-4), "QAT, 8 epochs at lr 1e-4"),
    "qat2_eps1e-7": (lambda c: qat(c, 2, 1e-5, 1e-7), "QAT, 2 epochs, lr 1e-5, Adam eps 1e-7"),
    "ptq+lbc": (lambda c: with_logit_correction(c, "ptq"), "ptq + logit bias correction"),
    "onnx_s8s8_minmax": (
        lambda c: onnx_int8(c, activations="int8", ranges="minmax", logit_correction=None),
        "ONNX: int8 activations, min/max (the exporter before)",
    ),
    "onnx_u8s8_minmax": (
        lambda c: onnx_int8(c, ranges="minmax", logit_correction=None),
        "ONNX: uint8 activations, min/max",
    ),
    "onnx_u8s8_ls": (
        lambda c: onnx_int8(c, logit_correction=None),
        "ONNX: uint8, least-squares ranges",
    ),
    "onnx_u8s8_ls_lbc": (
        lambda c: onnx_int8(c, logit_correction="mean_log"),
        "ONNX: uint8, least squares, logit corr. (the exporter before)",
    ),
    "prefix10": (lambda c: debugger_prefix(c, 10), "ptq, first 10 tensors float"),
    "prefix20": (lambda c: debugger_prefix(c, 20), "ptq, first 20 tensors float"),
    "prefix10+lbc": (lambda c: with_logit_correction(c, "prefix10"), "prefix10 + logit corr."),
    "prefix20+lbc": (lambda c: with_logit_correction(c, "prefix20"), "prefix20 + logit corr."),
    "qat0+lbc": (lambda c: with_logit_correction(c, "qat0"), "qat0 + logit bias correction"),
    "qat2+lbc": (lambda c: with_logit_correction(c, "qat2"), "qat2 + logit bias correction"),
    "qat8+lbc": (lambda c: with_logit_correction(c, "qat8"), "qat8 + logit bias correction"),
    "qat4_eps1e-7": (lambda c: qat(c, 4, 1e-5, 1e-7), "QAT, 4 epochs, lr 1e-5, Adam eps 1e-7"),
    **{
        f"qat{e}_{r}": (lambda c, e=e, r=r: qat(c, e, regions=r), f"QAT, {e} epochs, {r} float")
        for e in (0, 2, 8)
        for r in FLOAT_REGIONS
    },
    **{
        f"qat{e}_{r}+lbc": (
            lambda c, e=e, r=r: with_logit_correction(c, f"qat{e}_{r}"),
            f"qat{e}_{r} + logit corr.",
        )
        for e in (0, 8)
        for r in FLOAT_REGIONS
    },
    **{
        f"qat{e}_{r}+ce": (
            lambda c, e=e, r=r: with_logit_correction(c, f"qat{e}_{r}", "cross_entropy"),
            f"qat{e}_{r} + logit corr. fitted by cross-entropy",
        )
        for e in (0, 2, 8)
        for r in FLOAT_REGIONS
    },
    **{
        f"qat{e}_block0_lsq": (
            lambda c, e=e: qat(c, e, regions="block0", ranges="learned"),
            f"QAT, {e} epochs, block0 float, activation ranges learnt (LSQ gradient)",
        )
        for e in (2, 8)
    },
    **{
        f"qat{e}_block0_lsq+ce": (
            lambda c, e=e: with_logit_correction(c, f"qat{e}_block0_lsq", "cross_entropy"),
            f"qat{e}_block0_lsq + logit corr. fitted by cross-entropy",
        )
        for e in (2, 8)
    },
    "onnx_u8s8_ls_lbc_block0": (
        lambda c: onnx_int8(
            c, float_prefix_end=float_regions("block0").prefix_end, logit_correction="mean_log"
        ),
        "ONNX: uint8, least squares, logit corr., stem and first block float",
    ),
    "onnx_u8s8_ls_block0": (
        lambda c: onnx_int8(
            c, float_prefix_end=float_regions("block0").prefix_end, logit_correction=None
        ),
        "ONNX: uint8, least squares, stem and first block float, no logit corr.",
    ),
    "onnx_u8s8_ls_ce_block0": (
        lambda c: onnx_int8(
            c,
            float_prefix_end=float_regions("block0").prefix_end,
            logit_correction="cross_entropy",
        ),  # fmt: skip
        "ONNX: uint8, least squares, stem and first block float, logit corr. by cross-entropy",
    ),
    "onnx_u8s8_ls_lbc_block2": (
        lambda c: onnx_int8(
            c, float_prefix_end=float_regions("block2").prefix_end, logit_correction="mean_log"
        ),
        "ONNX: the exporter's recipe, stem and blocks 0-2 float (its default)",
    ),
    "onnx_u8s8_ls_lbc_block2_late": (
        lambda c: onnx_int8(
            c,
            float_prefix_end=float_regions("block2_late").prefix_end,
            float_tail_start=float_regions("block2_late").tail_start,
            logit_correction="mean_log",
        ),
        "ONNX: the exporter's recipe, stem, blocks 0-2, blocks 12-14 and the attention float",
    ),
    "onnx_u8s8_ls_lbc_stem": (
        lambda c: onnx_int8(
            c, float_prefix_end=float_regions("stem").prefix_end, logit_correction="mean_log"
        ),
        "ONNX: the exporter's recipe, stem float",
    ),
    "onnx_nncf": (onnx_nncf, "ONNX: NNCF post-training, fast bias correction, head float"),
    "onnx_nncf_lbc": (
        lambda c: onnx_with_logit_correction(c, "onnx_nncf"),
        "ONNX: NNCF post-training + logit corr.",
    ),
}


def file_runtime(content: bytes) -> str:
    """``tflite`` or ``onnx``: what runs a recipe's file, read from its bytes (a TFLite
    flatbuffer carries the identifier ``TFL3`` at bytes 4-8; anything else here is ONNX)."""
    return "tflite" if content[4:8] == b"TFL3" else "onnx"


def evaluate(ctx: Context, name: str, content: bytes) -> dict:
    """Write the file, score it on both splits, count its partitions."""
    from mobile_skin.bench.tflite_profile import list_ops
    from mobile_skin.common.fileio import shown_path, write_bytes
    from mobile_skin.model.runtime import OnnxRuntime, TFLiteRuntime, predict_inputs
    from mobile_skin.parity import gate as parity

    kind = file_runtime(content)
    onnx_file = kind == "onnx"
    path = write_bytes(ctx.out_dir / f"{name}.{kind}", content)
    runtime = OnnxRuntime(path, threads=2) if onnx_file else TFLiteRuntime(path, threads=2)
    row: dict = {"method": name, "description": METHODS[name][1], "file": shown_path(path),
                 "mb": round(len(content) / 1e6, 3)}  # fmt: skip
    if onnx_file:
        row.update(onnxruntime_kernels(path))
    else:
        ops = list_ops(content)
        row["partitions"] = len({o.partition for o in ops if o.partition is not None})
        row["ops_outside_xnnpack"] = sum(o.partition is None for o in ops)
    for split_name, d in ctx.data.items():
        probs = predict_inputs(runtime, d.inputs, len(ctx.spec.classes), progress=name)
        c = parity.compare(split_name, d.labels, probs, ctx.spec.classes,
                           ctx.reference[split_name], parity.DECIDED_MARGIN, ids=d.ids)  # fmt: skip
        row[split_name] = {
            k: getattr(c, k)
            for k in ("agreement", "decided_agreement", "decided", "flips", "flips_by_margin",
                      "delta_balanced_accuracy", "delta_balanced_accuracy_ci",
                      "delta_sensitivity", "max_abs_diff")
        }  # fmt: skip
        row[split_name]["worst_sensitivity_change"] = min(
            (v for v in c.delta_sensitivity if v is not None), default=0.0
        )
    return row


def onnxruntime_kernels(path: Path) -> dict:
    """What onnxruntime makes of an ONNX file on this CPU (all graph optimisations): how many
    convolutions run as fused int8 ``QLinearConv`` and how many Quantize/Dequantize nodes
    remain (each a float round trip)."""
    import tempfile

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    return {
        "qlinear_conv": ops.count("QLinearConv"),
        "float_conv": sum(op in ("Conv", "FusedConv") or op.endswith("NchwcConv") for op in ops),
        "quantize_dequantize": ops.count("QuantizeLinear") + ops.count("DequantizeLinear"),
    }


def _timer(path: Path):
    """A zero-argument function running one batch-1 inference of a .tflite or .onnx file on
    random inputs with one thread."""
    from mobile_skin.model.runtime import load_runtime

    runtime = load_runtime(path, threads=1)
    rng = np.random.default_rng(0)
    inputs = {}
    for name in runtime.input_names:
        shape = [1 if d is None else d for d in runtime.input_shape(name)]
        inputs[name] = rng.uniform(0, 255 if name == "image" else 1, shape).astype(np.float32)
    return lambda: runtime.predict(inputs)


def time_files(paths: dict[str, Path], rounds: int = 5, runs: int = 200, warmup: int = 20):
    """Round-robin median ms per file (1 thread, batch 1; XNNPACK for TFLite, onnxruntime for
    ONNX): the median of per-round medians, so every file sees the same machine load."""
    timers = {k: _timer(p) for k, p in paths.items()}
    per_round: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(rounds):
        for k, run_once in timers.items():
            for _ in range(warmup):
                run_once()
            times = np.empty(runs)
            for i in range(runs):
                start = time.perf_counter()
                run_once()
                times[i] = time.perf_counter() - start
            per_round[k].append(float(np.median(times)) * 1e3)
    return {k: float(np.median(v)) for k, v in per_round.items()}


def run(
    opened: RunData,
    methods: list[str],
    results: Path,
    *,
    timing: bool = False,
    log=print,
) -> dict:
    """Build and score ``methods``, optionally time every file, merge into ``results``."""
    from mobile_skin.common.fileio import shown_path, write_json, write_text
    from mobile_skin.common.machine import describe

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"unknown recipe(s) {unknown}; choose from {', '.join(METHODS)}")
    ctx = load_context(opened, log=log)
    doc = json.loads(results.read_text()) if results.is_file() else {"rows": {}}
    doc.update(run=shown_path(ctx.paths.root), machine=describe(), classes=list(ctx.spec.classes))
    for name in methods:
        start = time.perf_counter()
        log(f"{name}: building")
        content = METHODS[name][0](ctx)
        row = evaluate(ctx, name, content)
        row["build_s"] = round(time.perf_counter() - start, 1)
        doc["rows"][name] = row
        log(f"{name}: test {row['test']['agreement']:.4f} val {row['val']['agreement']:.4f}")
        write_json(results, doc)
    if timing:
        from mobile_skin.common.fileio import write_bytes

        fp32 = write_bytes(ctx.out_dir / "fp32.tflite", float_model(ctx))
        onnx_fp32 = write_bytes(ctx.out_dir / "fp32.onnx", onnx_float(ctx))
        built = {k: ctx.out_dir / Path(r["file"]).name for k, r in doc["rows"].items()}
        files = {"fp32": fp32, "onnx_fp32": onnx_fp32,
                 **{k: path for k, path in built.items() if path.is_file()}}  # fmt: skip
        load = os.getloadavg()[0]
        times = time_files(files)
        doc["timing"] = {"fp32_ms": times["fp32"], "onnx_fp32_ms": times["onnx_fp32"],
                         "load_1m_start": load, "load_1m_end": os.getloadavg()[0],
                         "threads": 1, "batch": 1}  # fmt: skip
        for k, r in doc["rows"].items():
            if k in times:
                base = times["onnx_fp32" if built[k].suffix == ".onnx" else "fp32"]
                r["ms"], r["ratio_to_fp32"] = times[k], times[k] / base
    write_json(results, doc)
    write_text(results.with_suffix(".md"), render(doc))
    return doc


def render(doc: dict) -> str:
    """The comparison table."""
    from mobile_skin.common.machine import headline
    from mobile_skin.contract.encoding import CLASSES
    from mobile_skin.parity.report import pct

    t = doc.get("timing", {})
    classes = doc.get("classes", CLASSES)  # tables written before the run's classes were kept
    lines = [
        f"## Int8 recipes for `{Path(doc['run']).name}` on {headline(doc['machine'])}",
        "",
        "Agreement with Keras on the test and validation splits; decided rows: Keras top-2 "
        "margin >= 0.05 (the parity gate's). Delta balanced accuracy in points. Latency: 1 "
        "thread, batch 1 (TFLite: XNNPACK; ONNX: onnxruntime's CPU provider), median of 5 "
        "round-robin rounds of 200 runs"
        + (
            f"; x fp32 against the same runtime's float32 file in the same rounds (TFLite "
            f"{t['fp32_ms']:.2f} ms"
            + (f", ONNX {t['onnx_fp32_ms']:.2f} ms" if t.get("onnx_fp32_ms") else "")
            + f"), load "
            f"average {t['load_1m_start']:.1f} -> {t['load_1m_end']:.1f}"
            if t
            else " (not timed)"
        )
        + f". Each row: `python benchmarks/int8_methods.py {doc['run']} --methods NAME`, NAME "
        "the recipe before its colon (a `+` recipe reuses its base's file if built); the ms "
        "columns: the same command with `--time`, which times every file built so far. Gate: "
        "the parity gate's 8-bit rules on both splits (mobile_skin/parity/gate.py: decided "
        "agreement >= 99%, |delta bal. acc.| <= 1.5 points, its 95% interval above -3, no "
        "class's sensitivity down more than 5), with the rules each split breaks.",
        "",
        "| recipe | test agreement | test decided | val agreement | val decided | delta bal. acc. "
        "test / val | worst class sens. test / val | gate | ms | x fp32 | graph as run | MB |",
        "|" + " --- |" * 12,
    ]
    for name, r in doc["rows"].items():
        te, va = r["test"], r["val"]
        # today's words for a recipe still offered (which one the exporter writes changes)
        described = METHODS[name][1] if name in METHODS else r["description"]
        lines.append(
            f"| {name}: {described} | {pct(te['agreement'])} | "
            f"{pct(te['decided_agreement'])} | {pct(va['agreement'])} | "
            f"{pct(va['decided_agreement'])} | {100 * te['delta_balanced_accuracy']:+.2f} / "
            f"{100 * va['delta_balanced_accuracy']:+.2f} | "
            f"{100 * te['worst_sensitivity_change']:+.1f} / "
            f"{100 * va['worst_sensitivity_change']:+.1f} | "
            f"{gate_verdict(r, classes)} | {_timing(r)} | "
            f"{_structure(r)} | {r['mb']:.2f} |"
        )
    return "\n".join(lines) + "\n"


#: The comparison fields a recipe row keeps per split that the parity gate's rules read.
_JUDGED = ("decided_agreement", "decided", "delta_balanced_accuracy",
           "delta_balanced_accuracy_ci", "delta_sensitivity", "max_abs_diff")  # fmt: skip


def gate_verdict(row: dict, classes: Sequence[str]) -> str:
    """The parity gate's 8-bit rules (``mobile_skin.parity.gate.EIGHT_BIT``, those of every
    int8 export) on the row's stored figures, both splits: ``PASS``, or ``FAIL`` and the rules
    each split breaks (``FAIL test: decided, interval, bcc``)."""
    from mobile_skin.evaluation.stats import SplitComparison
    from mobile_skin.parity.gate import EIGHT_BIT, broken_rules

    broken = []
    for split in SPLITS:
        # the model's own metrics are not kept in a recipe row, and no rule reads them
        c = SplitComparison(split, n=0, accuracy=np.nan, balanced_accuracy=np.nan, macro_f1=np.nan,
                            macro_auc=None, ece=np.nan, sensitivity=[],
                            **{k: row[split][k] for k in _JUDGED})  # fmt: skip
        rules = broken_rules(EIGHT_BIT, c, classes)
        if rules:
            broken.append(f"{split}: {', '.join(r.rule for r in rules)}")
    return "FAIL " + "; ".join(broken) if broken else "PASS"


def _timing(row: dict) -> str:
    """The ms and x-fp32 cells: measured figures, or "not timed" for rows no --time reached."""
    if row.get("ms") is None:
        return "not timed | not timed"
    return f"{row['ms']:.2f} | {row['ratio_to_fp32']:.2f}"


def _structure(row: dict) -> str:
    """How the runtime executes the file: XNNPACK partitions, or onnxruntime's fused kernels."""
    if "partitions" in row:
        return f"{row['partitions']} XNNPACK partition(s), {row['ops_outside_xnnpack']} ops outside"
    return (
        f"{row['qlinear_conv']} QLinearConv, {row['float_conv']} float Conv, "
        f"{row['quantize_dequantize']} Q/DQ"
    )
