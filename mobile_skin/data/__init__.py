"""Data in: HAM10000-shaped folders, the grouped split, synthetic and external sets, the run
directory.

Its modules import only from this package and those before it in ``mobile_skin.LAYERS``
(docs/design.md, Code layout).
"""

__all__ = ["external_set", "ham10000", "run", "splits", "synthetic"]
