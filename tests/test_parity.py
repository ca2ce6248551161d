"""The parity gate's rules on hand-made probabilities, its recorded rows and the Keras cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mobile_skin.common.fileio import shown_path
from mobile_skin.contract.encoding import CLASSES, MetadataEncoding
from mobile_skin.contract.spec import ModelSpec
from mobile_skin.data.run import RunPaths
from mobile_skin.evaluation.stats import compare
from mobile_skin.export.exporter import FORMATS
from mobile_skin.parity import gate as parity
from mobile_skin.parity.gate import DECIDED_MARGIN, FAIL, PASS, TOLERANCES, ParityRow, judge

K = len(CLASSES)
MEL, NV = CLASSES.index("mel"), CLASSES.index("nv")


def test_every_format_has_exactly_one_tolerance():
    assert set(TOLERANCES) == set(FORMATS)
    assert TOLERANCES["tflite_fp32"].max_abs_diff == TOLERANCES["onnx_fp32"].max_abs_diff == 1e-4
    assert TOLERANCES["tflite_fp16"].min_decided_agreement == 0.999
    for fmt in ("tflite_int8", "tflite_dynamic", "onnx_int8"):
        tol = TOLERANCES[fmt]
        assert tol.min_decided_agreement == 0.99 and tol.max_balanced_accuracy_delta == 0.015
        assert tol.min_delta_ci_low == -0.03 and tol.max_sensitivity_drop == 0.05


def reference_probs(labels: np.ndarray, margin: float, rng) -> np.ndarray:
    """Confident-ish reference probabilities: the label on top by ``margin`` over the runner-up."""
    n = len(labels)
    probs = np.full((n, K), (1 - 0.5 - (0.5 - margin)) / (K - 2))
    runner = (labels + 1 + rng.integers(0, K - 1, n)) % K
    runner = np.where(runner == labels, (labels + 1) % K, runner)
    probs[np.arange(n), labels] = 0.5
    probs[np.arange(n), runner] = 0.5 - margin
    return probs


def swap_top2(probs: np.ndarray, rows) -> np.ndarray:
    """A copy with the top two classes of ``rows`` exchanged (a flip that keeps the margin)."""
    out = probs.copy()
    for i in rows:
        a, b = np.argsort(out[i])[-2:]
        out[i, [a, b]] = out[i, [b, a]]
    return out


@pytest.fixture
def split():
    """1,000 rows, 100 per class but nv (400), every reference answer right and decided."""
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.full(100, c) for c in range(K) if c != NV] + [np.full(400, NV)])
    return labels, reference_probs(labels, 0.3, rng)


def judged(fmt, labels, probs, reference):
    row = ParityRow(fmt, "model", 1, 0.0)
    for name in parity.SPLITS:
        row.splits[name] = compare(name, labels, probs, CLASSES, reference, DECIDED_MARGIN)
    return judge(row, CLASSES)


def test_flips_on_undecided_rows_are_ties_and_pass(split):
    labels, reference = split
    rng = np.random.default_rng(1)
    tied = np.flatnonzero(np.arange(len(labels)) % 50 < 2)  # 4 rows of each 100
    reference[tied] = reference_probs(labels[tied], 0.004, rng)  # Keras itself undecided...
    reference = swap_top2(reference, tied[::2])  # ...and wrong on half of those rows
    probs = swap_top2(reference, tied)  # all 40 flip: raw agreement 96%
    for fmt in ("tflite_int8", "tflite_fp16"):
        row = judged(fmt, labels, probs, reference)
        test = row.splits["test"]
        assert test.agreement == pytest.approx(0.96) and test.decided_agreement == 1.0
        assert test.flips_by_margin == {"<0.01": 40, "0.01-0.05": 0, "0.05-0.1": 0, ">=0.1": 0}
        assert test.undecided == 40
        assert row.status == PASS, row.reason
    # Coin tosses both ways: in every class 2 right answers became wrong and 2 wrong ones right.
    row = judged("tflite_int8", labels, probs, reference)
    assert row.splits["test"].delta_balanced_accuracy == pytest.approx(0.0, abs=1e-12)
    assert "decided agreement 100.00% (960/960)" in row.reason


def test_decided_flips_fail(split):
    labels, reference = split
    flipped = np.concatenate([np.arange(0, 1000, 100)[:6], [650, 660, 670, 680, 690]])
    probs = swap_top2(reference, flipped)  # 11 decided flips of 1,000: 98.9% < 99%
    row = judged("tflite_int8", labels, probs, reference)
    assert row.status == FAIL
    assert "test: decided agreement 98.90% (989/1000) < 99.00%" in row.reason
    fp16 = judged("tflite_fp16", labels, swap_top2(reference, [0]), reference)
    assert fp16.status == PASS, fp16.reason  # 999/1000 decided rows: 99.9%
    fp16 = judged("tflite_fp16", labels, swap_top2(reference, [0, 650]), reference)
    assert fp16.status == FAIL and "99.80% (998/1000) < 99.90%" in fp16.reason


def test_a_class_collapse_fails_even_when_agreement_and_balanced_accuracy_pass(split):
    labels, reference = split
    mel = np.flatnonzero(labels == MEL)[:8]  # 8% of melanomas now called something else
    probs = swap_top2(reference, mel)
    row = judged("tflite_int8", labels, probs, reference)
    test = row.splits["test"]
    assert test.decided_agreement == pytest.approx(0.992)  # passes 99%
    assert abs(test.delta_balanced_accuracy) < 0.015  # passes 1.5 points (8/100/7)
    assert test.delta_sensitivity[MEL] == pytest.approx(-0.08)
    assert row.status == FAIL
    assert "worst sensitivity change mel -8.0 points (beyond -5)" in row.reason
    # parity.md lists the Keras margins of the answers each class lost (decided ones here).
    from mobile_skin.parity.report import class_losses

    lost = class_losses([(row, "test", test)], list(CLASSES))
    assert lost == [["tflite_int8", "test", "mel", ", ".join(["0.300"] * 8), "0"]]


def test_a_better_but_different_model_fails_too(split):
    labels, reference = split
    wrong = np.flatnonzero(labels != NV)[:300:10]  # make 30 reference answers wrong...
    reference = swap_top2(reference, wrong)
    row = judged("tflite_dynamic", labels, swap_top2(reference, wrong), reference)  # ...and fix
    assert row.splits["test"].delta_balanced_accuracy > 0.015 and row.status == FAIL


def test_float_formats_compare_probabilities(split):
    labels, reference = split
    assert judged("tflite_fp32", labels, reference + 5e-5, reference).status == PASS
    row = judged("onnx_fp32", labels, reference + 2e-4, reference)
    assert row.status == FAIL and "max |dp| 2.0e-04 > 1e-04" in row.reason
    nan = reference.copy()
    nan[3, 2] = np.nan
    row = judged("tflite_fp32", labels, nan, reference)
    assert row.status == FAIL and "non-finite probabilities" in row.reason


def test_a_format_must_pass_on_both_splits(split):
    labels, reference = split
    row = ParityRow("tflite_int8", "model", 1, 0.0)
    row.splits["test"] = compare("test", labels, reference, CLASSES, reference, DECIDED_MARGIN)
    bad = swap_top2(reference, range(0, 1000, 40))  # 25 decided flips on val only
    row.splits["val"] = compare("val", labels, bad, CLASSES, reference, DECIDED_MARGIN)
    judge(row, CLASSES)
    assert row.status == FAIL and row.reason.startswith("val: decided agreement")


def _row(fmt, agreement=1.0):
    row = ParityRow(fmt, "model", 1, 0.0)
    labels = np.arange(100) % K
    probs = np.eye(K)[labels] * 0.9 + 0.1 / K
    other = swap_top2(probs, range(int(round(100 * (1 - agreement)))))
    for name in parity.SPLITS:
        row.splits[name] = compare(name, labels, other, CLASSES, probs, DECIDED_MARGIN)
    return judge(row, CLASSES) if fmt != "keras" else row


def test_the_record_names_the_run_relative_to_the_working_directory(tmp_path, monkeypatch):
    # committed parity.json files must not carry one machine's absolute paths: the exporter
    # names the run by shown_path (tests/test_export.py checks it does)
    monkeypatch.chdir(tmp_path)
    run = RunPaths(tmp_path / "runs" / "r")
    parity.record(run.export_root, shown_path(run.root), _row("keras"))
    assert json.loads(Path("runs/r/export/parity.json").read_text())["run"] == "runs/r"
    assert "of `r` on" in Path("runs/r/export/parity.md").read_text().splitlines()[0]
    outside = tmp_path.parent / "elsewhere"
    monkeypatch.chdir(tmp_path / "runs")
    assert shown_path(outside) == outside.resolve().as_posix()


def test_record_replaces_the_row_of_the_same_format(tmp_path):
    out = RunPaths(tmp_path).export_root
    parity.record(out, "r", _row("tflite_int8", agreement=0.5), _row("keras"))
    parity.record(out, "r", _row("onnx_fp32"))
    parity.record(
        out, "r", _row("tflite_int8", agreement=1.0), sweeps={"tflite_int8": {"test": []}}
    )
    doc = json.loads((tmp_path / "export" / "parity.json").read_text())
    assert [r["format"] for r in doc["rows"]] == ["keras", "tflite_int8", "onnx_fp32"]
    assert doc["rows"][1]["status"] == PASS and doc["decided_margin"] == DECIDED_MARGIN
    assert set(doc["rows"][1]["splits"]) == {"test", "val"} and "tflite_int8" in doc["sweeps"]
    loaded = parity.load_rows(tmp_path / "export" / "parity.json")
    assert loaded[1].splits["val"].agreement == 1.0
    md = (tmp_path / "export" / "parity.md").read_text()
    assert doc["machine"]["cpu"] in md.splitlines()[0]
    assert doc["machine"]["cpu_features"] in md.splitlines()[0]
    assert doc["machine"]["onnxruntime"] in md
    lines = md.splitlines()
    first = next(
        i for i, line in enumerate(lines) if line.startswith("| tflite_int8 | 0.00 | test |")
    )
    assert lines[first + 1].startswith("|  |  | val |")  # one summary line per split
    assert "### Flips by Keras' top-2 margin" in md and "### Verdicts" in md


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
    from mobile_skin.data.ham10000 import load_ham10000

    rows = load_ham10000(synthetic_root, verify_images=False, log=lambda _m: None).iloc[:5]
    spec = ModelSpec(image_size=32, encoding=MetadataEncoding())
    data = {"test": parity.SplitData.from_frame("test", rows, spec)}
    paths = RunPaths(tmp_path)
    paths.best_model.write_bytes(b"weights")
    rt = CountingRuntime()

    def reference():
        return parity.keras_reference(
            paths.best_model, paths.export_root, rt, data, spec, latency_runs=0, log=lambda _m: None
        )

    probs, row = reference()
    calls = rt.calls
    assert probs["test"].shape == (5, 7) and row.status == parity.REFERENCE
    assert row.splits["test"].n == 5
    again, row2 = reference()
    assert rt.calls == calls and np.array_equal(again["test"], probs["test"]) and row2 == row
    st = paths.best_model.stat()
    os.utime(paths.best_model, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    reference()
    assert rt.calls > calls
