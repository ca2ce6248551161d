"""Convert a training run's model to ONNX (optionally int8) and gate it on parity with Keras.

Usage: ``python export/to_onnx.py [RUN_DIR] [--opset N] [--int8] ...`` (``--help``; the same as
``mobile-skin export onnx``). The command is :func:`mobile_skin.export.cli.onnx_main`.
"""

from __future__ import annotations

import sys

from mobile_skin.export.cli import onnx_main as main

if __name__ == "__main__":
    sys.exit(main())
