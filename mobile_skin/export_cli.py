"""The command-line arguments ``export/to_tflite.py`` and ``export/to_onnx.py`` share.

Kept apart from :mod:`mobile_skin.export` so the scripts parse (and ``--help`` answers) without
loading TensorFlow.
"""

from __future__ import annotations

import argparse

from mobile_skin.calibration import DEFAULT_SAMPLES


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """The run directory, int8 calibration size, ``--no-verify`` and ``--data``."""
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
    parser.add_argument("--no-verify", action="store_true", help="skip the parity gate (says so)")
    parser.add_argument(
        "--data", help="read the images from here instead of the run's data directory"
    )
