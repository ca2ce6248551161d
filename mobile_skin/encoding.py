"""Classes and the one patient-metadata encoding (age, sex, anatomical site).

This is the only place the vocabularies and the encoding live. The encoding is written into
``model_spec.json`` beside every model (see :mod:`mobile_skin.spec`), and every runtime, including
the Android app, reads it from there instead of copying these constants.

Vector layout (``D = 1 + 3 + 15 = 19``)::

    [ age / age_scale | one-hot sex (male, female, unknown) | one-hot site (15 HAM10000 values) ]

An unknown age becomes ``age_unknown_value`` (the mean scaled age of the training split).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from mobile_skin.errors import UserError

#: Diagnosis codes in model output order.
CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

#: Full names of the diagnosis codes, for people.
CLASS_NAMES: dict[str, str] = {
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis-like lesion",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
}

SEXES: tuple[str, ...] = ("male", "female", "unknown")

#: The 15 ``localization`` values of HAM10000, ``unknown`` included.
LOCALIZATIONS: tuple[str, ...] = (
    "abdomen",
    "acral",
    "back",
    "chest",
    "ear",
    "face",
    "foot",
    "genital",
    "hand",
    "lower extremity",
    "neck",
    "scalp",
    "trunk",
    "unknown",
    "upper extremity",
)

UNKNOWN = "unknown"
MAX_AGE = 120.0


@dataclass(frozen=True)
class MetadataEncoding:
    """How (age, sex, site) becomes the model's ``metadata`` vector.

    Attributes:
        age_scale: the age in years is divided by this.
        age_unknown_value: the encoded value used when the age is unknown (already scaled).
        sexes: one-hot vocabulary for sex, in vector order.
        localizations: one-hot vocabulary for the anatomical site, in vector order.
    """

    age_scale: float = 100.0
    age_unknown_value: float = 0.5
    sexes: tuple[str, ...] = SEXES
    localizations: tuple[str, ...] = LOCALIZATIONS
    layout: tuple[str, ...] = field(default=("age", "sex", "localization"), init=False)

    @property
    def size(self) -> int:
        """Length D of the metadata vector."""
        return 1 + len(self.sexes) + len(self.localizations)

    @classmethod
    def fit(cls, ages: Sequence[float] | pd.Series) -> MetadataEncoding:
        """The default encoding; unknown ages map to the mean of ``ages`` (training split)."""
        known = pd.Series(ages, dtype="float64").dropna()
        mean = float(known.mean()) if len(known) else 50.0
        return cls(age_unknown_value=round(mean / cls.age_scale, 6))

    def encode(self, age: float | None, sex: str, site: str) -> np.ndarray:
        """Encode one patient; raises :class:`UserError` on a value outside the vocabularies."""
        vec = np.zeros(self.size, dtype=np.float32)
        vec[0] = self._age(age)
        vec[1 + _index(self.sexes, sex, "sex")] = 1.0
        vec[1 + len(self.sexes) + _index(self.localizations, site, "site")] = 1.0
        return vec

    def encode_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode the ``age``, ``sex`` and ``localization`` columns of ``frame`` into (N, D)."""
        out = np.zeros((len(frame), self.size), dtype=np.float32)
        for row, (age, sex, site) in enumerate(
            zip(frame["age"], frame["sex"], frame["localization"], strict=True)
        ):
            try:
                out[row] = self.encode(age, sex, site)
            except UserError as err:
                raise UserError(f"row {frame.index[row]}: {err}") from None
        return out

    def _age(self, age: float | None) -> float:
        if age is None or (isinstance(age, float) and math.isnan(age)):
            return self.age_unknown_value
        try:
            value = float(age)
        except (TypeError, ValueError):
            raise UserError(f"age {age!r} is not a number") from None
        if math.isnan(value):
            return self.age_unknown_value
        if not 0.0 <= value <= MAX_AGE:
            raise UserError(f"age {value:g} is outside 0..{MAX_AGE:g}")
        return value / self.age_scale

    def to_dict(self) -> dict:
        """JSON-ready description, including the vector layout and offsets."""
        d = asdict(self)
        d["sexes"] = list(self.sexes)
        d["localizations"] = list(self.localizations)
        d["layout"] = list(self.layout)
        d["size"] = self.size
        d["max_age"] = MAX_AGE
        d["offsets"] = {"age": 0, "sex": 1, "localization": 1 + len(self.sexes)}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MetadataEncoding:
        """Inverse of :meth:`to_dict`."""
        return cls(
            age_scale=float(d["age_scale"]),
            age_unknown_value=float(d["age_unknown_value"]),
            sexes=tuple(d["sexes"]),
            localizations=tuple(d["localizations"]),
        )


def _index(vocab: Sequence[str], value: str, what: str) -> int:
    key = str(value).strip().lower() if value is not None else UNKNOWN
    if key in ("", "nan", "none"):
        key = UNKNOWN
    try:
        return list(vocab).index(key)
    except ValueError:
        raise UserError(f"unknown {what} {value!r}; expected one of: {', '.join(vocab)}") from None
