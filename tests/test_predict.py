"""``python -m mobile_skin.predict``: the same answer through every runtime, one-line errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from mobile_skin.model.predict import main, predict_images


@pytest.fixture(scope="module")
def images(synthetic_root, tmp_path_factory) -> list[str]:
    """A synthetic lesion image, and a large 'photo' in another format and aspect ratio."""
    out = tmp_path_factory.mktemp("photos")
    lesion = str(next(synthetic_root.rglob("*.jpg")))
    rng = np.random.default_rng(1)
    big = np.asarray(Image.open(lesion).resize((1200, 900)), np.int16)
    big = np.clip(big + rng.integers(-5, 6, big.shape), 0, 255).astype(np.uint8)
    Image.fromarray(big).save(out / "photo.png")
    return [lesion, str(out / "photo.png")]


def test_the_same_top1_through_every_runtime(model_files, images):
    preds = {
        k: predict_images(path, images, age="55", sex="male", site="back")
        for k, path in model_files.items()
    }
    preds = {k: b.predictions for k, b in preds.items()}
    for i in range(len(images)):
        tops = {k: p[i].top[0][0] for k, p in preds.items()}
        assert len(set(tops.values())) == 1, tops
        np.testing.assert_allclose(preds["tflite"][i].probs, preds["keras"][i].probs, atol=1e-4)
        np.testing.assert_allclose(preds["onnx"][i].probs, preds["keras"][i].probs, atol=1e-4)
        assert len(preds["onnx"][i].top) == 3
        assert preds["onnx"][i].probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_a_model_that_failed_the_gate_is_flagged(model_files, images, tmp_path, capsys):
    failed = tmp_path / "model.FAILED.onnx"
    shutil.copy(model_files["onnx"], failed)
    shutil.copy(model_files["onnx"].parent / "model_spec.json", tmp_path)
    assert main([images[0], "--model", str(failed)]) == 0
    assert "failed the export's parity gate" in capsys.readouterr().err


def test_cli_prints_top3_with_full_names(model_files, images, capsys):
    assert (
        main(
            [
                *images,
                "--model",
                str(model_files["onnx"]),
                "--sex",
                "unknown",
                "--site",
                "unknown",
                "--age",
                "unknown",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0] == images[0] and out[4] == images[1] and len(out) == 8
    assert "not a diagnosis" in captured.err
    assert "note: age, sex, site unknown: the answer relies on the image alone" in captured.err
    assert out[1].lstrip().startswith("1. ") and out[1].rstrip().endswith("%")
    names = ("melanoma", "nevus", "carcinoma", "keratosis", "dermatofibroma", "vascular")
    assert all(any(n in line for n in names) for line in out[1:4])


@pytest.fixture
def broken(model_files, tmp_path) -> dict[str, str]:
    """Truncated model files with their specs beside them, and a text file named like a JPEG."""
    out = {}
    for kind in ("tflite", "onnx"):
        d = tmp_path / kind
        d.mkdir()
        shutil.copy(model_files[kind].parent / "model_spec.json", d)
        data = model_files[kind].read_bytes()
        (d / model_files[kind].name).write_bytes(data[: len(data) // 2])
        out[kind] = str(d / model_files[kind].name)
    (tmp_path / "notes.jpg").write_text("not an image")
    out["text"] = str(tmp_path / "notes.jpg")
    return out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{img}", "--model", "{tmp}/missing.tflite"], "missing.tflite: model file not found"),
        (["{img}", "--model", "{tflite_bad}"], "not a valid TFLite model"),
        (["{img}", "--model", "{onnx_bad}"], "not a valid ONNX model"),
        (["{text}", "--model", "{onnx}"], "notes.jpg: not a readable image"),
        (["{img}", "--model", "{onnx}", "--sex", "alien"], "unknown sex 'alien'"),
        (["{img}", "--model", "{onnx}", "--site", "moon"], "unknown site 'moon'"),
        (["{img}", "--model", "{onnx}", "--age", "130"], "age 130 is outside 0..120"),
        (["{img}", "--model", "{onnx}", "--age", "old"], "age 'old' is not a number"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args, message, model_files, images, broken, tmp_path, capsys
):
    values = {
        "img": images[0],
        "tmp": tmp_path,
        "onnx": model_files["onnx"],
        "text": broken["text"],
        "tflite_bad": broken["tflite"],
        "onnx_bad": broken["onnx"],
    }
    with pytest.raises(SystemExit) as exit_:
        main([a.format(**values) for a in args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert "{{" not in err and "[Op:" not in err  # no TensorFlow internals in the message


def test_cli_names_only_the_fields_left_unknown(model_files, images, capsys):
    args = [images[0], "--model", str(model_files["onnx"]), "--age", "60", "--sex", "male"]
    assert main(args) == 0
    assert (
        "note: site unknown: the answer relies on the image alone for it" in capsys.readouterr().err
    )
    assert main([*args, "--site", "back"]) == 0
    assert "relies on the image alone" not in capsys.readouterr().err


def test_folders_bad_images_and_machine_formats(model_files, images, broken, tmp_path, capsys):
    import csv
    import io
    import json

    folder = tmp_path / "clinic"
    (folder / "day1").mkdir(parents=True)
    shutil.copy(images[0], folder / "day1" / "a.jpg")
    shutil.copy(images[1], folder / "b.png")
    shutil.copy(broken["text"], folder / "day1" / "broken.jpg")
    (folder / "notes.txt").write_text("not an image, not listed")
    args = [str(folder), "--model", str(model_files["onnx"]), "--age", "50"]
    assert main([*args, "--format", "json"]) == 1  # one image unreadable: reported, not fatal
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert [r["image"] for r in doc["predictions"]] == [
        str(folder / "b.png"),
        str(folder / "day1" / "a.jpg"),
    ]
    assert doc["errors"][0]["image"] == str(folder / "day1" / "broken.jpg")
    assert doc["unknown_metadata"] == ["sex", "localization"]
    assert abs(sum(v for k, v in doc["predictions"][0].items() if k.startswith("p_")) - 1) < 1e-4
    assert "broken.jpg: not a readable image" in captured.err and "1 of 3 images" in captured.err
    assert main([*args, "--format", "csv"]) == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2 and rows[0]["top1"] in rows[0]["top1"] and "p_mel" in rows[0]


def test_exif_orientation_is_applied(model_files, images, tmp_path):
    """A phone photo stored sideways with an EXIF tag gives the upright photo's answer."""
    pixels = np.asarray(Image.open(images[1]).convert("RGB")).copy()
    pixels[: pixels.shape[0] // 5] = 255  # a white band on top: the photo is not symmetric
    upright = Image.fromarray(pixels)
    upright.save(tmp_path / "upright.png")
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # stored turned 90 degrees left...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...and tagged "rotate 90 clockwise to display"
    sideways.save(tmp_path / "sideways.jpg", exif=exif, quality=100, subsampling=0)
    upright.save(tmp_path / "upright.jpg", quality=100, subsampling=0)
    from mobile_skin.contract import image

    # The pixels the model sees: the tagged photo, turned upright, equals the upright one up to
    # JPEG re-encoding (a few levels); untagged, the same bytes would be far from it.
    size = 64
    shown = image.load(tmp_path / "upright.jpg", size).astype(float)
    tagged = image.load(tmp_path / "sideways.jpg", size).astype(float)
    raw = image.resize(image.decode((tmp_path / "sideways.jpg").read_bytes()), size).astype(float)
    assert np.abs(shown - tagged).mean() < 2.0 < np.abs(shown - raw).mean()
    # And the answer: predict reads the same pixels (a smoke model magnifies the JPEG noise, so
    # the probabilities are compared loosely; the exact pixel rule is the check above).
    batch = predict_images(model_files["tflite"], [str(tmp_path / "upright.jpg"),
                                                   str(tmp_path / "sideways.jpg")])  # fmt: skip
    a, b = (p.probs for p in batch.predictions)
    np.testing.assert_allclose(a, b, atol=0.1)


#: What a machine that only runs exported files lacks (requirements-runtime.txt installs none).
HEAVY = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "tf2onnx", "pandas",
         "sklearn", "scipy", "matplotlib")  # fmt: skip


@pytest.mark.parametrize("kind", ["tflite", "onnx"])
def test_exported_prediction_runs_without_tensorflow_or_pandas(model_files, images, kind):
    """With every training-side package made unimportable, predict still runs an exported file:
    what ``pip install -r requirements-runtime.txt && pip install --no-deps .`` gives."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        f"for name in {HEAVY!r}:\n"
        "    sys.modules[name] = None  # import raises ImportError\n"
        "from mobile_skin import predict\n"
        f"sys.exit(predict.main([{images[0]!r}, '--model', {str(model_files[kind])!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(images[0])
    assert "XNNPACK" not in done.stderr  # LiteRT's INFO line stays hidden


def test_runtime_requirements_are_project_dependencies():
    """requirements-runtime.txt lists a subset of pyproject's dependencies, with no TensorFlow."""
    import re
    from importlib.metadata import requires
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    deps = [r for r in requires("mobile_skin") or [] if "extra ==" not in r]

    def name(req: str) -> str:
        return re.split(r"[<>=\[; ]", req.strip(), maxsplit=1)[0].lower()

    runtime = [
        line for line in (root / "requirements-runtime.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]  # fmt: skip
    assert runtime and {name(r) for r in runtime} <= {name(d) for d in deps}
    assert not any(name(r).startswith(("tensorflow", "tf-", "pandas")) for r in runtime)
