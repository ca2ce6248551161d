"""``python -m mobile_skin.evaluate RUN``: score a run on one of its splits or on an external set.

Usage::

    python -m mobile_skin.evaluate RUN                  # test split, best.keras
    python -m mobile_skin.evaluate RUN --split val      # another split
    python -m mobile_skin.evaluate RUN --model FILE     # test split through an exported file
    python -m mobile_skin.evaluate RUN --dataset DIR [--csv FILE] [--model FILE]
                                                        # every usable row of a HAM10000-shaped set

A split is scored with the run's ``best.keras`` unless ``--model`` names an exported ``.tflite``
or ``.onnx`` (or another ``.keras``), which then runs through its own runtime
(:mod:`mobile_skin.model.runtime`) with its own spec (image size, metadata encoding, classes; the
``model_spec.json`` beside or inside it, or ``--spec FILE``).
``--dataset DIR`` scores any HAM10000-shaped folder (a CSV and the images, any resolution; see
:mod:`mobile_skin.data.ham10000`), such as a challenge's test set or a clinic's photos: every row,
not a split. Rows without an age are kept, sex and site values the model's encoding does not know
are scored as unknown (and counted); a diagnosis the model has no class for is an error.

Writes ``metrics.json`` (every metric of :mod:`mobile_skin.model.metrics` with the expected
calibration error, the always-majority baseline, the metrics on the rows with every metadata
field known and with every field set to unknown, the rows missing each field, the metrics under
each metadata mask of :mod:`mobile_skin.evaluation.robustness`, the reliability bins and, for a
temperature-scaled model, the calibration before and after) and ``report.md`` with its figures
(:mod:`mobile_skin.evaluation.report`, reliability diagram included), then prints one headline line.
Where: the test split's report is the run's own ``metrics.json`` / ``report.md`` / ``figures/``,
another split's ``metrics_<split>.json`` etc. (:meth:`mobile_skin.data.run.RunPaths.evaluation`); an
exported file's ``<run>/<split>_<model>/`` and an external set's ``<run>/eval_<dataset>[_<model>]/``
(:meth:`mobile_skin.data.run.RunPaths.evaluation_dir`). Runs on the test split at the end of
training.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tf_keras

import mobile_skin  # noqa: F401
from mobile_skin.common.cli_args import add_data_dir, description
from mobile_skin.common.errors import UserError, cli
from mobile_skin.common.fileio import shown_path, write_json
from mobile_skin.common.machine import describe
from mobile_skin.contract.encoding import FIELDS, UNKNOWN
from mobile_skin.contract.spec import IMAGE_INPUT, ModelSpec
from mobile_skin.data.external_set import class_labels, dataset_files, read_external, safe_name
from mobile_skin.data.run import EvaluationPaths, RunPaths, load_run_data, resolve_run
from mobile_skin.data.splits import subset
from mobile_skin.evaluation.reliability import Curve, reliability_bins
from mobile_skin.evaluation.robustness import (
    AS_GIVEN,
    CONDITIONS,
    condition_metrics,
    condition_probs,
)
from mobile_skin.evaluation.stats import expected_calibration_error
from mobile_skin.model.metrics import classification_report
from mobile_skin.model.runtime import KINDS, KerasRuntime, Runtime, load_runtime

#: The mask of :data:`mobile_skin.evaluation.robustness.CONDITIONS` with every metadata field
#: unknown.
ALL_MASKED = next(name for name, fields in CONDITIONS.items() if set(fields) == set(FIELDS))
#: What the metadata sections of a model without the metadata input say.
NOT_APPLICABLE = "not applicable: the model has no metadata input"


@dataclass(frozen=True)
class Scorer:
    """The model an evaluation scores with.

    Attributes:
        runtime: the loaded model.
        spec: its spec (image size, metadata encoding, classes).
        file: the model file.
        tag: a short name for output folders (``None`` for the run's own ``best.keras``).
        model: the Keras model, when it is one (the report's attention maps need it).
    """

    runtime: Runtime
    spec: ModelSpec
    file: Path
    tag: str | None
    model: tf_keras.Model | None

    def describe(self) -> dict:
        """JSON-ready: the file, its runtime and the run it was exported from."""
        return {
            "file": shown_path(self.file),
            "format": self.runtime.kind,
            "tag": self.tag,
            "source_run": self.spec.source_run,
        }


def majority_baseline(labels: np.ndarray, classes) -> dict:
    """Accuracy and balanced accuracy of always predicting the most frequent class."""
    labels = np.asarray(labels)
    probs = np.zeros((len(labels), len(classes)))
    probs[:, np.bincount(labels, minlength=len(classes)).argmax()] = 1.0
    report = classification_report(labels, probs, classes)
    return {
        "class": classes[int(probs[0].argmax())],
        "accuracy": report["accuracy"],
        "balanced_accuracy": report["balanced_accuracy"],
    }


def full_report(labels: np.ndarray, probs: np.ndarray, classes) -> dict:
    """:func:`~mobile_skin.model.metrics.classification_report` with the expected calibration
    error."""
    report = classification_report(labels, probs, classes)
    report.setdefault("ece", expected_calibration_error(labels, probs))
    return report


def load_scorer(paths: RunPaths, model_file: str | None, spec_file: str | None = None) -> Scorer:
    """The run's ``best.keras`` with the run's spec, or ``model_file`` with its own spec
    (``spec_file``, else the ``model_spec.json`` beside it or inside it).

    Raises:
        UserError: the file is missing, of an unknown type, unreadable or does not match its spec
            (the message names ``--model`` and the file).
    """
    if model_file is None:
        from mobile_skin.model.network import load_model

        model = load_model(paths.best_model)
        runtime = KerasRuntime(model, paths.best_model)
        return Scorer(runtime, ModelSpec.load(paths.spec), paths.best_model, None, model)
    path = Path(model_file)
    if path.suffix.lower() not in KINDS:
        raise UserError(f"--model {path}: unknown model type; expected {', '.join(KINDS)}")
    if not path.is_file():
        raise UserError(f"--model {path}: model file not found")
    try:
        spec = ModelSpec.for_model(path, spec_file)
        runtime = load_runtime(path, spec)
    except UserError as err:
        raise UserError(f"--model {err}") from None
    model = runtime.model if isinstance(runtime, KerasRuntime) else None
    return Scorer(runtime, spec, path, model_tag(path, runtime.kind), model)


def model_tag(path: Path, kind: str) -> str:
    """A folder-name-safe name of a model file that says its format.

    An exported file (``export/<format>/model.<ext>``) is named by its format folder
    (``tflite_int8``); another file by its stem, with the runtime kind appended unless the name
    already holds it (``mine.onnx`` -> ``mine_onnx``).
    """
    name = path.parent.name if path.stem == "model" and path.parent.name else path.stem
    if kind not in name.lower():
        name = f"{name}_{kind}"
    return safe_name(name)


def score_rows(
    runtime: Runtime,
    rows: pd.DataFrame,
    spec: ModelSpec,
    *,
    batch_size: int = 64,
    progress: str | None = None,
) -> dict[str, np.ndarray]:
    """Probabilities (N, C) of every row under every metadata mask of
    :data:`mobile_skin.evaluation.robustness.CONDITIONS` (only ``as given`` for an image-only
    model).

    Streams: each batch of images is decoded once (the same pipeline as
    :func:`mobile_skin.model.runtime.predict_frame`) and scored under every mask, so memory does not
    grow with the number of rows.

    Args:
        runtime: any runtime.
        rows: validated rows (``path``, ``orientation``, ``label`` and the metadata columns).
        spec: the model's spec (image size, encoding, classes).
        batch_size: rows per batch.
        progress: a progress bar (on stderr) with this description; None: silent.
    """
    from tqdm.auto import tqdm

    from mobile_skin.contract.pipeline import make_dataset

    ds = make_dataset(
        rows, spec.image_size, batch_size, encoding=spec.encoding, labels=False, cache=False
    )
    parts: dict[str, list[np.ndarray]] = {}
    with tqdm(
        total=len(rows), desc=progress, disable=progress is None, leave=False, unit="img"
    ) as bar:
        for batch in ds:
            inputs = {k: v.numpy() for k, v in batch.items()}
            for name, probs in condition_probs(runtime.predict, inputs, spec.encoding).items():
                parts.setdefault(name, []).append(probs)
            bar.update(len(inputs[IMAGE_INPUT]))
    if not parts:
        return {AS_GIVEN: np.zeros((0, len(spec.classes)), np.float32)}
    return {name: np.concatenate(p) for name, p in parts.items()}


def missing_metadata(rows: pd.DataFrame) -> pd.DataFrame:
    """Per row and field (``age``, ``sex``, ``localization``), whether it is unknown."""
    return pd.DataFrame(
        {
            "age": rows["age"].isna(),
            "sex": rows["sex"] == UNKNOWN,
            "localization": rows["localization"] == UNKNOWN,
        }
    )


def metadata_sections(
    labels: np.ndarray, by_condition: dict[str, np.ndarray], rows: pd.DataFrame, spec: ModelSpec
) -> dict:
    """The metadata part of ``metrics.json``.

    Keys: ``rows_missing_metadata`` (rows without each field), ``complete_metadata`` (the metrics
    on the rows with every field known, with their count ``n``), ``all_unknown`` (the metrics
    with every field set to unknown on every row) and ``metadata_robustness`` (balanced accuracy,
    accuracy and recall under each mask). For an image-only model the two metric sections hold
    only a ``note``.
    """
    missing = missing_metadata(rows)
    out: dict = {"rows_missing_metadata": {k: int(v) for k, v in missing.sum().items()}}
    if spec.encoding is None:
        out["complete_metadata"] = {"note": NOT_APPLICABLE}
        out["all_unknown"] = {"note": NOT_APPLICABLE}
        return out
    complete = ~missing.any(axis=1).to_numpy()
    probs = by_condition[AS_GIVEN]
    out["complete_metadata"] = (
        full_report(labels[complete], probs[complete], spec.classes)
        if complete.any()
        else {"n": 0, "note": "no row has every metadata field"}
    )
    out["all_unknown"] = full_report(labels, by_condition[ALL_MASKED], spec.classes)
    out["metadata_robustness"] = condition_metrics(labels, by_condition, spec.classes)
    return out


def calibration_section(
    labels: np.ndarray, probs: np.ndarray, spec: ModelSpec
) -> tuple[dict | None, dict[str, Curve]]:
    """Calibration before and after temperature scaling, and the reliability diagram's curves.

    The model's output is already calibrated when its spec carries a temperature ``T``
    (``calibration.temperature``); the raw softmax is recovered as ``scale(probs, 1 / T)``
    (:mod:`mobile_skin.evaluation.temperature`).

    Returns:
        ``{"method", "temperature", "fitted_on", "ece_before", "ece_after", "nll_before",
        "nll_after"}`` on these rows (None for an uncalibrated model), and name -> (labels,
        probs) for :func:`mobile_skin.evaluation.reliability.plot_reliability`.
    """
    from mobile_skin.evaluation.temperature import (
        calibration_errors,
        temperature_of,
        uncalibrated,
    )

    t = temperature_of(spec)
    if t is None:
        return None, {"model output": (labels, probs)}
    recorded = getattr(spec, "calibration", None) or {}
    raw = uncalibrated(probs, spec)
    section = {
        "method": recorded.get("method", "temperature"),
        "temperature": t,
        "fitted_on": recorded.get("fitted_on"),
        **calibration_errors(raw, probs, labels),
    }
    curves = {"raw softmax": (labels, raw), f"temperature-scaled (T = {t:.3g})": (labels, probs)}
    return section, curves


def score_and_report(
    paths: RunPaths,
    scorer: Scorer,
    rows: pd.DataFrame,
    out: EvaluationPaths,
    about: dict,
    *,
    log=print,
) -> dict:
    """Score ``rows`` with ``scorer``; write ``metrics.json`` and ``report.md`` to ``out``.

    Args:
        paths: the run.
        scorer: the model.
        rows: the rows to score (``label`` indexes the scorer's classes).
        out: where the files go.
        about: what was scored, merged into the metrics (``split`` or ``dataset``).
        log: where progress lines go.
    """
    from mobile_skin.common.config import RunConfig
    from mobile_skin.evaluation.report import write_report

    spec = scorer.spec
    progress = f"scoring {len(rows)} images" if sys.stderr.isatty() else None
    by_condition = score_rows(scorer.runtime, rows, spec, progress=progress)
    probs, labels = by_condition[AS_GIVEN], rows["label"].to_numpy()
    metrics = full_report(labels, probs, spec.classes)
    calibration, curves = calibration_section(labels, probs, spec)
    metrics.update(
        about,
        run=shown_path(paths.root),
        model=scorer.describe(),
        machine=describe(),
        baseline_majority=majority_baseline(labels, spec.classes),
        **metadata_sections(labels, by_condition, rows, spec),
        reliability=reliability_bins(labels, probs).to_dict(),
    )
    if calibration is not None:
        metrics["calibration"] = calibration
    write_json(out.metrics, metrics)
    cfg = RunConfig.load(paths.config)
    write_report(paths, cfg, spec, metrics, rows, probs, scorer.model, out, curves=curves)
    log(f"wrote {out.metrics} and {out.report}")
    return metrics


def evaluate_run(
    paths: RunPaths,
    data_dir: str | None = None,
    split_name: str = "test",
    *,
    model_file: str | None = None,
    spec_file: str | None = None,
    log=print,
) -> dict:
    """Evaluate a run on one of its splits; write ``metrics.json`` and ``report.md``.

    Args:
        paths: the run (the command resolves it, :func:`mobile_skin.data.run.resolve_run`).
        data_dir: read the images from here instead of the run's data directory.
        split_name: ``train``, ``val`` or ``test``.
        model_file: score this exported file instead of ``best.keras``; the files then go to
            ``<run>/<split>_<model>/``.
        spec_file: the spec of ``model_file`` when it is neither beside nor inside it.
        log: where progress lines go.
    """
    scorer = load_scorer(paths, model_file, spec_file)
    _cfg, _spec, frame, split = load_run_data(paths, data_dir)
    rows = subset(frame, split, split_name)
    rows = rows.assign(label=class_labels(rows, scorer.spec.classes, "the run's data CSV"))
    out = (
        paths.evaluation(split_name)
        if scorer.tag is None
        else paths.evaluation_dir(f"{split_name}_{scorer.tag}")
    )
    log(f"evaluating {scorer.file.name} on {len(rows)} {split_name} images")
    return score_and_report(paths, scorer, rows, out, {"split": split_name}, log=log)


def evaluate_dataset(
    paths: RunPaths,
    dataset: str,
    csv: str | None = None,
    *,
    model_file: str | None = None,
    spec_file: str | None = None,
    skip_bad_images: bool = False,
    log=print,
) -> dict:
    """Score every usable row of an external HAM10000-shaped dataset with a run's model.

    Args:
        paths: the run (the command resolves it); the output goes under it.
        dataset: the dataset folder (CSV and images).
        csv: its metadata CSV (default ``<dataset>/HAM10000_metadata.csv``).
        model_file: score this exported file instead of ``best.keras``.
        spec_file: the spec of ``model_file`` when it is neither beside nor inside it.
        skip_bad_images: drop rows with missing or unreadable images instead of stopping.
        log: where progress lines go.

    Returns:
        The metrics written to ``<run>/eval_<dataset>[_<model>]/metrics.json``.
    """
    dataset_files(dataset, csv)  # a wrong path fails before the model loads
    scorer = load_scorer(paths, model_file, spec_file)
    data = read_external(dataset, csv, scorer.spec, skip_bad_images=skip_bad_images, log=log)
    name = data.name if scorer.tag is None else f"{data.name}_{scorer.tag}"
    out = paths.evaluation_dir(name)
    log(f"evaluating {scorer.file.name} on {len(data.rows)} images of {data.csv}")
    return score_and_report(paths, scorer, data.rows, out, {"dataset": data.describe()}, log=log)


def headline(name: str, m: dict) -> str:
    """The one line a command prints: ``<name>: accuracy ..., ..., ECE ... (N images)``."""

    def fmt(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    return (
        f"{name}: accuracy {fmt(m['accuracy'])}, balanced accuracy "
        f"{fmt(m['balanced_accuracy'])}, macro F1 {fmt(m['macro_f1'])}, "
        f"macro AUC {fmt(m['macro_auc'])}, ECE {fmt(m.get('ece'))} ({m['n']} images)"
    )


@cli
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(
        prog="python -m mobile_skin.evaluate",
        description=description(__doc__),
    )
    p.add_argument("run", nargs="?", help="run directory (default runs/latest)")
    p.add_argument("--split", help="train | val | test (default test)")
    add_data_dir(p)
    p.add_argument(
        "--dataset",
        metavar="DIR",
        help="score every usable row of this HAM10000-shaped folder (CSV + images) instead of "
        "a split; the report goes to <run>/eval_<folder>/",
    )
    p.add_argument("--csv", help="the dataset's metadata CSV (default DIR/HAM10000_metadata.csv)")
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="drop dataset rows whose image is missing or unreadable instead of stopping",
    )
    p.add_argument(
        "--model",
        metavar="FILE",
        help="score this .tflite / .onnx / .keras file through its own runtime instead of the "
        "run's best.keras",
    )
    p.add_argument(
        "--spec", metavar="FILE", help="the --model file's model_spec.json (default: beside it)"
    )
    args = p.parse_args(argv)
    check_flags(args)
    if args.dataset:
        m = evaluate_dataset(
            resolve_run(args.run),
            args.dataset,
            args.csv,
            model_file=args.model,
            spec_file=args.spec,
            skip_bad_images=args.skip_bad_images,
        )
        print(headline(Path(m["dataset"]["root"]).name, m))
    else:
        split = args.split or "test"
        m = evaluate_run(
            resolve_run(args.run), args.data, split, model_file=args.model, spec_file=args.spec
        )
        print(headline(split, m))
    return 0


def check_flags(args: argparse.Namespace) -> None:
    """Raise :class:`UserError` for flags that do not go together."""
    if args.spec and not args.model:
        raise UserError("--spec needs --model FILE")
    if args.dataset:
        for flag, value in (("--split", args.split), ("--data", args.data)):
            if value:
                raise UserError(f"{flag} scores a split of the run; it cannot go with --dataset")
    else:
        for flag, value in (("--csv", args.csv), ("--skip-bad-images", args.skip_bad_images)):
            if value:
                raise UserError(f"{flag} needs --dataset DIR")


if __name__ == "__main__":
    sys.exit(main())
