"""The golden of the Android instrumented test: Python's answer on one input, per TFLite export.

``android_demo/app/src/androidTest`` (``BundledModelGoldenTest``) runs the app's bundled model on a
committed input and compares its probabilities with the ones this module writes; the format is
``android_demo/core/.../DeviceGolden.kt`` (format_version 1). For one training run it writes, into
``--out``:

- ``input.png``: a synthetic lesion-like picture (:func:`lesion_image`, 200 x 150, so the app's
  resize to the model's size runs; no real patient's image, no random generator), PNG so that
  Android and Python decode the same pixels;
- ``device_golden.json``: the input (the image's SHA-256 and the patient :data:`PATIENT`), the
  classes, and for every TFLite export of the run that the parity gate judged (PASS or FAIL in
  ``export/parity.json``) and whose file exists: the file's SHA-256 and Python's ``probs`` for the
  input, with the tolerance :data:`MAX_ABS_DIFF` gives that format.

Python's ``probs`` go through the pipeline ``python -m mobile_skin.predict`` uses for a file: the
PNG is read back and decoded, oriented and resized by :func:`mobile_skin.contract.image.load` to the
export spec's image size; the patient is encoded by the spec's :meth:`MetadataEncoding.encode`; the
model runs through :func:`mobile_skin.model.runtime.load_runtime` (LiteRT, one thread). The values
are float32, written as the decimal that holds each exactly.

The top class must agree on the phone (``same_top1``) unless Python's own top-1 beats its runner-up
by less than :data:`TOP1_MARGIN_FACTOR` times the format's tolerance: a difference the tolerance
allows could then swap them. Such an entry says why in its ``note`` (the Kotlin parser ignores
fields it does not read).

Usage::

    python -m mobile_skin.device_golden runs/ham10000_mnv3_160
    python -m mobile_skin.device_golden RUN --out DIR     # default RUN runs/latest

The model files are not committed, so the golden holds only for the run it was made from: an app
built from another run fails the test with a message saying so, until this is run again for it.
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobile_skin.common.cli_args import description
from mobile_skin.common.errors import UserError, cli
from mobile_skin.common.fileio import sha256_file, shown_path, write_bytes, write_text
from mobile_skin.contract.android_golden import dumps, pattern_image
from mobile_skin.contract.spec import IMAGE_INPUT, METADATA_INPUT, ModelSpec
from mobile_skin.data.run import RunPaths, resolve_run
from mobile_skin.parity.gate import FAIL, PARITY_JSON, PASS, load_rows

#: Where the committed golden lives, relative to the repository root.
DEFAULT_OUT = Path("android_demo/app/src/androidTest/assets/device_golden")
GOLDEN_FILE = "device_golden.json"
IMAGE_FILE = "input.png"
#: The ``format_version`` DeviceGolden.kt reads.
FORMAT_VERSION = 1

#: The synthetic input: HAM10000's 4:3 shape, small (the app resizes it up or down to the model's
#: size), and the salt of the texture noise
#: (:func:`mobile_skin.contract.android_golden.pattern_image`).
IMAGE_WIDTH, IMAGE_HEIGHT, IMAGE_SALT = 200, 150, 45
#: The patient, as the app's form gives it: age in years, sex, anatomical site.
PATIENT = {"age": 45.0, "sex": "male", "localization": "back"}

#: Largest |phone - Python| per class allowed for each TFLite format, with why.
MAX_ABS_DIFF: dict[str, tuple[float, str]] = {
    "tflite_fp32": (1e-4, "float32 on both; ARM and x86 kernels sum in different orders"),
    "tflite_fp16": (
        1e-3,
        "float16 weights computed in float32: the same reassociation, with 10x fp32's room for "
        "kernels that fold the dequantized weights differently",
    ),
    "tflite_dynamic": (
        0.02,
        "activations quantized to 8 bits on the fly; int8 kernels round differently on the "
        "ARM and x86 XNNPACK paths",
    ),
    "tflite_int8": (
        0.02,
        "int8 kernels' requantization rounding differs between the ARM and x86 XNNPACK paths",
    ),
}
#: ``same_top1`` is false where Python's top-2 margin is below this many tolerances.
TOP1_MARGIN_FACTOR = 2.0
#: LiteRT threads for Python's answer (the phone's test runs 1 and 4; the answer is the same).
THREADS = 1


@dataclass
class Answer:
    """Python's answer for one export: the file, its SHA-256 and the float32 probabilities."""

    format: str
    status: str
    model: Path
    model_sha256: str
    probs: np.ndarray


def lesion_image(width: int = IMAGE_WIDTH, height: int = IMAGE_HEIGHT) -> np.ndarray:
    """A deterministic (H, W, 3) uint8 RGB picture of a brown, irregular lesion on skin.

    Skin-coloured background with a soft vertical gradient; an irregular ellipse darker toward its
    centre with a soft border; a few levels of integer-hash texture (from :func:`pattern_image`'s
    noise channel) so that rounding in the resize matters. Only +, -, *, / and sqrt: the pixels
    do not depend on a platform's sin or exp.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u = (x + 0.5 - 0.52 * width) / (0.30 * width)
    v = (y + 0.5 - 0.47 * height) / (0.30 * height)
    uc, vc = np.clip(u, -1.0, 1.0), np.clip(v, -1.0, 1.0)  # the border's bend, bounded
    d = np.sqrt(u * u + v * v) * (1.0 + 0.18 * uc * vc - 0.12 * uc * uc * vc + 0.08 * vc * vc * vc)
    inside = 1.0 - _smoothstep(0.85, 1.0, d)
    core = 1.0 - _smoothstep(0.0, 0.75, d)
    shade = (y + 0.5) / height
    skin = np.stack([226.0 - 14.0 * shade, 178.0 - 16.0 * shade, 156.0 - 14.0 * shade], axis=-1)
    edge, centre = np.array([150.0, 96.0, 72.0]), np.array([78.0, 44.0, 36.0])
    lesion = edge + (centre - edge) * core[..., None]
    noise = pattern_image(width, height, IMAGE_SALT)[..., 3].astype(np.float64) / 255.0 - 0.5
    rgb = skin + (lesion - skin) * inside[..., None] + 10.0 * noise[..., None]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _smoothstep(lo: float, hi: float, t: np.ndarray) -> np.ndarray:
    s = np.clip((t - lo) / (hi - lo), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def png_bytes(rgb: np.ndarray) -> bytes:
    """``rgb`` as a PNG (RGB, no metadata: the same pixels give the same bytes)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def tflite_exports(paths: RunPaths) -> list[tuple[str, str, Path]]:
    """(format, parity status, file) of each TFLite export the gate judged whose file exists.

    Raises:
        UserError: no ``export/parity.json``, or no judged TFLite export with its file.
    """
    table = paths.export_root / PARITY_JSON
    if not table.is_file():
        raise UserError(
            f"{table}: no parity table; export the run first (python export/to_tflite.py "
            f"{paths.root.name})"
        )
    rows = [r for r in load_rows(table) if r.format in MAX_ABS_DIFF]
    found = [
        (r.format, r.status, paths.export(r.format) / r.file)
        for r in rows
        if r.status in (PASS, FAIL) and (paths.export(r.format) / r.file).is_file()
    ]
    if not found:
        seen = ", ".join(f"{r.format} {r.status}" for r in rows) or "no TFLite rows"
        raise UserError(
            f"{table}: no TFLite export judged PASS or FAIL with its file present ({seen}); "
            "export one with python export/to_tflite.py"
        )
    return found


def python_answer(model: Path, image_path: Path, classes: tuple[str, ...]) -> np.ndarray:
    """Python's float32 probabilities for the golden input on one model file (see the module)."""
    from mobile_skin.contract import image
    from mobile_skin.model.runtime import load_runtime

    spec = ModelSpec.for_model(model)
    if tuple(spec.classes) != tuple(classes):
        raise UserError(f"{model}: its spec's classes {spec.classes} are not the run's {classes}")
    inputs = {IMAGE_INPUT: image.load(image_path, spec.image_size)[None]}
    if spec.encoding is not None:
        try:
            metadata = spec.encoding.encode(*(PATIENT[k] for k in ("age", "sex", "localization")))
        except UserError as err:
            raise UserError(f"{model}: the golden patient does not fit its spec ({err})") from None
        inputs[METADATA_INPUT] = metadata[None]
    probs = load_runtime(model, spec, threads=THREADS).predict(inputs)[0]
    if probs.shape != (len(classes),) or not np.all(np.isfinite(probs)):
        raise UserError(f"{model}: gave {probs.tolist()} for the golden input")
    return probs.astype(np.float32)


def tolerance(fmt: str, probs: np.ndarray) -> dict:
    """The ``tolerances`` entry of one format: ``same_top1`` off when Python's margin is small."""
    max_abs, why = MAX_ABS_DIFF[fmt]
    top = np.sort(probs.astype(np.float64))[::-1]
    margin = float(top[0] - top[1])
    entry: dict = {"max_abs_diff": max_abs, "same_top1": True, "note": why}
    if margin < TOP1_MARGIN_FACTOR * max_abs:
        entry["same_top1"] = False
        entry["note"] = (
            f"{why}; top-1 not required: Python's top-2 margin {margin:.4g} is below "
            f"{TOP1_MARGIN_FACTOR:g} x the tolerance"
        )
    return entry


def _run_label(root: Path) -> str:
    """The run as shown in the generator text: relative to the working directory when inside
    it, else its name alone (never an absolute path)."""
    shown = shown_path(root)
    return root.name if Path(shown).is_absolute() else shown


def write_golden(paths: RunPaths, out: str | Path = DEFAULT_OUT) -> tuple[Path, list[Answer]]:
    """Write ``input.png`` and ``device_golden.json`` for the run (resolved by the command) into
    ``out``.

    Returns:
        The JSON's path and the answer of each format.

    Raises:
        UserError: not a run, no parity table or TFLite export, a model that cannot run.
    """
    run_spec = ModelSpec.load(paths.spec)
    exports = tflite_exports(paths)
    out = Path(out)
    image_path = write_bytes(out / IMAGE_FILE, png_bytes(lesion_image()))
    answers = []
    for fmt, status, model in exports:
        probs = python_answer(model, image_path, run_spec.classes)
        answers.append(Answer(fmt, status, model, sha256_file(model), probs))
    label = _run_label(paths.root)
    doc = {
        "format_version": FORMAT_VERSION,
        "generator": (
            f"python -m mobile_skin.device_golden {label}: Python's probs for {IMAGE_FILE} "
            f"(mobile_skin.contract.image.load, the spec's metadata encoding, LiteRT on {THREADS} "
            "thread) "
            f"on each TFLite export of run {paths.root.name} judged by its parity gate"
        ),
        "input": {
            "image": IMAGE_FILE,
            "image_sha256": sha256_file(image_path),
            "age": PATIENT["age"],
            "sex": PATIENT["sex"],
            "localization": PATIENT["localization"],
        },
        "classes": list(run_spec.classes),
        "tolerances": {a.format: tolerance(a.format, a.probs) for a in answers},
        "expected": {
            a.format: {
                "model_sha256": a.model_sha256,
                "file": a.model.relative_to(paths.root).as_posix(),
                "parity_status": a.status,
                "probs": [float(p) for p in a.probs],
            }
            for a in answers
        },
    }
    return write_text(out / GOLDEN_FILE, dumps(doc) + "\n"), answers


@cli
def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m mobile_skin.device_golden [RUN] [--out DIR]``."""
    p = argparse.ArgumentParser(
        prog="python -m mobile_skin.device_golden", description=description(__doc__)
    )
    p.add_argument("run", nargs="?", help="training run directory (default runs/latest)")
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})"
    )
    args = p.parse_args(argv)
    golden, answers = write_golden(resolve_run(args.run), args.out)
    print(golden)
    print(golden.parent / IMAGE_FILE)
    for a in answers:
        print(f"  {a.format} ({a.status}): probs {' '.join(f'{p:.4f}' for p in a.probs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
