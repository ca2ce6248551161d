"""Quantization-aware training (QAT) before int8 conversion: the ``--qat`` path of the exporter.

:func:`quantize_aware` takes the export-ready float model (the caller's
:func:`mobile_skin.quant.edge_model.to_edge_model` rewrite) and returns a tfmot quantization-aware
copy, fine-tuned on the run's training split, which
:func:`mobile_skin.export.convert_tflite.convert_tflite` (``qat=True``) turns into an int8 file
using the ranges learnt here.

The steps:

1. :func:`mobile_skin.quant.qat_graph.to_qat_graph` rewrites what tfmot cannot wrap (MobileNetV3's
   TFOpLambda hard-sigmoid / hard-swish pieces, the Rescaling, SoftAttention) into small layers
   computing the same ops; :mod:`mobile_skin.quant.qat_scheme` says how each layer type is
   quantized.
2. Every layer is annotated except the float head the int8 export keeps
   (:data:`mobile_skin.quant.edge_model.INT8_FLOAT_OPS`: fully connected layers, the concatenation
   of partial logits, the output softmax; :func:`mobile_skin.quant.qat_scheme.float_tail`) and the
   caller's float regions (the exporter: the stem and first three blocks,
   :class:`mobile_skin.quant.qat_scheme.FloatRegions`), and
   ``quantize_apply`` inserts the fake-quant ops. Without fake-quant ranges those layers stay
   float in the converted file; quantizing them costs agreement (int8 logits tie).
3. :func:`calibrate` sets every range from float activations on the per-class calibration
   samples the int8 export uses: min/max, then narrowed per tensor to the int8 range with the
   least squared error (:func:`mse_range`). tfmot would start every range at [-6, 6] and move it
   by an EMA with decay 0.999, far too slowly for a few epochs of fine-tuning. The image input's
   range is fixed to the spec's [0, 255] (scale 1: raw pixels are exact in int8).
4. Fine-tuning: the training pipeline with the run's augmentation, the fake-quant ranges fixed
   at their calibrated values (:class:`_Trainer`; or, with ``ranges="learned"``, trained too:
   :mod:`mobile_skin.quant.learned_ranges`), BatchNormalization frozen (inference
   statistics, which the converter folds into the convolutions) and Dropout off (the file
   computes without it; :func:`_inference_mode_layers`), validation metrics
   printed every epoch and the fake-quant model's agreement with the float model before and
   after. The loss is the class-weighted cross-entropy to the float model's own probabilities
   (distillation, the default: the export is judged by agreement with the float model) or to
   the labels (``targets="labels"``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from mobile_skin.common.config import QAT_EPOCHS, QAT_LEARNING_RATE, RunConfig, TrainConfig
from mobile_skin.common.errors import UserError
from mobile_skin.contract.encoding import CLASSES
from mobile_skin.contract.pipeline import make_dataset
from mobile_skin.contract.spec import IMAGE_INPUT, ModelSpec
from mobile_skin.model.losses import WeightedCategoricalCrossentropy, class_weights
from mobile_skin.model.metrics import classification_report
from mobile_skin.quant import qat_scheme
from mobile_skin.quant.calibration import DEFAULT_SAMPLES, calibration_frame
from mobile_skin.quant.edge_model import INT8_FLOAT_OPS
from mobile_skin.quant.learned_ranges import LearnedRanges
from mobile_skin.quant.qat_describe import describe, feeds_on
from mobile_skin.quant.qat_graph import to_qat_graph
from mobile_skin.quant.quantizer_patch import replaced_calls
from mobile_skin.training.callbacks import ValidationMetrics

qk = tfmot.quantization.keras
#: Adam learning rate of learnt activation ranges' log-factors (``ranges="learned"``): a step moves
#: each end of a range by about 0.1% at most.
RANGE_LEARNING_RATE = 1e-3
#: ... and Adam's epsilon for them. Range gradients span 1e-12 to 1e-1 (measured on a smoke
#: model's distillation loss); with Adam's default 1e-7 half the ranges would barely move, so each
#: step moves each log-factor by about the learning rate, whatever its gradient's scale.
RANGE_ADAM_EPSILON = 1e-16
#: The image input's int8 range: raw RGB pixels (model_spec.json), scale 1, zero point -128.
IMAGE_RANGE = (0.0, 255.0)


def build_qat_model(
    model: tf_keras.Model,
    float_ops: Sequence[str] = INT8_FLOAT_OPS,
    float_regions: qat_scheme.FloatRegions | None = None,
) -> tuple[tf_keras.Model, dict[str, str]]:
    """The quantization-aware (fake-quant) version of ``model``, ranges not yet calibrated.

    Args:
        model: a functional float model.
        float_ops: TFLite op types the int8 file will keep in float; the layers converting to
            them stay float here too (:class:`mobile_skin.quant.qat_scheme.FloatQuantizeConfig`).
        float_regions: more layers to leave float (not annotated), by QAT-graph name.

    Returns:
        The QAT model (same input and output names) and, for each layer the graph rewrite
        created, what it replaces (see :func:`mobile_skin.quant.qat_graph.to_qat_graph`).

    Raises:
        UserError: a layer has no quantization rule (name and class in the message).
    """
    graph, origin = to_qat_graph(model)
    try:
        with qk.quantize_scope(qat_scheme.custom_objects()):
            keep = qat_scheme.float_tail(graph, tuple(float_ops))
            if float_regions is not None:
                keep |= float_regions.names(graph)
            annotated = _annotate(graph, keep)
            qat = qk.quantize_apply(
                annotated, scheme=qat_scheme.Scheme(), quantized_layer_name_prefix=""
            )
    except RuntimeError as err:  # tfmot: "Layer X:<class ...> is not supported. ..."
        reason = str(err).split(". ")[0]
        raise UserError(f"--qat: {reason}; add a rule in mobile_skin/quant/qat_scheme.py") from None
    return qat, origin


def _annotate(graph: tf_keras.Model, keep_float: set[str]) -> tf_keras.Model:
    """``quantize_annotate_model`` for every layer except those named in ``keep_float``."""

    def annotate(layer):
        return layer if layer.name in keep_float else qk.quantize_annotate_layer(layer)

    return tf_keras.models.clone_model(graph, clone_function=annotate)


@contextlib.contextmanager
def _recording_ranges(stats: dict, samples: dict | None = None) -> Iterator[None]:
    """While active (eager calls only), activation quantizers record min/max and pass values
    through unquantized; weight quantizers set their range from the weights and quantize.

    With ``samples``, the layers' output quantizers (per tensor; not the model inputs') also
    keep a random subsample of their inputs (at most :data:`SAMPLES_PER_CALL` values per call)
    for :func:`mse_range`.
    """
    q = qk.quantizers
    rng = np.random.default_rng(0)

    def record(self, inputs, training, weights, **kwargs):
        axes = list(range(inputs.shape.rank - 1)) if self.per_axis else None
        low = np.minimum(tf.reduce_min(inputs, axis=axes).numpy(), 0.0)
        high = np.maximum(tf.reduce_max(inputs, axis=axes).numpy(), 0.0)
        key = id(weights["min_var"])
        if key in stats:
            low, high = np.minimum(stats[key][2], low), np.maximum(stats[key][3], high)
        stats[key] = (weights["min_var"], weights["max_var"], low, high)
        if samples is not None and isinstance(self, q.MovingAverageQuantizer) and not axes:
            values = inputs.numpy().ravel()
            if values.size > SAMPLES_PER_CALL:
                values = rng.choice(values, SAMPLES_PER_CALL, replace=False)
            samples.setdefault(key, []).append(values)
        return inputs

    def weights_range(original):
        def call(self, inputs, training, weights, **kwargs):
            return original(self, inputs, True, weights, **kwargs)

        return call

    with replaced_calls(
        {
            q.MovingAverageQuantizer: lambda _original: record,
            q.AllValuesQuantizer: lambda _original: record,
            q.LastValueQuantizer: weights_range,
        }
    ):
        yield


#: How :func:`calibrate` sets activation ranges: ``"minmax"`` (what TFLite's post-training
#: calibration does) or ``"mse"`` (:func:`mse_range`, the default).
RANGE_METHODS = ("minmax", "mse")
#: Values kept per tensor and calibration batch for the ``"mse"`` range search.
SAMPLES_PER_CALL = 20_000
#: The ``"mse"`` search's candidates: the min/max range scaled by these factors.
CLIP_FACTORS = np.linspace(0.3, 1.0, 36)


def fake_quant(values: np.ndarray, low: float, high: float, bits: int = 8) -> np.ndarray:
    """Asymmetric uniform quantize-dequantize of ``values`` over ``[low, high]`` (0 inside)."""
    levels = 2**bits - 1
    scale = (high - low) / levels
    zero = np.round(-low / scale)
    return (np.clip(np.round(values / scale) + zero, 0, levels) - zero) * scale


def mse_range(values: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """The range, among the min/max range ``[low, high]`` scaled by :data:`CLIP_FACTORS`, whose
    int8 quantization of ``values`` has the least mean squared error.

    Clipping a few outliers buys a finer step for every other value; what it bought on the real
    run is measured in benchmarks/results/int8_sensitivity_ham10000_mnv3_160.md.
    """
    best, best_range = np.inf, (low, high)
    for factor in CLIP_FACTORS:
        lo, hi = min(low * factor, 0.0), max(high * factor, 0.0)
        if hi <= lo:
            continue
        error = float(np.mean((fake_quant(values, lo, hi) - values) ** 2))
        if error < best:
            best, best_range = error, (lo, hi)
    return best_range


def calibrate(
    qat_model: tf_keras.Model, batches: Iterable[dict], method: str = "mse"
) -> list[tuple[tf.Variable, tf.Variable]]:
    """Set every fake-quant range of ``qat_model`` from float activations on ``batches``.

    Activation ranges: the min/max over all batches (0 included), as TFLite's post-training
    calibration does, then with ``method="mse"`` narrowed per tensor by :func:`mse_range`;
    weight ranges: the weights' own min/max (per channel where quantized per channel); the
    image input's range: :data:`IMAGE_RANGE`.

    Returns:
        The ``(min, max)`` variables of the activation ranges set from data (the image input's
        fixed range not among them).
    """
    if method not in RANGE_METHODS:
        raise UserError(f"unknown range calibration {method!r}; choose from {RANGE_METHODS}")
    stats: dict = {}
    samples: dict | None = {} if method == "mse" else None
    with _recording_ranges(stats, samples):
        for inputs in batches:
            qat_model(inputs, training=False)
    for key, (min_var, max_var, low, high) in stats.items():
        if samples and key in samples:
            low, high = mse_range(np.concatenate(samples[key]), float(low), float(high))
        min_var.assign(np.reshape(low, min_var.shape))
        max_var.assign(np.reshape(high, max_var.shape))
    fixed = set()
    for layer in qat_model.layers:
        if type(layer).__name__ == "QuantizeLayer" and feeds_on(layer) == IMAGE_INPUT:
            for var in layer.weights:
                if var.name.split("/")[-1].split(":")[0].endswith(("_min", "_max")):
                    var.assign(IMAGE_RANGE[0] if "_min" in var.name else IMAGE_RANGE[1])
                    fixed.add(id(var))
    return [(low, high) for key, (low, high, *_) in stats.items() if key not in fixed]


@dataclass
class QatData:
    """What quantization-aware fine-tuning reads: the rows and the training recipe's settings.

    Attributes:
        spec: the model's spec (image size, metadata encoding).
        train: training-split rows (calibration and fine-tuning).
        val: validation-split rows (the float vs fake-quant comparison).
        seed: calibration sampling, shuffle and augmentation seed.
        augment: the training augmentation.
        metadata_dropout: the training metadata dropout (teacher and student see the same
            masked metadata).
        class_weights: weight the loss by class, as training did.
        adam_epsilon: Adam's epsilon, as training used.
        history: where the per-epoch CSV goes (None: nowhere).
    """

    spec: ModelSpec
    train: pd.DataFrame
    val: pd.DataFrame
    seed: int = 0
    augment: str = "none"
    metadata_dropout: float = 0.0
    class_weights: bool = True
    adam_epsilon: float = TrainConfig.adam_epsilon
    history: Path | None = None

    @classmethod
    def from_config(
        cls,
        cfg: RunConfig,
        spec: ModelSpec,
        train: pd.DataFrame,
        val: pd.DataFrame,
        out_dir: Path | None = None,
    ) -> QatData:
        """The settings of a run's config, on rows the caller loaded (and may have re-rooted)."""
        return cls(
            spec,
            train,
            val,
            seed=cfg.data.seed,
            augment=cfg.data.augment,
            metadata_dropout=cfg.data.metadata_dropout,
            class_weights=cfg.train.class_weights,
            adam_epsilon=cfg.train.adam_epsilon,
            history=None if out_dir is None else Path(out_dir) / "qat_history.csv",
        )


def quantize_aware(
    data: QatData,
    model: tf_keras.Model,
    *,
    epochs: int = QAT_EPOCHS,
    batch_size: int = 32,
    learning_rate: float = QAT_LEARNING_RATE,
    log: Callable[[str], None] = print,
    steps_per_epoch: int | None = None,
    calibration_samples: int = DEFAULT_SAMPLES,
    float_ops: Sequence[str] = INT8_FLOAT_OPS,
    targets: str = "float_model",
    range_method: str = "mse",
    float_regions: qat_scheme.FloatRegions | None = None,
    ranges: str = "fixed",
    range_learning_rate: float = RANGE_LEARNING_RATE,
) -> tuple[tf_keras.Model, list[str]]:
    """QAT-annotate ``model``, fine-tune it on ``data``'s training rows, and say how.

    Args:
        data: the rows and settings (:class:`QatData`).
        model: the float model, already passed through
            :func:`mobile_skin.quant.edge_model.to_edge_model` by the caller.
        epochs: fine-tuning epochs (0: calibrated ranges only, no training).
        batch_size: fine-tuning batch size.
        learning_rate: Adam learning rate.
        log: where progress lines go.
        steps_per_epoch: cap on training steps per epoch (None: the whole training split).
        calibration_samples: training images (drawn per class) that set the initial ranges.
        float_ops: TFLite op types the converted file keeps in float (the exporter's
            ``float_ops``); their layers are not fake-quantized (see :func:`build_qat_model`).
        targets: what the fine-tuning fits: ``"float_model"`` (default; distillation: the
            cross-entropy to ``model``'s own probabilities on the same augmented batch, weighted
            by the true class's weight), which aims at agreement with the float model, or
            ``"labels"`` (the class-weighted cross-entropy of training), which on the 160-px run
            raised accuracy but moved a tenth of the answers away from the float model's.
        range_method: how :func:`calibrate` sets the starting activation ranges
            (:data:`RANGE_METHODS`).
        float_regions: layers besides the head to keep in float
            (:class:`mobile_skin.quant.qat_scheme.FloatRegions`).
        ranges: ``"fixed"`` (default: the activation ranges keep their calibrated values) or
            ``"learned"`` (they train too, :mod:`mobile_skin.quant.learned_ranges`).
        range_learning_rate: Adam learning rate of the learnt ranges' log-factors.

    Returns:
        The fine-tuned quantization-aware Keras model (inputs ``image``/``metadata``, output
        ``probs``) and human-readable lines saying which layers are quantized how.

    Raises:
        UserError: bad arguments, a layer without a quantization rule, unusable run data.
    """
    if targets not in TARGETS:
        raise UserError(f"--qat: unknown fine-tuning targets {targets!r}; choose from {TARGETS}")
    if ranges not in RANGES:
        raise UserError(f"--qat: unknown ranges {ranges!r}; choose from {RANGES}")
    if epochs < 0 or batch_size < 1 or not learning_rate > 0:
        raise UserError(
            f"--qat: epochs ({epochs}) must be >= 0, batch size ({batch_size}) >= 1 and "
            f"learning rate ({learning_rate}) > 0"
        )
    train_rows, val_rows = data.train, data.val
    size, encoding = data.spec.image_size, data.spec.encoding

    qat_model, origin = build_qat_model(model, float_ops, float_regions)
    lines = describe(qat_model, origin)
    calib_rows = calibration_frame(train_rows, calibration_samples, data.seed)
    calib = make_dataset(calib_rows, size, batch_size, encoding=encoding, cache=False, labels=False)
    pairs = calibrate(qat_model, calib, range_method)
    log(f"qat: {len(pairs)} ranges calibrated on {len(calib_rows)} training images "
        f"({range_method})")  # fmt: skip

    val = make_dataset(val_rows, size, 64, encoding=encoding)
    float_val = _compare_on_val(model, qat_model, val, log, "before fine-tuning")
    if not epochs:
        return qat_model, lines

    frozen, dropouts = _inference_mode_layers(qat_model)
    weights = class_weights(train_rows["label"], len(CLASSES)) if data.class_weights else None
    loss = WeightedCategoricalCrossentropy(weights)
    optimizer = tf_keras.optimizers.Adam(learning_rate, epsilon=data.adam_epsilon)
    learned = LearnedRanges(pairs) if ranges == "learned" else None
    trainer = _Trainer(qat_model, None if targets == "labels" else model, weights, learned,
                       range_learning_rate)  # fmt: skip
    trainer.compile(optimizer=optimizer, loss=loss)
    train = make_dataset(train_rows, size, batch_size, encoding=encoding, training=True,
                         augmentation=data.augment, seed=data.seed,
                         metadata_dropout_rate=data.metadata_dropout)  # fmt: skip
    steps = steps_per_epoch or int(np.ceil(len(train_rows) / batch_size))
    if steps_per_epoch:
        train = train.repeat()
    history = data.history
    metrics = ValidationMetrics(val, loss, CLASSES, steps * batch_size, history, print_fn=log)
    how = "fixed" if learned is None else f"learned (lr {range_learning_rate:g})"
    log(f"qat: fine-tuning {epochs} epoch(s) of {steps} steps on {targets}, lr "
        f"{learning_rate:g}, ranges {how}, {frozen} BatchNorm frozen, {dropouts} Dropout off; "
        f"history -> {history}")  # fmt: skip
    with learned.active() if learned else contextlib.nullcontext():
        trainer.fit(train, epochs=epochs, steps_per_epoch=steps, callbacks=[metrics], verbose=0)
    if learned is not None:
        ratios = learned.commit()
        log(f"qat: {len(ratios)} learnt ranges, width after / before: median "
            f"{np.median(ratios):.3f}, min {ratios.min():.3f}, max {ratios.max():.3f}")  # fmt: skip
    _compare_on_val(model, qat_model, val, log, "after fine-tuning", float_val)
    return qat_model, lines


def _inference_mode_layers(qat_model: tf_keras.Model) -> tuple[int, int]:
    """Make fine-tuning see the network the converter will see: BatchNormalization frozen
    (inference statistics, which the converter folds into the convolutions) and Dropout off.

    Dropout matters for distillation: a student dropping half its attention features while
    its teacher drops none is fitted to a different function than the file computes (measured:
    reports/int8.md, section 7).

    Returns:
        How many BatchNormalization and Dropout layers were changed.
    """
    frozen = dropouts = 0
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, tf_keras.layers.BatchNormalization):
            inner.trainable = False
            frozen += 1
        elif isinstance(inner, tf_keras.layers.Dropout):
            inner.rate = 0.0
            dropouts += 1
    return frozen, dropouts


#: What :func:`quantize_aware` can fine-tune towards.
TARGETS = ("labels", "float_model")
#: How :func:`quantize_aware` treats the activation ranges while fine-tuning.
RANGES = ("fixed", "learned")


class _Trainer(tf_keras.Model):
    """Fine-tunes ``student`` with its fake-quant ranges fixed (or, with ``ranges``, learnt by
    their own Adam optimizer at ``range_learning_rate``), towards ``teacher``'s probabilities
    (distillation, frozen teacher, same batch) or, without a teacher, the labels.

    The student runs with ``training=False``: every fake-quant op keeps the range
    :func:`calibrate` set (tfmot would otherwise move each range towards the batch min/max by an
    EMA, undoing the least-squares ranges) while the weights learn through the straight-through
    gradient; BatchNorm uses its inference statistics and Dropout is off, as in the file (fixed
    against EMA ranges, measured: reports/int8.md, section 7).

    The loss per example is ``w_y * H(target, p_student)``, ``w_y`` the class weight of the
    true label (1 without weights); calling the model calls the student. The epoch's logs hold
    the mean loss and, as ``accuracy``, the student's top-1 agreement with the target.
    """

    def __init__(self, student, teacher, weights, ranges=None, range_learning_rate=None):
        super().__init__()
        self.student, self.teacher = student, teacher
        self.ranges = ranges
        if ranges is not None:
            self.range_optimizer = tf_keras.optimizers.Adam(
                range_learning_rate, epsilon=RANGE_ADAM_EPSILON
            )
        if teacher is not None:
            self.teacher.trainable = False
        self.class_weights = None if weights is None else tf.constant(weights, tf.float32)
        self.loss_mean = tf_keras.metrics.Mean(name="loss")
        self.agreement = tf_keras.metrics.Mean(name="accuracy")

    @property
    def metrics(self):
        return [self.loss_mean, self.agreement]

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def train_step(self, data):
        x, y = data
        y = tf.cast(y, tf.float32)
        target = y if self.teacher is None else tf.stop_gradient(self.teacher(x, training=False))
        with tf.GradientTape() as tape:
            probs = self.student(x, training=False)
            ce = tf_keras.losses.categorical_crossentropy(target, probs)
            if self.class_weights is not None:
                ce *= tf.reduce_sum(y * self.class_weights, axis=-1)
            loss = tf.reduce_mean(ce)
        variables = self.student.trainable_variables
        extra = [] if self.ranges is None else self.ranges.variables
        grads = tape.gradient(loss, variables + extra)
        self.optimizer.apply_gradients(zip(grads[: len(variables)], variables, strict=True))
        if extra:
            self.range_optimizer.apply_gradients(zip(grads[len(variables) :], extra, strict=True))
        self.loss_mean.update_state(loss)
        agree = tf.cast(tf.argmax(probs, -1) == tf.argmax(target, -1), tf.float32)
        self.agreement.update_state(agree)
        return {m.name: m.result() for m in self.metrics}


def _compare_on_val(model, qat_model, val, log, stage, float_probs=None) -> np.ndarray:
    """Log float and fake-quant validation metrics and their top-1 agreement.

    Returns:
        The float model's validation probabilities (pass them back to skip recomputing them).
    """
    labels = np.concatenate([y.numpy().argmax(-1) for _, y in val])
    rows = [] if float_probs is not None else [("float", model.predict(val, verbose=0))]
    float_probs = rows[0][1] if rows else float_probs
    qat_probs = qat_model.predict(val, verbose=0)
    for name, probs in (*rows, (f"qat {stage}", qat_probs)):
        r = classification_report(labels, probs, CLASSES)
        log(f"qat: val {name}: accuracy {r['accuracy']:.3f}, balanced {r['balanced_accuracy']:.3f}")
    agree = float((float_probs.argmax(-1) == qat_probs.argmax(-1)).mean())
    diff = float(np.abs(float_probs - qat_probs).max())
    log(f"qat: val top-1 agreement fake-quant vs float {stage} {agree:.3f}, max |dp| {diff:.4f}")
    return float_probs
