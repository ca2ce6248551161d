"""The device golden (``python -m mobile_skin.device_golden``) on the smoke run's exports.

The generator must write Python's answer exactly (the same pixels, metadata and runtime as
``mobile_skin.model.predict``), tie it to the model file's SHA-256, and write the same bytes every
time. The committed golden's image must still be what the generator draws.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mobile_skin.contract import image
from mobile_skin.contract.android_golden import golden_spec
from mobile_skin.contract.spec import IMAGE_INPUT, METADATA_INPUT, ModelSpec
from mobile_skin.export import device_golden
from mobile_skin.export.device_golden import GOLDEN_FILE, IMAGE_FILE, MAX_ABS_DIFF, PATIENT
from mobile_skin.model.runtime import load_runtime
from mobile_skin.parity.gate import FAIL, PARITY_JSON, PASS, load_rows

COMMITTED = Path(__file__).resolve().parents[1] / device_golden.DEFAULT_OUT


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def generated(smoke_run, exported, tmp_path_factory) -> Path:
    for fmt in MAX_ABS_DIFF:
        exported(fmt)
    out = tmp_path_factory.mktemp("device_golden")
    assert device_golden.main([str(smoke_run.root), "--out", str(out)]) == 0
    return out


def _judged(smoke_run) -> dict[str, Path]:
    rows = load_rows(smoke_run.root / "export" / PARITY_JSON)
    return {
        r.format: smoke_run.export(r.format) / r.file
        for r in rows
        if r.format in MAX_ABS_DIFF
        and r.status in (PASS, FAIL)
        and (smoke_run.export(r.format) / r.file).is_file()
    }


def test_golden_holds_every_judged_tflite_export(smoke_run, generated: Path) -> None:
    doc = json.loads((generated / GOLDEN_FILE).read_text())
    assert doc["format_version"] == 1
    assert doc["input"]["image"] == IMAGE_FILE
    assert doc["input"]["image_sha256"] == _sha(generated / IMAGE_FILE)
    assert {k: doc["input"][k] for k in PATIENT} == PATIENT
    assert doc["classes"] == list(ModelSpec.load(smoke_run.spec).classes)
    judged = _judged(smoke_run)
    assert "tflite_fp32" in judged
    assert list(doc["expected"]) == list(judged)
    assert list(doc["tolerances"]) == list(judged)
    assert "smoke" in doc["generator"] and "/tmp" not in doc["generator"]
    for fmt, model in judged.items():
        want = doc["expected"][fmt]
        assert want["model_sha256"] == _sha(model), fmt
        probs = np.array(want["probs"], dtype=np.float64)
        assert probs.shape == (7,), fmt
        assert abs(probs.sum() - 1.0) < 1e-4, fmt
        assert all(float(np.float32(p)) == p for p in want["probs"]), f"{fmt}: not float32"
        tol = doc["tolerances"][fmt]
        assert tol["max_abs_diff"] == MAX_ABS_DIFF[fmt][0]
        top = np.sort(probs)[::-1]
        assert tol["same_top1"] == bool(top[0] - top[1] >= 2 * tol["max_abs_diff"]), fmt


def test_fp32_answer_is_the_runtime_answer(smoke_run, generated: Path) -> None:
    model = _judged(smoke_run)["tflite_fp32"]
    spec = ModelSpec.for_model(model)
    inputs = {IMAGE_INPUT: image.load(generated / IMAGE_FILE, spec.image_size)[None]}
    if spec.encoding is not None:
        inputs[METADATA_INPUT] = spec.encoding.encode(
            PATIENT["age"], PATIENT["sex"], PATIENT["localization"]
        )[None]
    probs = load_runtime(model, spec).predict(inputs)[0]
    doc = json.loads((generated / GOLDEN_FILE).read_text())
    np.testing.assert_allclose(doc["expected"]["tflite_fp32"]["probs"], probs, rtol=0, atol=1e-6)


def test_generator_is_deterministic(smoke_run, generated: Path, tmp_path: Path) -> None:
    device_golden.write_golden(smoke_run, tmp_path)
    for name in (GOLDEN_FILE, IMAGE_FILE):
        assert (tmp_path / name).read_bytes() == (generated / name).read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([GOLDEN_FILE, IMAGE_FILE])


def test_input_image_is_synthetic_and_resized(generated: Path) -> None:
    pixels = image.decode((generated / IMAGE_FILE).read_bytes())
    assert pixels.shape == (device_golden.IMAGE_HEIGHT, device_golden.IMAGE_WIDTH, 3)
    np.testing.assert_array_equal(pixels, device_golden.lesion_image())
    assert (generated / IMAGE_FILE).stat().st_size < 100_000


def test_committed_golden_image_is_the_generators() -> None:
    """The committed PNG is still what :func:`lesion_image` draws (its probs need the models,
    which are not committed; the Kotlin core's tests parse the JSON)."""
    doc = json.loads((COMMITTED / GOLDEN_FILE).read_text())
    png = COMMITTED / doc["input"]["image"]
    assert doc["input"]["image_sha256"] == _sha(png)
    np.testing.assert_array_equal(image.decode(png.read_bytes()), device_golden.lesion_image())
    assert set(doc["expected"]) <= set(MAX_ABS_DIFF)


def _bare_run(root: Path) -> Path:
    """A directory that passes for a run (config and spec) but was never exported."""
    golden_spec().save(root)
    (root / "config.json").write_text("{}\n")
    return root


def test_run_without_parity_table_is_one_line_error(tmp_path: Path) -> None:
    run = _bare_run(tmp_path / "run")
    result = subprocess.run(
        [sys.executable, "-m", "mobile_skin.device_golden", str(run), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert PARITY_JSON in lines[0]
    assert not (tmp_path / "o").exists()


def test_run_without_tflite_export_is_one_line_error(tmp_path: Path, capsys) -> None:
    run = _bare_run(tmp_path / "run")
    (run / "export").mkdir()
    rows = [
        {"format": "keras", "file": "best.keras", "size_bytes": 1, "size_mb": 0.0,
         "status": "REFERENCE"},
        {"format": "tflite_int8", "file": "model.tflite", "size_bytes": 1, "size_mb": 0.0,
         "status": PASS},
    ]  # fmt: skip
    (run / "export" / PARITY_JSON).write_text(json.dumps({"rows": rows}))
    with pytest.raises(SystemExit) as exit_info:
        device_golden.main([str(run), "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "tflite_int8 PASS" in err[0], err
