"""The ``tf.data`` input pipeline and the one image preprocessing every runtime shares.

Preprocessing (the contract in ``model_spec.json``): decode to RGB uint8, turn by the EXIF
orientation, resize to S x S with bilinear interpolation (antialiased when downscaling), round to
integer pixel values, feed as float32 in 0..255. Normalisation happens inside the model.
:mod:`mobile_skin.contract.image` computes the same pixels in NumPy, without TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from mobile_skin.common.errors import UserError
from mobile_skin.contract.encoding import CLASSES, MetadataEncoding
from mobile_skin.contract.spec import IMAGE_INPUT, METADATA_INPUT

AUGMENTATIONS = ("none", "flip", "flip_rotate", "full")
AUTOTUNE = tf.data.AUTOTUNE


def resize_image(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resize an (H, W, 3) image to (size, size, 3) uint8: bilinear, antialiased, rounded."""
    resized = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def orient(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Turn an (H, W, 3) image the way its EXIF ``orientation`` (1-8) says to display it.

    The project's one EXIF rule, the same as :func:`mobile_skin.contract.image.apply_orientation`
    (NumPy) and the Android app's: phone photos are stored sideways with this tag set.
    """
    image = tf.convert_to_tensor(image)
    branches = [
        lambda: image,  # 1
        lambda: tf.image.flip_left_right(image),  # 2
        lambda: tf.image.rot90(image, 2),  # 3
        lambda: tf.image.flip_up_down(image),  # 4
        lambda: tf.transpose(image, [1, 0, 2]),  # 5
        lambda: tf.image.rot90(image, 3),  # 6: 90 degrees clockwise
        lambda: tf.image.flip_up_down(tf.image.rot90(image, 3)),  # 7
        lambda: tf.image.rot90(image, 1),  # 8: 90 degrees counter-clockwise
    ]
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    out = tf.switch_case(index, branches)
    out.set_shape([None, None, 3])
    return out


def decode_image(data: tf.Tensor) -> tf.Tensor:
    """Decode JPEG/PNG/BMP/GIF bytes to (H, W, 3) uint8 RGB (grayscale, RGBA and CMYK converted)."""
    image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def augment(image: tf.Tensor, kind: str, seed: tf.Tensor) -> tf.Tensor:
    """Label-preserving augmentation of one uint8 image (dermoscopy has no 'up')."""
    if kind == "none":
        return image
    seeds = tf.random.experimental.stateless_split(seed, 6)
    image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    image = tf.image.stateless_random_flip_up_down(image, seeds[1])
    if kind in ("flip_rotate", "full"):
        k = tf.random.stateless_uniform([], seeds[2], 0, 4, dtype=tf.int32)
        image = tf.image.rot90(image, k)
    if kind == "full":
        size = tf.shape(image)[0]
        scale = tf.random.stateless_uniform([], seeds[3], 0.8, 1.0)
        crop = tf.cast(tf.cast(size, tf.float32) * scale, tf.int32)
        image = tf.image.stateless_random_crop(image, tf.stack([crop, crop, 3]), seeds[4])
        image = resize_image(image, size)
        x = tf.cast(image, tf.float32)
        x = tf.image.stateless_random_brightness(x, 20.0, seeds[5])
        x = tf.image.stateless_random_contrast(x, 0.85, 1.15, seeds[5])
        image = tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
    return image


def metadata_dropout(
    metadata: tf.Tensor, encoding: MetadataEncoding, rate: float, seed: tf.Tensor
) -> tf.Tensor:
    """Replace each field of one encoded vector by its unknown value with probability ``rate``.

    Age, sex and site are dropped independently (:meth:`MetadataEncoding.mask`'s rule: the
    unknown age value with the missing-age indicator, the one-hot ``unknown`` sex and site).
    Stateless: the same ``seed`` drops the same fields.
    """
    fields = tf.constant(encoding.field_matrix())  # (F, D)
    unknown = tf.constant(encoding.unknown_vector())
    drop = tf.cast(tf.random.stateless_uniform([fields.shape[0]], seed) < rate, tf.float32)
    owned = tf.linalg.matvec(fields, drop, transpose_a=True) > 0  # (D,)
    return tf.where(owned, unknown, metadata)


def make_dataset(
    frame: pd.DataFrame,
    image_size: int,
    batch_size: int,
    *,
    encoding: MetadataEncoding | None,
    training: bool = False,
    augmentation: str = "none",
    metadata_dropout_rate: float = 0.0,
    seed: int = 0,
    cache: bool = True,
    labels: bool = True,
) -> tf.data.Dataset:
    """Batches of ``({"image", "metadata"}, one_hot_label)`` from a validated data frame.

    Decoding and resizing run in parallel and are cached (uint8, in memory) after the first
    pass; training adds a reshuffle each epoch and augmentation after the cache.

    Args:
        frame: rows from :func:`mobile_skin.data.ham10000.load_ham10000` (``path``, ``label``,
            metadata).
        image_size: S.
        batch_size: batch size.
        encoding: metadata encoding; None for an image-only model.
        training: shuffle every epoch and augment.
        augmentation: one of :data:`AUGMENTATIONS` (used when ``training``).
        metadata_dropout_rate: when ``training``, the probability of each metadata field being
            replaced by its unknown value (:func:`metadata_dropout`), drawn anew every epoch.
        seed: shuffle and augmentation seed.
        cache: keep decoded, resized images in memory after the first epoch.
        labels: yield ``(inputs, label)``; otherwise inputs only.
    """
    if augmentation not in AUGMENTATIONS:
        raise UserError(
            f"unknown augmentation {augmentation!r}; choose from {', '.join(AUGMENTATIONS)}"
        )
    if not 0.0 <= metadata_dropout_rate <= 1.0:
        raise UserError(f"--metadata-dropout {metadata_dropout_rate:g} is outside 0..1")
    features: dict[str, np.ndarray] = {
        "path": frame["path"].astype(str).to_numpy(),
        "orientation": (
            frame["orientation"].to_numpy(np.int32)
            if "orientation" in frame
            else np.ones(len(frame), np.int32)
        ),
    }
    if encoding is not None:
        features[METADATA_INPUT] = encoding.encode_frame(frame)
    onehot = np.eye(len(CLASSES), dtype=np.float32)[frame["label"].to_numpy()]
    ds = tf.data.Dataset.from_tensor_slices((features, onehot))

    def load(x, y):
        x = dict(x)
        image = orient(decode_image(tf.io.read_file(x.pop("path"))), x.pop("orientation"))
        x[IMAGE_INPUT] = resize_image(image, image_size)
        return x, y

    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(min(len(frame), 10_000), seed=seed, reshuffle_each_iteration=True)
        drop = metadata_dropout_rate if encoding is not None else 0.0
        if augmentation != "none" or drop > 0:

            def randomize(xy, s):
                x = dict(xy[0])
                if augmentation != "none":
                    x[IMAGE_INPUT] = augment(x[IMAGE_INPUT], augmentation, s)
                if drop > 0:
                    meta_seed = tf.random.experimental.stateless_fold_in(s, 7)
                    x[METADATA_INPUT] = metadata_dropout(
                        x[METADATA_INPUT], encoding, drop, meta_seed
                    )
                return x, xy[1]

            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip((ds, seeds)).map(randomize, num_parallel_calls=AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=False)
    ds = ds.map(_to_float, num_parallel_calls=AUTOTUNE)
    if not labels:
        ds = ds.map(lambda x, y: x)
    return ds.prefetch(AUTOTUNE)


def _to_float(x, y):
    return {**x, IMAGE_INPUT: tf.cast(x[IMAGE_INPUT], tf.float32)}, y
