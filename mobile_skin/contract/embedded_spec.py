"""A self-describing ``.tflite``: the model spec travels inside the file.

``model_spec.json`` (classes, input names and sizes, the metadata encoding, the preprocessing, the
quantization and parity facts) is written beside every export, but a ``.tflite`` often travels
alone. The exporter therefore also stores the same JSON inside the file, in the flatbuffer's
standard ``Model.metadata`` list: an entry named :data:`METADATA_NAME` whose buffer holds the UTF-8
JSON. LiteRT ignores entries it does not know, so the model runs as before; any flatbuffer reader
finds the spec (the Android core's ``TfliteSpec.kt`` reads it in a few dozen lines).

Readers prefer the sidecar ``model_spec.json`` when it is there (it may carry a later parity row)
and fall back to the embedded copy (:func:`mobile_skin.contract.spec.ModelSpec.for_model`).
"""

from __future__ import annotations

import json
from pathlib import Path

from mobile_skin.common.errors import UserError

#: The ``Model.metadata`` entry that holds the spec.
METADATA_NAME = "mobile_skin.model_spec"


def embed(content: bytes, spec: dict) -> bytes:
    """``content`` (a ``.tflite``) with ``spec`` stored as :data:`METADATA_NAME` (replaced if
    present)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    data = json.dumps(spec, sort_keys=True).encode("utf-8")
    buffer = schema.BufferT()
    buffer.data = list(data)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    kept = [m for m in (model.metadata or []) if _name(m) != METADATA_NAME]
    model.metadata = [*kept, entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read(content: bytes) -> dict | None:
    """The spec stored in a ``.tflite``'s bytes, or None when it has none."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAs(content, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if (entry.Name() or b"").decode("utf-8", "replace") != METADATA_NAME:
                continue
            buffer = model.Buffers(entry.Buffer())
            return json.loads(bytes(buffer.DataAsNumpy()).decode("utf-8"))
    except (ValueError, IndexError, TypeError, AttributeError, UnicodeDecodeError) as err:
        raise UserError(f"the model's embedded spec is unreadable ({err})") from None
    return None


def read_file(path: str | Path) -> dict | None:
    """The spec stored in a ``.tflite`` file, or None (also for non-TFLite files)."""
    path = Path(path)
    if path.suffix.lower() != ".tflite" or not path.is_file():
        return None
    try:
        return read(path.read_bytes())
    except UserError as err:
        raise UserError(f"{path}: {err}") from None


def _name(entry) -> str:
    name = entry.name
    return name.decode("utf-8") if isinstance(name, bytes) else str(name or "")
