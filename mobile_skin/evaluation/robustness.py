"""How much a model leans on patient metadata: the same rows scored with fields set to unknown.

A clinic often lacks a field (an external HAM10000-format set misses the age for a fifth of its
images) and the phone app lets the user skip every one. :data:`CONDITIONS` are the masks the
evaluation report and the parity gate score every model under: the metadata as given, age,
sex or site set to unknown, and all three unknown (the model then relies on the image alone).
Masking follows :meth:`mobile_skin.contract.encoding.MetadataEncoding.mask`, the rule training's
metadata dropout uses too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from mobile_skin.contract.encoding import FIELDS, MetadataEncoding
from mobile_skin.contract.spec import METADATA_INPUT

#: Condition name -> the fields set to unknown.
CONDITIONS: dict[str, tuple[str, ...]] = {
    "as given": (),
    "age masked": ("age",),
    "sex masked": ("sex",),
    "site masked": ("localization",),
    "all masked": FIELDS,
}
AS_GIVEN = "as given"


def masked_inputs(
    inputs: Mapping[str, np.ndarray], encoding: MetadataEncoding, fields: Sequence[str]
) -> dict[str, np.ndarray]:
    """``inputs`` with the metadata ``fields`` set to unknown (the image arrays are shared)."""
    out = dict(inputs)
    if fields:
        out[METADATA_INPUT] = encoding.mask(inputs[METADATA_INPUT], fields)
    return out


def condition_probs(
    predict: Callable[[Mapping[str, np.ndarray]], np.ndarray],
    inputs: Mapping[str, np.ndarray],
    encoding: MetadataEncoding | None,
    as_given: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Probabilities under every condition (only ``as given`` for an image-only model).

    Args:
        predict: inputs -> probabilities (e.g. a bound
            :func:`mobile_skin.model.runtime.predict_inputs`).
        inputs: the rows' named inputs.
        encoding: the metadata encoding, None for a model without metadata.
        as_given: probabilities already computed on ``inputs`` (not recomputed).
    """
    out = {AS_GIVEN: predict(inputs) if as_given is None else as_given}
    if encoding is None:
        return out
    for name, fields in CONDITIONS.items():
        if fields:
            out[name] = predict(masked_inputs(inputs, encoding, fields))
    return out


def condition_metrics(labels: np.ndarray, probs: Mapping[str, np.ndarray], classes) -> dict:
    """Per condition: balanced accuracy, accuracy and per-class recall (None where absent)."""
    from mobile_skin.model.metrics import classification_report

    out = {}
    for name, p in probs.items():
        r = classification_report(labels, p, classes)
        out[name] = {
            "balanced_accuracy": r["balanced_accuracy"],
            "accuracy": r["accuracy"],
            "recall": [row["sensitivity"] if row["support"] else None for row in r["per_class"]],
        }
    return out


def markdown_table(
    metrics: Mapping[str, dict], classes: Sequence[str], label: str = ""
) -> list[str]:
    """The robustness table: one line per condition, recall per class."""
    prefix = [label] if label else []
    head = [*(["model"] if label else []), "metadata", "balanced acc.", "accuracy", *classes]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, m in metrics.items():
        recall = ["" if r is None else f"{r:.2f}" for r in m["recall"]]
        cells = [*prefix, name, f"{m['balanced_accuracy']:.3f}", f"{m['accuracy']:.3f}", *recall]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
