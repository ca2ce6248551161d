"""The network (MobileNetV3 cut + Soft-Attention + metadata), its loss and metrics, and one runtime
over Keras, TFLite and ONNX files.

Its modules import only from this package and those before it in ``mobile_skin.LAYERS``
(docs/design.md, Code layout).
"""

__all__ = [
    "keras_graph",
    "litert",
    "losses",
    "metrics",
    "network",
    "predict",
    "runtime",
    "soft_attention",
]
