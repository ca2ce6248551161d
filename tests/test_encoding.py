"""Metadata encoding and model spec: known and unknown values, errors, JSON round-trip."""

import math

import numpy as np
import pandas as pd
import pytest

from mobile_skin.common.errors import UserError
from mobile_skin.contract.encoding import CLASSES, FIELDS, LOCALIZATIONS, SEXES, MetadataEncoding
from mobile_skin.contract.spec import ModelSpec


def test_layout_and_known_values():
    enc = MetadataEncoding(age_unknown_value=0.42)
    assert enc.size == 20 == 1 + 1 + len(SEXES) + len(LOCALIZATIONS)
    assert enc.layout == ("age", "age_missing", "sex", "localization")
    assert enc.offsets == {"age": 0, "age_missing": 1, "sex": 2, "localization": 5}
    vec = enc.encode(45, "female", "lower extremity")
    assert vec.dtype == np.float32 and vec.shape == (20,)
    assert vec[0] == pytest.approx(0.45) and vec[1] == 0.0  # a known age: indicator off
    assert vec[2 + SEXES.index("female")] == 1.0
    assert vec[5 + LOCALIZATIONS.index("lower extremity")] == 1.0
    assert vec.sum() == pytest.approx(0.45 + 2)


def test_unknowns_are_defined_values():
    enc = MetadataEncoding(age_unknown_value=0.42)
    for age in (None, float("nan"), "", "unknown"):
        vec = enc.encode(age, "unknown", "unknown")
        assert vec[0] == pytest.approx(0.42) and vec[1] == 1.0  # imputed, flagged as unknown
        assert vec[2 + SEXES.index("unknown")] == 1.0
        assert vec[5 + LOCALIZATIONS.index("unknown")] == 1.0
        np.testing.assert_array_equal(vec, enc.unknown_vector())
    # blanks and case/whitespace variants map onto the vocabulary
    assert np.array_equal(enc.encode(30, "", " Back "), enc.encode(30, "unknown", "back"))
    assert MetadataEncoding.unknown_fields(None, "male", " ") == ["age", "localization"]
    assert MetadataEncoding.unknown_fields(50, "female", "back") == []


def test_encoding_without_indicator_is_the_old_layout():
    enc = MetadataEncoding(age_unknown_value=0.42, age_missing_indicator=False)
    assert enc.size == 19 and enc.offsets == {"age": 0, "sex": 1, "localization": 4}
    assert enc.encode(None, "male", "back")[0] == pytest.approx(0.42)
    old = enc.to_dict()
    del old["age_missing_indicator"]  # a spec written before the indicator existed
    assert MetadataEncoding.from_dict(old) == enc


def test_mask_sets_fields_to_unknown():
    enc = MetadataEncoding(age_unknown_value=0.42)
    rows = np.stack([enc.encode(45, "female", "back"), enc.encode(70, "male", "face")])
    masked = enc.mask(rows, ["age", "localization"])
    np.testing.assert_array_equal(masked[1], enc.encode(None, "male", "unknown"))
    np.testing.assert_array_equal(enc.mask(rows, FIELDS), np.stack([enc.unknown_vector()] * 2))
    np.testing.assert_array_equal(enc.mask(rows, []), rows)
    assert rows[0, 0] == pytest.approx(0.45)  # the input is not changed
    matrix = enc.field_matrix()
    assert matrix.shape == (3, 20) and (matrix.sum(axis=0) == 1).all()  # fields tile the vector
    with pytest.raises(UserError, match="unknown metadata field"):
        enc.mask(rows, ["weight"])


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
        "age_missing": 1,
        "sex": 2,
        "localization": 5,
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
