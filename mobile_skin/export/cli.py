"""The export commands: ``python export/to_tflite.py`` (:func:`tflite_main`) and
``python export/to_onnx.py`` (:func:`onnx_main`), also ``mobile-skin export tflite|onnx``.

Argument parsing only, kept apart from :mod:`mobile_skin.export.exporter` so the commands parse (and
``--help`` answers) without loading TensorFlow; the work is
:func:`mobile_skin.export.exporter.export_and_verify`. Exit status: 0 passed (or not verified), 1
failed the parity gate, 2 bad input.

``export/to_tflite.py [RUN_DIR] [--fp32|--fp16|--dynamic|--int8 [--qat-epochs N] [--qat-lr LR]
[--all-int8] [--float-tail]] [--calibration-samples N] [--no-verify] [--data DIR]``: ``--int8``
fine-tunes the int8 graph quantization-aware first (8 epochs by default, about half an hour on 2
CPU cores; ``--qat-epochs 0`` takes a few minutes); ``--qat`` is another name for it;
``--float-tail`` keeps the late blocks float too. Writes
``RUN_DIR/export/tflite_<mode>/model.tflite`` with ``model_spec.json`` and ``labels.txt``, and the
parity row in ``RUN_DIR/export/parity.md``.

``export/to_onnx.py [RUN_DIR] [--opset N] [--int8 [--all-int8] [--float-tail]]
[--calibration-samples N] [--no-verify]``:
``RUN_DIR/export/onnx_<fp32|int8>/model.onnx`` likewise.
"""

from __future__ import annotations

import argparse

from mobile_skin.common.cli_args import add_data_dir
from mobile_skin.common.config import QAT_EPOCHS, QAT_LEARNING_RATE
from mobile_skin.common.errors import UserError, cli
from mobile_skin.common.formats import FORMATS, formats_of
from mobile_skin.quant.calibration import DEFAULT_SAMPLES

TFLITE_DESCRIPTION = (
    "Convert a training run's model to TFLite and gate it on accuracy parity with Keras."
)
ONNX_DESCRIPTION = (
    "Convert a training run's model to ONNX (optionally int8) and gate it on parity with Keras."
)


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """The run directory, int8 calibration size, ``--all-int8``, ``--float-tail``,
    ``--no-verify`` and ``--data``."""
    parser.add_argument("run", nargs="?", help="training run directory (default runs/latest)")
    parser.add_argument(
        "--calibration-samples",
        type=int,
        default=DEFAULT_SAMPLES,
        metavar="N",
        help=(
            "training-split images for int8 calibration, drawn per class "
            f"(default {DEFAULT_SAMPLES})"
        ),
    )
    parser.add_argument(
        "--all-int8",
        action="store_true",
        help="with --int8: quantize the network's start too (by default the stem and first "
        "three blocks stay float, which keeps more of the model's answers; see reports/int8.md)",
    )
    parser.add_argument(
        "--float-tail",
        action="store_true",
        help="with --int8: keep the last three blocks and the attention in float too, for a "
        "model whose int8 file fails the gate: more answers kept, about 0.9x float32 speed "
        "instead of 0.75x and twice the size (see reports/int8.md)",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the parity gate (says so)")
    add_data_dir(parser)


def parse_tflite_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python export/to_tflite.py", description=TFLITE_DESCRIPTION)
    add_shared_arguments(p)
    mode = p.add_mutually_exclusive_group()
    for f in formats_of("tflite"):
        mode.add_argument(f.flag, dest="format", action="store_const", const=f.name, help=f.help)
    p.add_argument("--qat", action="store_true", help="the same as --int8 (kept for old scripts)")
    p.add_argument(
        "--qat-epochs",
        type=int,
        metavar="N",
        help=f"with --int8: fine-tuning epochs (default {QAT_EPOCHS}; 0: calibrated ranges only)",
    )
    p.add_argument(
        "--qat-lr",
        type=float,
        metavar="LR",
        help=f"with --int8: Adam learning rate (default {QAT_LEARNING_RATE:g})",
    )
    args = p.parse_args(argv)
    qat = next(f for f in formats_of("tflite") if f.qat)
    if args.qat and args.format not in (None, qat.name):
        flag = FORMATS[args.format].flag
        raise UserError(f"--qat converts to int8; it cannot be combined with {flag}")
    if args.qat:
        args.format = qat.name
    args.format = args.format or formats_of("tflite")[0].name
    return args


@cli
def tflite_main(argv: list[str] | None = None) -> int:
    args = parse_tflite_args(argv)
    from mobile_skin.data.run import resolve_run
    from mobile_skin.export.exporter import export_and_verify
    from mobile_skin.parity.gate import exit_status

    row = export_and_verify(
        resolve_run(args.run),
        args.format,
        calibration_samples=args.calibration_samples,
        verify=not args.no_verify,
        data_dir=args.data,
        qat_epochs=args.qat_epochs,
        qat_learning_rate=args.qat_lr,
        float_prefix=not args.all_int8,
        float_tail=args.float_tail,
    )
    return exit_status(row)


def parse_onnx_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python export/to_onnx.py", description=ONNX_DESCRIPTION)
    add_shared_arguments(p)
    p.add_argument(
        "--opset",
        type=int,
        help="ONNX opset (default: the exporter's; checked against what the installed tf2onnx "
        "writes before converting)",
    )
    default, *others = formats_of("onnx")
    for f in others:
        p.add_argument(f.flag, dest="format", action="store_const", const=f.name, help=f.help)
    args = p.parse_args(argv)
    args.format = args.format or default.name
    return args


@cli
def onnx_main(argv: list[str] | None = None) -> int:
    args = parse_onnx_args(argv)
    from mobile_skin.data.run import resolve_run
    from mobile_skin.export.exporter import export_and_verify
    from mobile_skin.parity.gate import exit_status

    row = export_and_verify(
        resolve_run(args.run),
        args.format,
        opset=args.opset,
        calibration_samples=args.calibration_samples,
        verify=not args.no_verify,
        data_dir=args.data,
        float_prefix=not args.all_int8,
        float_tail=args.float_tail,
    )
    return exit_status(row)
