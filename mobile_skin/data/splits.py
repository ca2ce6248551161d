"""Train/validation/test splits: grouped by lesion (default) or the paper's image-level shuffle.

HAM10000 has 10,015 images of 7,470 lesions; an image-level split puts views of one lesion on
both sides and flatters every metric. The default split assigns whole lesions, stratified by
diagnosis. The split is written as CSV so a run can be audited and repeated.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mobile_skin.common.config import DataConfig
from mobile_skin.common.errors import UserError
from mobile_skin.common.fileio import atomic_path
from mobile_skin.contract.encoding import CLASSES

SPLITS = ("train", "val", "test")
SPLIT_KINDS = ("grouped", "paper")


def make_split(
    frame: pd.DataFrame,
    kind: str = "grouped",
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
) -> pd.Series:
    """Assign every row of ``frame`` to ``train``, ``val`` or ``test``.

    ``grouped``: per diagnosis, the lesions are shuffled and the first ``test_fraction`` go to
    test, the next ``val_fraction`` to validation (at least one each when a class has 3 or more
    lesions), the rest to train. ``paper``: images shuffled, ``test_fraction`` to test, the rest to
    train, no validation split (validation uses the test rows, as a 90/10 split implies).

    Returns:
        A Series of split names indexed like ``frame``.
    """
    rng = np.random.default_rng(seed)
    if kind == "grouped":
        lesions = frame.groupby("lesion_id", sort=True)["dx"].first()
        assignment: dict[str, str] = {}
        for dx in CLASSES:
            ids = lesions.index[lesions == dx].to_numpy()
            ids = ids[rng.permutation(len(ids))]
            n_test, n_val = _counts(len(ids), test_fraction), _counts(len(ids), val_fraction)
            for i, lesion in enumerate(ids):
                assignment[lesion] = (
                    "test" if i < n_test else "val" if i < n_test + n_val else "train"
                )
        split = frame["lesion_id"].map(assignment)
        check_no_lesion_overlap(frame, split)
    elif kind == "paper":
        order = rng.permutation(len(frame))
        n_test = int(round(test_fraction * len(frame)))
        names = np.where(np.isin(np.arange(len(frame)), order[:n_test]), "test", "train")
        split = pd.Series(names, index=frame.index)
        shared = _shared_lesions(frame, split)
        if shared:
            warnings.warn(
                f"--split paper is image-level: {shared} test lesions also have images in train "
                "(the split leaks lesions; use the default grouped split for honest numbers)",
                stacklevel=2,
            )
    else:
        raise UserError(f"unknown --split {kind!r}; choose from {', '.join(SPLIT_KINDS)}")
    return split.rename("split")


def draw_run_split(
    frame: pd.DataFrame, data: DataConfig, log: Callable[[str], None] = print
) -> tuple[pd.DataFrame, pd.Series]:
    """A new run's rows and split, as ``data`` asks: at most ``max_images`` rows, the split of
    :func:`make_split`, and rows without an age dropped after the split (or before it, with
    ``drop_before_split``, as runs saved before the split-first order did) or kept.

    Returns:
        ``(frame, split)``, the frame without any dropped rows and the split indexed like it.
    """
    no_age = frame["age"].isna()
    if data.drop_missing_age and data.drop_before_split and no_age.any():
        log(f"dropped {no_age.sum()} rows without an age (as the paper does), before the split")
        frame = frame[~no_age]
    if data.max_images and data.max_images < len(frame):
        frame = frame.sample(n=data.max_images, random_state=data.seed).sort_index()
    split = make_split(
        frame,
        data.split,
        val_fraction=data.val_fraction,
        test_fraction=data.test_fraction,
        seed=data.seed,
    )
    no_age = frame["age"].isna()
    if data.drop_missing_age and no_age.any():
        log(f"dropped {no_age.sum()} rows without an age (as the paper does), after the split")
        frame, split = frame[~no_age], split[~no_age]
    elif no_age.any():
        log(f"kept {no_age.sum()} rows without an age (encoded as unknown)")
    return frame, split


def _counts(n: int, fraction: float) -> int:
    k = int(round(fraction * n))
    return max(k, 1) if n >= 3 and fraction > 0 else k


def _shared_lesions(frame: pd.DataFrame, split: pd.Series) -> int:
    train = set(frame.loc[split == "train", "lesion_id"])
    return len(set(frame.loc[split != "train", "lesion_id"]) & train)


def leaking_lesions(frame: pd.DataFrame, split: pd.Series) -> pd.Index:
    """The lesion ids with images in more than one split (empty for a grouped split)."""
    per_lesion = split.groupby(frame["lesion_id"]).nunique()
    return per_lesion.index[per_lesion > 1]


def check_no_lesion_overlap(frame: pd.DataFrame, split: pd.Series) -> None:
    """Raise if any lesion has images in two different splits."""
    leaking = leaking_lesions(frame, split)
    if len(leaking):
        raise UserError(f"split leaks lesions across splits: {', '.join(leaking[:5])}")


def subset(frame: pd.DataFrame, split: pd.Series, name: str) -> pd.DataFrame:
    """Rows of split ``name``; ``val`` falls back to ``test`` for a split without validation."""
    if name not in SPLITS:
        raise UserError(f"unknown split {name!r}; choose from {', '.join(SPLITS)}")
    if name == "val" and not (split == "val").any():
        name = "test"
    rows = frame[split.reindex(frame.index) == name]
    if rows.empty:
        raise UserError(f"the {name} split is empty")
    return rows


def save_split(path: str | Path, frame: pd.DataFrame, split: pd.Series) -> Path:
    """Write ``image_id, lesion_id, dx, split`` as CSV (atomically)."""
    table = frame[["image_id", "lesion_id", "dx"]].assign(split=split)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def load_split(path: str | Path, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Read a split CSV back; return the rows of ``frame`` it lists and their split names.

    Rows of ``frame`` the split does not list (e.g. a run on a subset) are left out; an image the
    split lists but ``frame`` lacks is an error, since the run could not be reproduced.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: split file not found")
    table = pd.read_csv(path, dtype=str)
    if not {"image_id", "split"} <= set(table.columns):
        raise UserError(f"{path}: needs columns image_id and split")
    absent = ~table["image_id"].isin(set(frame["image_id"]))
    if absent.any():
        ids = ", ".join(table.loc[absent, "image_id"].head(5))
        raise UserError(f"{path}: {absent.sum()} images of the split are not in the data ({ids})")
    mapping = dict(zip(table["image_id"], table["split"], strict=True))
    split = frame["image_id"].map(mapping)
    keep = split.notna()
    return frame[keep], split[keep].rename("split")


def split_table(frame: pd.DataFrame, split: pd.Series) -> pd.DataFrame:
    """Images per class (rows) and split (columns), with totals and lesion counts."""
    table = pd.crosstab(frame["dx"], split).reindex(index=list(CLASSES), fill_value=0)
    table = table[[s for s in SPLITS if s in table.columns]]
    table.loc["total"] = table.sum()
    table.loc["lesions"] = [frame.loc[split == s, "lesion_id"].nunique() for s in table.columns]
    return table
