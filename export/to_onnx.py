"""Convert a training run's model to ONNX (optionally int8) and gate it on parity with Keras.

Usage: ``python export/to_onnx.py [RUN_DIR] [--opset N] [--int8] [--calibration-samples N]
[--no-verify]``. Writes ``RUN_DIR/export/onnx_<fp32|int8>/model.onnx`` with ``model_spec.json``
and ``labels.txt``, and the parity row in ``RUN_DIR/export/parity.md``.
Exit status: 0 passed (or not verified), 1 failed the parity gate, 2 bad input.
Argument parsing only; the work is :func:`mobile_skin.export.export_and_verify`.
"""

from __future__ import annotations

import argparse
import sys

from mobile_skin.errors import cli
from mobile_skin.export_cli import add_shared_arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python export/to_onnx.py", description=__doc__.splitlines()[0]
    )
    add_shared_arguments(p)
    p.add_argument(
        "--opset",
        type=int,
        help="ONNX opset (default: the exporter's; checked against what the installed tf2onnx "
        "writes before converting)",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="static int8 quantization (QDQ: uint8 activations with least-squares ranges, int8 "
        "per-channel weights, float head with its logit shift corrected)",
    )
    return p.parse_args(argv)


@cli
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mobile_skin.export import export_and_verify
    from mobile_skin.parity import exit_status

    row = export_and_verify(
        args.run,
        "onnx_int8" if args.int8 else "onnx_fp32",
        opset=args.opset,
        calibration_samples=args.calibration_samples,
        verify=not args.no_verify,
        data_dir=args.data,
    )
    return exit_status(row)


if __name__ == "__main__":
    sys.exit(main())
