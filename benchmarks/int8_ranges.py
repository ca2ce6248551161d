"""Activation ranges of one or more runs' models: where 8 bits are coarsest, model by model.

Usage: ``python benchmarks/int8_ranges.py RUN [RUN ...] [--split val] [--limit 400] [--count 20]
[--out DIR]``.

Measures every activation tensor of each run's model (its export form) on the first ``--limit``
images of ``--split``: range, least-squares 8-bit range, channel spread and 8-bit SQNR. Writes
``DIR/int8_ranges_<run>_<run>....json``, ``.md`` and ``.png`` (default ``benchmarks/results``).
About 2 minutes per run at 160 px and 400 images (2 cores).
Argument parsing only; the work is :mod:`mobile_skin.bench.int8_ranges`.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from mobile_skin.common.cli_args import add_data_dir, add_results_dir, description
from mobile_skin.common.errors import UserError, cli

SPLITS = ("train", "val", "test")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/int8_ranges.py", description=description(__doc__)
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="training run directories")
    add_data_dir(p)
    p.add_argument("--split", choices=SPLITS, default="val", help="images to measure (default val)")
    p.add_argument(
        "--limit", type=int, default=400, help="first N images of the split (default 400; 0: all)"
    )
    p.add_argument("--count", type=int, default=20, help="lowest-SQNR tensors listed (default 20)")
    add_results_dir(p, "int8_ranges_<runs>.json, .md and .png")
    args = p.parse_args(argv)
    if args.limit < 0:
        raise UserError(f"--limit must be 0 (all) or more, got {args.limit}")
    if args.count < 1:
        raise UserError(f"--count must be at least 1, got {args.count}")
    return args


@cli
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    from mobile_skin.bench.int8_ranges import run_report
    from mobile_skin.data.run import open_run

    runs = [open_run(r, args.data) for r in args.runs]
    stem = "_".join(r.paths.root.name for r in runs)
    written = run_report(
        runs,
        args.out / f"int8_ranges_{stem}",
        split=args.split,
        limit=args.limit or None,
        count=args.count,
        command=shlex.join(["python", "benchmarks/int8_ranges.py", *argv]),
    )
    print("\n".join(f"wrote {p}" for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
