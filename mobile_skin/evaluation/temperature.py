"""Temperature scaling: one scalar that makes the model's probabilities mean what they say.

Guo et al. (2017), "On Calibration of Modern Neural Networks": divide the logits by a temperature
``T`` fitted on held-out data by minimising the negative log-likelihood; the top-1 answer never
changes, only how sure the model claims to be. The model's output is already a softmax, so the
logits are recovered as ``log p`` (softmax ignores the constant that is lost) and the calibrated
probabilities are ``softmax(log p / T)``.

Where it lives: after training, :func:`calibrate_run` fits ``T`` on the run's validation split
and folds ``1 / T`` into the last Dense layer of ``best.keras`` (exact: the head is
``softmax(Dense(x))``, so ``softmax(Dense(x) / T)`` is the same layer with its kernel and bias
divided by ``T``). Every file exported from the run, the parity gate and the phone therefore
compute calibrated probabilities with no extra op and no code of their own. The uncalibrated
model is kept as ``best_uncalibrated.keras``; ``model_spec.json`` records the temperature under
``calibration`` (with the SHA-256 of the calibrated ``best.keras``, so a later ``--resume`` that
saves a new, raw best model is recognised and calibrated afresh from it). Raw probabilities are
always recoverable as ``scale(p, 1 / T)``.

Validation rows also chose the best epoch; one scalar fitted on 1,000 rows barely overfits,
and the test split, never seen by either step, is where calibration is reported.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mobile_skin.data.run import RunPaths

#: The range the temperature is searched in.
BOUNDS = (0.05, 20.0)
#: The uncalibrated model, kept beside ``best.keras``.
UNCALIBRATED_MODEL = "best_uncalibrated.keras"
METHOD = "temperature"
#: The split the temperature is fitted on.
FIT_SPLIT = "val"


def scale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row by row."""
    logits = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels."""
    p = np.clip(np.asarray(probs)[np.arange(len(labels)), np.asarray(labels)], 1e-12, None)
    return float(-np.log(p).mean())


def fit(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the NLL of ``scale(probs, T)`` on ``labels``."""
    from scipy.optimize import minimize_scalar

    if not len(labels):
        raise ValueError("cannot fit a temperature on zero rows")
    result = minimize_scalar(
        lambda log_t: nll(scale(probs, float(np.exp(log_t))), labels),
        bounds=tuple(np.log(BOUNDS)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return round(float(np.exp(result.x)), 6)


def temperature_of(spec) -> float | None:
    """The temperature a spec records as applied, or None for raw softmax."""
    calibration = getattr(spec, "calibration", None) or {}
    return float(calibration["temperature"]) if "temperature" in calibration else None


def uncalibrated(probs: np.ndarray, spec) -> np.ndarray:
    """The raw softmax behind a calibrated model's ``probs`` (``probs`` itself if uncalibrated)."""
    t = temperature_of(spec)
    return np.asarray(probs) if t is None else scale(probs, 1.0 / t)


def fold_temperature(model, temperature: float, layer_name: str = "probs"):
    """Divide the kernel and bias of ``model``'s softmax Dense layer by ``temperature``, in place.

    Raises:
        ValueError: the layer is missing or is not a softmax Dense layer.
    """
    import tf_keras

    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        raise ValueError(f"model {model.name} has no layer {layer_name!r}") from None
    if not isinstance(layer, tf_keras.layers.Dense) or layer.activation is not (
        tf_keras.activations.softmax
    ):
        raise ValueError(f"layer {layer_name!r} of {model.name} is not a softmax Dense layer")
    layer.set_weights([w / np.float32(temperature) for w in layer.get_weights()])
    return model


def calibration_errors(
    raw: np.ndarray, calibrated: np.ndarray, labels: np.ndarray, bins: int | None = None
) -> dict:
    """NLL and expected calibration error of ``raw`` (before) and ``calibrated`` (after)."""
    from mobile_skin.evaluation.stats import ECE_BINS, expected_calibration_error

    bins = bins or ECE_BINS
    return {
        "nll_before": nll(raw, labels),
        "nll_after": nll(calibrated, labels),
        "ece_before": expected_calibration_error(labels, raw, bins),
        "ece_after": expected_calibration_error(labels, calibrated, bins),
    }


def summary(
    raw: np.ndarray, labels: np.ndarray, temperature: float, bins: int | None = None
) -> dict:
    """The temperature, the row count and :func:`calibration_errors` of scaling by it (rounded to
    6 decimals, for ``model_spec.json``)."""
    errors = calibration_errors(raw, scale(raw, temperature), labels, bins)
    return {
        "temperature": temperature,
        "n": int(len(labels)),
        **{key: round(value, 6) for key, value in errors.items()},
    }


def _raw_model_file(paths, spec) -> Path:
    """The uncalibrated ``best.keras`` of a run: itself, or the kept copy if it is calibrated."""
    from mobile_skin.common.fileio import sha256_file

    kept = paths.root / UNCALIBRATED_MODEL
    recorded = (getattr(spec, "calibration", None) or {}).get("model_sha256")
    if recorded and kept.is_file() and sha256_file(paths.best_model) == recorded:
        return kept
    return paths.best_model


def calibrate_run(
    paths: RunPaths, *, enable: bool = True, data_dir: str | None = None, log: Callable = print
) -> dict:
    """Fit the temperature on the run's validation split and fold it into ``best.keras``.

    With ``enable=False`` the run goes back to raw softmax (the uncalibrated model is restored
    and the spec's ``calibration`` cleared). Returns the spec's new ``calibration`` entry.
    """
    from mobile_skin.common.errors import UserError
    from mobile_skin.common.fileio import atomic_path, sha256_file
    from mobile_skin.contract.spec import ModelSpec
    from mobile_skin.data.run import load_run_data
    from mobile_skin.data.splits import subset
    from mobile_skin.model.network import load_model
    from mobile_skin.model.runtime import KerasRuntime, frame_inputs, predict_inputs

    spec = ModelSpec.load(paths.spec)
    raw_file = _raw_model_file(paths, spec)
    if not enable:
        if raw_file != paths.best_model:
            with atomic_path(paths.best_model) as tmp:
                shutil.copyfile(raw_file, tmp)
        replace(spec, calibration={}).save(paths.root)
        log("calibration: off (raw softmax)")
        return {}
    _cfg, spec, frame, split = load_run_data(paths, data_dir, verify_images=False)
    rows = subset(frame, split, FIT_SPLIT)
    model = load_model(raw_file)
    raw = predict_inputs(KerasRuntime(model), frame_inputs(rows, spec), len(spec.classes))
    labels = rows["label"].to_numpy()
    temperature = fit(raw, labels)
    if raw_file == paths.best_model:
        with atomic_path(paths.root / UNCALIBRATED_MODEL) as tmp:
            shutil.copyfile(paths.best_model, tmp)
    try:
        fold_temperature(model, temperature)
    except ValueError as err:
        raise UserError(f"{raw_file}: cannot calibrate ({err})") from None
    with atomic_path(paths.best_model) as tmp:
        model.save(tmp)
    entry = {
        "method": METHOD,
        "fitted_on": f"{FIT_SPLIT} split ({len(rows)} images)",
        **summary(raw, labels, temperature),
        "applied": "folded into the last Dense layer: every exported file outputs calibrated "
        "probabilities",
        "uncalibrated_model": UNCALIBRATED_MODEL,
        "model_sha256": sha256_file(paths.best_model),
    }
    replace(spec, calibration=entry).save(paths.root)
    log(
        f"calibration: temperature {temperature:.3f} fitted on {len(rows)} {FIT_SPLIT} images; "
        f"ECE {entry['ece_before']:.3f} -> {entry['ece_after']:.3f}, "
        f"NLL {entry['nll_before']:.3f} -> {entry['nll_after']:.3f}"
    )
    return entry
