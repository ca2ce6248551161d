"""Training: the recipe's loop, callbacks, accelerators, several workers, the cut sweep.

Its modules import only from this package and those before it in ``mobile_skin.LAYERS``
(docs/design.md, Code layout).
"""

__all__ = ["accel", "callbacks", "loop", "multi_worker", "sweep", "train"]
