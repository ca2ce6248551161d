"""Profile .tflite files: op counts, ops outside XNNPACK (partitions), per-segment and per-op time.

Usage: ``python benchmarks/profile_tflite.py MODEL.tflite [MODEL2.tflite ...] [--threads 1]
[--runs 200] [--warmup 20] [--no-timing] [--no-per-op] [--top 15] [--json OUT.json]`` (``--help``;
the same as ``mobile-skin profile``). The command is :func:`mobile_skin.bench.profile_cli.main`.
"""

from __future__ import annotations

import sys

from mobile_skin.bench.profile_cli import main

if __name__ == "__main__":
    sys.exit(main())
