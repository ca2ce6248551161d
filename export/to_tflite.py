"""Convert a training run's model to TFLite and gate it on accuracy parity with Keras.

Usage: ``python export/to_tflite.py [RUN_DIR] [--fp32|--fp16|--dynamic|--int8] ...``
(``--help``; the same as ``mobile-skin export tflite``). The command is
:func:`mobile_skin.export.cli.tflite_main`.
"""

from __future__ import annotations

import sys

from mobile_skin.export.cli import tflite_main as main

if __name__ == "__main__":
    sys.exit(main())
