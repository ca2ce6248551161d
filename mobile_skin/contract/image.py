"""The image half of the model's input contract, in NumPy: decode, orient, resize, round.

The training pipeline decodes and resizes with TensorFlow (:mod:`mobile_skin.contract.pipeline`).
This module computes the same pixels without TensorFlow, so that running an exported ``.tflite`` or
``.onnx`` file needs neither TensorFlow's start-up time nor its memory:

- JPEG through libjpeg-turbo (``simplejpeg``) with TensorFlow's decoder settings (fast integer
  IDCT, fancy chroma upsampling): bit-identical to ``tf.io.decode_image`` (measured on every
  HAM10000 image tried);
- PNG, BMP and GIF (first frame) through Pillow, lossless, as TensorFlow decodes them;
- EXIF orientation applied (see :func:`exif_orientation`): phone photos carry it, and the app
  applies it too; HAM10000's images carry none;
- :func:`resize`: TensorFlow's ``tf.image.resize(method="bilinear", antialias=True)`` (its
  ScaleAndTranslate kernel with a triangle filter, float32 arithmetic in the same order), then
  round half to even and clip to 0..255, exactly as
  :func:`mobile_skin.contract.pipeline.resize_image`.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from mobile_skin.common.errors import UserError

#: EXIF tag 0x0112.
ORIENTATION_TAG = 0x0112


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) of an encoded image; 1 when absent or unreadable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            value = int(img.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001  (a broken EXIF block means "no orientation")
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an (H, W, C) array the way EXIF ``orientation`` says to display it."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: np.rot90(a, k=-1)[::-1],
        8: lambda a: np.rot90(a, k=1),
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(image))


def decode(data: bytes, name: str = "image") -> np.ndarray:
    """Encoded bytes -> (H, W, 3) uint8 RGB, as TensorFlow decodes them (orientation not applied).

    Raises:
        UserError: not an image this project reads (JPEG, PNG, BMP, GIF), naming ``name``.
    """
    if data[:3] == b"\xff\xd8\xff":
        import simplejpeg

        try:
            return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=True, fastupsample=False)
        except ValueError as err:
            raise UserError(f"{name}: not a readable image ({err})") from None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in ("PNG", "BMP", "GIF"):
                raise UserError(f"{name}: unsupported image format {img.format}; use JPEG or PNG")
            img.seek(0)
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"{name}: not a readable image ({err})") from None


def _spans(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray]:
    """TensorFlow's ``ComputeSpansCore`` for the triangle kernel with antialiasing: for each
    output pixel the first input pixel it reads and the float32 weights of its taps."""
    f32 = np.float32
    scale = f32(out_size) / f32(in_size)
    inv_scale = f32(1.0 / scale)
    kernel_scale = max(inv_scale, f32(1.0))
    span = min(2 * math.ceil(float(kernel_scale)) + 1, in_size)
    starts = np.zeros(out_size, np.int64)
    weights = np.zeros((out_size, span), np.float32)
    one_over = f32(1.0) / kernel_scale
    for x in range(out_size):
        sample = (f32(x) + f32(0.5)) * inv_scale
        reach = f32(1.0) * kernel_scale
        start = math.ceil(float(sample - reach - f32(0.5)))
        end = math.floor(float(sample + reach - f32(0.5)))
        start = min(max(start, 0), in_size - 1)
        end = min(max(end, 0), in_size - 1) + 1
        taps = np.zeros(end - start, np.float32)
        total = f32(0.0)
        for k in range(end - start):
            pos = f32(start + k) + f32(0.5) - sample
            x_abs = abs(pos * one_over)
            w = f32(1.0) - x_abs if x_abs < f32(1.0) else f32(0.0)
            taps[k] = w
            total = f32(total + w)
        if abs(total) >= f32(1000.0) * np.finfo(np.float32).tiny:
            weights[x, : end - start] = taps * (f32(1.0) / total)
        starts[x] = start
    return starts, weights


def resize_float(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) float32, before rounding: what ``tf.image.resize``
    returns for bilinear with antialiasing (rows first, then columns, float32 sums)."""
    h, w = image.shape[:2]
    src = image.astype(np.float32)
    row_starts, row_w = _spans(size, h)
    col_starts, col_w = _spans(size, w)
    rows = np.zeros((size, w, 3), np.float32)
    for t in range(row_w.shape[1]):
        idx = np.minimum(row_starts + t, h - 1)
        valid = (row_starts + t) < h
        rows += np.where(valid[:, None, None], src[idx] * row_w[:, t][:, None, None], 0.0)
    out = np.zeros((size, size, 3), np.float32)
    for t in range(col_w.shape[1]):
        idx = np.minimum(col_starts + t, w - 1)
        valid = (col_starts + t) < w
        out += np.where(valid[None, :, None], col_w[:, t][None, :, None] * rows[:, idx], 0.0)
    return out


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """The model's pixels: :func:`resize_float`, rounded half to even, clipped, as uint8."""
    return np.clip(np.rint(resize_float(image, size)), 0, 255).astype(np.uint8)


def load(path: str | Path, size: int) -> np.ndarray:
    """Read an image file as the model's (size, size, 3) float32 input, EXIF orientation applied.

    Raises:
        UserError: a missing or unreadable file, naming it.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror})") from None
    image = apply_orientation(decode(data, str(path)), exif_orientation(data))
    return resize(image, size).astype(np.float32)
