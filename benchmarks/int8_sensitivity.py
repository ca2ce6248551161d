"""Where int8 agreement is lost: bit-width sweep, per-tensor sensitivity, few tensors kept wide.

Usage: ``python benchmarks/int8_sensitivity.py [RUN] [--sweep 8,8 16,8 ...] [--keep-wide 4 10 ...]
[--no-per-tensor] [--split test|val] [--limit N] [--calibration-samples N] [--out DIR]``.

Runs the run's test split (or, with ``--split val``, its validation split: a float region
chosen there has not seen the test images) through the exporter's calibrated fake-quant graph
(which flips the same test images as the int8 .tflite) with chosen quantizers at 16 bits; writes
``DIR/int8_sensitivity_<run>.json`` and ``.md`` (``int8_sensitivity_<run>_val.*`` for the
validation split; ``--out`` is a results directory, as in every benchmark; default
``benchmarks/results``).
About 10 s per experiment on 998 images at 160 px (2 cores); the per-tensor pass is one
experiment per activation tensor (~125: 20 min).
Argument parsing only; the work is :mod:`mobile_skin.quant.sensitivity`.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from mobile_skin.common.cli_args import add_data_dir, add_results_dir, description
from mobile_skin.common.errors import UserError, cli
from mobile_skin.quant.calibration import DEFAULT_SAMPLES

DEFAULT_SWEEP = ["8,8", "10,8", "12,8", "16,8", "8,16", "16,16"]
DEFAULT_KEEP = [4, 8, 16, 32]


def _pair(text: str) -> tuple[int, int]:
    try:
        a, w = (int(v) for v in text.split(","))
    except ValueError:
        raise UserError(
            f"--sweep: {text!r} is not ACTIVATION_BITS,WEIGHT_BITS (e.g. 8,8)"
        ) from None
    if not (2 <= a <= 16 and 2 <= w <= 16):
        raise UserError(f"--sweep: {text!r}: bit widths must be 2..16 (tfmot's fake-quant range)")
    return a, w


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/int8_sensitivity.py", description=description(__doc__)
    )
    p.add_argument("run", nargs="?", help="training run directory (default runs/latest)")
    add_data_dir(p)
    p.add_argument(
        "--sweep",
        nargs="*",
        default=DEFAULT_SWEEP,
        metavar="A,W",
        help=f"activation,weight bit widths (default {' '.join(DEFAULT_SWEEP)})",
    )
    p.add_argument(
        "--keep-wide",
        nargs="*",
        type=int,
        default=DEFAULT_KEEP,
        metavar="N",
        help="most sensitive tensors kept at 16 bits (default "
        f"{' '.join(map(str, DEFAULT_KEEP))}; needs the per-tensor pass)",
    )
    p.add_argument("--no-per-tensor", action="store_true", help="skip the per-tensor pass")
    p.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="the split whose images are run (default test; val chooses without the test images)",
    )
    p.add_argument("--limit", type=int, help="only the split's first N images")
    p.add_argument(
        "--calibration-samples",
        type=int,
        default=DEFAULT_SAMPLES,
        metavar="N",
        help=f"training images setting the ranges (default {DEFAULT_SAMPLES})",
    )
    add_results_dir(p, "int8_sensitivity_<run>[_val].json and .md")
    args = p.parse_args(argv)
    args.sweep = [_pair(s) for s in args.sweep]
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    if any(n < 0 for n in args.keep_wide):
        raise UserError(f"--keep-wide: counts must be >= 0, got {args.keep_wide}")
    return args


def results_name(run_name: str, split: str) -> str:
    """The results' file name without its suffix: the test split's keeps the historical name."""
    return f"int8_sensitivity_{run_name}" + ("" if split == "test" else f"_{split}")


@cli
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    from mobile_skin.quant.calibration import check_sample_count

    check_sample_count(args.calibration_samples)
    from mobile_skin.data.run import open_run
    from mobile_skin.quant.sensitivity import run_report

    opened = open_run(args.run, args.data)
    out = args.out / results_name(opened.paths.root.name, args.split)
    written = run_report(
        opened,
        out,
        sweep=args.sweep,
        per_tensor=not args.no_per_tensor,
        keep_wide=args.keep_wide,
        split=args.split,
        limit=args.limit,
        calibration_samples=args.calibration_samples,
        command=shlex.join(["python", "benchmarks/int8_sensitivity.py", *argv]),
    )
    print("\n".join(f"wrote {p}" for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
