"""The parity gate's table, verdicts, recorded rows and the cached Keras predictions."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mobile_skin import parity
from mobile_skin.encoding import MetadataEncoding
from mobile_skin.export import FORMATS
from mobile_skin.parity import FAIL, PASS, TOLERANCES, ParityRow, judge
from mobile_skin.run import RunPaths
from mobile_skin.spec import ModelSpec


def test_every_format_has_exactly_one_tolerance():
    assert set(TOLERANCES) == set(FORMATS)
    assert TOLERANCES["tflite_fp32"].max_abs_diff == TOLERANCES["onnx_fp32"].max_abs_diff == 1e-4
    assert TOLERANCES["tflite_fp16"].min_agreement == 0.995
    for fmt in ("tflite_int8", "tflite_int8_qat", "tflite_dynamic", "onnx_int8"):
        assert TOLERANCES[fmt].min_agreement == 0.98
        assert TOLERANCES[fmt].max_balanced_accuracy_delta == 0.015


def _row(fmt, agreement=1.0, max_abs_diff=0.0, balanced_accuracy=0.5, n=1000):
    return ParityRow(
        fmt,
        "model",
        1,
        0.0,
        n,
        balanced_accuracy=balanced_accuracy,
        agreement=agreement,
        max_abs_diff=max_abs_diff,
        mean_abs_diff=0.0,
    )


REF = _row("keras")


@pytest.mark.parametrize(
    ("row", "status"),
    [
        (_row("tflite_fp32", max_abs_diff=5e-5), PASS),
        (_row("onnx_fp32", max_abs_diff=2e-4), FAIL),
        (_row("tflite_fp16", agreement=0.996, max_abs_diff=0.3), PASS),
        (_row("tflite_fp16", agreement=0.994), FAIL),
        (_row("tflite_fp16", agreement=993 / 998, n=998), FAIL),  # 99.499%: below the bar
        (_row("tflite_int8", agreement=0.98, balanced_accuracy=0.514), PASS),
        (_row("onnx_int8", agreement=0.979), FAIL),
        (_row("tflite_dynamic", agreement=0.99, balanced_accuracy=0.484), FAIL),
        (
            _row("tflite_int8_qat", agreement=0.99, balanced_accuracy=0.52),
            FAIL,
        ),  # better is drift too
        (_row("tflite_fp32", max_abs_diff=float("nan")), FAIL),
    ],
)
def test_judge_applies_the_table(row, status):
    judged = judge(row, REF)
    assert judged.status == status, judged.reason
    assert judged.reason
    if row.n == 998:
        assert "99.49% (993/998) < 99.50%" in judged.reason


def test_score_measures_agreement_and_differences():
    spec = ModelSpec(image_size=32, encoding=None)
    ref = np.eye(7)[[0, 1, 2, 3]] * 0.9 + 0.1 / 7
    probs = ref.copy()
    probs[3] = np.roll(probs[3], 1)  # one row disagrees
    row = parity.score(_row("tflite_int8"), np.array([0, 1, 2, 3]), probs, spec, ref)
    assert row.agreement == 0.75 and row.n == 4
    assert row.max_abs_diff == pytest.approx(0.9)
    assert row.accuracy == 0.75


def test_record_replaces_the_row_of_the_same_format(tmp_path):
    paths = RunPaths(tmp_path)
    parity.record(paths, judge(_row("tflite_int8", agreement=0.5), REF), _row("keras"))
    parity.record(paths, judge(_row("onnx_fp32"), REF))
    parity.record(paths, judge(_row("tflite_int8", agreement=1.0), REF))
    doc = json.loads((tmp_path / "export" / "parity.json").read_text())
    assert [r["format"] for r in doc["rows"]] == ["keras", "tflite_int8", "onnx_fp32"]
    assert doc["rows"][1]["status"] == PASS
    md = (tmp_path / "export" / "parity.md").read_text()
    assert doc["machine"]["cpu"] in md.splitlines()[0]
    assert doc["machine"]["onnxruntime"] in md
    table = [line for line in md.splitlines() if line.startswith("| tflite_int8")]
    assert len(table) == 1 and table[0].count(" | ") == 12  # pipes inside cells are escaped


class CountingRuntime:
    """A fake runtime: fixed probabilities, counts calls."""

    kind, threads, input_names = "fake", None, ["image", "metadata"]

    def __init__(self):
        self.calls = 0

    def predict(self, inputs):
        self.calls += 1
        n = len(inputs["image"])
        return np.tile(np.linspace(0.1, 0.2, 7, dtype=np.float32), (n, 1))


def test_keras_predictions_are_cached_until_the_model_changes(tmp_path, synthetic_root):
    from mobile_skin.data import load_ham10000

    rows = load_ham10000(synthetic_root, verify_images=False, log=lambda _m: None).iloc[:5]
    spec = ModelSpec(image_size=32, encoding=MetadataEncoding())
    paths = RunPaths(tmp_path)
    paths.best_model.write_bytes(b"weights")
    rt = CountingRuntime()
    probs, row = parity.keras_reference(paths, rt, rows, spec, latency_runs=0, log=lambda _m: None)
    calls = rt.calls
    assert probs.shape == (5, 7) and row.status == parity.REFERENCE and row.n == 5
    again, row2 = parity.keras_reference(paths, rt, rows, spec, latency_runs=0, log=lambda _m: None)
    assert rt.calls == calls and np.array_equal(again, probs) and row2 == row
    st = paths.best_model.stat()
    os.utime(paths.best_model, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    parity.keras_reference(paths, rt, rows, spec, latency_runs=0, log=lambda _m: None)
    assert rt.calls > calls
