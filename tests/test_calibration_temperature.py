"""Temperature scaling: the fit, the fold into the softmax layer, a run calibrated end to end."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mobile_skin.common.config import RunConfig
from mobile_skin.common.fileio import sha256_file
from mobile_skin.contract.spec import ModelSpec
from mobile_skin.data.run import RunPaths
from mobile_skin.evaluation import temperature as ct
from mobile_skin.evaluation.stats import expected_calibration_error


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _overconfident(n: int = 4000, true_t: float = 2.5, seed: int = 0):
    """Labels drawn from softmax(z / true_t) while the model claims softmax(z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, size=(n, 7))
    truth = _softmax(z / true_t)
    labels = np.array([rng.choice(7, p=p) for p in truth])
    return _softmax(z), labels


def test_fit_recovers_the_temperature_and_lowers_ece():
    probs, labels = _overconfident()
    t = ct.fit(probs, labels)
    assert 2.2 < t < 2.8
    calibrated = ct.scale(probs, t)
    assert (calibrated.argmax(1) == probs.argmax(1)).all()  # answers never change
    before = expected_calibration_error(labels, probs)
    after = expected_calibration_error(labels, calibrated)
    assert after < before / 3
    assert ct.nll(calibrated, labels) < ct.nll(probs, labels)


def test_scale_round_trips_and_summary_reports_both_sides():
    probs, labels = _overconfident(500)
    assert np.allclose(ct.scale(ct.scale(probs, 1.7), 1 / 1.7), probs, atol=1e-9)
    s = ct.summary(probs, labels, 2.0)
    assert s["n"] == 500 and s["ece_after"] < s["ece_before"]
    assert s["nll_after"] < s["nll_before"]


def test_fit_refuses_zero_rows():
    with pytest.raises(ValueError):
        ct.fit(np.zeros((0, 7)), np.zeros(0, int))


def test_fold_temperature_is_exact_and_checks_the_layer():
    import tf_keras

    inp = tf_keras.Input((5,))
    hidden = tf_keras.layers.Dense(4, activation="relu")(inp)
    model = tf_keras.Model(
        inp, tf_keras.layers.Dense(3, activation="softmax", name="probs")(hidden)
    )
    x = np.random.default_rng(1).normal(size=(16, 5)).astype("float32")
    before = model.predict(x, verbose=0)
    ct.fold_temperature(model, 3.0)
    assert np.allclose(model.predict(x, verbose=0), ct.scale(before, 3.0), atol=1e-6)
    linear = tf_keras.Model(inp, tf_keras.layers.Dense(3, name="probs")(hidden))
    with pytest.raises(ValueError, match="not a softmax Dense"):
        ct.fold_temperature(linear, 2.0)


def test_old_configs_stay_uncalibrated_and_new_ones_calibrate():
    assert RunConfig().train.calibrate is True
    assert RunConfig.from_dict({"train": {"epochs": 3}}).train.calibrate is False


def test_training_calibrates_the_run_and_exports_carry_it(smoke_run, exported):
    """The session's smoke run was calibrated by training: the kept raw model and the
    calibrated one differ exactly by the recorded temperature, and exports inherit it."""
    from mobile_skin.model.network import load_model

    spec = ModelSpec.load(smoke_run.spec)
    t = ct.temperature_of(spec)
    assert t is not None and ct.BOUNDS[0] <= t <= ct.BOUNDS[1]
    assert spec.calibration["model_sha256"] == sha256_file(smoke_run.best_model)
    raw_model = load_model(smoke_run.root / ct.UNCALIBRATED_MODEL)
    model = load_model(smoke_run.best_model)
    rng = np.random.default_rng(0)
    inputs = {
        i.name: rng.uniform(0, 255 if "image" in i.name else 1, (4, *i.shape[1:])).astype("float32")
        for i in model.inputs
    }
    raw = raw_model.predict(inputs, verbose=0)
    assert np.allclose(model.predict(inputs, verbose=0), ct.scale(raw, t), atol=1e-5)
    exported("tflite_fp32")
    export_spec = ModelSpec.load(smoke_run.export("tflite_fp32") / "model_spec.json")
    assert ct.temperature_of(export_spec) == t


def test_calibrate_off_and_on_again(smoke_run, tmp_path):
    """``--off`` restores the raw model; calibrating again refits from it and gives the same
    temperature; a later refit starts from the kept raw model unless best.keras was replaced."""
    from mobile_skin.evaluation.calibrate import main

    run = RunPaths(tmp_path / "run")
    shutil.copytree(smoke_run.root, run.root, ignore=shutil.ignore_patterns("export"))
    t = ct.temperature_of(ModelSpec.load(run.spec))
    raw_sha = sha256_file(run.root / ct.UNCALIBRATED_MODEL)
    assert main([str(run.root), "--off"]) == 0
    assert ModelSpec.load(run.spec).calibration == {}
    assert sha256_file(run.best_model) == raw_sha
    assert main([str(run.root)]) == 0
    again = ModelSpec.load(run.spec)
    assert ct.temperature_of(again) == pytest.approx(t, rel=1e-4)
    # A second calibration would refit from the kept raw model, never from the calibrated one.
    assert ct._raw_model_file(run, again) == run.root / ct.UNCALIBRATED_MODEL
    run.best_model.write_bytes(run.best_model.read_bytes() + b" ")  # a new best.keras (--resume)
    assert ct._raw_model_file(run, again) == run.best_model


def test_calibrate_names_a_missing_run(tmp_path, capsys):
    from mobile_skin.evaluation.calibrate import main

    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "nope")])
    assert exit_.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]
