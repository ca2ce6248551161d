"""Metadata encoding and model spec: known and unknown values, errors, JSON round-trip."""

import math

import numpy as np
import pandas as pd
import pytest

from mobile_skin.encoding import CLASSES, LOCALIZATIONS, SEXES, MetadataEncoding
from mobile_skin.errors import UserError
from mobile_skin.spec import ModelSpec


def test_layout_and_known_values():
    enc = MetadataEncoding(age_unknown_value=0.42)
    assert enc.size == 19 == 1 + len(SEXES) + len(LOCALIZATIONS)
    vec = enc.encode(45, "female", "lower extremity")
    assert vec.dtype == np.float32 and vec.shape == (19,)
    assert vec[0] == pytest.approx(0.45)
    assert vec[1 + SEXES.index("female")] == 1.0
    assert vec[4 + LOCALIZATIONS.index("lower extremity")] == 1.0
    assert vec.sum() == pytest.approx(0.45 + 2)


def test_unknowns_are_defined_values():
    enc = MetadataEncoding(age_unknown_value=0.42)
    for age in (None, float("nan")):
        vec = enc.encode(age, "unknown", "unknown")
        assert vec[0] == pytest.approx(0.42)
        assert vec[1 + SEXES.index("unknown")] == 1.0
        assert vec[4 + LOCALIZATIONS.index("unknown")] == 1.0
    # blanks and case/whitespace variants map onto the vocabulary
    assert np.array_equal(enc.encode(30, "", " Back "), enc.encode(30, "unknown", "back"))


@pytest.mark.parametrize(
    "age,sex,site,message",
    [(30, "robot", "back", "unknown sex 'robot'"),
     (30, "male", "elbow", "unknown site 'elbow'"),
     (150, "male", "back", "age 150 is outside"),
     ("old", "male", "back", "age 'old' is not a number")],
)  # fmt: skip
def test_bad_values_name_the_problem(age, sex, site, message):
    with pytest.raises(UserError, match=message):
        MetadataEncoding().encode(age, sex, site)


def test_fit_uses_mean_training_age():
    enc = MetadataEncoding.fit(pd.Series([40.0, 60.0, np.nan]))
    assert enc.age_unknown_value == pytest.approx(0.5)


def test_encode_frame_names_the_row():
    frame = pd.DataFrame({"age": [30, 40], "sex": ["male", "martian"],
                          "localization": ["back"] * 2},
                         index=[7, 8])  # fmt: skip
    with pytest.raises(UserError, match="row 8"):
        MetadataEncoding().encode_frame(frame)


def test_spec_round_trip(tmp_path):
    spec = ModelSpec(
        image_size=160, encoding=MetadataEncoding(age_unknown_value=0.51), source_run="r"
    )
    path = spec.save(tmp_path)
    again = ModelSpec.load(path)
    assert again == spec
    assert (tmp_path / "labels.txt").read_text().split() == list(CLASSES)
    assert again.to_dict()["inputs"]["metadata"]["encoding"]["offsets"] == {
        "age": 0,
        "sex": 1,
        "localization": 4,
    }
    image_only = ModelSpec(image_size=64, encoding=None)
    assert ModelSpec.from_dict(image_only.to_dict()).input_names == ["image"]
    assert not math.isnan(again.encoding.age_unknown_value)


def test_spec_errors(tmp_path):
    with pytest.raises(UserError, match="model spec not found"):
        ModelSpec.load(tmp_path)
    (tmp_path / "model_spec.json").write_text("{not json")
    with pytest.raises(UserError, match="not a valid model spec"):
        ModelSpec.load(tmp_path)
