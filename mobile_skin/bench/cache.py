"""The benchmark's file cache: one model's ``.keras`` file, facts and converted files.

:class:`ModelFiles` builds, for one :class:`~mobile_skin.bench.models.BenchModel`, the ``.keras``
file (untrained models are built with a fixed seed and saved), its facts (parameters, depth,
GFLOPs) and its files in every exported format. Conversion is the exporter's own code path
(:mod:`mobile_skin.export.exporter`): the Keras model goes through
:func:`mobile_skin.quant.edge_model.to_edge_model`, then the exporter's TFLite / ONNX writers, int8
calibrated on :class:`~mobile_skin.bench.models.Calibration` samples, with the exporter's float
head and float start (a TFLite file's through the calibrated QAT graph, not fine-tuned), so an
int8 row times the graph ``--int8`` writes.

Everything is cached under ``.cache/mobile_skin/benchmark/`` in the repository, one directory per
file, keyed (``key.json``) by model, size, weights, calibration, library versions and a hash of
the code that makes each file (:data:`CODE`), so a second run converts nothing and a change
to the exporter or a library upgrade converts again.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import importlib.util
import inspect
import json
from collections.abc import Callable
from pathlib import Path

from mobile_skin.bench.models import (
    SUFFIX,
    UNTRAINED_SEED,
    BenchModel,
    Calibration,
    Log,
    count_flops,
)
from mobile_skin.common import machine
from mobile_skin.common.fileio import sha256_file, write_json
from mobile_skin.common.formats import FORMATS, file_kind

#: What each kind of file depends on: ``package.module`` (its whole source) or
#: ``package.module:function``.
_COMMON = ("model.network", "model.soft_attention", "contract.spec", "contract.encoding")
_EDGE = ("quant.edge_model", "model.keras_graph", "export.convert_tflite")
CODE: dict[str, tuple[str, ...]] = {
    "keras": _COMMON,
    "facts": (*_COMMON, "export.convert_tflite", "bench.models:count_flops"),
    "tflite": (*_COMMON, *_EDGE, "common.formats", "export.exporter:convert",
               "export.exporter:_write_tflite"),
    "onnx": (*_COMMON, *_EDGE, "export.convert_onnx", "common.formats", "export.exporter:convert",
             "export.exporter:_write_onnx"),
}  # fmt: skip
#: What int8 files depend on besides: the calibration draw, the preprocessing and the QAT graph
#: that keeps TFLite's float start.
INT8_CODE = (
    "quant.calibration",
    "contract.pipeline",
    "quant.qat",
    "quant.qat_graph",
    "quant.qat_scheme",
)
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``<repo>/.cache/mobile_skin/benchmark`` (the current directory when not in the repo)."""
    repo = Path(__file__).resolve().parents[2]
    root = repo if (repo / "pyproject.toml").is_file() else Path.cwd()
    return root / ".cache" / "mobile_skin" / "benchmark"


def code_version(names: tuple[str, ...]) -> str:
    """A hash of the source of ``names`` (see :data:`CODE`); changes when that code does."""
    digest = hashlib.sha256()
    for name in names:
        module, _, function = name.partition(":")
        if function:
            source = inspect.getsource(
                getattr(importlib.import_module(f"mobile_skin.{module}"), function)
            )
        else:
            source = Path(importlib.util.find_spec(f"mobile_skin.{module}").origin).read_text()
        digest.update(f"{name}\n{source}".encode())
    return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (first 16 hex digits)."""
    return sha256_file(path)[:16]


def library_versions() -> dict[str, str]:
    """The versions converted files depend on."""
    return machine.versions(
        "tensorflow", "tf-keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy"
    )


class ModelFiles:
    """One model's ``.keras`` file, facts and converted files, built once and cached.

    Args:
        model: the model.
        cache_dir: cache root (see :func:`default_cache_dir`).
        calibration: int8 calibration samples.
        log: where progress goes.
    """

    def __init__(
        self, model: BenchModel, cache_dir: Path, calibration: Calibration, log: Log = print
    ) -> None:
        self.model, self.cache_dir, self.calibration, self.log = model, cache_dir, calibration, log
        weights = (
            f"run:{file_digest(model.source)}"
            if model.source
            else f"untrained:seed{UNTRAINED_SEED}"
        )
        self._key = {
            "cache_format": CACHE_FORMAT,
            "backbone": model.backbone,
            "image_size": model.image_size,
            "metadata_size": model.metadata_size,
            "weights": weights,
            "versions": library_versions(),
        }
        self._keras_model = None
        self._edge = None

    def keras_file(self) -> Path:
        """The ``.keras`` file (the run's own, or the untrained model saved in the cache)."""
        if self.model.source is not None:
            return self.model.source
        return self._cached("keras", self._save_untrained)

    def facts(self) -> dict:
        """Parameters, depth and GFLOPs per image of the Keras model (cached)."""
        entry = self._entry("facts")
        path = entry / "facts.json"
        if self._hit(entry, "facts") and path.is_file():
            return json.loads(path.read_text())
        from mobile_skin.model.network import count_depth

        model = self._keras()
        facts = {
            "params": int(model.count_params()),
            "depth": count_depth(model),
            "gflops": round(count_flops(model, self.model.spec) / 1e9, 4),
        }
        write_json(path, facts)
        write_json(entry / "key.json", self._key_for("facts"))
        return facts

    def converted(self, runtime: str) -> Path:
        """The file of ``runtime`` (one of :data:`RUNTIMES` but ``keras``), converted if needed.

        Raises:
            Exception: whatever the conversion raised (the caller turns it into a row status).
        """
        return self._cached(runtime, lambda target: self._convert(runtime, target))

    def release(self) -> None:
        """Drop the in-memory models (conversion of the next model starts from a clean graph)."""
        import tf_keras

        self._keras_model = self._edge = None
        tf_keras.backend.clear_session()
        gc.collect()

    # -- cache ---------------------------------------------------------------------------------

    def _key_for(self, what: str) -> dict:
        """The cache key of ``what`` (``keras``, ``facts`` or a runtime)."""
        code = CODE[what if what == "facts" else file_kind(what)]
        key = {**self._key, "file": what}
        if what.endswith("int8"):
            code += INT8_CODE
            key["calibration"] = self.calibration.key
        return {**key, "code": code_version(code)}

    def _entry(self, what: str) -> Path:
        blob = json.dumps(self._key_for(what), sort_keys=True).encode()
        return self.cache_dir / f"{self.model.slug}_{what}_{hashlib.sha256(blob).hexdigest()[:12]}"

    def _hit(self, entry: Path, what: str) -> bool:
        try:
            return json.loads((entry / "key.json").read_text()) == self._key_for(what)
        except (OSError, ValueError):
            return False

    def _cached(self, what: str, make: Callable[[Path], None]) -> Path:
        entry = self._entry(what)
        target = entry / f"model{SUFFIX[what]}"
        if self._hit(entry, what) and target.is_file():
            return target
        entry.mkdir(parents=True, exist_ok=True)
        make(target)
        write_json(entry / "key.json", self._key_for(what))
        return target

    # -- building ------------------------------------------------------------------------------

    def _keras(self):
        if self._keras_model is None:
            from mobile_skin.model.network import load_model

            self._keras_model = load_model(self.keras_file())
        return self._keras_model

    def _edge_model(self):
        if self._edge is None:
            from mobile_skin.quant.edge_model import to_edge_model

            self._edge = to_edge_model(self._keras())
        return self._edge

    def _save_untrained(self, target: Path) -> None:
        import tf_keras

        from mobile_skin.common.config import ModelConfig
        from mobile_skin.common.fileio import atomic_path
        from mobile_skin.model.network import build_model

        tf_keras.utils.set_random_seed(UNTRAINED_SEED)
        cfg = ModelConfig(
            backbone=self.model.backbone,
            weights="none",
            use_metadata=self.model.metadata_size > 0,
        )
        model = build_model(cfg, self.model.image_size, self.model.metadata_size)
        with atomic_path(target) as tmp:
            model.save(tmp)
        self._keras_model = model

    def _convert(self, runtime: str, target: Path) -> None:
        """The exporter's conversion (mobile_skin.export.exporter), written to ``target``."""
        from mobile_skin.export import exporter as export
        from mobile_skin.model.network import get_backbone

        fmt = FORMATS[runtime]
        int8 = fmt.mode == "int8"
        samples = self.calibration.samples(self.model.spec, self.log) if int8 else None
        # The exporter's int8 graph: the head float, and the backbone's start float where it has
        # one (Backbone.int8_float_prefix); no fine-tuning and no logit correction (the
        # benchmark times the graph, not its answers).
        prefix = get_backbone(self.model.backbone).int8_float_prefix if int8 else None
        model, qat = self._edge_model(), False
        if prefix and fmt.runtime == "tflite":  # TFLite's float start lives in the QAT graph
            model, qat = self._calibrated_qat(samples, prefix), True
        export.convert(
            runtime, model, self.model.spec, samples, target,
            quantization_aware=qat, float_prefix=prefix,
        )  # fmt: skip

    def _calibrated_qat(self, samples, prefix: str):
        """The QAT graph with the float start ``prefix``, ranges calibrated on ``samples`` and
        not fine-tuned (what ``export/to_tflite.py --int8 --qat-epochs 0`` converts)."""
        from mobile_skin.quant.qat import build_qat_model, calibrate
        from mobile_skin.quant.qat_scheme import FloatRegions

        qat_model, _ = build_qat_model(
            self._edge_model(), float_regions=FloatRegions(prefix_end=prefix)
        )
        ranges = len(calibrate(qat_model, samples))
        self.log(f"{self.model.slug}: {ranges} int8 ranges calibrated, float start {prefix}")
        return qat_model
