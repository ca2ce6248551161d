"""The Android core's golden cases: regenerated, they must equal the committed copy.

``android_demo/core`` (Kotlin) is tested against JSON files Python writes. If the Python side
changes (encoding, spec layout, resize), these tests fail until the goldens are regenerated with
``python -m mobile_skin.android_golden android_demo/core/src/test/resources/golden`` and the Kotlin
tests (``make android-test``) pass again on them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mobile_skin.common.errors import UserError
from mobile_skin.contract.android_golden import (
    GOLDEN_DIR,
    IMAGE_FILE,
    METADATA_FILE,
    ORIENTATION_FILE,
    PRODUCTION_FILE,
    golden_spec,
    pattern_image,
    to_argb_ints,
    write_goldens,
)
from mobile_skin.contract.encoding import MetadataEncoding
from mobile_skin.contract.spec import SPEC_FILE, ModelSpec

COMMITTED = Path(__file__).resolve().parents[1] / GOLDEN_DIR
REGENERATE = f"regenerate with: python -m mobile_skin.android_golden {GOLDEN_DIR}"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("golden")
    write_goldens(out)
    return out


def _load(directory: Path, name: str):
    return json.loads((directory / name).read_text())


@pytest.mark.parametrize(
    "name", [SPEC_FILE, "labels.txt", METADATA_FILE, ORIENTATION_FILE, PRODUCTION_FILE]
)
def test_committed_goldens_are_current(fresh: Path, name: str) -> None:
    assert (COMMITTED / name).is_file(), f"{COMMITTED / name} is missing; {REGENERATE}"
    assert (fresh / name).read_text() == (COMMITTED / name).read_text(), (
        f"{name} changed; {REGENERATE}"
    )


def test_committed_image_goldens_are_current(fresh: Path) -> None:
    new, old = _load(fresh, IMAGE_FILE), _load(COMMITTED, IMAGE_FILE)
    assert [c["name"] for c in new["cases"]] == [c["name"] for c in old["cases"]], REGENERATE
    for a, b in zip(new["cases"], old["cases"], strict=True):
        for key in ("width", "height", "size", "argb", "expected"):
            assert a[key] == b[key], f"{a['name']}: {key} changed; {REGENERATE}"
        np.testing.assert_allclose(a["resized_float"], b["resized_float"], atol=1e-3)


def test_encoded_vectors_by_hand() -> None:
    enc = golden_spec().encoding
    assert enc is not None and enc.size == 20 and enc.age_missing_indicator
    assert enc.age_unknown_value == pytest.approx(0.516667)
    # [age | age missing | male female unknown | abdomen acral back chest ear face ... upper ext.]
    want = np.zeros(20, np.float32)
    want[[0, 2, 2 + 3 + 2]] = [np.float32(0.45), 1.0, 1.0]
    np.testing.assert_array_equal(enc.encode(45, "male", "back"), want)
    want = np.zeros(20, np.float32)
    want[[0, 1, 4, 5 + 13]] = [np.float32(0.516667), 1.0, 1.0, 1.0]  # unknown age, sex, site
    np.testing.assert_array_equal(enc.encode(None, None, ""), want)
    want = np.zeros(20, np.float32)
    want[[0, 3, 5 + 9]] = [np.float32(0.51), 1.0, 1.0]  # "lower extremity"
    np.testing.assert_array_equal(enc.encode(51, "  Female ", "Lower Extremity\t"), want)


def test_golden_cases_cover_the_contract(fresh: Path) -> None:
    doc = _load(fresh, METADATA_FILE)
    valid = {c["name"]: c for c in doc["valid"]}
    assert any(c["age"] is None for c in valid.values())
    assert any(c["sex"] is None and c["site"] is None for c in valid.values())
    assert {"sex", "site", "age"} <= {c["field"] for c in doc["invalid"]}
    enc = MetadataEncoding.from_dict(
        _load(fresh, SPEC_FILE)["inputs"]["metadata"]["encoding"]
    )  # the JSON the app reads gives back the same encoding
    for case in doc["invalid"]:
        with pytest.raises(UserError):
            enc.encode(case["age"], case["sex"], case["site"])
    sizes = {
        (c["width"] > c["size"], c["height"] > c["size"]) for c in _load(fresh, IMAGE_FILE)["cases"]
    }
    assert {(False, False), (True, True), (True, False)} <= sizes  # up, down, mixed
    assert ModelSpec.load(fresh).image_size == golden_spec().image_size


def test_argb_ints_match_android_layout() -> None:
    image = pattern_image(5, 3, salt=1)
    ints = to_argb_ints(image)
    assert ints.dtype == np.int32 and ints.shape == (3, 5)
    a, r, g, b = (int(v) for v in image[2, 4])
    value = int(ints[2, 4]) & 0xFFFFFFFF
    assert value == (a << 24) | (r << 16) | (g << 8) | b
    assert len({int(v) for v in image[..., 0].ravel()}) > 1  # alpha varies, so it must be ignored


def test_production_goldens_are_the_training_pipelines_pixels(fresh: Path) -> None:
    """The goldens come from mobile_skin.contract.image; TensorFlow's pipeline gives the same
    bytes."""
    import hashlib

    import tensorflow as tf

    from mobile_skin.contract.pipeline import resize_image

    for case in _load(fresh, PRODUCTION_FILE)["cases"]:
        rgb = pattern_image(case["width"], case["height"], case["salt"])[..., 1:]
        out = resize_image(tf.constant(rgb), case["size"]).numpy()
        assert hashlib.sha256(out.tobytes()).hexdigest() == case["sha256"], case["name"]
