"""The Table 10 benchmark's models: which backbone, at which size, with which weights.

A :class:`BenchModel` is one backbone of :data:`mobile_skin.model.network.BACKBONES` with the shared
Soft-Attention + metadata head at one input size, either untrained (built with a fixed seed:
latency does not depend on weight values) or a training run's ``best.keras``.
:class:`Calibration` provides the int8 calibration samples, :func:`count_flops` the GFLOPs; the
files themselves come from :mod:`mobile_skin.bench.cache`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mobile_skin.common.formats import FORMATS, KERAS, benchmarked
from mobile_skin.contract.encoding import CLASSES, MetadataEncoding
from mobile_skin.contract.spec import ModelSpec

#: Runtimes, in table order: Keras, then the benchmarked export formats (named as in ``export/``;
#: :data:`mobile_skin.common.formats.FORMATS`), and each one's file suffix.
RUNTIMES: tuple[str, ...] = benchmarked()
SUFFIX = {KERAS: ".keras", **{name: FORMATS[name].suffix for name in RUNTIMES[1:]}}
#: The paper's names of the registry's backbones.
PAPER_NAMES = {
    "mobilenet_v3_large_240": "MobileNetV3Large[:240]",
    "densenet201": "DenseNet201",
    "inception_resnet_v2": "InceptionResNetV2",
}
MOBILENET = "mobilenet_v3_large_240"
INCEPTION = "inception_resnet_v2"
UNTRAINED_SEED = 0
DEPTH_DEFINITION = (
    "layers with weights (convolutions, dense, batch norm, attention), nested models included "
    "(mobile_skin.model.network.count_depth)"
)
GFLOPS_DEFINITION = (
    "float operations of one forward pass at batch 1, counted by TensorFlow's profiler "
    "(tf.compat.v1.profiler, float_operation) on the frozen inference graph of the Keras model: "
    "a multiply-add counts 2; ops without a registered count (batch norm, activations) count 0; "
    "the same figure applies to every runtime of the model"
)

Log = Callable[[str], None]


@dataclass(frozen=True)
class BenchModel:
    """One model to benchmark.

    Attributes:
        backbone: registry name.
        spec: image size and metadata encoding (its size sets the metadata input width).
        source: the trained ``.keras`` file, or None for an untrained model.
    """

    backbone: str
    spec: ModelSpec
    source: Path | None = None

    @property
    def image_size(self) -> int:
        return self.spec.image_size

    @property
    def metadata_size(self) -> int:
        return self.spec.encoding.size if self.spec.encoding else 0

    @property
    def trained(self) -> bool:
        return self.source is not None

    @property
    def weights(self) -> str:
        return f"trained ({self.source.parent.name})" if self.source else "untrained"

    @property
    def name(self) -> str:
        """The paper's name, e.g. ``MobileNetV3Large[:240] + SA + metadata``."""
        return f"{PAPER_NAMES.get(self.backbone, self.backbone)} + SA + metadata"

    @property
    def slug(self) -> str:
        return f"{self.backbone}_{self.image_size}px_{'trained' if self.trained else 'untrained'}"


class Calibration:
    """int8 calibration samples: a run's training-split rows, or synthetic images.

    The samples go through :func:`mobile_skin.quant.calibration.calibration_samples` (the exporter's
    per-class draw and the one preprocessing pipeline), at each model's own image size.

    Args:
        rows: returns the training rows (``path``, ``label``, metadata columns), called on first
            use; None: write a synthetic dataset (:mod:`mobile_skin.data.synthetic`) on first use.
        n: number of samples.
        seed: the draw's seed.
        source: what the rows are, for the cache key and the output (e.g. the split's hash).
    """

    def __init__(
        self, rows: Callable[[], pd.DataFrame] | None, n: int, seed: int, source: str
    ) -> None:
        self._load, self.n, self.seed, self.source = rows, n, seed, source
        self._train: pd.DataFrame | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._samples: dict[tuple[int, int], list] = {}

    @property
    def key(self) -> dict:
        return {"source": self.source, "n": self.n, "seed": self.seed}

    def samples(self, spec: ModelSpec, log: Log) -> list[dict[str, np.ndarray]]:
        """The calibration inputs for a model of ``spec``'s size and metadata encoding."""
        from mobile_skin.quant.calibration import calibration_samples

        key = (spec.image_size, spec.encoding.size if spec.encoding else 0)
        if key not in self._samples:
            self._samples[key] = calibration_samples(
                self._rows(log), spec, self.n, self.seed, log=log
            )
        return self._samples[key]

    def _rows(self, log: Log) -> pd.DataFrame:
        if self._train is None and self._load is not None:
            self._train = self._load()
        if self._train is None:
            from mobile_skin.data.ham10000 import load_ham10000
            from mobile_skin.data.synthetic import write_synthetic_dataset

            self._tmp = tempfile.TemporaryDirectory(prefix="bench_calibration_")
            write_synthetic_dataset(self._tmp.name, lesions=max(3 * len(CLASSES), self.n), seed=0)
            self._train = load_ham10000(self._tmp.name, verify_images=False, log=lambda _m: None)
            log(f"calibration: {len(self._train)} synthetic images (mobile_skin.data.synthetic)")
        return self._train


def synthetic_calibration(n: int) -> Calibration:
    """Calibration on synthetic images (no run given)."""
    return Calibration(None, n, 0, "synthetic:mobile_skin.data.synthetic(seed=0)")


def count_flops(model, spec: ModelSpec) -> int:
    """Float operations of one batch-1 forward pass (see :data:`GFLOPS_DEFINITION`)."""
    import contextlib
    import io

    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    from mobile_skin.export.convert_tflite import serving_function

    serve = serving_function(model, spec, 1)
    frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    profiler = tf.compat.v1.profiler
    options = (
        profiler.ProfileOptionBuilder(profiler.ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .build()
    )
    logger = tf.get_logger()  # the TF1 profiler logs deprecation warnings through it
    level = logger.level
    logger.setLevel("ERROR")
    try:
        with tf.Graph().as_default() as graph, contextlib.redirect_stderr(io.StringIO()):
            tf.graph_util.import_graph_def(graph_def, name="")
            return int(profiler.profile(graph=graph, cmd="op", options=options).total_float_ops)
    finally:
        logger.setLevel(level)


def model_spec(size: int, encoding: MetadataEncoding | None, backbone: str) -> ModelSpec:
    """The spec of a benchmark model (``encoding`` None: no metadata input)."""
    return ModelSpec(image_size=size, encoding=encoding, backbone=backbone)
