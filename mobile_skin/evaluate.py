"""``python -m mobile_skin.evaluate RUN_DIR``: test-split metrics and the report of a run.

Writes ``metrics.json`` (every metric of :mod:`mobile_skin.metrics`, the always-``nv`` baseline
on the same rows, and the metrics with metadata fields set to unknown,
:mod:`mobile_skin.robustness`) and ``report.md`` with its figures (see :mod:`mobile_skin.report`).
Runs automatically at the end of training.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
import tf_keras

import mobile_skin  # noqa: F401
from mobile_skin.encoding import UNKNOWN
from mobile_skin.errors import cli
from mobile_skin.fileio import write_json
from mobile_skin.machine import describe
from mobile_skin.metrics import classification_report
from mobile_skin.model import load_model
from mobile_skin.robustness import AS_GIVEN, condition_metrics, condition_probs
from mobile_skin.run import load_run_data, resolve_run
from mobile_skin.runtime import KerasRuntime, frame_inputs, predict_frame, predict_inputs
from mobile_skin.spec import ModelSpec
from mobile_skin.splits import subset


def predict_keras(
    model: tf_keras.Model, frame: pd.DataFrame, spec: ModelSpec, batch_size: int = 64
) -> np.ndarray:
    """Class probabilities (N, C) of a Keras model for the rows of ``frame``.

    The same path every exported runtime takes (:func:`mobile_skin.runtime.predict_frame`).
    """
    return predict_frame(KerasRuntime(model), frame, spec, batch_size)


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


def evaluate_run(
    run_dir, data_dir: str | None = None, split_name: str = "test", *, log=print
) -> dict:
    """Evaluate a run's best model on one split; write ``metrics.json`` and ``report.md``."""
    from mobile_skin.report import write_report

    paths = resolve_run(run_dir)
    cfg, spec, frame, split = load_run_data(paths, data_dir)
    rows = subset(frame, split, split_name)
    model = load_model(paths.best_model)
    log(f"evaluating {paths.best_model.name} on {len(rows)} {split_name} images")
    runtime = KerasRuntime(model)
    inputs = frame_inputs(rows, spec)
    by_condition = condition_probs(
        lambda x: predict_inputs(runtime, x, len(spec.classes)), inputs, spec.encoding
    )
    probs = by_condition[AS_GIVEN]
    labels = rows["label"].to_numpy()
    metrics = classification_report(labels, probs, spec.classes)
    metrics.update(
        split=split_name,
        run=str(paths.root),
        machine=describe(),
        baseline_majority=majority_baseline(labels, spec.classes),
        metadata_robustness=condition_metrics(labels, by_condition, spec.classes),
        rows_missing_metadata={
            "age": int(rows["age"].isna().sum()),
            "sex": int((rows["sex"] == UNKNOWN).sum()),
            "localization": int((rows["localization"] == UNKNOWN).sum()),
        },
    )
    out = paths.evaluation(split_name)
    write_json(out.metrics, metrics)
    write_report(paths, cfg, spec, metrics, rows, probs, model, out)
    log(f"wrote {out.metrics} and {out.report}")
    return metrics


@cli
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(
        prog="python -m mobile_skin.evaluate", description=__doc__.splitlines()[0]
    )
    p.add_argument("run", nargs="?", help="run directory (default runs/latest)")
    p.add_argument("--data", help="read the images from here instead of the run's data directory")
    p.add_argument("--split", default="test", help="train | val | test (default test)")
    args = p.parse_args(argv)
    m = evaluate_run(args.run, args.data, args.split)
    print(
        f"{args.split}: accuracy {m['accuracy']:.3f}, "
        f"balanced accuracy {m['balanced_accuracy']:.3f}, "
        f"macro F1 {m['macro_f1']:.3f}, macro AUC {m['macro_auc']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
