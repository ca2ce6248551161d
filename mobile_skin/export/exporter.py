"""Export a run's model to one format, write it with its spec, and gate it on parity.

:func:`export_and_verify` is the one entry point (``export/to_tflite.py``, ``export/to_onnx.py``
and ``make demo`` call it); :func:`export_formats` does several formats with one model load.
For format ``fmt`` it

1. loads ``best.keras`` and passes it through :func:`mobile_skin.quant.edge_model.to_edge_model`
   (and, for ``tflite_int8``, through :func:`mobile_skin.quant.qat.quantize_aware`: least-squares
   ranges and distillation to the float model, the best of the int8 recipes compared in
   reports/int8.md); int8 files keep the backbone's start in float
   (``Backbone.int8_float_prefix``) unless ``float_prefix=False`` (``--all-int8``), and with
   ``float_tail=True`` (``--float-tail``) its late tail too (``Backbone.int8_float_tail``);
2. draws the calibration samples for int8 formats (:mod:`mobile_skin.quant.calibration`);
3. converts (:mod:`mobile_skin.export.convert_tflite`, :mod:`mobile_skin.export.convert_onnx`) and
   writes ``<run>/export/<fmt>/model.tflite`` or ``model.onnx`` atomically, with ``model_spec.json``
   (quantization details filled in) and ``labels.txt``;
4. runs the parity gate (:mod:`mobile_skin.parity.gate`): on FAIL the file is renamed
   ``model.FAILED.<ext>`` (kept for inspection, never mistaken for a good model).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mobile_skin.common.errors import UserError
from mobile_skin.common.fileio import atomic_path, shown_path, write_bytes
from mobile_skin.common.formats import FORMATS
from mobile_skin.common.machine import int8_speed_note
from mobile_skin.contract.spec import ModelSpec
from mobile_skin.data.run import RunPaths, load_run_data
from mobile_skin.data.splits import subset
from mobile_skin.model.network import get_backbone, load_model
from mobile_skin.model.runtime import KerasRuntime, load_runtime
from mobile_skin.parity import gate as parity
from mobile_skin.parity.gate import ParityRow
from mobile_skin.quant import calibration, edge_model

__all__ = ["FORMATS", "convert", "export_and_verify", "export_formats", "model_path"]

MODEL_STEM = "model"
FAILED_TAG = "FAILED"

Log = Callable[[str], None]


def model_path(paths: RunPaths, fmt: str, *, failed: bool = False) -> Path:
    """``<run>/export/<fmt>/model.<ext>``, or ``model.FAILED.<ext>`` for a model that failed."""
    stem = f"{MODEL_STEM}.{FAILED_TAG}" if failed else MODEL_STEM
    return paths.export(fmt) / f"{stem}{FORMATS[fmt].suffix}"


def export_and_verify(paths: RunPaths, fmt: str, **options) -> ParityRow:
    """Export the run's model to one format, write it with its spec, and gate it.

    Args:
        paths: the training run (the command resolves it, :func:`mobile_skin.data.run.resolve_run`).
        fmt: one of :data:`FORMATS`.
        **options: keyword options of :func:`export_formats`.

    Returns:
        The format's parity row (status PASS, FAIL, or UNVERIFIED without the gate); it is also
        recorded in ``<run>/export/parity.json`` and ``parity.md``.
    """
    return export_formats(paths, [fmt], **options)[0]


def export_formats(
    paths: RunPaths,
    formats: Sequence[str],
    *,
    calibration_samples: int = calibration.DEFAULT_SAMPLES,
    opset: int | None = None,
    verify: bool = True,
    data_dir: str | None = None,
    threads: int | None = None,
    latency_runs: int = parity.LATENCY_RUNS,
    qat_epochs: int | None = None,
    qat_learning_rate: float | None = None,
    float_prefix: bool = True,
    float_tail: bool = False,
    log: Log = print,
) -> list[ParityRow]:
    """Export the run's model to several formats, loading the model, data and reference once.

    Each format gets ``edge_model.to_edge_model`` of the one loaded model, which must therefore
    leave its input unchanged (it builds a new model).

    Args:
        paths: the training run (the command resolves it).
        formats: names from :data:`FORMATS`.
        calibration_samples: training-split samples for int8 calibration (at least 7).
        opset: ONNX opset (default :data:`mobile_skin.export.convert_onnx.DEFAULT_OPSET`).
        verify: run the parity gate; False writes the models unverified and says so.
        data_dir: read the images from here instead of the run's data directory.
        threads: CPU threads for the exported models' runtimes (default: all cores).
        latency_runs: timed runs for the indicative latency (0 skips it).
        qat_epochs, qat_learning_rate: quantization-aware fine-tuning of ``tflite_int8``
            (None: the defaults of :func:`mobile_skin.quant.qat.quantize_aware`; 0 epochs: the
            least-squares ranges alone, a few minutes instead of half an hour).
        float_prefix: int8 files keep the backbone's start in float
            (:attr:`mobile_skin.model.network.Backbone.int8_float_prefix`); False: the whole body
            int8.
        float_tail: int8 files keep the backbone's late tail in float too
            (:attr:`mobile_skin.model.network.Backbone.int8_float_tail`): more answers kept, at
            a cost in speed and size (reports/int8.md, section 6).
        log: where progress goes.

    Returns:
        One parity row per format, in order.

    Raises:
        UserError: unknown format, missing model, bad flag values; all
            checked before any slow step.
    """
    opset, qat_options = _check_options(
        formats, calibration_samples, opset, qat_epochs, qat_learning_rate, float_prefix,
        float_tail,
    )  # fmt: skip
    int8 = any(FORMATS[f].mode == "int8" for f in formats)
    qat = [f for f in formats if FORMATS[f].qat]
    if not paths.best_model.is_file():
        raise UserError(f"{paths.best_model}: model file not found (did training finish?)")

    cfg, spec, frame, split = load_run_data(paths, data_dir)
    backbone = get_backbone(cfg.model.backbone)
    prefix = backbone.int8_float_prefix if float_prefix else None
    tail = backbone.int8_float_tail if float_tail else ()
    if float_tail and not tail:
        raise UserError(f"--float-tail: no float tail is defined for {backbone.name}")
    model = load_model(paths.best_model)
    gate = None
    if verify:  # the reference comes first: later steps may change ``model`` in place
        data = {
            name: parity.SplitData.from_frame(name, subset(frame, split, name), spec)
            for name in parity.SPLITS
        }
        runtime = KerasRuntime(model, paths.best_model)
        reference, ref_row = parity.keras_reference(
            paths.best_model,
            paths.export_root,
            runtime,
            data,
            spec,
            latency_runs=latency_runs,
            log=log,
        )
        gate = _Gate(data, reference, ref_row, threads or os.cpu_count(), latency_runs)
    train = subset(frame, split, "train")
    samples = None
    if int8:
        samples = calibration.calibration_samples(
            train, spec, calibration_samples, cfg.data.seed, log=log
        )
    qat_data = None
    if qat:
        from mobile_skin.quant.qat import QatData

        qat_data = QatData.from_config(
            cfg, spec, train, subset(frame, split, "val"), paths.export(qat[0])
        )
        qat_options["calibration_samples"] = calibration_samples
        if prefix or tail:
            from mobile_skin.quant.qat_scheme import FloatRegions

            qat_options["float_regions"] = FloatRegions(prefix_end=prefix, tail_start=tail)
    rows = [
        _export_one(
            paths,
            fmt,
            model,
            spec,
            samples,
            opset,
            gate,
            log,
            qat_data,
            qat_options,
            prefix,
            tail if FORMATS[fmt].mode == "int8" else (),
        )
        for fmt in formats
    ]
    if (
        backbone.int8_float_tail
        and not float_tail
        and any(r.status == parity.FAIL and FORMATS[r.format].mode == "int8" for r in rows)
    ):
        log("  --float-tail keeps more answers: the late blocks float too, slower and larger "
            "(reports/int8.md, section 6)")  # fmt: skip
    return rows


def _check_options(
    formats: Sequence[str],
    calibration_samples: int,
    opset: int | None,
    qat_epochs: int | None,
    qat_learning_rate: float | None,
    float_prefix: bool,
    float_tail: bool = False,
) -> tuple[int | None, dict]:
    """Check :func:`export_formats`' options before any slow step; return the ONNX opset (None
    without an ONNX format) and the options of quantization-aware training that were given.

    Raises:
        UserError: an unknown format, or an option that does not apply or is out of range.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(f"unknown export format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    int8 = any(FORMATS[f].mode == "int8" for f in formats)
    if int8:
        calibration.check_sample_count(calibration_samples)
    qat_options = {
        key: value
        for key, value in (("epochs", qat_epochs), ("learning_rate", qat_learning_rate))
        if value is not None
    }
    if qat_options and not any(FORMATS[f].qat for f in formats):
        raise UserError("--qat-epochs and --qat-lr only apply with --int8 (or --qat)")
    if not float_prefix and not int8:
        raise UserError("--all-int8 only applies with --int8")
    if float_tail and not int8:
        raise UserError("--float-tail only applies with --int8")
    if (qat_epochs is not None and qat_epochs < 0) or (
        qat_learning_rate is not None and not qat_learning_rate > 0
    ):
        raise UserError(
            f"--qat-epochs must be >= 0 (got {qat_epochs}) and --qat-lr > 0 "
            f"(got {qat_learning_rate})"
        )
    if any(FORMATS[f].runtime == "onnx" for f in formats):
        from mobile_skin.export.convert_onnx import DEFAULT_OPSET, check_opset

        opset = DEFAULT_OPSET if opset is None else opset
        check_opset(opset)
    return opset, qat_options


@dataclass
class _Gate:
    """What the parity gate needs, computed once per run."""

    data: dict[str, parity.SplitData]
    reference: dict[str, np.ndarray]
    ref_row: ParityRow
    threads: int | None
    latency_runs: int


def _export_one(
    paths: RunPaths,
    fmt: str,
    model,
    spec: ModelSpec,
    samples,
    opset,
    gate,
    log,
    qat_data=None,
    qat_options=None,
    float_prefix: str | None = None,
    float_tail: tuple[str, ...] = (),
):
    mode = FORMATS[fmt].mode
    edge = float_edge = edge_model.to_edge_model(model)
    extra: dict = {}
    if FORMATS[fmt].qat:
        from mobile_skin.quant import qat

        edge, lines = qat.quantize_aware(qat_data, edge, log=log, **(qat_options or {}))
        for line in lines:
            log(f"  qat: {line}")
        extra["qat_layers"] = list(lines)

    target = model_path(paths, fmt)
    for stale in (target, model_path(paths, fmt, failed=True)):
        stale.unlink(missing_ok=True)
    start = time.perf_counter()
    log(f"converting {paths.best_model} to {fmt} ...")
    info = convert(
        fmt, edge, spec, samples, target, opset=opset, float_model=float_edge,
        float_prefix=float_prefix, float_tail=float_tail,
    )  # fmt: skip
    info.update(extra)
    if mode == "int8":
        info.setdefault("calibration", {})["samples"] = len(samples)
        info["float_prefix"] = float_prefix
        info["float_tail"] = list(float_tail) or None
    seconds, mb = time.perf_counter() - start, target.stat().st_size / 1e6
    log(f"wrote {target} ({mb:.2f} MB) in {seconds:.0f} s")
    export_spec = replace(
        spec, model_file=target.name, quantization=info, source_run=str(paths.root)
    )
    _write_spec(target, export_spec)

    if gate is None:
        row = parity.file_row(fmt, target)
        row.status, row.reason = parity.UNVERIFIED, "--no-verify: parity gate skipped"
        log(f"--no-verify: {target} was NOT checked against the Keras model")
        _finish(row, target, replace(export_spec, parity=parity.summary(row)))
        parity.record(paths.export_root, shown_path(paths.root), row)
        return row

    sizes = ", ".join(f"{len(d.ids)} {name}" for name, d in gate.data.items())
    log(f"parity: running {target.name} on {sizes} images")
    runtime = load_runtime(target, export_spec, threads=gate.threads)
    row, probs = parity.verify(
        fmt, target, runtime, gate.data, spec, gate.reference, latency_runs=gate.latency_runs
    )
    del runtime
    if row.status == parity.FAIL:
        failed = model_path(paths, fmt, failed=True)
        os.replace(target, failed)
        row.file = failed.name
        target = failed
    _finish(row, target, replace(export_spec, model_file=target.name, parity=parity.summary(row)))
    out = parity.record(
        paths.export_root, shown_path(paths.root), gate.ref_row, row,
        sweeps={fmt: parity.sweep(probs, gate.reference)},
    )  # fmt: skip
    log(f"{fmt}: {row.status} -> {target}; table {out.with_suffix('.md')}")
    log(f"  {row.reason}")
    if mode == "int8":
        note = int8_speed_note()
        if note:
            log(note)
    return row


def _write_spec(target: Path, spec: ModelSpec) -> None:
    """``model_spec.json`` beside ``target``, and for a ``.tflite`` the same JSON inside it
    (:mod:`mobile_skin.contract.embedded_spec`: a file that travels alone still describes
    itself)."""
    from mobile_skin.contract import embedded_spec

    if target.suffix == ".tflite":
        write_bytes(target, embedded_spec.embed(target.read_bytes(), spec.to_dict()))
    spec.save(target.parent)


def _finish(row: ParityRow, target: Path, spec: ModelSpec) -> None:
    """Write the spec with the verdict (beside and inside the file); the row takes the final
    file size (the verdict inside a ``.tflite`` changes it)."""
    _write_spec(target, spec)
    final = parity.file_row(row.format, target)
    row.size_bytes, row.size_mb = final.size_bytes, final.size_mb


def convert(
    fmt: str,
    model,
    spec: ModelSpec,
    samples,
    target: Path,
    *,
    opset: int | None = None,
    float_model=None,
    quantization_aware: bool | None = None,
    float_prefix: str | None = None,
    float_tail: Sequence[str] = (),
) -> dict:
    """Convert ``model`` (an edge model, :func:`mobile_skin.quant.edge_model.to_edge_model`) to
    format ``fmt`` and write it to ``target``; return its quantization details.

    The table (:data:`mobile_skin.common.formats.FORMATS`) decides the converter, the mode and
    whether the head stays float. Args beyond it: ``samples``, the int8 calibration samples;
    ``opset``, ONNX's (default :data:`mobile_skin.export.convert_onnx.DEFAULT_OPSET`);
    ``float_model``, the float model an int8 TFLite file's logit shift is corrected against (None:
    no correction); ``quantization_aware``, whether ``model`` carries QAT ranges (default: the
    table's ``qat``); ``float_prefix``, the Keras layer ending the float start of an int8 ONNX
    file, and ``float_tail``, the Keras layers starting its float tail (a quantization-aware
    TFLite ``model`` carries its float layers already).
    """
    f = FORMATS[fmt]
    if f.runtime == "tflite":
        float_ops = edge_model.INT8_FLOAT_OPS if f.float_head else ()
        qat = f.qat if quantization_aware is None else quantization_aware
        return _write_tflite(model, spec, f.mode, samples, target, float_ops, qat, float_model)
    if opset is None:
        from mobile_skin.export.convert_onnx import DEFAULT_OPSET

        opset = DEFAULT_OPSET
    return _write_onnx(
        model, spec, f.mode, f.float_head, samples, target, opset, float_prefix, float_tail
    )


def _write_tflite(
    model, spec, mode, samples, target: Path, float_ops=(), qat=False, float_model=None
) -> dict:
    """Convert, correct an int8 file's head for the logit shift (against ``float_model`` on the
    calibration samples where it does not lower their agreement,
    :mod:`mobile_skin.quant.logit_correction`), write, describe."""
    from mobile_skin.export.convert_tflite import convert_tflite, tflite_quantization_info
    from mobile_skin.quant import logit_correction

    data = calibration.representative_dataset(samples) if samples is not None else None
    content = convert_tflite(model, spec, mode, data, float_ops, qat=qat)
    correction = None
    if mode == "int8" and float_ops and float_model is not None:
        reference = logit_correction.predictions(KerasRuntime(float_model).predict, samples)
        content, correction = logit_correction.correct_tflite_on_samples(
            content, reference, samples
        )
    write_bytes(target, content)
    info = tflite_quantization_info(content, mode)
    if correction is not None:
        info["logit_correction"] = correction.describe()
    return info


def _write_onnx(
    model, spec, mode, float_head: bool, samples, target: Path, opset: int, float_prefix=None,
    float_tail=(),
) -> dict:  # fmt: skip
    import onnx

    from mobile_skin.export.convert_onnx import (
        convert_onnx,
        onnx_float_ops,
        onnx_quantization_info,
        quantize_onnx,
    )

    # The ops the TFLite int8 export keeps in float (the head) stay float here too, for the same
    # reason (int8 logits tie; see mobile_skin.quant.edge_model).
    float_ops = onnx_float_ops(edge_model.INT8_FLOAT_OPS) if float_head else ()
    proto = convert_onnx(model, spec, opset)
    with atomic_path(target) as tmp:
        correction = None
        if mode == "int8":
            correction = quantize_onnx(
                proto, tmp, samples, float_ops, float_prefix_end=float_prefix,
                float_tail_start=float_tail,
            )  # fmt: skip
        else:
            onnx.save(proto, tmp)
    info = onnx_quantization_info(target, mode, opset, len(samples) if samples else 0)
    if mode == "int8":
        info["float_op_types"] = list(float_ops)
    if correction is not None:
        info["logit_correction"] = correction.describe()
    return info
