"""Int8 TFLite recipes side by side: agreement with Keras on two splits, partitions, speed.

Usage: ``python benchmarks/int8_methods.py [RUN] [--methods NAME ...] [--time] [--out DIR]``.
Builds each recipe's ``.tflite`` under ``RUN/export/int8_methods/``, scores it on the test and
validation splits against Keras, and merges the rows into ``DIR/int8_methods_<run>.json``, with a
``.md`` table beside it (``--out`` is a results directory, as in every benchmark; default
``benchmarks/results``). ``--time``
then times every file built so far against the float32 file, round-robin, 1 thread, batch 1;
it needs an otherwise idle machine (``flock /tmp/mobile_skin_timing.lock ...`` on a shared one).
Argument parsing only; the work is :mod:`mobile_skin.bench.int8_methods`.
"""

from __future__ import annotations

import argparse
import sys

from mobile_skin.common.cli_args import add_data_dir, add_results_dir, description
from mobile_skin.common.errors import cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from mobile_skin.bench.int8_methods import METHODS

    p = argparse.ArgumentParser(
        prog="python benchmarks/int8_methods.py", description=description(__doc__)
    )
    p.add_argument("run", nargs="?", help="training run directory (default runs/latest)")
    add_data_dir(p)
    p.add_argument(
        "--methods",
        nargs="*",
        default=[],
        metavar="NAME",
        help=f"recipes to build and score: {', '.join(METHODS)} (default: none, e.g. to --time)",
    )
    p.add_argument("--time", action="store_true", help="time every file built so far")
    add_results_dir(p, "int8_methods_<run>.json and .md (rows merge by recipe)")
    return p.parse_args(argv)


@cli
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mobile_skin.bench.int8_methods import run
    from mobile_skin.data.run import open_run

    opened = open_run(args.run, args.data)
    out = args.out / f"int8_methods_{opened.paths.root.name}.json"
    run(opened, args.methods, out, timing=args.time)
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
