"""Int8: calibration images, quantization-aware training, the edge rewrite, the logit correction,
the sensitivity probe.

Its modules import only from this package and those before it in ``mobile_skin.LAYERS``
(docs/design.md, Code layout).
"""

__all__ = [
    "calibration", "edge_model", "logit_correction", "qat", "qat_describe", "qat_graph",
    "qat_scheme", "sensitivity"
]  # fmt: skip
