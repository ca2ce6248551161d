"""``python -m mobile_skin.predict IMAGE... --model FILE``: the top-3 diagnoses for photos.

Runs a ``.keras``, ``.tflite`` or ``.onnx`` model through :mod:`mobile_skin.runtime` (inputs by
name), with the preprocessing and metadata encoding that ``model_spec.json`` (default: the one
beside the model file) describes. Photos of any size and format TensorFlow decodes are resized
exactly as in training. Age, sex and site default to unknown.

Example::

    python -m mobile_skin.predict lesion.jpg --model runs/latest/export/tflite_int8/model.tflite \\
        --age 45 --sex female --site back
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobile_skin.encoding import CLASS_NAMES, UNKNOWN
from mobile_skin.errors import UserError, cli
from mobile_skin.spec import IMAGE_INPUT, METADATA_INPUT, SPEC_FILE, ModelSpec

TOP_K = 3
CHUNK = 32


@dataclass
class Prediction:
    """The answer for one image: ``top`` is ``[(class, probability), ...]``, best first."""

    image: str
    probs: np.ndarray
    top: list[tuple[str, float]]


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
) -> list[Prediction]:
    """Classify ``images`` with the model file ``model``.

    Raises:
        UserError: a missing/corrupted model or spec, an unreadable image, a bad metadata value.
    """
    from mobile_skin.pipeline import load_image
    from mobile_skin.runtime import load_runtime

    model = Path(model)
    if not model.is_file():
        raise UserError(f"{model}: model file not found")
    spec_file = Path(spec_path) if spec_path else model.parent / SPEC_FILE
    if not spec_file.exists():
        raise UserError(f"{spec_file}: model spec not found (pass --spec)")
    spec = ModelSpec.load(spec_file)
    metadata = None
    if spec.encoding is not None:
        metadata = spec.encoding.encode(_age(age), sex, site)
    if not images:
        raise UserError("no images given")
    pixels = [load_image(path, spec.image_size) for path in images]
    runtime = load_runtime(model, spec, threads=threads)
    out: list[Prediction] = []
    for start in range(0, len(images), CHUNK):
        batch = np.stack(pixels[start : start + CHUNK])
        inputs = {IMAGE_INPUT: batch}
        if metadata is not None:
            inputs[METADATA_INPUT] = np.repeat(metadata[None], len(batch), axis=0)
        for path, p in zip(images[start : start + CHUNK], runtime.predict(inputs), strict=True):
            order = np.argsort(-p, kind="stable")[:top_k]
            out.append(Prediction(path, p, [(spec.classes[i], float(p[i])) for i in order]))
    return out


def _age(age: str | float | None) -> str | float | None:
    if age is None or (isinstance(age, str) and age.strip().lower() in ("", UNKNOWN)):
        return None
    return age


def unknown_note(age, sex, site, model: str | Path, spec_path: str | Path | None = None) -> str:
    """A line naming the metadata fields left unknown, for a model that takes metadata."""
    spec = ModelSpec.load(Path(spec_path) if spec_path else Path(model).parent / SPEC_FILE)
    if spec.encoding is None:
        return ""
    names = {"age": "age", "sex": "sex", "localization": "site"}
    unknown = [names[f] for f in spec.encoding.unknown_fields(_age(age), sex, site)]
    if not unknown:
        return ""
    return (
        f"note: {', '.join(unknown)} unknown: the answer relies on the image alone for "
        f"{'it' if len(unknown) == 1 else 'them'} (give --age, --sex, --site when known)"
    )


def format_prediction(pred: Prediction) -> str:
    """Lines for people: the image, then the top classes with full names and probabilities."""
    lines = [pred.image]
    for rank, (code, p) in enumerate(pred.top, 1):
        lines.append(f"  {rank}. {code:<6} {CLASS_NAMES.get(code, code):<46} {p:6.1%}")
    return "\n".join(lines)


@cli
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(
        prog="python -m mobile_skin.predict", description=__doc__.splitlines()[0]
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photos (JPEG, PNG, BMP, GIF)")
    p.add_argument("--model", required=True, help="model file: .keras, .tflite or .onnx")
    p.add_argument("--age", help="age in years, 0..120 (default unknown)")
    p.add_argument("--sex", default=UNKNOWN, help="male | female | unknown (default)")
    p.add_argument(
        "--site",
        default=UNKNOWN,
        help="anatomical site, one of HAM10000's localizations (default unknown)",
    )
    p.add_argument("--spec", help=f"model spec (default: {SPEC_FILE} beside the model)")
    p.add_argument("--threads", type=int, help="CPU threads for TFLite/ONNX (default: library's)")
    args = p.parse_args(argv)
    preds = predict_images(
        args.model,
        args.images,
        age=args.age,
        sex=args.sex,
        site=args.site,
        spec_path=args.spec,
        threads=args.threads,
    )
    print("\n".join(format_prediction(pred) for pred in preds))
    note = unknown_note(args.age, args.sex, args.site, args.model, args.spec)
    if note:
        print(note, file=sys.stderr)
    if ".FAILED." in Path(args.model).name:
        print(f"warning: {args.model} failed the export's parity gate", file=sys.stderr)
    print("note: a research model's output, not a diagnosis", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
