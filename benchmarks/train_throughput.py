"""Training images/s with the real JPEG pipeline against the same model fed from memory (issue 3).

Usage: ``python benchmarks/train_throughput.py --data DIR [--image-size 160] [--batch-size 32]
[--steps N] [--augment flip_rotate] [--out benchmarks/results]``.

Timing needs a quiet machine: ``flock /tmp/mobile_skin_timing.lock python benchmarks/...``.
Argument parsing only; the work is :mod:`mobile_skin.bench.throughput`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mobile_skin  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from mobile_skin.common.cli_args import add_results_dir, description
from mobile_skin.common.errors import UserError, cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/train_throughput.py", description=description(__doc__)
    )
    p.add_argument("--data", required=True, help="HAM10000-shaped data root (CSV + images)")
    p.add_argument("--image-size", type=int, default=160, help="input side (default 160)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--steps", type=int, help="steps per pass (default: one epoch of the split)")
    p.add_argument(
        "--augment", default="flip_rotate", help="pipeline augmentation (default flip_rotate)"
    )
    add_results_dir(p, "train_throughput_<machine>_<size>px_b<batch>_tf-<version>.json, .csv, .md")
    args = p.parse_args(argv)
    if args.image_size < 32:
        raise UserError(f"--image-size {args.image_size} is too small (minimum 32)")
    return args


@cli
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mobile_skin.bench.throughput import measure_throughput, write_results
    from mobile_skin.contract.pipeline import AUGMENTATIONS

    if args.augment not in AUGMENTATIONS:
        raise UserError(
            f"unknown --augment {args.augment!r}; choose from {', '.join(AUGMENTATIONS)}"
        )
    rows, facts = measure_throughput(
        args.data, args.image_size, args.batch_size, args.steps, augmentation=args.augment
    )
    paths = write_results(Path(args.out), rows, facts)
    print(paths[-1].read_text())
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
