"""mobile_skin: phone skin-lesion classifier (MobileNetV3Large[:240] + Soft-Attention + metadata).

Importing the package sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported, so that
``tf.keras`` inside TensorFlow, tensorflow-model-optimization and tf2onnx resolves to Keras 2
(``tf_keras``). This is the only place the project sets it; every module imports ``tf_keras``.
"""

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
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
