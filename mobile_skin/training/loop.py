"""The training loop: a model fitted on a split's rows with the recipe of a :class:`RunConfig`.

The loop takes data (the training and validation rows, the metadata encoding) and writes where
``paths`` says (history, best model, checkpoint, TensorBoard); which data and which run directory
are the command's business (:mod:`mobile_skin.training.train`). Each part has its name: the
``tf.data`` datasets (:func:`make_datasets`), the compiled model (:func:`compile_model`), the
callbacks (:func:`make_callbacks`) and the fit itself (:func:`fit`).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import tf_keras

import mobile_skin  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from mobile_skin.common.config import RunConfig
from mobile_skin.contract.encoding import CLASSES, MetadataEncoding
from mobile_skin.contract.pipeline import make_dataset
from mobile_skin.data.run import RunPaths, point_latest
from mobile_skin.model.losses import WeightedCategoricalCrossentropy
from mobile_skin.model.network import build_model
from mobile_skin.training import accel, multi_worker
from mobile_skin.training.callbacks import BestModel, ResumeState, ValidationMetrics

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["Compiled", "TrainData", "compile_model", "fit", "make_callbacks", "make_datasets"]


@dataclass(frozen=True)
class TrainData:
    """What the loop trains on.

    Attributes:
        train_rows: the training split's rows (``path``, ``label``, metadata).
        val_rows: the validation split's rows, scored after every epoch.
        encoding: the metadata encoding fitted on ``train_rows``; None for an image-only model.
        class_weights: per-class loss weights, or None for an unweighted loss.
    """

    train_rows: pd.DataFrame
    val_rows: pd.DataFrame
    encoding: MetadataEncoding | None
    class_weights: np.ndarray | None


@dataclass(frozen=True)
class Compiled:
    """The compiled model, its optimizer and loss, and how to save it as float32."""

    model: tf_keras.Model
    optimizer: tf_keras.optimizers.Optimizer
    loss: tf_keras.losses.Loss
    save: Callable[[Path], None]


def make_datasets(
    cfg: RunConfig, data: TrainData, *, multi: bool, log: Callable = print
) -> tuple[tf.data.Dataset, tf.data.Dataset, int]:
    """The training and validation datasets and the steps per epoch; with ``multi``, each
    worker's share of every global batch."""
    size, batch = cfg.data.image_size, cfg.train.batch_size
    train_ds = make_dataset(
        data.train_rows,
        size,
        batch,
        encoding=data.encoding,
        training=True,
        augmentation=cfg.data.augment,
        metadata_dropout_rate=cfg.data.metadata_dropout,
        seed=cfg.data.seed,
    )
    if data.encoding is not None:
        log(
            f"metadata: {data.encoding.size} features ({', '.join(data.encoding.layout)}); "
            f"dropout {cfg.data.metadata_dropout:g} per field while training"
        )
    val_ds = make_dataset(data.val_rows, size, batch, encoding=data.encoding)
    if cfg.train.steps_per_epoch:
        train_ds = train_ds.repeat()
    if multi:
        train_ds = multi_worker.shard_by_element(train_ds)
        val_ds = multi_worker.shard_by_element(val_ds)
    steps = cfg.train.steps_per_epoch or math.ceil(len(data.train_rows) / batch)
    return train_ds, val_ds, steps


def compile_model(cfg: RunConfig, data: TrainData, strategy: tf.distribute.Strategy) -> Compiled:
    """Build and compile the model in ``strategy``'s scope (mixed precision and XLA as ``cfg``
    says). Saved models are float32, as every runtime expects: under mixed precision a float32
    twin (same architecture, no download) receives the weights before each save."""
    size = cfg.data.image_size
    meta_size = data.encoding.size if data.encoding else 0
    loss = WeightedCategoricalCrossentropy(data.class_weights)
    with accel.precision(cfg.train.mixed_precision), strategy.scope():
        model = build_model(cfg.model, size, meta_size)
        optimizer = tf_keras.optimizers.Adam(
            cfg.train.learning_rate, epsilon=cfg.train.adam_epsilon
        )
        model.compile(
            optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=cfg.train.xla
        )
    twin = (
        build_model(replace(cfg.model, weights="none"), size, meta_size)
        if cfg.train.mixed_precision
        else model
    )

    def save(path: Path) -> None:
        if twin is not model:
            twin.set_weights(model.get_weights())
        twin.save(path)

    return Compiled(model, optimizer, loss, save)


def seed_training(seed: int | None, log: Callable = print) -> None:
    """Seed TensorFlow, Python and NumPy with the training seed, or with None clear TensorFlow's
    global seed, so that what an earlier run in the same process set does not leak in (the
    shuffle's and augmentation's draws depend on the global seed as well as ``data.seed``)."""
    if seed is None:
        import tensorflow as tf

        tf.random.set_seed(None)
        log("training seed: none (a config saved before --train-seed): unseeded weights")
        return
    tf_keras.utils.set_random_seed(seed)
    log(f"training seed: {seed} (initial weights, dropout masks, shuffle order)")


def lr_callback(cfg: RunConfig, mode: str) -> tf_keras.callbacks.Callback:
    """The learning-rate schedule: cosine decay, or ReduceLROnPlateau on the monitored metric."""
    t = cfg.train
    if t.lr_schedule == "cosine":

        def cosine(epoch, _lr):
            return t.min_lr + 0.5 * (t.learning_rate - t.min_lr) * (
                1 + math.cos(math.pi * epoch / t.epochs)
            )

        return tf_keras.callbacks.LearningRateScheduler(cosine)
    return tf_keras.callbacks.ReduceLROnPlateau(
        monitor=t.monitor,
        mode=mode,
        factor=t.lr_factor,
        patience=t.lr_patience,
        min_lr=t.min_lr,
        verbose=1,
    )


@dataclass
class Callbacks:
    """The loop's callbacks: the ones a report reads by name, and all of them in order."""

    metrics: ValidationMetrics
    best: BestModel
    resume: ResumeState | None
    all: list


def make_callbacks(
    cfg: RunConfig,
    paths: RunPaths,
    shared: RunPaths,
    compiled: Compiled,
    val_ds: tf.data.Dataset,
    images_per_epoch: int,
    *,
    chief: bool,
    extra: list | None = None,
    log: Callable = print,
) -> Callbacks:
    """Validation metrics (one summary line per epoch), the best model, early stopping, the
    learning-rate schedule, TensorBoard, ``extra``, and what lets a run continue: a checkpoint in
    ``paths`` on one machine, ``BackupAndRestore`` in the run's own directory (``shared``) on
    several (:mod:`mobile_skin.training.multi_worker`)."""
    mode = "min" if "loss" in cfg.train.monitor else "max"
    metrics_cb = ValidationMetrics(
        val_ds, compiled.loss, CLASSES, images_per_epoch, paths.history, print_fn=log
    )
    best = BestModel(paths.best_model, cfg.train.monitor, compiled.save, print_fn=log)
    stop = tf_keras.callbacks.EarlyStopping(
        monitor=cfg.train.monitor, mode=mode, patience=cfg.train.patience, verbose=1
    )
    schedule = lr_callback(cfg, mode)
    state = None
    if cfg.train.strategy == "multi_worker":
        keep = multi_worker.backup_callbacks(
            shared, metrics_cb, [best, stop, schedule], chief=chief, log=log
        )
    else:
        state = ResumeState(paths.checkpoint, compiled.model, [best, stop, schedule])
        keep = [state]
    every = [
        metrics_cb,
        best,
        stop,
        schedule,
        tf_keras.callbacks.TensorBoard(str(paths.tensorboard)),
        *(extra or []),
        *keep,
    ]
    return Callbacks(metrics_cb, best, state, every)


def history_rows(path: Path, epochs_done: int) -> list[dict]:
    """The first ``epochs_done`` rows of a saved ``history.csv`` (none if there is none)."""
    if not path.is_file():
        return []
    table = pd.read_csv(path)
    return table[table["epoch"] <= epochs_done].to_dict("records")


def fit(
    cfg: RunConfig,
    data: TrainData,
    paths: RunPaths,
    shared: RunPaths,
    strategy: tf.distribute.Strategy,
    *,
    resume: bool,
    extra_callbacks: list | None = None,
    log: Callable = print,
) -> BestModel:
    """Train on ``data`` with ``cfg``'s recipe, writing to ``paths`` (the run itself, or on a
    multi-worker cluster's other workers a temporary directory; ``shared`` is the run); with
    ``resume``, continue from the checkpoint. Returns the best-model callback (best epoch and
    score)."""
    multi = cfg.train.strategy == "multi_worker"
    chief = accel.is_chief(strategy)
    seed_training(cfg.train.seed, log)
    train_ds, val_ds, steps = make_datasets(cfg, data, multi=multi, log=log)
    log(
        f"strategy: {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s); "
        f"mixed precision {'on' if cfg.train.mixed_precision else 'off'}; "
        f"XLA {'on' if cfg.train.xla else 'off'}"
    )
    compiled = compile_model(cfg, data, strategy)
    images = steps * cfg.train.batch_size if cfg.train.steps_per_epoch else len(data.train_rows)
    callbacks = make_callbacks(
        cfg, paths, shared, compiled, val_ds, images, chief=chief, extra=extra_callbacks, log=log
    )
    initial_epoch = 0
    if resume:
        with strategy.scope():
            compiled.optimizer.build(compiled.model.trainable_variables)
        initial_epoch = callbacks.resume.restore()
        callbacks.metrics.rows = history_rows(paths.history, initial_epoch)
        log(f"continuing at epoch {initial_epoch + 1} of {cfg.train.epochs}")
    if chief:
        point_latest(paths.root)
        if multi:
            multi_worker.mark_started(paths)
    started = time.perf_counter()
    if initial_epoch < cfg.train.epochs:
        compiled.model.fit(
            train_ds,
            epochs=cfg.train.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            callbacks=callbacks.all,
            verbose=2 if not sys.stdout.isatty() else 1,
        )
    best = callbacks.best
    log(
        f"training done in {time.perf_counter() - started:.0f} s; best {cfg.train.monitor} "
        f"{best.sign * best.best:.4f} at epoch {best.best_epoch}"
    )
    return best
