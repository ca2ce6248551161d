"""Quantization-aware training on the smoke run: exact rewrite, calibrated fake-quant, int8 file."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from mobile_skin.common.errors import UserError
from mobile_skin.contract.pipeline import make_dataset
from mobile_skin.contract.spec import IMAGE_INPUT, METADATA_INPUT, OUTPUT
from mobile_skin.data.run import load_run_data
from mobile_skin.data.splits import subset
from mobile_skin.export.convert_tflite import convert_tflite
from mobile_skin.model.network import load_model
from mobile_skin.quant import edge_model, qat
from mobile_skin.quant.edge_model import INT8_FLOAT_OPS
from mobile_skin.quant.qat_graph import (
    ChannelSum,
    ConstantAdd,
    ConstantScale,
    GammaScale,
    SpatialSoftmax,
    to_qat_graph,
)


@pytest.fixture(scope="module")
def smoke(smoke_run):
    """The smoke run's float model, spec, and a few of its test images."""
    cfg, spec, frame, split = load_run_data(smoke_run)
    rows = subset(frame, split, "test").head(16)
    batches = make_dataset(rows, spec.image_size, 16, encoding=spec.encoding, labels=False)
    inputs = next(iter(batches))
    return load_model(smoke_run.best_model), spec, {k: v.numpy() for k, v in inputs.items()}


@pytest.fixture(scope="module")
def data(smoke_run):
    """What the exporter hands QAT: the smoke run's rows and training settings."""
    cfg, spec, frame, split = load_run_data(smoke_run)
    return qat.QatData.from_config(
        cfg, spec, subset(frame, split, "train"), subset(frame, split, "val")
    )


@pytest.fixture(scope="module")
def calibrated(data, smoke):
    """What the exporter does with ``--all-int8`` (no float start): ``quantize_aware`` on the
    edge model, here without fine-tuning and with min/max ranges: the least-squares ranges (the
    default), searched on 14 images, clip some of the smoke model's test images hard (per-image
    max |dp| up to 0.96 measured), which would hide what these tests check: the graph, its
    description and the conversion."""
    edge = edge_model.to_edge_model(smoke[0])
    log: list[str] = []
    qat_model, lines = qat.quantize_aware(
        data, edge, epochs=0, calibration_samples=14, log=log.append, range_method="minmax"
    )
    return edge, qat_model, lines, log


def test_rewrite_computes_the_same_function_bit_for_bit(smoke):
    model, _, inputs = smoke
    graph, origin = to_qat_graph(model)
    kinds = Counter(type(layer).__name__ for layer in graph.layers)
    assert not {"TFOpLambda", "SoftAttention", "Rescaling"} & set(kinds)
    assert kinds["ConstantAdd"] == kinds["ConstantScale"] == 26  # 25 TFOpLambda each + Rescaling
    assert set(origin.values()) == {
        "TFOpLambda __operators__.add", "TFOpLambda math.multiply", "Rescaling", "SoftAttention"
    }  # fmt: skip
    assert graph.output_names == [OUTPUT]
    assert sorted(graph.input_names) == [IMAGE_INPUT, METADATA_INPUT]
    assert len(graph.weights) == len(model.weights)
    want = model(inputs, training=False).numpy()
    got = graph(inputs, training=False).numpy()
    assert np.array_equal(want, got)
    # The edge model (what the exporter passes) keeps only the Rescaling to rewrite.
    edge = edge_model.to_edge_model(model)
    graph, origin = to_qat_graph(edge)
    assert set(origin.values()) == {"Rescaling"}
    assert np.array_equal(
        edge(inputs, training=False).numpy(), graph(inputs, training=False).numpy()
    )


def test_small_layers_compute_by_hand_and_round_trip():
    x = tf.constant([[[[-4.0, 0.5], [2.0, 9.0]]]])  # (1, 1, 2, 2)
    np.testing.assert_array_equal(ConstantAdd(3.0)(x).numpy(), x.numpy() + 3.0)
    np.testing.assert_array_equal(ConstantScale(0.5)(x).numpy(), x.numpy() * 0.5)
    np.testing.assert_array_equal(ChannelSum()(x).numpy(), [[[[-3.5], [11.0]]]])
    np.testing.assert_allclose(GammaScale(2.0)(x).numpy(), 2.0 * x.numpy())
    soft = SpatialSoftmax()(x).numpy()  # softmax over the 2 positions, per channel
    np.testing.assert_allclose(soft.sum(axis=(1, 2)), 1.0, rtol=1e-6)
    want = np.exp([-4.0, 2.0]) / np.exp([-4.0, 2.0]).sum()
    np.testing.assert_allclose(soft[0, 0, :, 0], want, rtol=1e-6)
    for layer in (ConstantAdd(3.0, name="a"), ConstantScale(0.25), GammaScale(1.5)):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def _check_calibrated(model, qat_model, lines, log, inputs):
    assert any(re.fullmatch(r"qat: \d+ ranges calibrated on 14 training images \(minmax\)", x)
               for x in log), log  # fmt: skip
    assert any(x.startswith("qat: val top-1 agreement fake-quant vs float") for x in log), log
    assert qat_model.output_names == [OUTPUT]
    text = "\n".join(lines)
    for kind in {type(layer).__name__ for layer in model.layers}:
        assert kind in text, f"{kind} missing from the description"
    # Every activation range was calibrated: none is still tfmot's initial [-6, 6]. (Kernel
    # ranges are set from the weights; the edge model's x6 depthwise kernels really are +-6.)
    ranges = {w.name: w.numpy() for w in qat_model.weights if w.name.endswith(("_min:0", "_max:0"))}
    mins = [name for name in ranges if name.endswith("_min:0") and "kernel" not in name]
    untouched = [
        n for n in mins if np.all(ranges[n] == -6) and np.all(ranges[n[:-6] + "_max:0"] == 6)
    ]
    assert len(mins) > 80 and not untouched, untouched
    # Fake-quant noise only. The bounds cover the smoke models this fixture trains (a new one
    # each session), whose barely trained layers amplify int8 rounding over ~50 layers: measured
    # mean |dp| from 7e-5 to 0.04; per-image max |dp| mostly ~0.01-0.1, single images up to 0.61.
    want = model(inputs, training=False).numpy()
    got = qat_model(inputs, training=False).numpy()
    per_image = np.abs(got - want).max(axis=1)
    assert np.abs(got - want).mean() < 0.08, np.abs(got - want).mean()
    assert np.median(per_image) < 0.2 and per_image.max() < 0.9, per_image
    # The image input is exact in int8 (fixed range [0, 255], scale 1).
    image_q = next(layer for layer in qat_model.layers if type(layer).__name__ == "QuantizeLayer"
                   and qat.feeds_on(layer) == IMAGE_INPUT)  # fmt: skip
    np.testing.assert_array_equal(image_q(inputs[IMAGE_INPUT], training=False), inputs[IMAGE_INPUT])


def test_calibrated_qat_model_is_close_to_float_and_described(calibrated, smoke):
    edge, qat_model, lines, log = calibrated
    _check_calibrated(edge, qat_model, lines, log, smoke[2])
    # The head the int8 export keeps in float is left unwrapped (float) and said so; the
    # positional softmax, which feeds int8 ops, is int8 at TFLite's fixed softmax scale.
    plain = Counter(
        type(layer).__name__
        for layer in qat_model.layers
        if type(layer).__name__ not in ("InputLayer", "QuantizeLayer", "QuantizeWrapperV2")
    )
    assert plain == {"Dense": 5, "Concatenate": 1, "Activation": 1}, plain
    text = "\n".join(lines)
    assert "Dense x 5: float32 FULLY_CONNECTED, not fake-quantized" in text
    assert "Activation x 1: float32 SOFTMAX" in text
    assert "Softmax x 1: int8 output, fixed range [0, 0.996094]" in text
    assert "DepthwiseConv2D x 32: int8 depthwise_kernel per-channel" in text


@pytest.mark.slow  # the same checks on the trained (not edge-rewritten) graph, ~25 s
def test_trained_graph_calibrates_too(smoke, data):
    model, _, inputs = smoke
    log: list[str] = []
    qat_model, lines = qat.quantize_aware(
        data, model, epochs=0, calibration_samples=14, log=log.append, range_method="minmax"
    )
    _check_calibrated(model, qat_model, lines, log, inputs)
    assert "TFOpLambda __operators__.add -> ConstantAdd x 25" in "\n".join(lines)


def _range_snapshots(monkeypatch) -> list[dict[str, np.ndarray]]:
    """The activation ranges each time ``quantize_aware`` compares float and fake-quant on the
    validation split: before fine-tuning, then after it."""
    snapshots = []
    compare = qat._compare_on_val

    def spy(float_model, qat_model, *args, **kwargs):
        snapshots.append(_activation_ranges(qat_model))
        return compare(float_model, qat_model, *args, **kwargs)

    monkeypatch.setattr(qat, "_compare_on_val", spy)
    return snapshots


@pytest.mark.slow  # fine-tuning traces the training step of the whole QAT graph (~1 min)
@pytest.mark.parametrize("targets", ["labels", "float_model"])
def test_quantize_aware_fine_tunes(targets, data, smoke, monkeypatch):
    model = edge_model.to_edge_model(smoke[0])
    log: list[str] = []
    snapshots = _range_snapshots(monkeypatch)
    qat_model, lines = qat.quantize_aware(
        data, model, epochs=1, batch_size=8, steps_per_epoch=2, calibration_samples=14,
        targets=targets, learning_rate=1e-3, log=log.append,
    )  # fmt: skip
    # (lr 1e-3: with Adam's epsilon 0.1 and a student that starts next to its teacher, two
    # distillation steps at 1e-5 can move the first kernel by less than a float32 ulp.)
    assert any(line.startswith("epoch 1/1:") and "bal_acc" in line for line in log), log
    assert any(
        f"steps on {targets}" in line and "ranges fixed" in line and "2 Dropout off" in line
        for line in log
    ), log
    assert any("fake-quant vs float after fine-tuning" in line for line in log), log
    assert any(line.endswith("calibrated on 14 training images (mse)") for line in log), log
    # Weights moved (int8 convolutions and float head alike), BatchNorm statistics stayed. Two
    # steps may move one particular kernel by less than a float32 ulp (Adam's epsilon is 0.1),
    # so the convolutions are checked together.
    convs = [layer.name for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert any(
        not np.array_equal(
            _var(qat_model.get_layer(name), f"{name}/kernel:0"),
            model.get_layer(name).kernel.numpy(),
        )
        for name in convs
    ), convs
    head = qat_model.get_layer(f"{OUTPUT}/logits").kernel.numpy()
    assert not np.array_equal(head, model.get_layer(f"{OUTPUT}/logits").kernel.numpy())
    bn = qat_model.get_layer("Conv/BatchNorm/div6").layer
    frozen = model.get_layer("Conv/BatchNorm/div6").moving_mean.numpy()
    np.testing.assert_array_equal(bn.moving_mean.numpy(), frozen)
    # The activation ranges did not move while fine-tuning (seen before and after it).
    assert len(snapshots) == 2
    before, after = snapshots
    assert before.keys() == after.keys() and len(before) > 160  # min and max of each range
    for name, want in before.items():
        np.testing.assert_array_equal(after[name], want, err_msg=name)
    text = "\n".join(lines)
    for kind in {type(layer).__name__ for layer in model.layers}:
        assert kind in text, f"{kind} missing from the description"


@pytest.mark.slow  # fine-tuning traces the training step of the whole QAT graph (~1 min)
def test_quantize_aware_learns_ranges(data, smoke, monkeypatch):
    """``ranges="learned"``: the activation ranges in the model's variables after fine-tuning
    differ from the calibrated ones (the image input's does not), and the log says by how much."""
    model = edge_model.to_edge_model(smoke[0])
    log: list[str] = []
    snapshots = _range_snapshots(monkeypatch)
    qat_model, _ = qat.quantize_aware(
        data, model, epochs=1, batch_size=8, steps_per_epoch=2, calibration_samples=14,
        log=log.append, ranges="learned", range_learning_rate=0.05,
    )  # fmt: skip
    assert any("ranges learned (lr 0.05)" in line for line in log), log
    moved = [line for line in log if "learnt ranges, width after / before" in line]
    assert len(moved) == 1 and not moved[0].endswith("max 1.000"), log
    image_q = next(layer for layer in qat_model.layers if type(layer).__name__ == "QuantizeLayer"
                   and qat.feeds_on(layer) == IMAGE_INPUT)  # fmt: skip
    np.testing.assert_array_equal(
        image_q(smoke[2][IMAGE_INPUT], training=False), smoke[2][IMAGE_INPUT]
    )
    before, after = snapshots
    assert before.keys() == after.keys() == _activation_ranges(qat_model).keys()
    changed = [n for n in before if not np.allclose(after[n], before[n], rtol=1e-3)]
    assert len(changed) > len(before) // 4, (len(changed), len(before))


def test_fine_tuning_sees_the_inference_network():
    # Dropout off and BatchNorm frozen: training-mode calls compute what the file will.
    x = tf_keras.Input((8,), name="x")
    h = tf_keras.layers.BatchNormalization(name="bn")(tf_keras.layers.Dense(16)(x))
    model = tf_keras.Model(x, tf_keras.layers.Dense(3)(tf_keras.layers.Dropout(0.5)(h)))
    inputs = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    assert not np.allclose(model(inputs, training=True), model(inputs, training=False))
    assert qat._inference_mode_layers(model) == (1, 1)
    np.testing.assert_allclose(model(inputs, training=True), model(inputs, training=False))


def test_fake_quant_and_mse_range_by_hand():
    # Grid points of [-1, 2] at 8 bits (step 3/255, zero exact) come back unchanged.
    grid = (np.arange(256) - 85) * (3.0 / 255)
    np.testing.assert_allclose(qat.fake_quant(grid, -1.0, 2.0), grid, atol=1e-12)
    np.testing.assert_allclose(qat.fake_quant(np.array([5.0, -3.0]), -1.0, 2.0), [2.0, -1.0])
    # One outlier among many small values: the search clips it for a finer step ...
    values = np.concatenate([np.random.default_rng(0).uniform(0.0, 1.0, 10_000), [3.0]])
    low, high = qat.mse_range(values, 0.0, 3.0)
    assert low == 0.0 and 0.9 <= high < 3.0, high
    error = lambda lo, hi: np.mean((qat.fake_quant(values, lo, hi) - values) ** 2)  # noqa: E731
    assert error(low, high) < error(0.0, 3.0)
    # ... and keeps the min/max range of values that fill it evenly.
    even = np.linspace(-2.0, 2.0, 4001)
    assert qat.mse_range(even, -2.0, 2.0) == (-2.0, 2.0)


def test_calibrate_rejects_an_unknown_method(calibrated):
    with pytest.raises(UserError, match="unknown range calibration 'p99'"):
        qat.calibrate(calibrated[1], [], method="p99")


def _activation_ranges(model) -> dict[str, np.ndarray]:
    return {
        w.name: w.numpy().copy()
        for w in model.weights
        if w.name.endswith(("_min:0", "_max:0")) and "kernel" not in w.name
    }


def _var(wrapper, name: str) -> np.ndarray:
    """The variable called ``name`` of a QuantizeWrapper (it replaces the layer's attribute)."""
    return next(w.numpy() for w in wrapper.weights if w.name == name)


@pytest.fixture(scope="module")
def converted(calibrated, smoke):
    """The calibrated QAT model through the exporter's conversion (float head kept)."""
    return convert_tflite(calibrated[1], smoke[1], "int8", None, INT8_FLOAT_OPS, qat=True)


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_converted_file_is_int8_but_the_head_and_runs_by_signature(converted, calibrated, smoke):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=converted)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    float_ops = []
    for op in ops:
        dtypes = {tensors[i]["dtype"] for i in [*op["inputs"], *op["outputs"]] if i >= 0}
        if np.float32 in dtypes:
            float_ops.append(op["op_name"])
    # The image's QUANTIZE, a DEQUANTIZE into each float partial logit, and the float head
    # (metadata Dense, 3 partial Dense, the logit sum, their concatenation, the output softmax).
    assert Counter(float_ops) == {
        "QUANTIZE": 1, "DEQUANTIZE": 2, "FULLY_CONNECTED": 5, "CONCATENATION": 1, "SOFTMAX": 1,
    }, Counter(float_ops)  # fmt: skip
    kinds = Counter(op["op_name"] for op in ops)
    assert kinds["CONV_2D"] == 45 and kinds["DEPTHWISE_CONV_2D"] == 32 and kinds["SOFTMAX"] == 2
    assert kinds["HARD_SWISH"] == 0 and "FLEX" not in str(kinds)
    signature = interpreter.get_signature_list()["serving_default"]
    assert sorted(signature["inputs"]) == [IMAGE_INPUT, METADATA_INPUT]
    assert signature["outputs"] == [OUTPUT]
    runner = interpreter.get_signature_runner("serving_default")
    inputs, qat_model = smoke[2], calibrated[1]
    want = qat_model(inputs, training=False).numpy()
    for i in range(4):
        got = runner(**{k: v[i : i + 1] for k, v in inputs.items()})[OUTPUT]
        assert got.shape == (1, 7) and abs(float(got.sum()) - 1.0) < 1e-4  # float softmax
        # The integer kernels round differently from fake-quant; ~50 layers of that drift.
        assert np.abs(got[0] - want[i]).max() < 0.5


def test_bad_arguments_and_unquantizable_layers_are_one_line_errors(data, smoke):
    with pytest.raises(UserError, match="epochs"):
        qat.quantize_aware(data, smoke[0], epochs=-1)
    with pytest.raises(UserError, match="targets 'teacher'"):
        qat.quantize_aware(data, smoke[0], targets="teacher")
    with pytest.raises(UserError, match="unknown ranges 'moving'"):
        qat.quantize_aware(data, smoke[0], ranges="moving")
    x = tf_keras.Input((4,), name="x")
    y = tf_keras.layers.Dense(2, name="d")(tf.math.sin(x))
    with pytest.raises(UserError, match=r"TFOpLambda math\.sin"):
        qat.build_qat_model(tf_keras.Model(x, y))

    @tf_keras.saving.register_keras_serializable(package="test_qat")
    class Mystery(tf_keras.layers.Layer):
        def call(self, t):
            return t * 2.0

    x = tf_keras.Input((4,), name="x")
    with pytest.raises(UserError, match=r"--qat: Layer m:.*Mystery.* is not supported"):
        qat.build_qat_model(tf_keras.Model(x, tf_keras.layers.Dense(2)(Mystery(name="m")(x))))


def test_float_regions_name_a_prefix_and_a_tail():
    from mobile_skin.quant.qat_scheme import FloatRegions

    L = tf_keras.layers
    x = tf_keras.Input((8, 8, 3), name="x")
    a = L.Conv2D(4, 3, padding="same", name="a")(x)
    b = L.ReLU(name="b")(a)
    c = L.Conv2D(4, 1, name="c")(b)
    d = L.Add(name="d")([b, c])
    e = L.GlobalAveragePooling2D(name="e")(d)
    side = L.GlobalMaxPooling2D(name="side")(c)
    out = L.Dense(2, name="out")(L.Concatenate(name="cat")([e, side]))
    model = tf_keras.Model(x, out)
    assert FloatRegions(prefix_end="b").names(model) == {"a", "b"}
    assert FloatRegions(prefix_end="d").names(model) == {"a", "b", "c", "d"}
    assert FloatRegions(tail_start=("e",)).names(model) == {"e", "cat", "out"}
    both = FloatRegions(prefix_end="b", tail_start=("side",)).names(model)
    assert both == {"a", "b", "side", "cat", "out"}
    assert FloatRegions().names(model) == set()
    with pytest.raises(UserError, match=r"no layer named \['nope'\]"):
        FloatRegions(prefix_end="nope").names(model)


def test_the_int8_comparisons_float_regions_name_layers_of_the_real_graph(smoke):
    """Every float region ``benchmarks/int8_methods.py`` offers resolves on the QAT graph of a
    MobileNetV3 model, the late region covers the last three blocks and the attention from
    block 12's expansion on, not block 11's residual add before it, and the longer float starts
    each add one whole block."""
    from mobile_skin.bench.int8_methods import FLOAT_REGIONS, float_regions
    from mobile_skin.model.network import get_backbone

    graph = to_qat_graph(edge_model.to_edge_model(smoke[0]))[0]
    # raises on an unknown layer
    covered = {name: float_regions(name).names(graph) for name in FLOAT_REGIONS}
    late = covered["block0_late"]
    assert {"expanded_conv_12/expand", "expanded_conv_13/Add", "soft_attention"} <= late
    assert "expanded_conv_11/Add" not in late and covered["block0"] < late
    assert covered["block0_14"] < covered["block0_13"] < late
    assert covered["block0"] < covered["block1"] < covered["block2"]
    assert "expanded_conv_1/expand" in covered["block1"]
    assert "expanded_conv_2/expand" not in covered["block1"]
    assert covered["block2_late"] == covered["block2"] | late
    backbone = get_backbone(smoke[1].backbone)
    assert FLOAT_REGIONS["block2"]["prefix_end"] == backbone.int8_float_prefix
    # block2_late is what the exporters' --float-tail keeps float
    assert FLOAT_REGIONS["block2_late"] == {
        "prefix_end": backbone.int8_float_prefix,
        "tail_start": backbone.int8_float_tail,
    }


def test_the_int8_comparison_table_says_which_rows_were_not_timed():
    """Rows built without ``--time`` show "not timed", never ``nan``; timed rows their figures."""
    from mobile_skin.bench.int8_methods import render

    split = {"agreement": 0.9, "decided_agreement": 0.95, "decided": 100,
             "delta_balanced_accuracy": -0.01, "delta_balanced_accuracy_ci": [-0.02, 0.0],
             "delta_sensitivity": [-0.05] + [0.0] * 6, "max_abs_diff": 0.3,
             "worst_sensitivity_change": -0.05}  # fmt: skip
    row = {"description": "d", "test": split, "val": split, "mb": 3.9, "partitions": 1,
           "ops_outside_xnnpack": 0}  # fmt: skip
    doc = {"run": "runs/r", "machine": {"cpu": "CPU", "cores": 2, "cpu_features": "avx2"},
           "rows": {"untimed": row, "timed": {**row, "ms": 1.5, "ratio_to_fp32": 0.6}}}  # fmt: skip
    table = render(doc)
    assert "nan" not in table and "(not timed)" in table
    assert "`python benchmarks/int8_methods.py runs/r --methods NAME`" in table
    assert "| not timed | not timed |" in table.split("| untimed:")[1].splitlines()[0]
    assert (
        "| FAIL test: decided; val: decided | 1.50 | 0.60 |"
        in (table.split("| timed:")[1].splitlines()[0])
    )
    doc["rows"]["qat8_block2"] = {**row, "description": "words of the day it was built"}
    assert "| qat8_block2: QAT, 8 epochs, block2 float |" in render(doc)  # today's words
    doc["timing"] = {"fp32_ms": 2.5, "load_1m_start": 0.1, "load_1m_end": 0.2}  # no ONNX row
    assert "TFLite 2.50 ms)" in render(doc) and "nan" not in render(doc)


def test_the_int8_comparison_judges_each_recipe_by_the_gates_own_rules():
    """A recipe row gets the export gate's verdict from its stored figures: a row that keeps
    every rule passes; each broken rule is named on the split that breaks it, a class by name."""
    from mobile_skin.bench.int8_methods import gate_verdict
    from mobile_skin.contract.encoding import CLASSES

    good = {"decided_agreement": 0.995, "decided": 900, "delta_balanced_accuracy": -0.01,
            "delta_balanced_accuracy_ci": [-0.025, 0.004], "max_abs_diff": 0.4,
            "delta_sensitivity": [0.0, -0.05, 0.01, None, 0.0, 0.0, 0.0]}  # fmt: skip
    assert gate_verdict({"test": good, "val": good}, CLASSES) == "PASS"  # -5 points is allowed
    bcc_down = {**good, "delta_sensitivity": [0.0, -0.059, 0.01, None, 0.0, 0.0, 0.0]}
    short = {**good, "decided_agreement": 886 / 898, "decided": 898,
             "delta_balanced_accuracy_ci": [-0.0328, 0.004]}  # fmt: skip
    verdict = gate_verdict({"test": short, "val": bcc_down}, CLASSES)
    assert verdict == "FAIL test: decided, interval; val: bcc"
    wide = {**good, "delta_balanced_accuracy": 0.016}  # |delta| counts both ways
    assert gate_verdict({"test": good, "val": wide}, CLASSES) == "FAIL val: bal. acc."


def test_the_int8_comparison_tells_tflite_from_onnx_by_the_files_bytes(model_files):
    """A recipe's runtime comes from its file, not from its name starting with ``onnx_``."""
    from mobile_skin.bench.int8_methods import file_runtime

    assert file_runtime(model_files["tflite"].read_bytes()) == "tflite"
    assert file_runtime(model_files["onnx"].read_bytes()) == "onnx"


@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs were expected:UserWarning")
def test_the_int8_comparisons_post_training_recipe_keeps_its_op_types_float(smoke, tmp_path):
    """``ptq_float_dw_mul`` (like ``ptq_float_dw`` and ``ptq_float_mean``, through TFLite's own
    op denylist): every depthwise convolution and MUL of the file stays float32, while the
    convolutions go int8."""
    from mobile_skin.bench.int8_methods import METHODS, Context
    from mobile_skin.export.convert_tflite import tflite_quantization_info

    model, spec, inputs = smoke
    samples = [{k: v[i : i + 1] for k, v in inputs.items()} for i in range(8)]
    ctx = Context(None, None, spec, model, edge_model.to_edge_model(model), None, None, samples,
                  {}, {}, tmp_path, log=lambda _m: None)  # fmt: skip
    ops = tflite_quantization_info(METHODS["ptq_float_dw_mul"][0](ctx), "int8")["ops"]
    assert ops["DEPTHWISE_CONV_2D:float32"] >= 28 and ops["MUL:float32"] >= 20, ops
    assert not {"DEPTHWISE_CONV_2D:int8", "MUL:int8"} & set(ops), ops
    assert ops["CONV_2D:int8"] >= 40 and "CONV_2D:float32" not in ops, ops
