"""The HAM10000 loader on synthetic data: layouts, formats, and every error message."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mobile_skin.common.errors import UserError
from mobile_skin.contract.encoding import CLASSES
from mobile_skin.contract.image import load as load_image
from mobile_skin.contract.pipeline import make_dataset, orient, resize_image
from mobile_skin.data.ham10000 import CSV_NAME, load_ham10000
from mobile_skin.data.synthetic import write_synthetic_dataset


@pytest.fixture()
def root(tmp_path):
    write_synthetic_dataset(tmp_path, lesions=30, seed=1, missing_ages=3)
    return tmp_path


def quiet(_msg):
    pass


def test_reads_official_layout_and_drops_missing_age(root):
    messages = []
    frame = load_ham10000(root, log=messages.append)
    raw = pd.read_csv(root / CSV_NAME)
    assert len(frame) == len(raw) - 3
    assert any("dropped 3 rows without an age" in m for m in messages)
    assert {p.split("/")[-2] for p in frame["path"]} == {
        "HAM10000_images_part_1",
        "HAM10000_images_part_2",
    }
    assert (frame["label"] == frame["dx"].map(CLASSES.index)).all()
    kept = load_ham10000(root, drop_missing_age=False, log=quiet)
    assert len(kept) == len(raw)


def test_single_folder_png_and_odd_colour_modes(root):
    frame = load_ham10000(root, drop_missing_age=False, log=quiet)
    flat = root / "flat"
    flat.mkdir()
    modes = ["L", "RGBA", "CMYK", "P"]
    for i, (_, row) in enumerate(frame.iterrows()):
        img = Image.open(row["path"]).convert(modes[i % 4] if i < 8 else "RGB")
        if img.mode == "CMYK":
            img.save(flat / f"{row['image_id']}.jpg")
        else:
            img.save(flat / f"{row['image_id']}.png")
    for part in root.glob("HAM10000_images_part_*"):
        shutil.rmtree(part)
    again = load_ham10000(root, drop_missing_age=False, log=quiet)
    assert len(again) == len(frame)
    ds = make_dataset(again.head(8), 32, 8, encoding=None)
    x, _ = next(iter(ds))
    assert x["image"].shape == (8, 32, 32, 3)


def test_csv_given_by_flag(root, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere") / "meta.csv"
    shutil.move(root / CSV_NAME, other)
    with pytest.raises(UserError, match="metadata CSV not found"):
        load_ham10000(root, log=quiet)
    assert len(load_ham10000(root, csv=other, log=quiet)) > 0


def test_missing_columns(root):
    raw = pd.read_csv(root / CSV_NAME).drop(columns=["dx", "sex"])
    raw.to_csv(root / CSV_NAME, index=False)
    with pytest.raises(UserError, match=r"missing column\(s\) dx, sex"):
        load_ham10000(root, log=quiet)


def test_unknown_dx_names_lines(root):
    raw = pd.read_csv(root / CSV_NAME)
    raw.loc[[3, 5], "dx"] = "melanoma"
    raw.to_csv(root / CSV_NAME, index=False)
    with pytest.raises(UserError, match=r"unknown dx code\(s\) melanoma on line\(s\) 5, 7"):
        load_ham10000(root, log=quiet)


def test_missing_images_counted_and_skippable(root):
    frame = load_ham10000(root, log=quiet)
    for path in frame["path"].iloc[:3]:
        (root / path).unlink()
    first = frame["image_id"].iloc[0]
    with pytest.raises(UserError, match=rf"3 of {len(frame) + 3} images .* are missing .*{first}"):
        load_ham10000(root, log=quiet)
    messages = []
    kept = load_ham10000(root, skip_bad_images=True, log=messages.append)
    assert len(kept) == len(frame) - 3
    assert any("warning: 3 of" in m for m in messages)


def test_truncated_and_non_image_files_named(root):
    frame = load_ham10000(root, log=quiet)
    truncated = frame["path"].iloc[0]
    data = open(truncated, "rb").read()
    open(truncated, "wb").write(data[: len(data) // 2])
    with pytest.raises(UserError, match=rf"{truncated}: unreadable image"):
        load_ham10000(root, log=quiet)
    open(frame["path"].iloc[1], "wb").write(b"this is not a picture")
    with pytest.raises(UserError, match="2 unreadable image files"):
        load_ham10000(root, log=quiet)
    assert len(load_ham10000(root, skip_bad_images=True, log=quiet)) == len(frame) - 2


def test_load_image_any_size(tmp_path):
    big = (np.random.default_rng(0).random((450, 600, 3)) * 255).astype(np.uint8)
    Image.fromarray(big).save(tmp_path / "photo.jpg")
    x = load_image(tmp_path / "photo.jpg", 64)
    assert x.shape == (64, 64, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(UserError, match="text.jpg: not a readable image"):
        load_image(tmp_path / "text.jpg", 64)


def test_resize_is_rounded_and_antialiased():
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes average to grey when shrunk with antialiasing
    small = resize_image(stripes, 16).numpy()
    assert small.dtype == np.uint8
    assert np.all(np.abs(small[:, 1:-1].astype(int) - 128) <= 1)  # edges renormalise the filter


def test_augmentation_keeps_shape_and_differs_by_epoch(root):
    frame = load_ham10000(root, log=quiet).head(6)
    ds = make_dataset(frame, 32, 6, encoding=None, training=True, augmentation="full", seed=3)
    a = next(iter(ds))[0]["image"].numpy()
    b = next(iter(ds))[0]["image"].numpy()
    assert a.shape == b.shape == (6, 32, 32, 3)
    assert not np.array_equal(np.sort(a.ravel()), np.sort(b.ravel()))


def test_metadata_dropout_rates_seed_and_fields():
    import tensorflow as tf

    from mobile_skin.contract.encoding import MetadataEncoding
    from mobile_skin.contract.pipeline import metadata_dropout

    enc = MetadataEncoding(age_unknown_value=0.5)
    vec = tf.constant(enc.encode(45, "female", "back"))
    slices = enc.field_slices()
    blank = enc.unknown_vector()
    dropped = np.zeros((2000, 3), bool)
    for i in range(2000):
        out = metadata_dropout(vec, enc, 0.3, tf.constant([i, 11], tf.int64)).numpy()
        for j, piece in enumerate(slices.values()):
            part = out[piece]
            # a field is either untouched or exactly its unknown value, never a mix
            assert np.array_equal(part, vec.numpy()[piece]) or np.array_equal(part, blank[piece])
            dropped[i, j] = np.array_equal(part, blank[piece])
    rates = dropped.mean(axis=0)
    assert np.all(np.abs(rates - 0.3) < 0.04), rates
    assert abs(dropped.all(axis=1).mean() - 0.3**3) < 0.015  # fields drop independently
    seed = tf.constant([5, 6], tf.int64)
    np.testing.assert_array_equal(
        metadata_dropout(vec, enc, 0.5, seed), metadata_dropout(vec, enc, 0.5, seed)
    )
    np.testing.assert_array_equal(metadata_dropout(vec, enc, 0.0, seed), vec)


def test_metadata_dropout_only_while_training(root):
    from mobile_skin.contract.encoding import MetadataEncoding

    frame = load_ham10000(root, drop_missing_age=False, log=quiet)
    enc = MetadataEncoding.fit(frame["age"])
    want = enc.encode_frame(frame)

    def metadata(**kwargs):
        ds = make_dataset(frame, 32, len(frame), encoding=enc, seed=3, **kwargs)
        batch = next(iter(ds))[0]
        return batch["metadata"].numpy(), batch["image"].numpy()

    evaluation, _ = metadata(metadata_dropout_rate=0.5)
    np.testing.assert_array_equal(evaluation, want)  # evaluation never drops
    trained, _ = metadata(training=True, metadata_dropout_rate=0.5)
    rows = {tuple(r) for r in want}
    blank = enc.unknown_vector()
    changed = [r for r in trained if tuple(r) not in rows]
    assert changed, "no metadata was dropped at rate 0.5"
    assert any(np.array_equal(r, blank) for r in trained)  # sometimes all three at once
    untouched, _ = metadata(training=True, metadata_dropout_rate=0.0)
    assert {tuple(r) for r in untouched} <= rows  # rate 0 reproduces the plain encoding
    with pytest.raises(UserError, match="--metadata-dropout 1.5 is outside 0..1"):
        make_dataset(frame, 32, 4, encoding=enc, metadata_dropout_rate=1.5)


def test_numpy_pixels_equal_the_training_pipeline_for_every_orientation(root, tmp_path):
    """mobile_skin.contract.image (NumPy, no TensorFlow) gives the tf.data pipeline's pixels
    exactly, EXIF orientation included (a phone-sized JPEG and PNG, each stored with tags 1-8)."""
    from mobile_skin.contract import image

    rng = np.random.default_rng(4)
    photo = np.clip(rng.normal(128, 60, (300, 400, 3)), 0, 255).astype(np.uint8)
    rows = []
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        for suffix in ("jpg", "png"):
            path = tmp_path / f"o{orientation}.{suffix}"
            Image.fromarray(photo).save(path, exif=exif)
            rows.append({"path": str(path), "orientation": orientation})
    frame = pd.DataFrame(rows).assign(label=0, age=50.0, sex="male", localization="back")
    batch = next(iter(make_dataset(frame, 96, len(frame), encoding=None)))[0]["image"].numpy()
    for i, row in enumerate(rows):
        np.testing.assert_array_equal(load_image(row["path"], 96), batch[i], err_msg=row["path"])
        assert image.exif_orientation(Path(row["path"]).read_bytes()) == row["orientation"]
    upright = load_image(rows[0]["path"], 96)
    np.testing.assert_array_equal(load_image(rows[10]["path"], 96), np.rot90(upright, k=-1))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tensorflow_numpy_and_pillow_orientation_agree(orientation, tmp_path):
    from PIL import ImageOps

    from mobile_skin.contract.image import apply_orientation

    a = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3) * 7
    np.testing.assert_array_equal(orient(a, orientation).numpy(), apply_orientation(a, orientation))
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(a).save(tmp_path / "a.png", exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "a.png")))
    np.testing.assert_array_equal(apply_orientation(a, orientation), upright)  # Pillow's reading


def test_loader_records_exif_orientation(root):
    frame = load_ham10000(root, log=quiet)
    assert (frame["orientation"] == 1).all()  # synthetic JPEGs carry no EXIF
    path = frame["path"].iloc[0]
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(path).save(path, exif=exif)
    again = load_ham10000(root, log=quiet, verify_images=False)
    assert again.loc[frame.index[0], "orientation"] == 6
