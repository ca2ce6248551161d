"""Classes and the one patient-metadata encoding (age, sex, anatomical site).

This is the only place the vocabularies and the encoding live. The encoding is written into
``model_spec.json`` beside every model (see :mod:`mobile_skin.contract.spec`), and every runtime,
including the Android app, reads it from there instead of copying these constants.

Vector layout (``D = 1 + 1 + 3 + 15 = 20``)::

    [ age / age_scale | age missing (0/1) | one-hot sex (male, female, unknown)
      | one-hot site (15 HAM10000 values) ]

An unknown age becomes ``age_unknown_value`` (the mean scaled age of the training split) with the
missing-age indicator set to 1, so the model can tell "unknown" from a real age. Models trained
before the indicator existed (``age_missing_indicator`` false or absent in their spec) have
``D = 19`` and no indicator; their specs load unchanged.

**Unknown means "no information".** :meth:`MetadataEncoding.mask` sets chosen fields of encoded
vectors to their unknown value (age: the unknown value and indicator 1; sex and site: the one-hot
``unknown``). Training uses the same rule for metadata dropout
(:mod:`mobile_skin.contract.pipeline`), and evaluation for its masked-metadata table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from mobile_skin.common.errors import UserError

if TYPE_CHECKING:  # pandas is not needed to run an exported file (requirements-runtime.txt)
    import pandas as pd

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
#: The metadata fields, in vector order; each can be unknown.
FIELDS: tuple[str, ...] = ("age", "sex", "localization")


@dataclass(frozen=True)
class MetadataEncoding:
    """How (age, sex, site) becomes the model's ``metadata`` vector.

    Attributes:
        age_scale: the age in years is divided by this.
        age_unknown_value: the encoded value used when the age is unknown (already scaled).
        sexes: one-hot vocabulary for sex, in vector order (must hold ``unknown``).
        localizations: one-hot vocabulary for the anatomical site, in vector order (must hold
            ``unknown``).
        age_missing_indicator: the vector has a 0/1 "age unknown" feature after the age.
    """

    age_scale: float = 100.0
    age_unknown_value: float = 0.5
    sexes: tuple[str, ...] = SEXES
    localizations: tuple[str, ...] = LOCALIZATIONS
    age_missing_indicator: bool = True

    def __post_init__(self) -> None:
        for what, vocab in (("sexes", self.sexes), ("localizations", self.localizations)):
            if UNKNOWN not in vocab:
                raise UserError(f"metadata encoding: {what} must include {UNKNOWN!r}")

    @property
    def layout(self) -> tuple[str, ...]:
        """The vector's segments, in order."""
        age = ("age", "age_missing") if self.age_missing_indicator else ("age",)
        return (*age, "sex", "localization")

    @property
    def offsets(self) -> dict[str, int]:
        """Index of each segment's first element."""
        ind = int(self.age_missing_indicator)
        out = {"age": 0, "sex": 1 + ind, "localization": 1 + ind + len(self.sexes)}
        if ind:
            out["age_missing"] = 1
        return out

    @property
    def size(self) -> int:
        """Length D of the metadata vector."""
        return 1 + int(self.age_missing_indicator) + len(self.sexes) + len(self.localizations)

    def field_slices(self) -> dict[str, slice]:
        """The part of the vector each of :data:`FIELDS` owns (age with its indicator)."""
        o = self.offsets
        return {
            "age": slice(0, o["sex"]),
            "sex": slice(o["sex"], o["localization"]),
            "localization": slice(o["localization"], self.size),
        }

    def unknown_vector(self) -> np.ndarray:
        """The encoding of a patient with every field unknown."""
        return self.encode(None, UNKNOWN, UNKNOWN)

    def field_matrix(self) -> np.ndarray:
        """(len(FIELDS), D) 0/1: row f marks the elements field f owns."""
        out = np.zeros((len(FIELDS), self.size), dtype=np.float32)
        for i, piece in enumerate(self.field_slices().values()):
            out[i, piece] = 1.0
        return out

    def mask(self, vectors: np.ndarray, fields: Sequence[str]) -> np.ndarray:
        """A copy of encoded ``vectors`` (N, D) with ``fields`` set to unknown."""
        unknown = [f for f in fields if f not in FIELDS]
        if unknown:
            raise UserError(f"unknown metadata field(s) {unknown}; choose from {FIELDS}")
        out = np.array(vectors, dtype=np.float32, copy=True)
        blank, slices = self.unknown_vector(), self.field_slices()
        for name in fields:
            out[:, slices[name]] = blank[slices[name]]
        return out

    @classmethod
    def fit(
        cls, ages: Sequence[float] | pd.Series, *, age_missing_indicator: bool = True
    ) -> MetadataEncoding:
        """The default encoding; unknown ages map to the mean of ``ages`` (training split)."""
        import pandas as pd

        known = pd.Series(ages, dtype="float64").dropna()
        mean = float(known.mean()) if len(known) else 50.0
        return cls(
            age_unknown_value=round(mean / cls.age_scale, 6),
            age_missing_indicator=age_missing_indicator,
        )

    def encode(self, age: float | None, sex: str, site: str) -> np.ndarray:
        """Encode one patient; raises :class:`UserError` on a value outside the vocabularies."""
        vec = np.zeros(self.size, dtype=np.float32)
        value = self._age(age)
        o = self.offsets
        vec[0] = self.age_unknown_value if value is None else value
        if self.age_missing_indicator:
            vec[o["age_missing"]] = 1.0 if value is None else 0.0
        vec[o["sex"] + _index(self.sexes, sex, "sex")] = 1.0
        vec[o["localization"] + _index(self.localizations, site, "site")] = 1.0
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

    @staticmethod
    def unknown_fields(age: float | None, sex: str | None, site: str | None) -> list[str]:
        """Which of :data:`FIELDS` a patient's raw values leave unknown."""
        values = {"age": age, "sex": sex, "localization": site}
        return [name for name in FIELDS if _is_unknown(values[name])]

    def _age(self, age: float | None) -> float | None:
        """The scaled age, or None when unknown."""
        if _is_unknown(age):
            return None
        try:
            value = float(age)
        except (TypeError, ValueError):
            raise UserError(f"age {age!r} is not a number") from None
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
        d["offsets"] = self.offsets
        d["unknown"] = UNKNOWN
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MetadataEncoding:
        """Inverse of :meth:`to_dict`; a spec without ``age_missing_indicator`` has none."""
        return cls(
            age_scale=float(d["age_scale"]),
            age_unknown_value=float(d["age_unknown_value"]),
            sexes=tuple(d["sexes"]),
            localizations=tuple(d["localizations"]),
            age_missing_indicator=bool(d.get("age_missing_indicator", False)),
        )


def _is_unknown(value) -> bool:
    """None, NaN, an empty string and the words unknown/nan/none mean "not known"."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str) and value.strip().lower() in ("", "nan", "none", UNKNOWN):
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _index(vocab: Sequence[str], value: str, what: str) -> int:
    key = str(value).strip().lower() if value is not None else UNKNOWN
    if key in ("", "nan", "none"):
        key = UNKNOWN
    try:
        return list(vocab).index(key)
    except ValueError:
        raise UserError(f"unknown {what} {value!r}; expected one of: {', '.join(vocab)}") from None


#: D of the default encoding (what new models are built and trained with).
METADATA_SIZE = MetadataEncoding().size
