"""What the app and every runtime depend on: the metadata encoding, the model spec, the image
preprocessing and the Android goldens.

Its modules import only from this package and those before it in ``mobile_skin.LAYERS``
(docs/design.md, Code layout).
"""

__all__ = ["android_golden", "embedded_spec", "encoding", "image", "pipeline", "spec"]
