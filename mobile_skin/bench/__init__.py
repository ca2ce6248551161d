"""Measurement: the paper's Table 10, training throughput, TFLite profiles, int8 recipes compared.

Its modules import only from this package and those before it in ``mobile_skin.LAYERS``
(docs/design.md, Code layout).
"""

__all__ = [
    "cache", "int8_methods", "measure", "models", "profile_cli", "report", "table10",
    "tflite_profile", "throughput", "worker"
]  # fmt: skip
