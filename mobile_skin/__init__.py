"""mobile_skin: phone skin-lesion classifier (MobileNetV3Large[:240] + Soft-Attention + metadata).

Importing the package sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported, so that
``tf.keras`` inside TensorFlow, tensorflow-model-optimization and tf2onnx resolves to Keras 2
(``tf_keras``). This is the only place the project sets it; every module imports ``tf_keras``.
"""

import contextlib
import os
import sys

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    import warnings

    warnings.warn(
        "tensorflow was imported before mobile_skin without TF_USE_LEGACY_KERAS=1; "
        "quantization-aware training and ONNX export may fail. Import mobile_skin first.",
        stacklevel=2,
    )
os.environ["TF_USE_LEGACY_KERAS"] = "1"

#: The stage packages, lowest first. A module of one imports only from its own package and those
#: before it; the commands at the top level (``cli``, ``demo`` and the ``python -m`` entry points)
#: may import any (docs/design.md, Code layout; ``tests/test_imports.py`` enforces it).
LAYERS = (
    "common",
    "contract",
    "data",
    "model",
    "evaluation",
    "training",
    "parity",
    "quant",
    "export",
    "bench",
)

#: ``MOBILE_SKIN_VERBOSE=1`` shows TensorFlow's start-up log (oneDNN, CUDA probing, cuInit), which
#: otherwise appears on every command of a machine without a GPU and says nothing a user can act on.
VERBOSE = os.environ.get("MOBILE_SKIN_VERBOSE", "") not in ("", "0")


@contextlib.contextmanager
def quiet_native_stderr():
    """Within the block, file descriptor 2 goes to /dev/null (unless ``MOBILE_SKIN_VERBOSE=1``):
    for C++ libraries' log lines, which bypass Python's ``sys.stderr``. Python exceptions raised in
    the block still propagate, after stderr is restored."""
    if VERBOSE:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _quiet_tensorflow_import() -> None:
    """Hide the C++ log lines TensorFlow writes to file descriptor 2 while it is imported (they
    bypass ``TF_CPP_MIN_LOG_LEVEL``): wrap the first ``import tensorflow`` so that only its module
    execution runs with stderr on /dev/null. Python errors of a failed import still surface: the
    exception propagates after stderr is restored."""
    import importlib.abc
    import importlib.util

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name != "tensorflow":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            if spec is None or spec.loader is None:
                return spec
            execute = spec.loader.exec_module

            def exec_module(module):
                with quiet_native_stderr():
                    execute(module)
                # TensorFlow's Python warnings (tf.function retracing, deprecations) say nothing
                # a user of these commands can act on; MOBILE_SKIN_VERBOSE=1 keeps them.
                import logging

                logging.getLogger("tensorflow").setLevel(logging.ERROR)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _Finder())


if VERBOSE:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
else:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        _quiet_tensorflow_import()

__version__ = "0.1.0"
