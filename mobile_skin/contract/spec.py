"""``model_spec.json``: everything a runtime needs to feed a model and read its answer.

Written beside every model (training run, every export). Runtimes and the Android app read the
classes, input names, shapes, dtypes, image size and metadata encoding from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mobile_skin.common.errors import UserError
from mobile_skin.common.fileio import write_json, write_text
from mobile_skin.contract.encoding import CLASS_NAMES, CLASSES, MetadataEncoding

SPEC_FILE = "model_spec.json"
LABELS_FILE = "labels.txt"
FORMAT_VERSION = 1

IMAGE_INPUT = "image"
METADATA_INPUT = "metadata"
OUTPUT = "probs"


@dataclass
class ModelSpec:
    """The contract of one model file.

    Attributes:
        image_size: S; the image input is float32 (B, S, S, 3), raw RGB in 0..255.
        encoding: the metadata encoding, or None for a model without the metadata input.
        classes: output order of ``probs``.
        backbone: registry name of the backbone.
        source_run: the training run the weights come from.
        model_file: file name of the model this spec describes.
        quantization: export details (mode, per-tensor scales), filled by the exporter.
        parity: the export's verdict from the parity gate (status and per-split agreement),
            filled by the exporter; empty for a trained model.
        calibration: the temperature folded into the model's last layer and its fit
            (:mod:`mobile_skin.evaluation.temperature`); empty when ``probs`` is raw softmax.
    """

    image_size: int
    encoding: MetadataEncoding | None
    classes: tuple[str, ...] = CLASSES
    backbone: str = "mobilenet_v3_large_240"
    source_run: str = ""
    model_file: str = ""
    quantization: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        """Names of the model inputs, in no particular order of meaning."""
        return [IMAGE_INPUT] + ([METADATA_INPUT] if self.encoding else [])

    def to_dict(self) -> dict:
        """The JSON document."""
        inputs = {
            IMAGE_INPUT: {
                "shape": [-1, self.image_size, self.image_size, 3],
                "dtype": "float32",
                "layout": "NHWC",
                "color": "RGB",
                "range": [0.0, 255.0],
                "resize": "bilinear, antialiased when downscaling (tf.image.resize antialias=True)",
            }
        }
        if self.encoding:
            inputs[METADATA_INPUT] = {
                "shape": [-1, self.encoding.size],
                "dtype": "float32",
                "encoding": self.encoding.to_dict(),
            }
        return {
            "format_version": FORMAT_VERSION,
            "model_file": self.model_file,
            "backbone": self.backbone,
            "source_run": self.source_run,
            "classes": list(self.classes),
            "class_names": {c: CLASS_NAMES.get(c, c) for c in self.classes},
            "image_size": self.image_size,
            "inputs": inputs,
            "outputs": {OUTPUT: {"shape": [-1, len(self.classes)], "dtype": "float32"}},
            "quantization": self.quantization,
            "parity": self.parity,
            "calibration": self.calibration,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        """Inverse of :meth:`to_dict`."""
        meta = d["inputs"].get(METADATA_INPUT)
        return cls(
            image_size=int(d["image_size"]),
            encoding=MetadataEncoding.from_dict(meta["encoding"]) if meta else None,
            classes=tuple(d["classes"]),
            backbone=d.get("backbone", ""),
            source_run=d.get("source_run", ""),
            model_file=d.get("model_file", ""),
            quantization=d.get("quantization", {}),
            parity=d.get("parity", {}),
            calibration=d.get("calibration", {}),
        )

    def save(self, directory: str | Path) -> Path:
        """Write ``model_spec.json`` and ``labels.txt`` into ``directory`` (atomically)."""
        directory = Path(directory)
        write_text(directory / LABELS_FILE, "\n".join(self.classes) + "\n")
        return write_json(directory / SPEC_FILE, self.to_dict())

    @classmethod
    def for_model(cls, model: str | Path, spec_path: str | Path | None = None) -> ModelSpec:
        """The spec of a model file: ``spec_path`` if given, else ``model_spec.json`` beside the
        model, else the copy embedded in a ``.tflite`` (:mod:`mobile_skin.contract.embedded_spec`).

        Raises:
            UserError: none of them exists or can be read (the message says where it looked).
        """
        from mobile_skin.contract import embedded_spec

        if spec_path is not None:
            return cls.load(spec_path)
        sidecar = Path(model).parent / SPEC_FILE
        if sidecar.is_file():
            return cls.load(sidecar)
        embedded = embedded_spec.read_file(model)
        if embedded is not None:
            try:
                return cls.from_dict(embedded)
            except (KeyError, TypeError, ValueError) as err:
                raise UserError(f"{model}: embedded model spec is not valid ({err})") from None
        raise UserError(
            f"{sidecar}: model spec not found, and {Path(model).name} carries none inside "
            "(pass --spec)"
        )

    @classmethod
    def load(cls, path: str | Path) -> ModelSpec:
        """Read a spec from a file or from the directory holding ``model_spec.json``."""
        path = Path(path)
        if path.is_dir():
            path = path / SPEC_FILE
        if not path.is_file():
            raise UserError(f"{path}: model spec not found")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise UserError(f"{path}: not a valid model spec ({err})") from None
