"""Start-up is quiet: importing the package and TensorFlow prints nothing unless asked to."""

from __future__ import annotations

import os
import subprocess
import sys

SNIPPET = (
    "import mobile_skin, tensorflow as tf, numpy as np\n"
    "tf.config.list_physical_devices('GPU')\n"
    "tf.get_logger().warning('a TensorFlow Python warning such as tf.function retracing')\n"
    "print(float(tf.reduce_sum(tf.constant(np.ones(3, 'float32')))))\n"
)


def _run(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    clean.pop("MOBILE_SKIN_VERBOSE", None)
    return subprocess.run(
        [sys.executable, "-c", SNIPPET], env={**clean, **env}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_tensorflow_start_up_log_is_hidden_but_output_and_errors_are_not():
    quiet = _run()
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip() == "3.0"
    assert quiet.stderr == "", quiet.stderr
    # A Python error after the import still reaches stderr (the descriptor was restored).
    failing = subprocess.run(
        [sys.executable, "-c", "import mobile_skin, tensorflow\nraise SystemExit('boom')"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert failing.returncode == 1 and failing.stderr.strip().endswith("boom")


def test_verbose_keeps_tensorflow_warnings():
    loud = _run(MOBILE_SKIN_VERBOSE="1")
    assert loud.returncode == 0 and loud.stdout.strip() == "3.0"
    assert "tf.function retracing" in loud.stderr
