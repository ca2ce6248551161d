"""External evaluation: ``python -m mobile_skin.evaluate RUN --dataset DIR [--model FILE]``,
the reliability diagram and the calibration before/after figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mobile_skin.common.errors import EXIT_USAGE, UserError
from mobile_skin.contract.encoding import LOCALIZATIONS, MetadataEncoding
from mobile_skin.contract.spec import ModelSpec
from mobile_skin.data import external_set
from mobile_skin.data.ham10000 import CSV_NAME
from mobile_skin.data.synthetic import write_synthetic_dataset
from mobile_skin.evaluation import evaluate
from mobile_skin.evaluation.reliability import plot_reliability, reliability_bins
from mobile_skin.evaluation.stats import expected_calibration_error
from mobile_skin.evaluation.temperature import scale

#: The site value the encoding does not know (ISIC 2019 spells it so).
FOREIGN_SITE = "palms/soles"


def _two_class(confidence: float, correct: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows predicting class 0 with ``confidence``; the first ``correct`` are right."""
    probs = np.tile([confidence, 1 - confidence], (n, 1))
    labels = np.array([0] * correct + [1] * (n - correct))
    return labels, probs


def test_perfectly_calibrated_rows_lie_on_the_diagonal():
    high, low = _two_class(0.8, 8, 10), _two_class(0.6, 6, 10)
    labels, probs = np.concatenate([high[0], low[0]]), np.concatenate([high[1], low[1]])
    rb = reliability_bins(labels, probs)
    filled = rb.count > 0
    assert rb.count.sum() == 20 and filled.sum() == 2
    np.testing.assert_allclose(rb.accuracy[filled], rb.confidence[filled])
    np.testing.assert_allclose(sorted(rb.confidence[filled]), [0.6, 0.8])
    assert rb.ece == pytest.approx(0.0, abs=1e-12)
    assert [b["count"] for b in rb.to_dict()["bins"]] == [10, 10]


def test_overconfident_rows_fall_below_the_diagonal_underconfident_above():
    over = reliability_bins(*_two_class(0.95, 5, 10))  # says 95%, right half the time
    under = reliability_bins(*_two_class(0.55, 10, 10))  # says 55%, always right
    for rb, sign in ((over, -1), (under, +1)):
        filled = rb.count > 0
        assert np.sign(rb.accuracy[filled] - rb.confidence[filled]).tolist() == [sign]
    assert over.ece == pytest.approx(0.45) and under.ece == pytest.approx(0.45)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), 200)
    labels = rng.integers(0, 7, 200)
    assert reliability_bins(labels, probs).ece == pytest.approx(
        expected_calibration_error(labels, probs)
    )


def test_reliability_diagram_is_written_atomically(tmp_path):
    labels, probs = _two_class(0.9, 6, 10)
    path = plot_reliability(
        {"raw": (labels, probs), "scaled": (labels, probs * 0.9)}, tmp_path / "r.png"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]


def test_calibration_section_recovers_the_raw_softmax():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, 300)
    logits = rng.normal(0, 1, (300, 7))
    logits[np.arange(300), labels] += 1.0
    raw = scale(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 0.3)  # overconfident
    calibrated = scale(raw, 3.0)  # what a model with T = 3 folded in outputs
    spec = SimpleNamespace(calibration={"method": "temperature", "temperature": 3.0})
    section, curves = evaluate.calibration_section(labels, calibrated, spec)
    assert section["temperature"] == 3.0 and section["method"] == "temperature"
    assert section["ece_after"] < section["ece_before"]
    assert section["nll_after"] < section["nll_before"]
    assert section["ece_before"] == pytest.approx(expected_calibration_error(labels, raw))
    raw_curve, scaled_curve = curves.values()
    np.testing.assert_allclose(raw_curve[1], raw, atol=1e-9)
    assert scaled_curve[1] is calibrated
    assert evaluate.calibration_section(labels, raw, SimpleNamespace())[0] is None
    assert evaluate.calibration_section(labels, raw, SimpleNamespace(calibration=None))[0] is None


def test_unknown_values_become_unknown_and_unknown_classes_are_named():
    frame = pd.DataFrame(
        {
            "dx": ["nv", "mel", "bcc"],
            "sex": ["male", "other", "female"],
            "localization": ["back", FOREIGN_SITE, FOREIGN_SITE],
        },
        index=pd.Index([2, 3, 4], name="line"),
    )
    mapped, unmapped = external_set.map_unknown_values(frame, MetadataEncoding())
    assert mapped["sex"].tolist() == ["male", "unknown", "female"]
    assert mapped["localization"].tolist() == ["back", "unknown", "unknown"]
    assert unmapped == {"sex": {"other": 1}, "localization": {FOREIGN_SITE: 2}}
    assert external_set.class_labels(frame, ("mel", "nv", "bcc"), "x.csv").tolist() == [1, 0, 2]
    with pytest.raises(UserError) as err:
        external_set.class_labels(frame, ("nv", "mel"), "x.csv")
    assert str(err.value).startswith("x.csv: line 4: dx 'bcc' is not a class of the model")


@pytest.fixture(scope="module")
def external(tmp_path_factory) -> Path:
    """A tiny clinic set: 100x75 images (the model is 64 px), some rows without age, unknown
    sex or site, one site the encoding does not know."""
    root = tmp_path_factory.mktemp("clinic") / "clinic_set"
    csv = write_synthetic_dataset(root, 21, size=(100, 75), seed=7, missing_ages=4)
    frame = pd.read_csv(csv)
    frame.loc[[0, 1], "sex"] = ["unknown", np.nan]
    frame.loc[[2, 3], "localization"] = [FOREIGN_SITE, "unknown"]
    frame.to_csv(csv, index=False)
    return root


def _expected_counts(root: Path) -> dict:
    frame = pd.read_csv(root / CSV_NAME)
    sex = frame["sex"].fillna("unknown")
    site = frame["localization"].where(frame["localization"].isin(LOCALIZATIONS), "unknown")
    missing = {
        "age": frame["age"].isna(),
        "sex": sex == "unknown",
        "localization": site == "unknown",
    }
    complete = ~(missing["age"] | missing["sex"] | missing["localization"])
    return {
        "n": len(frame),
        "complete": int(complete.sum()),
        "missing": {k: int(v.sum()) for k, v in missing.items()},
    }


@pytest.fixture(scope="module")
def keras_metrics(smoke_run, external) -> dict:
    return evaluate.evaluate_dataset(smoke_run, str(external), log=lambda _m: None)


def test_every_row_is_scored_with_best_keras(smoke_run, external, keras_metrics):
    expected = _expected_counts(external)
    out = smoke_run.root / "eval_clinic_set"
    m = json.loads((out / "metrics.json").read_text())
    assert m["accuracy"] == keras_metrics["accuracy"]  # what was returned was written
    assert m["n"] == expected["n"] == m["dataset"]["csv_rows"] == m["dataset"]["scored"]
    assert m["model"]["format"] == "keras" and m["model"]["tag"] is None
    assert m["dataset"]["unmapped_metadata"] == {"localization": {FOREIGN_SITE: 1}}
    assert m["rows_missing_metadata"] == expected["missing"]
    assert min(expected["missing"].values()) >= 2 and expected["complete"] < expected["n"]
    assert m["complete_metadata"]["n"] == expected["complete"]
    assert m["all_unknown"]["n"] == expected["n"]
    assert m["all_unknown"]["accuracy"] == m["metadata_robustness"]["all masked"]["accuracy"]
    assert m["accuracy"] == m["metadata_robustness"]["as given"]["accuracy"]
    assert m["ece"] == pytest.approx(m["reliability"]["ece"])
    temperature = (getattr(ModelSpec.load(smoke_run.spec), "calibration", {}) or {}).get(
        "temperature"
    )
    if temperature:  # training folded a temperature into best.keras: before and after
        c = m["calibration"]
        assert c["temperature"] == pytest.approx(temperature) and c["ece_after"] == m["ece"]
        assert {"ece_before", "nll_before", "nll_after"} <= set(c)
    else:
        assert "calibration" not in m
    assert sum(b["count"] for b in m["reliability"]["bins"]) == expected["n"]
    for figure in ("reliability", "confusion_matrix", "roc_curves", "attention_maps"):
        assert (out / "figures" / f"{figure}.png").is_file(), figure
    assert not (out / "figures" / "training_curves.png").exists()
    report = (out / "report.md").read_text()
    assert report.startswith(f"# External evaluation: `clinic_set` with `{smoke_run.root.name}`")
    assert "![reliability diagram](figures/reliability.png)" in report
    assert (
        f"'{FOREIGN_SITE}' (1 row)" in report and "| age, sex and site known | as given |" in report
    )
    assert "paper Table 9" not in report


def test_the_split_report_has_the_reliability_diagram_too(smoke_run):
    m = json.loads(smoke_run.metrics.read_text())  # written by training's own evaluation
    assert (smoke_run.figures / "reliability.png").is_file()
    assert "figures/reliability.png" in smoke_run.report.read_text()
    assert m["all_unknown"]["n"] == m["n"] and "complete_metadata" in m


def test_the_exported_tflite_scores_the_set_through_its_runtime(
    smoke_run, external, model_files, keras_metrics, capsys
):
    args = ["--dataset", str(external), "--model", str(model_files["tflite"])]
    assert evaluate.main([str(smoke_run.root), *args]) == 0
    out = smoke_run.root / "eval_clinic_set_tflite_fp32"
    m = json.loads((out / "metrics.json").read_text())
    n = keras_metrics["n"]
    assert m["n"] == n and m["model"]["format"] == "tflite" and m["model"]["tag"] == "tflite_fp32"
    assert abs(m["accuracy"] - keras_metrics["accuracy"]) <= 1 / n
    assert m["macro_auc"] == pytest.approx(keras_metrics["macro_auc"], abs=0.02)
    assert m["ece"] == pytest.approx(keras_metrics["ece"], abs=0.02)
    assert m["complete_metadata"]["n"] == keras_metrics["complete_metadata"]["n"]
    assert abs(m["all_unknown"]["accuracy"] - keras_metrics["all_unknown"]["accuracy"]) <= 1 / n
    assert (out / "figures" / "reliability.png").is_file()
    assert not (out / "figures" / "attention_maps.png").exists()  # no attention output
    headline = capsys.readouterr().out.strip().splitlines()[-1]
    assert headline.startswith("clinic_set: accuracy ") and headline.endswith(f"({n} images)")
    assert "ECE " in headline and "macro AUC " in headline


def test_an_exported_file_scores_the_test_split_beside_best_keras(smoke_run, model_files):
    before = smoke_run.metrics.read_text()
    evaluate.evaluate_run(smoke_run, model_file=str(model_files["onnx"]), log=lambda _m: None)
    m = json.loads((smoke_run.root / "test_onnx_fp32" / "metrics.json").read_text())
    keras = json.loads(before)
    assert m["split"] == "test" and m["n"] == keras["n"] and m["model"]["format"] == "onnx"
    assert abs(m["accuracy"] - keras["accuracy"]) <= 1 / keras["n"]
    assert smoke_run.metrics.read_text() == before  # best.keras' report is untouched


@pytest.fixture
def mismatched_model(model_files, tmp_path) -> str:
    """The float TFLite file beside a spec that claims another image size."""
    shutil.copy(model_files["tflite"], tmp_path / "model.tflite")
    spec = json.loads((model_files["tflite"].parent / "model_spec.json").read_text())
    spec["image_size"] = spec["image_size"] * 2
    (tmp_path / "model_spec.json").write_text(json.dumps(spec))
    return str(tmp_path / "model.tflite")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "{tmp}/nowhere"], "--dataset {tmp}/nowhere: not a directory"),
        (["--dataset", "{tmp}"], "--dataset {tmp}/HAM10000_metadata.csv: metadata CSV not found"),
        (["--dataset", "{ext}", "--csv", "{tmp}/x.csv"], "--csv {tmp}/x.csv: metadata CSV not"),
        (["--dataset", "{ext}", "--model", "{tmp}/m.tflite"], "--model {tmp}/m.tflite: model file"),
        (["--dataset", "{ext}", "--model", "{tmp}/m.pt"], "--model {tmp}/m.pt: unknown model type"),
        (["--dataset", "{ext}", "--model", "{bad}"], "--model {bad}: image input is"),
        (["--dataset", "{ext}", "--split", "val"], "--split scores a split of the run"),
        (["--csv", "{tmp}/x.csv"], "--csv needs --dataset DIR"),
        (["--spec", "{tmp}/model_spec.json"], "--spec needs --model FILE"),
    ],
)
def test_bad_input_is_one_line_and_a_usage_exit(
    args, message, smoke_run, external, request, tmp_path, capsys
):
    fill = {"tmp": tmp_path, "ext": external}
    if "{bad}" in " ".join(args):
        fill["bad"] = request.getfixturevalue("mismatched_model")
    with pytest.raises(SystemExit) as stop:
        evaluate.main([str(smoke_run.root), *(a.format(**fill) for a in args)])
    assert stop.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {message.format(**fill)}"), err
