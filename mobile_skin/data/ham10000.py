"""HAM10000 as it really comes: find the CSV and the images, validate them, return one table.

The data root holds ``HAM10000_metadata.csv`` (or a CSV given with ``--csv``) and the images,
found by ``image_id`` anywhere below the root: the official ``HAM10000_images_part_1/`` and
``_part_2/``, a single folder, ``.jpg``/``.jpeg``/``.png``, any resolution and colour mode.

Every problem becomes a one-line :class:`~mobile_skin.common.errors.UserError` naming the file, the
rows or the ids. With ``skip_bad_images`` the rows whose image is missing or unreadable are dropped
with a warning instead.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from mobile_skin.common.errors import UserError
from mobile_skin.contract.encoding import CLASSES, MAX_AGE

CSV_NAME = "HAM10000_metadata.csv"
REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx", "age", "sex", "localization")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: EXIF orientation tag (phone photos are often stored sideways with this set).
ORIENTATION_TAG = 0x0112
#: Formats (as PIL names them) that both the validator and TensorFlow's decoder read.
DECODABLE_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "GIF")
_LIST = 5  # how many ids/rows an error message names

Log = Callable[[str], None]


def load_ham10000(
    root: str | os.PathLike,
    csv: str | os.PathLike | None = None,
    *,
    skip_bad_images: bool = False,
    drop_missing_age: bool = True,
    verify_images: bool = True,
    log: Log = print,
) -> pd.DataFrame:
    """Read and validate a HAM10000-shaped dataset.

    Args:
        root: data root; images are searched recursively below it.
        csv: metadata CSV; default ``<root>/HAM10000_metadata.csv``.
        skip_bad_images: drop rows with missing or unreadable images (with a warning).
        drop_missing_age: drop rows without an age (the paper's choice).
        verify_images: fully decode every image once to catch truncated/corrupt files (without
            it only the headers are read).
        log: where progress and warnings go.

    Returns:
        The CSV's rows with three added columns: ``path`` (image file), ``orientation`` (its
        EXIF orientation, 1-8, applied by the pipeline) and ``label`` (class index into
        :data:`~mobile_skin.contract.encoding.CLASSES`); the index is the CSV's row number.

    Raises:
        UserError: on any problem, naming the file, the rows or the image ids.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: data directory not found")
    csv_path = Path(csv) if csv else root / CSV_NAME
    frame = read_metadata_csv(csv_path)
    log(f"{csv_path}: {len(frame)} rows, {frame['lesion_id'].nunique()} lesions")

    frame["path"] = _locate_images(frame["image_id"], root, log)
    missing = frame["path"].isna()
    if missing.any():
        ids = ", ".join(frame.loc[missing, "image_id"].head(_LIST))
        msg = (
            f"{missing.sum()} of {len(frame)} images listed in {csv_path.name} "
            f"are missing under {root} (first: {ids})"
        )
        if not skip_bad_images:
            raise UserError(msg + "; pass --skip-bad-images to drop them")
        log(f"warning: {msg}; dropped")
        frame = frame[~missing]

    bad, orientation = _inspect_images(frame["path"], log, decode=verify_images)
    frame = frame.assign(orientation=orientation)
    if bad:
        first_path, reason = bad[0]
        msg = f"{first_path}: unreadable image ({reason})"
        if len(bad) > 1:
            msg = f"{len(bad)} unreadable image files; first {msg}"
        if not skip_bad_images:
            raise UserError(msg + "; pass --skip-bad-images to drop them")
        log(f"warning: {msg}; dropped {len(bad)} rows")
        frame = frame[~frame["path"].isin({p for p, _ in bad})]

    no_age = frame["age"].isna()
    if drop_missing_age and no_age.any():
        log(f"dropped {no_age.sum()} rows without an age (as the paper does)")
        frame = frame[~no_age]
    if frame.empty:
        raise UserError(f"{csv_path}: no usable rows left")
    frame = frame.copy()
    frame["label"] = frame["dx"].map({c: i for i, c in enumerate(CLASSES)}).astype("int64")
    return frame


def read_metadata_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read the metadata CSV and check its columns and values (not the images)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: metadata CSV not found (pass --csv FILE to name another)")
    try:
        frame = pd.read_csv(path, dtype={"lesion_id": str, "image_id": str, "dx": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot parse CSV ({str(err).splitlines()[0]})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)} "
            f"(has: {', '.join(map(str, frame.columns))})"
        )
    frame.index = pd.RangeIndex(2, len(frame) + 2, name="line")  # CSV line numbers, header = 1
    _check_values(frame, path)
    frame["age"] = pd.to_numeric(frame["age"], errors="coerce")
    frame["sex"] = frame["sex"].fillna("unknown").astype(str).str.strip().str.lower()
    frame["localization"] = (
        frame["localization"].fillna("unknown").astype(str).str.strip().str.lower()
    )
    return frame


def _check_values(frame: pd.DataFrame, path: Path) -> None:
    for col in ("lesion_id", "image_id", "dx"):
        empty = frame[col].isna() | (frame[col].astype(str).str.strip() == "")
        if empty.any():
            raise UserError(f"{path}: empty {col} on line(s) {_lines(frame.index[empty])}")
    frame["dx"] = frame["dx"].str.strip().str.lower()
    frame["image_id"] = frame["image_id"].str.strip()
    unknown = ~frame["dx"].isin(CLASSES)
    if unknown.any():
        codes = ", ".join(sorted(set(frame.loc[unknown, "dx"])))
        raise UserError(
            f"{path}: unknown dx code(s) {codes} on line(s) {_lines(frame.index[unknown])}; "
            f"expected one of {', '.join(CLASSES)}"
        )
    dup = frame["image_id"].duplicated(keep=False)
    if dup.any():
        raise UserError(f"{path}: duplicate image_id on line(s) {_lines(frame.index[dup])}")
    per_lesion = frame.groupby("lesion_id")["dx"].nunique()
    mixed = per_lesion[per_lesion > 1]
    if len(mixed):
        raise UserError(
            f"{path}: lesion(s) with more than one dx: {', '.join(mixed.index[:_LIST])}"
        )
    ages = pd.to_numeric(frame["age"], errors="coerce")
    bad_age = (ages.isna() & frame["age"].notna()) | (ages < 0) | (ages > MAX_AGE)
    if bad_age.any():
        raise UserError(
            f"{path}: age not a number in 0..{MAX_AGE:g} on line(s) {_lines(frame.index[bad_age])}"
        )


def _lines(index: pd.Index) -> str:
    shown = ", ".join(str(i) for i in index[:_LIST])
    return shown + (f" and {len(index) - _LIST} more" if len(index) > _LIST else "")


def _locate_images(image_ids: pd.Series, root: Path, log: Log) -> pd.Series:
    """Map each image id to a file below ``root``; NaN where none is found.

    When an id exists in several folders (say a downscaled copy and an original), the copy in
    the folder holding the most of the listed images wins, so one run reads one consistent set.
    """
    wanted = set(image_ids)
    found: dict[str, list[Path]] = {}
    for dirpath, _dirs, files in os.walk(root, followlinks=True):
        for name in files:
            stem, suffix = os.path.splitext(name)
            if suffix.lower() in IMAGE_SUFFIXES and stem in wanted:
                found.setdefault(stem, []).append(Path(dirpath) / name)
    folder_hits = Counter(p.parent for paths in found.values() for p in paths)
    chosen = {}
    duplicated = 0
    for image_id, paths in found.items():
        if len(paths) > 1:
            duplicated += 1
            paths = sorted(paths, key=lambda p: (-folder_hits[p.parent], str(p)))
        chosen[image_id] = str(paths[0])
    if duplicated:
        main = max(folder_hits, key=folder_hits.get)
        log(f"{duplicated} images exist in more than one folder; using the copies in {main}")
    return image_ids.map(chosen)


def _check_image(path: str, decode: bool = True) -> tuple[str | None, int]:
    """(None, EXIF orientation) if ``path`` is a readable image (fully decoded when ``decode``),
    else (the reason it is not, 1)."""
    try:
        with Image.open(path) as img:
            if img.format not in DECODABLE_FORMATS:
                return f"unsupported format {img.format}; use JPEG or PNG", 1
            orientation = int(img.getexif().get(ORIENTATION_TAG, 1))
            if decode:
                img.load()
            if img.width < 1 or img.height < 1:
                return "empty image", 1
    except Exception as err:  # PIL raises many types for bad files  # noqa: BLE001
        return f"{type(err).__name__}: {err}", 1
    return None, orientation if 1 <= orientation <= 8 else 1


def _inspect_images(
    paths: pd.Series, log: Log, *, decode: bool = True
) -> tuple[list[tuple[str, str]], list[int]]:
    """Open every image (in threads; PIL releases the GIL): the unreadable ones with their
    reasons, and every image's EXIF orientation (1 = as stored)."""
    items = list(paths)
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        results = list(
            tqdm(
                pool.map(lambda p: _check_image(p, decode), items, chunksize=64),
                total=len(items),
                desc="checking images",
                unit="img",
                leave=False,
                disable=len(items) < 500 or not decode,
            )
        )
    bad = [(p, r) for p, (r, _) in zip(items, results, strict=True) if r is not None]
    return bad, [o for _, o in results]


def class_counts(frame: pd.DataFrame) -> np.ndarray:
    """Images per class, in :data:`CLASSES` order."""
    return np.bincount(frame["label"].to_numpy(), minlength=len(CLASSES))
