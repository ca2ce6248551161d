"""tflite_profile: op lists, XNNPACK partitions, sub-model extraction, timing, the CLI."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from ai_edge_litert.interpreter import Interpreter

from mobile_skin.bench import tflite_profile as tp

L = tf_keras.layers
ROOT = Path(__file__).resolve().parents[1]


def _tiny_model() -> tf_keras.Model:
    """Conv -> Softmax -> Conv: XNNPACK has no int8 softmax, so two partitions in int8."""
    image = L.Input((8, 8, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", activation="relu")(image)
    x = L.Softmax(axis=-1)(x)
    x = L.Conv2D(4, 1)(x)
    return tf_keras.Model(image, L.GlobalAveragePooling2D()(x))


def _convert(model: tf_keras.Model, path: Path, int8: bool) -> Path:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        rng = np.random.default_rng(0)
        converter.representative_dataset = lambda: (
            [rng.uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)] for _ in range(8)
        )
    path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory) -> tuple[Path, Path]:
    """One Keras model converted to float32 and to full int8."""
    tf_keras.utils.set_random_seed(0)
    model, root = _tiny_model(), tmp_path_factory.mktemp("tflite")
    return (
        _convert(model, root / "tiny_fp32.tflite", int8=False),
        _convert(model, root / "tiny_int8.tflite", int8=True),
    )


@pytest.fixture(scope="module")
def tiny_int8(tiny_pair) -> Path:
    return tiny_pair[1]


# The tiny int8 file is converted from random calibration images, with float input and output.
QUANTIZED_INPUT_NOTE = "ignore:Statistics for quantized inputs were expected:UserWarning"


@pytest.mark.filterwarnings(QUANTIZED_INPUT_NOTE)
def test_partitions_and_the_op_outside(tiny_int8):
    ops = tp.list_ops(tp.read_bytes(tiny_int8))
    outside = [o.name for o in ops if o.partition is None]
    assert outside == ["SOFTMAX"]
    assert len({o.partition for o in ops if o.partition is not None}) == 2
    segs = tp.segments(ops)
    assert [s.delegated for s in segs] == [True, False, True]
    assert sum(len(s.ops) for s in segs) == len(ops)
    without = tp.list_ops(tp.read_bytes(tiny_int8), xnnpack=False)
    assert all(o.partition is None for o in without)


@pytest.mark.filterwarnings(QUANTIZED_INPUT_NOTE)
@pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")
def test_extracted_op_computes_what_it_computes_in_the_model(tiny_int8):
    content = tp.read_bytes(tiny_int8)
    ops = tp.list_ops(content)
    softmax = next(o for o in ops if o.name == "SOFTMAX")
    full = Interpreter(model_content=content, experimental_preserve_all_tensors=True)
    full.allocate_tensors()
    image = np.random.default_rng(3).uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
    full.set_tensor(full.get_input_details()[0]["index"], image)
    full.invoke()
    by_name = {t["name"]: t["index"] for t in full.get_tensor_details()}
    node = full._get_ops_details()[softmax.index]

    sub = Interpreter(model_content=tp.extract(content, [softmax.index]))
    sub.allocate_tensors()
    (inp,), (out,) = sub.get_input_details(), sub.get_output_details()
    assert list(inp["shape"]) == list(full.get_tensor(int(node["inputs"][0])).shape)
    sub.set_tensor(inp["index"], full.get_tensor(int(node["inputs"][0])))
    sub.invoke()
    np.testing.assert_array_equal(
        sub.get_tensor(out["index"]), full.get_tensor(by_name[softmax.output])
    )
    assert out["dtype"] == np.int8


def test_profile_times_segments_and_ops(tiny_int8):
    result = tp.profile(tiny_int8, runs=3, warmup=1)
    t = result["timing"]
    assert result["partitions"] == 2 and result["outside"] == 1
    assert 0 < t["overhead_ms"] < t["model_ms"] and t["model_no_xnnpack_ms"] > 0
    assert all(r["ms"] > 0 for r in result["segments"] + result["ops"])
    assert t["ops_sum_ms"] == pytest.approx(sum(r["ms"] for r in result["ops"]))
    text = tp.to_markdown(result)
    assert "| SOFTMAX | 1 | 1 |" in text and "Slowest" in text


def test_compare_matches_ops_across_conversions(tiny_pair):
    fp32, int8 = (tp.profile(p, runs=3, warmup=1) for p in tiny_pair)
    rows = {(r["op"], r["dtype"]): r for r in tp.compare(fp32, int8)}
    # Both convolutions and the softmax are found in the float file under their Keras names;
    # the int8 file's own QUANTIZE / DEQUANTIZE have no counterpart.
    assert rows[("CONV_2D", "int8")]["count"] == 2
    assert rows[("SOFTMAX", "int8")]["count"] == 1
    conv = rows[("CONV_2D", "int8")]
    assert conv["reference_ms"] > 0 and conv["ratio"] == pytest.approx(
        conv["ms"] / conv["reference_ms"]
    )
    unmatched = [r for r in rows.values() if r["dtype"].endswith("no match")]
    assert {r["op"] for r in unmatched} >= {"QUANTIZE"}
    assert all(r["reference_ms"] is None and r["ratio"] is None for r in unmatched)
    assert sum(r["count"] for r in rows.values() if r["dtype"] != "only in reference") == len(
        int8["ops"]
    )
    text = tp.compare_markdown(fp32, int8, list(rows.values()))
    assert "| CONV_2D | int8 | 2 |" in text and "Ops at least 1.1x slower than" in text


def test_op_key_drops_the_model_name():
    row = {"name": "CONV_2D", "output": "net_qat_graph/re_lu_6/Relu;net_qat_graph/conv/BiasAdd"}
    assert tp.op_key(row) == ("CONV_2D", "re_lu_6/Relu")
    assert tp.op_key({"name": "ADD", "output": "add"}) == ("ADD", "add")


def test_compare_needs_per_op_times(tiny_int8):
    untimed = tp.profile(tiny_int8, timing=False)
    with pytest.raises(tp.UserError, match="no per-op times"):
        tp.compare(untimed, untimed)


def _script():
    spec = importlib.util.spec_from_file_location(
        "profile_tflite", ROOT / "benchmarks" / "profile_tflite.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_prints_tables_and_writes_json(tiny_int8, tmp_path, capsys):
    out = tmp_path / "profile.json"
    assert _script().main([str(tiny_int8), "--no-timing", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 XNNPACK partition(s), 1 op(s) outside XNNPACK" in text
    assert out.is_file() and '"outside": 1' in out.read_text()


def test_cli_prints_no_delegate_line(tiny_int8):
    """LiteRT's "Created TensorFlow Lite XNNPACK delegate" line (C++, straight to fd 2, once per
    process) does not reach the terminal: a fresh process, where no interpreter has printed it
    yet."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "profile_tflite.py"), str(tiny_int8),
         "--runs", "2", "--warmup", "1"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "MOBILE_SKIN_VERBOSE": "0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 XNNPACK partition(s)" in done.stdout
    assert "Created TensorFlow Lite" not in done.stderr, done.stderr


def test_cli_compare_prints_the_table_and_stores_rows(tiny_pair, tmp_path, capsys):
    out = tmp_path / "profile.json"
    args = [*map(str, tiny_pair), "--runs", "3", "--warmup", "1", "--compare", "--json", str(out)]
    assert _script().main(args) == 0
    assert "#### `tiny_int8.tflite` against `tiny_fp32.tflite`, op by op" in capsys.readouterr().out
    assert '"compare"' in out.read_text()


def test_cli_compare_alone_is_an_error(tiny_int8, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _script().main([str(tiny_int8), "--compare"])
    assert exit_info.value.code == 2
    assert "--compare needs two or more files" in capsys.readouterr().err


@pytest.mark.parametrize("content", [None, b"not a model"])
def test_cli_bad_file_is_one_line_error(tmp_path, capsys, content):
    path = tmp_path / "model.tflite"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        _script().main([str(path), "--no-timing"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(path) in err and "\n" not in err
