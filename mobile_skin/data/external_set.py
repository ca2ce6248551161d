"""An external HAM10000-shaped dataset read for scoring: every usable row, not a split.

Rows without an age are kept (the encoding has an unknown-age value); sex and site values the
model's encoding does not know are scored as unknown and counted; a diagnosis the model has no
class for is a one-line error naming the CSV line. Used by ``python -m mobile_skin.evaluate RUN
--dataset DIR`` (:mod:`mobile_skin.evaluation.evaluate`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mobile_skin.common.errors import UserError
from mobile_skin.contract.encoding import UNKNOWN, MetadataEncoding
from mobile_skin.contract.spec import ModelSpec
from mobile_skin.data.ham10000 import CSV_NAME, load_ham10000, read_metadata_csv

#: The metadata columns the encoding reads, with the vocabulary attribute each one is checked in.
VOCABULARIES = {"sex": "sexes", "localization": "localizations"}


@dataclass(frozen=True)
class ExternalSet:
    """A HAM10000-shaped dataset read for scoring.

    Attributes:
        rows: the usable rows, ``label`` indexing the model's classes, sex and site mapped into
            the model's vocabularies.
        root: the dataset folder.
        csv: its metadata CSV.
        csv_rows: rows in the CSV (more than ``rows`` when ``--skip-bad-images`` dropped some).
        unmapped: per metadata column, the values the encoding does not know (scored as unknown)
            and their row counts.
    """

    rows: pd.DataFrame
    root: Path
    csv: Path
    csv_rows: int
    unmapped: dict[str, dict[str, int]]

    @property
    def name(self) -> str:
        """The output folder's name: ``eval_<folder>``, plus the CSV's stem when it is not the
        default one (two CSVs in one folder do not overwrite each other)."""
        name = f"eval_{self.root.name}"
        if self.csv.name != CSV_NAME:
            name += f"_{self.csv.stem}"
        return safe_name(name)

    def describe(self) -> dict:
        """JSON-ready: where the data came from and what was scored."""
        return {
            "root": str(self.root),
            "csv": str(self.csv),
            "csv_rows": self.csv_rows,
            "scored": len(self.rows),
            "unmapped_metadata": self.unmapped,
        }


def read_external(
    root: str,
    csv: str | None,
    spec: ModelSpec,
    *,
    skip_bad_images: bool = False,
    log=print,
) -> ExternalSet:
    """Read and validate a HAM10000-shaped folder for scoring with ``spec``'s model.

    Keeps rows without an age; maps sex and site values outside the model's vocabularies to
    unknown (:func:`map_unknown_values`); labels the rows by the model's class order.

    Raises:
        UserError: a missing folder or CSV, bad rows or images (see
            :func:`mobile_skin.data.ham10000.load_ham10000`), or a diagnosis the model has no class
            for.
    """
    folder, csv_path = dataset_files(root, csv)
    csv_rows = len(read_metadata_csv(csv_path))
    frame = load_ham10000(
        folder, csv_path, skip_bad_images=skip_bad_images, drop_missing_age=False, log=log
    )
    frame = frame.assign(label=class_labels(frame, spec.classes, csv_path))
    unmapped: dict[str, dict[str, int]] = {}
    if spec.encoding is not None:
        frame, unmapped = map_unknown_values(frame, spec.encoding)
    for column, values in unmapped.items():
        listed = ", ".join(f"{v!r} ({n} row{'s' * (n != 1)})" for v, n in values.items())
        log(f"warning: {column} values the model does not know, scored as unknown: {listed}")
    return ExternalSet(frame, folder, csv_path, csv_rows, unmapped)


def dataset_files(root: str | Path, csv: str | Path | None) -> tuple[Path, Path]:
    """The dataset folder (absolute) and its metadata CSV.

    Raises:
        UserError: the folder or the CSV does not exist (naming ``--dataset`` or ``--csv``).
    """
    folder = Path(root)
    if not folder.is_dir():
        raise UserError(f"--dataset {folder}: not a directory")
    csv_path = Path(csv) if csv else folder / CSV_NAME
    if not csv_path.is_file():
        flag = "--csv" if csv else "--dataset"
        hint = "" if csv else " (pass --csv FILE to name another CSV)"
        raise UserError(f"{flag} {csv_path}: metadata CSV not found{hint}")
    return folder.resolve(), csv_path


def class_labels(frame: pd.DataFrame, classes, source: str | Path) -> pd.Series:
    """Each row's ``dx`` as an index into the model's ``classes``.

    Raises:
        UserError: naming ``source`` (the CSV), the first line and the value, for a diagnosis the
            model does not have.
    """
    index = {c: i for i, c in enumerate(classes)}
    labels = frame["dx"].map(index)
    unknown = labels.isna()
    if unknown.any():
        line, value = frame.index[unknown][0], frame.loc[unknown, "dx"].iloc[0]
        more = f" (and {int(unknown.sum()) - 1} more rows)" if unknown.sum() > 1 else ""
        raise UserError(
            f"{source}: line {line}: dx {value!r} is not a class of the model{more}; "
            f"its classes are {', '.join(classes)}"
        )
    return labels.astype("int64")


def map_unknown_values(
    frame: pd.DataFrame, encoding: MetadataEncoding
) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """``frame`` with sex and site values outside ``encoding``'s vocabularies set to unknown.

    Returns:
        The mapped frame, and per column the values replaced with their row counts (only columns
        that had any).
    """
    frame = frame.copy()
    unmapped = {}
    for column, attribute in VOCABULARIES.items():
        known = frame[column].isin(getattr(encoding, attribute))
        if not known.all():
            unmapped[column] = {
                str(k): int(v) for k, v in frame.loc[~known, column].value_counts().items()
            }
            frame.loc[~known, column] = UNKNOWN
    return frame, unmapped


def safe_name(name: str) -> str:
    """``name`` with anything but letters, digits, ``_``, ``.`` and ``-`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"
