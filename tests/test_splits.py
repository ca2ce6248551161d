"""Splits: grouped by lesion (no leaks), stratified, reproducible, written and read back."""

import numpy as np
import pandas as pd
import pytest

from mobile_skin.common.config import DataConfig
from mobile_skin.common.errors import UserError
from mobile_skin.data.ham10000 import load_ham10000
from mobile_skin.data.splits import (
    check_no_lesion_overlap,
    draw_run_split,
    leaking_lesions,
    load_split,
    make_split,
    save_split,
    split_table,
    subset,
)


@pytest.fixture(scope="module")
def frame(synthetic_root):
    return load_ham10000(synthetic_root, log=lambda m: None)


def test_grouped_split_has_no_lesion_in_two_splits(frame):
    split = make_split(frame, "grouped", seed=1)
    assert set(split) == {"train", "val", "test"}
    per_lesion = split.groupby(frame["lesion_id"]).nunique()
    assert per_lesion.max() == 1
    check_no_lesion_overlap(frame, split)
    table = split_table(frame, split)
    assert (table.loc[["akiec", "df", "vasc"], ["val", "test"]] >= 1).all().all()  # stratified
    assert table.loc["total"].sum() == len(frame)


def test_rows_without_age_are_dropped_after_the_split_unless_a_saved_run_dropped_them_before(
    frame,
):
    """Dropping after the split keeps the kept-rows run's split (the two share test lesions);
    dropping before it redraws the split, as runs saved before that order existed did."""
    aged = frame.copy()
    aged.loc[aged["lesion_id"].isin(sorted(aged["lesion_id"].unique())[::5]), "age"] = np.nan
    quiet = dict(log=lambda m: None)
    kept_rows, kept = draw_run_split(aged, DataConfig(seed=3), **quiet)
    after_rows, after = draw_run_split(aged, DataConfig(seed=3, drop_missing_age=True), **quiet)
    assert len(kept_rows) == len(aged) and after_rows["age"].notna().all()
    assert after.equals(kept[after_rows.index])
    legacy = DataConfig(seed=3, drop_missing_age=True, drop_before_split=True)
    before_rows, before = draw_run_split(aged, legacy, **quiet)
    assert before_rows.index.equals(after_rows.index)
    assert before.equals(make_split(aged[aged["age"].notna()], "grouped", seed=3))
    assert not before.equals(after)


def test_overlap_check_catches_a_leak(frame):
    split = make_split(frame, "grouped", seed=1)
    multi = frame.groupby("lesion_id").size()
    lesion = multi[multi > 1].index[0]
    rows = frame.index[frame["lesion_id"] == lesion]
    assert len(leaking_lesions(frame, split)) == 0
    split.loc[rows[0]], split.loc[rows[1]] = "train", "test"
    assert list(leaking_lesions(frame, split)) == [lesion]
    with pytest.raises(UserError, match=f"leaks lesions.*{lesion}"):
        check_no_lesion_overlap(frame, split)


def test_split_is_seeded(frame):
    assert make_split(frame, seed=5).equals(make_split(frame, seed=5))
    assert not make_split(frame, seed=5).equals(make_split(frame, seed=6))


def test_paper_split_is_image_level_90_10_and_warns(frame):
    with pytest.warns(UserWarning, match="leaks lesions"):
        split = make_split(frame, "paper", seed=0)
    assert set(split) == {"train", "test"}
    assert (split == "test").sum() == round(0.1 * len(frame))
    assert subset(frame, split, "val").equals(subset(frame, split, "test"))


def test_unknown_kind():
    with pytest.raises(UserError, match="unknown --split 'random'"):
        make_split(pd.DataFrame({"lesion_id": [], "dx": []}), "random")


def test_round_trip_and_subset_runs(frame, tmp_path):
    split = make_split(frame, seed=2)
    save_split(tmp_path / "split.csv", frame, split)
    rows, again = load_split(tmp_path / "split.csv", frame)
    assert again.equals(split) and len(rows) == len(frame)
    # a run on a subset reads back only its own rows
    part = frame.iloc[: len(frame) // 2]
    save_split(tmp_path / "part.csv", part, split.loc[part.index])
    rows, again = load_split(tmp_path / "part.csv", frame)
    assert len(rows) == len(part)
    # images the split lists but the data lacks are an error
    with pytest.raises(UserError, match="images of the split are not in the data"):
        load_split(tmp_path / "split.csv", part)
    assert np.all(subset(frame, split, "test").index.isin(frame.index[split == "test"]))
