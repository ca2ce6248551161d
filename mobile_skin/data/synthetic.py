"""A synthetic, HAM10000-shaped dataset for tests and ``make demo``.

Writes ``HAM10000_metadata.csv`` (lesion ids, image ids, dx, dx_type, age, sex, localization) and
JPEG images split across ``HAM10000_images_part_1/`` and ``_part_2/`` like the official release.
Each class draws its lesion with its own colour, size and texture, so a small model can learn the
task in a few steps; age and site are mildly class-dependent, like the real data. Some lesions
have several images, and a few rows have no age, so grouping and age handling get exercised.

Usage: ``python -m mobile_skin.synthetic OUT_DIR [--lesions N] [--seed S]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from mobile_skin.common.cli_args import description
from mobile_skin.common.errors import UserError, cli
from mobile_skin.common.fileio import atomic_path
from mobile_skin.contract.encoding import CLASSES, LOCALIZATIONS, SEXES
from mobile_skin.data.ham10000 import CSV_NAME

#: Relative class frequencies (HAM10000-like imbalance, flattened so every class appears).
_FREQ = {"akiec": 0.08, "bcc": 0.09, "bkl": 0.12, "df": 0.06, "mel": 0.13, "nv": 0.45, "vasc": 0.07}
#: Lesion colour (RGB) per class; the skin background is shared.
_COLOR = {
    "akiec": (200, 80, 60),
    "bcc": (230, 160, 170),
    "bkl": (150, 110, 60),
    "df": (110, 70, 90),
    "mel": (40, 30, 30),
    "nv": (120, 75, 50),
    "vasc": (170, 30, 80),
}
_RADIUS = {
    "akiec": 0.30,
    "bcc": 0.22,
    "bkl": 0.34,
    "df": 0.15,
    "mel": 0.38,
    "nv": 0.25,
    "vasc": 0.18,
}
_AGE = {"akiec": 67, "bcc": 66, "bkl": 60, "df": 52, "mel": 61, "nv": 46, "vasc": 50}


def _draw(rng: np.random.Generator, dx: str, width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    skin = np.array([225, 185, 160], np.float32) + rng.normal(0, 8, 3)
    img = np.broadcast_to(skin, (height, width, 3)).copy()
    cx = width * (0.5 + rng.uniform(-0.1, 0.1))
    cy = height * (0.5 + rng.uniform(-0.1, 0.1))
    r = _RADIUS[dx] * min(width, height) * rng.uniform(0.85, 1.15)
    ecc = rng.uniform(0.8, 1.25)
    dist = np.sqrt(((xx - cx) / ecc) ** 2 + ((yy - cy) * ecc) ** 2) / r
    mask = np.clip(1.5 - dist, 0, 1)[..., None]
    lesion = np.array(_COLOR[dx], np.float32) + rng.normal(0, 10, 3)
    if dx in ("mel", "bkl"):  # mottled texture
        lesion = lesion + rng.normal(0, 25, (height, width, 1))
    img = img * (1 - mask) + lesion * mask
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_synthetic_dataset(
    root: str | Path,
    lesions: int = 120,
    *,
    size: tuple[int, int] = (80, 60),
    seed: int = 0,
    missing_ages: int = 2,
) -> Path:
    """Write a synthetic dataset under ``root`` and return the CSV path.

    Args:
        root: output directory (created).
        lesions: number of distinct lesions; images per lesion are 1-3.
        size: image (width, height).
        seed: random seed; the same seed writes the same files.
        missing_ages: rows whose age is left empty.
    """
    if lesions < 3 * len(CLASSES):
        raise UserError(f"--lesions must be at least {3 * len(CLASSES)} (3 per class)")
    rng = np.random.default_rng(seed)
    root = Path(root)
    counts = {c: max(3, int(round(_FREQ[c] * lesions))) for c in CLASSES}
    rows = []
    image_no = 0
    lesion_no = 0
    for dx in CLASSES:
        for _ in range(counts[dx]):
            lesion_id = f"HAM_{lesion_no:07d}"
            lesion_no += 1
            age = float(np.clip(5 * round(rng.normal(_AGE[dx], 12) / 5), 0, 85))
            sex = str(rng.choice(SEXES, p=[0.52, 0.46, 0.02]))
            site = str(rng.choice(LOCALIZATIONS))
            for _ in range(int(rng.choice([1, 1, 2, 3]))):
                image_id = f"ISIC_{image_no:07d}"
                image_no += 1
                part = 1 if image_no % 2 else 2
                path = root / f"HAM10000_images_part_{part}" / f"{image_id}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(_draw(rng, dx, *size)).save(path, quality=90)
                rows.append((lesion_id, image_id, dx, "histo", age, sex, site))
    frame = pd.DataFrame(
        rows, columns=["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
    )
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    if missing_ages:
        frame.loc[rng.choice(len(frame), missing_ages, replace=False), "age"] = np.nan
    csv = root / CSV_NAME
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    return csv


@cli
def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("out", help="output directory")
    parser.add_argument("--lesions", type=int, default=120, help="distinct lesions (default 120)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    csv = write_synthetic_dataset(args.out, args.lesions, seed=args.seed)
    print(f"wrote {len(pd.read_csv(csv))} images of {args.lesions}+ lesions to {args.out}")


if __name__ == "__main__":
    main()
