"""The parity gate: converted files against the trained model.

Its modules import only from this package and those before it in ``mobile_skin.LAYERS``
(docs/design.md, Code layout).
"""

__all__ = ["gate", "report"]
