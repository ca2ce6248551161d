"""Shared fixtures: a tiny synthetic HAM10000-shaped dataset and one tiny trained run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import mobile_skin  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from mobile_skin.data.run import RunPaths
from mobile_skin.data.synthetic import write_synthetic_dataset


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A synthetic dataset (about 230 images of 120 lesions, 80x60 JPEGs) in a temp dir."""
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(root, lesions=120, seed=0)
    return root


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, synthetic_root) -> RunPaths:
    """A finished smoke-preset run (64 px, a few epochs) on the synthetic data, with its report."""
    from mobile_skin.training import train

    out = tmp_path_factory.mktemp("runs") / "smoke"
    train.main(
        ["--data", str(synthetic_root), "--preset", "smoke", "--weights", "none", "--out", str(out)]
    )
    return RunPaths(out)


def _copy_run(smoke_run: RunPaths, out: Path) -> Path:
    """The smoke run's model, config and split copied to ``out`` (no exports, checkpoints,
    TensorBoard logs or figures)."""
    shutil.copytree(
        smoke_run.root, out,
        ignore=shutil.ignore_patterns("export", "checkpoint", "tensorboard", "figures"),
    )  # fmt: skip
    return out


@pytest.fixture
def run_copy(smoke_run, tmp_path) -> Path:
    """A copy of the smoke run that a test may change (:func:`_copy_run`)."""
    return _copy_run(smoke_run, tmp_path / "run")


@pytest.fixture
def dotted_run(smoke_run, tmp_path) -> Path:
    """A copy of the smoke run (:func:`_copy_run`) in a directory named ``v1.2``: a run name
    with a dot, which file names derived from it must keep whole."""
    return _copy_run(smoke_run, tmp_path / "runs" / "v1.2")


@pytest.fixture(scope="session")
def exported(smoke_run):
    """The smoke run exported to every format (once per session, one model load); the int8
    TFLite file through the quantization-aware path with calibrated ranges but no fine-tuning
    (the default's eight epochs cost minutes; ``test_qat.py`` fine-tunes, marked slow).

    Usage: ``row = exported("tflite_int8")`` (a ParityRow); the file is in
    ``smoke_run.export("tflite_int8")``.
    """
    from mobile_skin.export.exporter import FORMATS, export_formats

    formats = list(FORMATS)
    rows = export_formats(
        smoke_run, formats, calibration_samples=35, latency_runs=1, qat_epochs=0,
        log=lambda _m: None,
    )  # fmt: skip
    return dict(zip(formats, rows, strict=True)).__getitem__


@pytest.fixture(scope="session")
def model_files(smoke_run, exported) -> dict[str, Path]:
    """The smoke run's model as ``.keras``, float32 ``.tflite`` and float32 ``.onnx``."""
    exported("tflite_fp32")
    exported("onnx_fp32")
    return {
        "keras": smoke_run.best_model,
        "tflite": smoke_run.export("tflite_fp32") / "model.tflite",
        "onnx": smoke_run.export("onnx_fp32") / "model.onnx",
    }


@pytest.fixture
def run_cli(capsys):
    """Call a command's ``main(argv)`` as the shell would: return (exit code, stdout, stderr),
    with the exit code of a ``SystemExit`` (one-line errors) as well as a returned one."""

    def run(main, argv):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
