"""``python benchmarks/profile_tflite.py MODEL.tflite ...`` (= ``mobile-skin profile``).

Op counts, ops outside XNNPACK (partitions), per-segment and per-op time of .tflite files, as
Markdown tables (and JSON with ``--json``). Usage: ``MODEL.tflite [MODEL2.tflite ...]
[--threads 1] [--runs 200] [--warmup 20] [--no-timing] [--no-per-op] [--top 15] [--json OUT.json]
[--compare]``; ``--compare`` also sets every later file's per-op times against the first's
(a float32 file, then its int8 ones: which kernels lose in int8).
Timing needs an otherwise idle machine; on a shared one run it as ``flock
/tmp/mobile_skin_timing.lock python benchmarks/profile_tflite.py ...``. The work is
:mod:`mobile_skin.bench.tflite_profile`.
"""

from __future__ import annotations

import argparse

from mobile_skin.common.cli_args import thread_count
from mobile_skin.common.errors import UserError, cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/profile_tflite.py",
        description="Profile .tflite files: op counts, ops outside XNNPACK (partitions), "
        "per-segment and per-op time.",
    )
    p.add_argument("models", nargs="+", help=".tflite files")
    p.add_argument(
        "--threads",
        type=thread_count,
        default=1,
        metavar="N|all",
        help="interpreter threads (default 1)",
    )
    p.add_argument("--runs", type=int, default=200, help="timed runs per measurement (default 200)")
    p.add_argument("--warmup", type=int, default=20, help="untimed runs first (default 20)")
    p.add_argument("--no-timing", action="store_true", help="ops and partitions only, no timing")
    p.add_argument("--no-per-op", action="store_true", help="time segments, not every op alone")
    p.add_argument("--top", type=int, default=15, help="slowest ops to list (default 15)")
    p.add_argument("--json", metavar="OUT", help="also write all rows as JSON here")
    p.add_argument(
        "--compare",
        action="store_true",
        help="set each later file's per-op times against the first file's, by op type and "
        "precision (e.g. FP32.tflite INT8.tflite)",
    )
    args = p.parse_args(argv)
    if args.compare and (len(args.models) < 2 or args.no_timing or args.no_per_op):
        raise UserError(
            "--compare needs two or more files, timed per op (not with --no-timing or --no-per-op)"
        )
    for flag in ("threads", "runs"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.warmup < 0:
        raise UserError(f"--warmup must be at least 0, got {args.warmup}")
    return args


@cli
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse_args(argv)
    from mobile_skin.bench import tflite_profile
    from mobile_skin.common import machine
    from mobile_skin.common.fileio import write_json

    for path in args.models:
        tflite_profile.read_bytes(path)  # every file checked before any output
    info = machine.describe()
    print(
        f"## TFLite profile: {info['cpu']}, {args.threads} thread(s), batch 1, "
        f"ai-edge-litert {info['ai-edge-litert']}, XNNPACK default delegate\n"
    )
    results = []
    for path in args.models:
        result = tflite_profile.profile(
            path,
            timing=not args.no_timing,
            per_op=not args.no_per_op,
            runs=args.runs,
            warmup=args.warmup,
            num_threads=args.threads,
        )
        results.append(result)
        print(tflite_profile.to_markdown(result, top=args.top))
        if args.compare and len(results) > 1:
            rows = tflite_profile.compare(results[0], result)
            result["compare"] = {"reference": results[0]["file"], "rows": rows}
            print(tflite_profile.compare_markdown(results[0], result, rows))
    if args.json:
        write_json(args.json, {"machine": info, "threads": args.threads, "profiles": results})
        print(f"wrote {args.json}")
    return 0
