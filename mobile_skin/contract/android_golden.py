"""Golden cases for the Android app's pure-Kotlin core (``android_demo/core``).

The app must feed the ``.tflite`` exactly what Python feeds it: the same metadata vector (read from
``model_spec.json``) and the same pixels (bilinear resize, antialiased when downscaling, rounded to
integers). This module writes, from one :class:`~mobile_skin.contract.spec.ModelSpec`, the JSON
files the Kotlin tests replay:

- ``model_spec.json`` (and ``labels.txt``): the spec itself, written by :meth:`ModelSpec.save`;
- ``metadata_cases.json``: (age, sex, site) inputs with the vector :meth:`MetadataEncoding.encode`
  gives, including unknowns, a missing age, mixed case and whitespace, and invalid inputs that must
  be rejected;
- ``image_cases.json``: small deterministic ARGB images (the ``int`` pixels Android's
  ``Bitmap.getPixels`` returns, alpha included and to be ignored) with the output of
  :func:`mobile_skin.contract.pipeline.resize_image` for upscaling, downscaling, a mixed case and
  identity, plus the unrounded resize for a finer check;
- ``orientation_cases.json``: one small image under each EXIF orientation 1-8 (the one EXIF rule,
  :func:`mobile_skin.contract.image.apply_orientation`);
- ``production_cases.json``: the resize of photo-sized pattern images (200x150 -> 160,
  600x450 -> 224, 4032x3024 -> 160) as SHA-256 and row sums, compared exactly.

The committed copy lives in ``android_demo/core/src/test/resources/golden/``;
``tests/test_android_golden.py`` regenerates it and fails when the two differ, so Python and Kotlin
cannot drift apart silently. Regenerate with::

    python -m mobile_skin.android_golden android_demo/core/src/test/resources/golden
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mobile_skin.common.cli_args import description
from mobile_skin.common.errors import UserError, cli
from mobile_skin.common.fileio import write_text
from mobile_skin.contract.encoding import MetadataEncoding
from mobile_skin.contract.spec import ModelSpec

METADATA_FILE = "metadata_cases.json"
IMAGE_FILE = "image_cases.json"
ORIENTATION_FILE = "orientation_cases.json"
PRODUCTION_FILE = "production_cases.json"

#: Where the committed goldens live, relative to the repository root.
GOLDEN_DIR = Path("android_demo/core/src/test/resources/golden")

#: Training ages the golden spec's unknown-age value is fitted on (mean 51.666.. -> 0.516667).
GOLDEN_AGES = (35.0, 50.0, 70.0, None)
GOLDEN_IMAGE_SIZE = 32

#: (name, age, sex, site) encoded by Python; the Kotlin encoder must give the same float32 bits.
VALID_METADATA = [
    ("all_known", 45.0, "male", "back"),
    ("female_face", 62.5, "female", "face"),
    ("age_zero", 0.0, "female", "abdomen"),
    ("age_max", 120.0, "male", "upper extremity"),
    ("age_fraction", 33.3, "male", "scalp"),
    ("missing_age", None, "female", "trunk"),
    ("unknown_sex_and_site", 70.0, "unknown", "unknown"),
    ("all_missing", None, None, None),
    ("empty_strings", None, "", ""),
    ("mixed_case_whitespace", 51.0, "  Female ", "Lower Extremity\t"),
    ("upper_case", 8.0, "MALE", "ACRAL"),
    ("none_and_nan_words", 27.0, "None", "nan"),
    ("last_site", 80.0, "male", "upper extremity"),
    ("first_site", 15.0, "female", "abdomen"),
    ("two_word_site", 38.0, "female", "lower extremity"),
]

#: (name, age, sex, site, field) that Python rejects; Kotlin must reject them too.
INVALID_METADATA = [
    ("negative_age", -1.0, "male", "back", "age"),
    ("age_over_max", 120.5, "male", "back", "age"),
    ("unknown_sex_word", 40.0, "other", "back", "sex"),
    ("unknown_site_word", 40.0, "female", "elbow", "site"),
    ("site_inner_whitespace", 40.0, "female", "lower  extremity", "site"),
    ("site_abbreviation", 40.0, "female", "upper ext", "site"),
]

#: (name, width, height, size): up, down, down in x and up in y, identity.
IMAGE_CASES = [
    ("upscale_23x17_to_32", 23, 17, 32),
    ("downscale_97x61_to_24", 97, 61, 24),
    ("mixed_40x20_to_32", 40, 20, 32),
    ("identity_16x16_to_16", 16, 16, 16),
]


def golden_spec() -> ModelSpec:
    """The spec every golden case is written from."""
    return ModelSpec(
        image_size=GOLDEN_IMAGE_SIZE,
        encoding=MetadataEncoding.fit(list(GOLDEN_AGES)),
        model_file="model.tflite",
        source_run="golden (android_demo/core tests)",
    )


def metadata_cases(encoding: MetadataEncoding) -> dict:
    """Valid inputs with their float32 vectors, and invalid inputs with Python's error."""
    valid = []
    for name, age, sex, site in VALID_METADATA:
        vector = encoding.encode(age, sex, site)
        valid.append(
            {"name": name, "age": age, "sex": sex, "site": site, "expected": _floats32(vector)}
        )
    invalid = []
    for name, age, sex, site, field in INVALID_METADATA:
        try:
            encoding.encode(age, sex, site)
        except UserError as err:
            error = str(err)
        else:
            raise AssertionError(f"{name}: Python accepted ({age}, {sex}, {site})")
        invalid.append(
            {"name": name, "age": age, "sex": sex, "site": site, "field": field, "error": error}
        )
    return {"spec": "model_spec.json", "size": encoding.size, "valid": valid, "invalid": invalid}


#: (name, width, height, size, salt): photo sizes the app meets, resized as the pipeline does;
#: the Kotlin core regenerates the same pattern image and must produce the same bytes.
PRODUCTION_CASES = [
    ("ham10000_200x150_to_160", 200, 150, 160, 11),
    ("ham10000_600x450_to_224", 600, 450, 224, 12),
    ("phone_4032x3024_to_160", 4032, 3024, 160, 13),
]
#: The image every EXIF orientation (1-8) is applied to: small and not square.
ORIENTATION_IMAGE = (5, 3, 21)  # width, height, salt


def pattern_image(width: int, height: int, salt: int) -> np.ndarray:
    """A deterministic (H, W, 4) uint8 ARGB image: gradient, checkerboard, noise, noisy alpha.

    Red is a horizontal ramp, green a 4-pixel checkerboard of 0 and 255 (sharp edges and the ends
    of the range), blue and alpha integer-hash noise. Written without a random generator so the
    pixels never depend on a NumPy version.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.uint64)
    mask = np.uint64(0xFFFFFFFF)
    n = (x * np.uint64(73856093)) ^ (y * np.uint64(19349663)) ^ np.uint64(salt * 83492791)
    n = (n * np.uint64(2654435761)) & mask
    n ^= n >> np.uint64(15)
    n = (n * np.uint64(2246822519)) & mask
    n ^= n >> np.uint64(13)
    alpha = (n >> np.uint64(24)) & np.uint64(255)
    red = (x * np.uint64(255)) // np.uint64(max(width - 1, 1))
    green = np.where(((x // np.uint64(4)) + (y // np.uint64(4))) % np.uint64(2) == 0, 255, 0)
    blue = (n >> np.uint64(8)) & np.uint64(255)
    return np.stack([alpha, red, green.astype(np.uint64), blue], axis=-1).astype(np.uint8)


def to_argb_ints(image: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 ARGB -> (H, W) int32 as Android's ``Bitmap.getPixels`` returns them."""
    a, r, g, b = (image[..., i].astype(np.uint32) for i in range(4))
    return ((a << 24) | (r << 16) | (g << 8) | b).view(np.int32)


def image_cases() -> dict:
    """Each case: ARGB input, the pipeline's uint8 output (as ints) and the unrounded resize."""
    import tensorflow as tf

    from mobile_skin.contract.pipeline import resize_image

    cases = []
    for salt, (name, width, height, size) in enumerate(IMAGE_CASES, start=1):
        argb = pattern_image(width, height, salt)
        rgb = tf.constant(argb[..., 1:])  # what the app keeps: R, G, B; alpha dropped
        expected = resize_image(rgb, size).numpy()
        unrounded = tf.image.resize(rgb, (size, size), method="bilinear", antialias=True).numpy()
        cases.append(
            {
                "name": name,
                "width": width,
                "height": height,
                "size": size,
                "argb": to_argb_ints(argb).tolist(),
                "expected": expected.reshape(size, size * 3).astype(int).tolist(),
                "resized_float": np.round(unrounded.astype(np.float64), 4)
                .reshape(size, size * 3)
                .tolist(),
            }
        )
    return {
        "resize": "tf.image.resize(method='bilinear', antialias=True), tf.round, clip 0..255",
        "layout": "argb: rows of Bitmap.getPixels ints; expected/resized_float: rows of R,G,B",
        "cases": cases,
    }


def orientation_cases() -> dict:
    """The project's EXIF rule on a 5 x 3 image: orientation 1-8 -> the upright pixels."""
    from mobile_skin.contract.image import apply_orientation

    width, height, salt = ORIENTATION_IMAGE
    argb = pattern_image(width, height, salt)
    cases = []
    for orientation in range(1, 9):
        turned = apply_orientation(argb, orientation)
        cases.append(
            {
                "orientation": orientation,
                "width": int(turned.shape[1]),
                "height": int(turned.shape[0]),
                "argb": to_argb_ints(turned).tolist(),
            }
        )
    return {
        "rule": (
            "EXIF tag 0x0112 applied before resizing (mobile_skin.contract.image.apply_orientation)"
        ),
        "width": width,
        "height": height,
        "argb": to_argb_ints(argb).tolist(),
        "cases": cases,
    }


def production_cases() -> dict:
    """Full-size resizes: the input is :func:`pattern_image` (regenerated by the Kotlin test),
    the expected output its SHA-256 and per-row sums (the rows locate a difference)."""
    import hashlib

    from mobile_skin.contract.image import resize

    cases = []
    for name, width, height, size, salt in PRODUCTION_CASES:
        rgb = pattern_image(width, height, salt)[..., 1:]
        out = resize(rgb, size)
        cases.append(
            {
                "name": name,
                "width": width,
                "height": height,
                "size": size,
                "salt": salt,
                "sha256": hashlib.sha256(out.tobytes()).hexdigest(),
                "row_sums": out.reshape(size, -1).astype(np.int64).sum(axis=1).tolist(),
            }
        )
    return {
        "input": "pattern_image(width, height, salt), alpha dropped",
        "output": (
            "resize to size x size (mobile_skin.contract.image.resize), "
            "uint8 R,G,B bytes row by row"
        ),
        "cases": cases,
    }


def write_goldens(out_dir: str | Path) -> list[Path]:
    """Write every golden file into ``out_dir``; returns the paths written."""
    out_dir = Path(out_dir)
    spec = golden_spec()
    assert spec.encoding is not None
    paths = [spec.save(out_dir), out_dir / "labels.txt"]
    for file_name, doc in (
        (METADATA_FILE, metadata_cases(spec.encoding)),
        (IMAGE_FILE, image_cases()),
        (ORIENTATION_FILE, orientation_cases()),
        (PRODUCTION_FILE, production_cases()),
    ):
        paths.append(write_text(out_dir / file_name, dumps(doc) + "\n"))
    return paths


def dumps(obj: Any, indent: int = 0) -> str:
    """JSON with nested objects indented but each list of numbers or strings on one line."""
    pad = "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(obj, list) and any(isinstance(v, dict | list) for v in obj):
        items = [pad + dumps(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"not a JSON number: {obj}")
    return json.dumps(obj, separators=(", ", ": "))


def _floats32(vector: np.ndarray) -> list[float]:
    """float32 values as the Python floats that hold them exactly (parse back with toFloat())."""
    return [float(v) for v in np.asarray(vector, dtype=np.float32)]


@cli
def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m mobile_skin.android_golden OUT_DIR``."""
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "out_dir", type=Path, help=f"where to write the golden JSON files (committed: {GOLDEN_DIR})"
    )
    args = parser.parse_args(argv)
    for path in write_goldens(args.out_dir):
        print(path)


if __name__ == "__main__":
    main()
