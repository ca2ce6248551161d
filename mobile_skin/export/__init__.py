"""Export: every format through one table, each file gated on parity.

Its modules import only from this package and those before it in ``mobile_skin.LAYERS``
(docs/design.md, Code layout).
"""

__all__ = ["cli", "convert_onnx", "convert_tflite", "device_golden", "exporter"]
