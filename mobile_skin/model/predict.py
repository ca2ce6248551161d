"""``python -m mobile_skin.predict IMAGE_OR_FOLDER... --model FILE``: the top-3 diagnoses.

Runs a ``.keras``, ``.tflite`` or ``.onnx`` model through :mod:`mobile_skin.model.runtime` (inputs
by name), with the preprocessing and metadata encoding its spec describes (``--spec``, else
``model_spec.json`` beside the model, else the copy inside a ``.tflite``). Photos of any size in
JPEG, PNG, BMP or GIF are decoded, turned by their EXIF orientation and resized exactly as in
training (:mod:`mobile_skin.contract.image`, NumPy: a ``.tflite`` or ``.onnx`` model never loads
TensorFlow). Folders are searched for images recursively. An unreadable image is reported and
skipped; the exit status is then 1. Age, sex and site default to unknown, and the output says
which were unknown. ``--format json`` or ``csv`` prints one record per image for machines.

Example::

    python -m mobile_skin.predict lesion.jpg --model runs/latest/export/tflite_int8/model.tflite \\
        --age 45 --sex female --site back
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mobile_skin.common.cli_args import description, thread_count
from mobile_skin.common.errors import UserError, cli
from mobile_skin.contract.encoding import CLASS_NAMES, MAX_AGE, UNKNOWN
from mobile_skin.contract.spec import IMAGE_INPUT, METADATA_INPUT, SPEC_FILE, ModelSpec

TOP_K = 3
CHUNK = 32
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
FORMATS = ("text", "json", "csv")


@dataclass
class Prediction:
    """The answer for one image: ``top`` is ``[(class, probability), ...]``, best first."""

    image: str
    probs: np.ndarray
    top: list[tuple[str, float]]


@dataclass
class Batch:
    """Everything one call of :func:`predict_images` produced."""

    predictions: list[Prediction]
    errors: list[tuple[str, str]] = field(default_factory=list)
    unknown_fields: list[str] = field(default_factory=list)
    classes: tuple[str, ...] = ()


def find_images(paths: list[str]) -> list[str]:
    """Files as given, folders expanded to the images below them (sorted).

    Raises:
        UserError: a path that does not exist, or no image at all.
    """
    out: list[str] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise UserError(f"{path}: no images (JPEG, PNG, BMP, GIF) in this folder")
            out.extend(str(p) for p in found)
        elif path.exists():
            out.append(str(path))
        else:
            raise UserError(f"{path}: no such file or folder")
    if not out:
        raise UserError("no images given")
    return out


def predict_images(
    model: str | Path,
    images: list[str],
    *,
    age: str | float | None = None,
    sex: str = UNKNOWN,
    site: str = UNKNOWN,
    spec_path: str | Path | None = None,
    top_k: int = TOP_K,
    threads: int | None = None,
    progress: bool = False,
) -> Batch:
    """Classify ``images`` (files) with the model file ``model``; unreadable images are listed
    in ``errors`` instead of stopping the batch.

    Raises:
        UserError: a missing/corrupted model or spec, a bad metadata value, no readable image.
    """
    from mobile_skin.contract import image
    from mobile_skin.model.runtime import load_runtime

    model = Path(model)
    if not model.is_file():
        raise UserError(f"{model}: model file not found")
    spec = ModelSpec.for_model(model, spec_path)
    metadata, unknown = None, []
    if spec.encoding is not None:
        metadata = spec.encoding.encode(_age(age), sex, site)
        unknown = spec.encoding.unknown_fields(_age(age), sex, site)
    runtime = load_runtime(model, spec, threads=threads)
    batch = Batch([], [], unknown, spec.classes)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(images), desc="predicting", unit="img", disable=not progress)
    for start in range(0, len(images), CHUNK):
        names, pixels = [], []
        for path in images[start : start + CHUNK]:
            try:
                pixels.append(image.load(path, spec.image_size))
                names.append(path)
            except UserError as err:
                batch.errors.append((path, str(err)))
        bar.update(min(CHUNK, len(images) - start))
        if not pixels:
            continue
        inputs = {IMAGE_INPUT: np.stack(pixels)}
        if metadata is not None:
            inputs[METADATA_INPUT] = np.repeat(metadata[None], len(pixels), axis=0)
        for path, p in zip(names, runtime.predict(inputs), strict=True):
            order = np.argsort(-p, kind="stable")[:top_k]
            batch.predictions.append(
                Prediction(path, p, [(spec.classes[i], float(p[i])) for i in order])
            )
    bar.close()
    if not batch.predictions:
        first, reason = batch.errors[0]
        raise UserError(reason if len(batch.errors) == 1 else f"no readable image; first: {reason}")
    return batch


def _age(age: str | float | None) -> str | float | None:
    if age is None or (isinstance(age, str) and age.strip().lower() in ("", UNKNOWN)):
        return None
    return age


def unknown_note(unknown: list[str]) -> str:
    """A line naming the metadata fields left unknown (empty when all were given)."""
    names = {"age": "age", "sex": "sex", "localization": "site"}
    if not unknown:
        return ""
    shown = [names[f] for f in unknown]
    return (
        f"note: {', '.join(shown)} unknown: the answer relies on the image alone for "
        f"{'it' if len(shown) == 1 else 'them'} (give --age, --sex, --site when known)"
    )


def format_prediction(pred: Prediction) -> str:
    """Lines for people: the image, then the top classes with full names and probabilities."""
    lines = [pred.image]
    for rank, (code, p) in enumerate(pred.top, 1):
        lines.append(f"  {rank}. {code:<6} {CLASS_NAMES.get(code, code):<46} {p:6.1%}")
    return "\n".join(lines)


def render(batch: Batch, fmt: str) -> str:
    """All predictions as ``text`` (people), ``json`` (one document) or ``csv`` (one row each)."""
    if fmt == "text":
        return "\n".join(format_prediction(p) for p in batch.predictions)
    records = [
        {
            "image": p.image,
            "top1": p.top[0][0],
            "top1_probability": round(p.top[0][1], 6),
            **{f"p_{c}": round(float(v), 6) for c, v in zip(batch.classes, p.probs, strict=True)},
        }
        for p in batch.predictions
    ]
    if fmt == "json":
        return json.dumps(
            {
                "predictions": records,
                "errors": [{"image": i, "error": e} for i, e in batch.errors],
                "unknown_metadata": batch.unknown_fields,
                "note": "a research model's output, not a diagnosis",
            },
            indent=2,
        )
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().rstrip("\n")


@cli
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(
        prog="python -m mobile_skin.predict", description=description(__doc__)
    )
    p.add_argument(
        "images", nargs="+", metavar="IMAGE", help="photos (JPEG, PNG, BMP, GIF) or folders"
    )
    p.add_argument("--model", required=True, help="model file: .keras, .tflite or .onnx")
    p.add_argument("--age", help=f"age in years, 0..{MAX_AGE:g} (default unknown)")
    p.add_argument("--sex", default=UNKNOWN, help="male | female | unknown (default)")
    p.add_argument(
        "--site",
        default=UNKNOWN,
        help="anatomical site, one of HAM10000's localizations (default unknown)",
    )
    p.add_argument(
        "--spec", help=f"model spec (default: {SPEC_FILE} beside the model, else inside it)"
    )
    p.add_argument(
        "--threads",
        type=thread_count,
        metavar="N|all",
        help="CPU threads for TFLite/ONNX (default: the library's)",
    )
    p.add_argument("--format", default="text", choices=FORMATS, help="output (default text)")
    args = p.parse_args(argv)
    batch = predict_images(
        args.model,
        find_images(args.images),
        age=args.age,
        sex=args.sex,
        site=args.site,
        spec_path=args.spec,
        threads=args.threads,
        progress=args.format == "text" and sys.stderr.isatty(),
    )
    print(render(batch, args.format))
    for path, reason in batch.errors:
        print(f"error: {reason}" if path in reason else f"error: {path}: {reason}", file=sys.stderr)
    note = unknown_note(batch.unknown_fields)
    if note and args.format == "text":
        print(note, file=sys.stderr)
    if ".FAILED." in Path(args.model).name:
        print(f"warning: {args.model} failed the export's parity gate", file=sys.stderr)
    if args.format == "text":
        print("note: a research model's output, not a diagnosis", file=sys.stderr)
    if batch.errors:
        print(
            f"{len(batch.errors)} of {len(batch.errors) + len(batch.predictions)} images could "
            "not be read",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
