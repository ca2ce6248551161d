"""Convert a training run's model to TFLite and gate it on accuracy parity with Keras.

Usage: ``python export/to_tflite.py [RUN_DIR] [--fp32|--fp16|--dynamic|--int8 [--qat-epochs N]
[--qat-lr LR]] [--calibration-samples N] [--no-verify]``. ``--int8`` fine-tunes the int8 graph
quantization-aware first (8 epochs by default, about half an hour on 2 CPU cores; ``--qat-epochs 0``
takes a few minutes); ``--qat`` is another name for it.
Writes ``RUN_DIR/export/tflite_<mode>/model.tflite`` with ``model_spec.json`` and ``labels.txt``,
and the parity row in ``RUN_DIR/export/parity.md``.
Exit status: 0 passed (or not verified), 1 failed the parity gate, 2 bad input.
Argument parsing only; the work is :func:`mobile_skin.export.export_and_verify`.
"""

from __future__ import annotations

import argparse
import sys

from mobile_skin.config import QAT_EPOCHS, QAT_LEARNING_RATE
from mobile_skin.errors import UserError, cli
from mobile_skin.export_cli import add_shared_arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python export/to_tflite.py", description=__doc__.splitlines()[0]
    )
    add_shared_arguments(p)
    mode = p.add_mutually_exclusive_group()
    for name, text in (
        ("fp32", "float32, no optimisation (default)"),
        ("fp16", "float16 weights"),
        ("dynamic", "dynamic-range quantization (int8 weights)"),
        ("int8", "full integer, quantization-aware (see --qat-epochs); float32 input/output"),
    ):
        mode.add_argument(f"--{name}", dest="mode", action="store_const", const=name, help=text)
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
    if args.qat and args.mode not in (None, "int8"):
        raise UserError(f"--qat converts to int8; it cannot be combined with --{args.mode}")
    if args.qat:
        args.mode = "int8"
    return args


@cli
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mobile_skin.export import export_and_verify
    from mobile_skin.parity import exit_status

    fmt = f"tflite_{args.mode or 'fp32'}"
    row = export_and_verify(
        args.run,
        fmt,
        calibration_samples=args.calibration_samples,
        verify=not args.no_verify,
        data_dir=args.data,
        qat_epochs=args.qat_epochs,
        qat_learning_rate=args.qat_lr,
    )
    return exit_status(row)


if __name__ == "__main__":
    sys.exit(main())
