"""The paper's Table 10 on this machine: latency, throughput, memory and training speed.

Usage: ``python benchmarks/latency.py [--run RUN_DIR] [--models ...] [--runtimes ...]
[--threads 1,all] [--quick] [--image-size N] [--out DIR]`` (``--help`` for the rest).

On a shared machine hold the timing lock:
``flock /tmp/mobile_skin_timing.lock python benchmarks/latency.py ...``.
Argument parsing and the work are in :mod:`mobile_skin.bench.table10`.
"""

from __future__ import annotations

import sys

import mobile_skin  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from mobile_skin.bench.table10 import main

if __name__ == "__main__":
    sys.exit(main())
