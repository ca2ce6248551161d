"""Scoring a model: metrics, reports and figures, missing-metadata robustness, calibrated
probabilities, runs side by side.

Its modules import only from this package and those before it in ``mobile_skin.LAYERS``
(docs/design.md, Code layout).
"""

__all__ = [
    "calibrate", "compare", "evaluate", "reliability", "report", "robustness", "stats",
    "temperature"
]  # fmt: skip
