"""Training callbacks: validation metrics with one summary line per epoch, and resumable state.

:class:`ValidationMetrics` runs the validation split once per epoch and adds ``val_loss``,
``val_accuracy``, ``val_balanced_accuracy`` and ``val_macro_auc`` to the epoch logs, so
checkpointing, early stopping and the learning-rate schedule can monitor any of them; it prints
the epoch's summary line and keeps ``history.csv``.

:class:`ResumeState` saves weights, optimizer state, epoch and the other callbacks' counters
after every epoch, so ``--resume`` continues exactly where a run stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
import tf_keras

from mobile_skin.common.fileio import atomic_path, write_json
from mobile_skin.model.metrics import classification_report


class ValidationMetrics(tf_keras.callbacks.Callback):
    """Evaluate on the validation set each epoch; log, print and record the results.

    Args:
        val_data: batches of (inputs, one-hot labels), not shuffled.
        loss_fn: the training loss (for ``val_loss``).
        classes: class names.
        train_images: images per training epoch (for images/s).
        history_path: ``history.csv``, rewritten atomically every epoch (None: not kept).
        history: rows of epochs already done (on resume).
        print_fn: where the summary line goes.
    """

    def __init__(
        self, val_data, loss_fn, classes, train_images, history_path, history=None, print_fn=print
    ):
        super().__init__()
        self.val_data = val_data
        self.loss_fn = loss_fn
        self.classes = list(classes)
        self.train_images = train_images
        self.history_path = None if history_path is None else Path(history_path)
        self.rows = list(history or [])
        self.print_fn = print_fn
        self.labels = np.concatenate([y.numpy().argmax(-1) for _, y in val_data])

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        train_seconds = time.perf_counter() - self._start
        probs = self.model.predict(self.val_data, verbose=0)
        onehot = np.eye(len(self.classes), dtype=np.float32)[self.labels]
        report = classification_report(self.labels, probs, self.classes)
        logs.update(
            val_loss=float(self.loss_fn(tf.constant(onehot), tf.constant(probs)).numpy()),
            val_accuracy=report["accuracy"],
            val_balanced_accuracy=report["balanced_accuracy"],
            val_macro_auc=report["macro_auc"] or float("nan"),
        )
        lr = float(tf_keras.backend.get_value(self.model.optimizer.learning_rate))
        row = {
            "epoch": epoch + 1,
            **{k: float(v) for k, v in logs.items() if np.isscalar(v)},
            "lr": lr,
            "images_per_s": self.train_images / train_seconds,
            "seconds": time.perf_counter() - self._start,
        }
        self.rows.append(row)
        if self.history_path is not None:
            with atomic_path(self.history_path) as tmp:
                pd.DataFrame(self.rows).to_csv(tmp, index=False)
        self.print_fn(
            f"epoch {epoch + 1}/{self.params['epochs']}: loss {row.get('loss', float('nan')):.4f} "
            f"acc {row.get('accuracy', float('nan')):.3f} | val loss {row['val_loss']:.4f} "
            f"acc {row['val_accuracy']:.3f} bal_acc {row['val_balanced_accuracy']:.3f} "
            f"auc {row['val_macro_auc']:.3f} | lr {lr:.2e} | {row['images_per_s']:.1f} img/s, "
            f"{row['seconds']:.0f} s"
        )


class BestModel(tf_keras.callbacks.Callback):
    """Save the model (atomically, through ``save_fn(path)``) whenever ``monitor`` improves."""

    def __init__(self, path, monitor: str, save_fn, print_fn=print):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.sign = -1.0 if "loss" in monitor else 1.0
        self.best = -float("inf")
        self.best_epoch = 0
        self.save_fn = save_fn
        self.print_fn = print_fn

    def on_epoch_end(self, epoch, logs=None):
        value = logs.get(self.monitor)
        if value is None or not np.isfinite(value):
            return
        if self.sign * value > self.best:
            self.best, self.best_epoch = self.sign * value, epoch + 1
            with atomic_path(self.path) as tmp:
                self.save_fn(tmp)
            self.print_fn(f"  best {self.monitor} so far ({value:.4f}): saved {self.path.name}")


#: Counters of callbacks that must survive a restart.
STATE_ATTRS = {
    "BestModel": ("best", "best_epoch"),
    "EarlyStopping": ("best", "wait", "stopped_epoch"),
    "ReduceLROnPlateau": ("best", "wait", "cooldown_counter"),
}


def callback_counters(callbacks) -> dict:
    """The :data:`STATE_ATTRS` counters of ``callbacks``, as plain JSON values, by class name."""
    return {
        type(cb).__name__: {a: _plain(getattr(cb, a)) for a in STATE_ATTRS[type(cb).__name__]}
        for cb in callbacks
        if type(cb).__name__ in STATE_ATTRS
    }


def restore_counters(callbacks, state: dict) -> None:
    """Set each callback's counters from ``state`` (:func:`callback_counters`' form)."""
    for cb in callbacks:
        for attr, value in state.get(type(cb).__name__, {}).items():
            setattr(cb, attr, value)


class ResumeState(tf_keras.callbacks.Callback):
    """Checkpoint everything needed to continue a run after each epoch.

    Must come last in the callback list, so it records the other callbacks' updated counters.
    """

    def __init__(self, directory, model, callbacks):
        super().__init__()
        self.directory = Path(directory)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(self.ckpt, str(self.directory), max_to_keep=1)
        self.others = callbacks
        self._restored: dict = {}

    def restore(self) -> int:
        """Restore the latest checkpoint if any; return the epoch to start from (0 if none).

        The other callbacks' counters are applied in :meth:`on_train_begin`, after their own
        ``on_train_begin`` has reset them.
        """
        if not self.manager.latest_checkpoint:
            return 0
        self.ckpt.restore(self.manager.latest_checkpoint).expect_partial()
        state_file = self.directory / "callbacks.json"
        if state_file.is_file():
            self._restored = json.loads(state_file.read_text())
        return int(self.epoch.numpy())

    def on_train_begin(self, logs=None):
        restore_counters(self.others, self._restored)

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)
        self.manager.save()
        write_json(self.directory / "callbacks.json", callback_counters(self.others))


def _plain(value):
    value = np.asarray(value).item() if np.ndim(value) == 0 else value
    if isinstance(value, float) and not np.isfinite(value):
        return value  # json writes Infinity/NaN, which json.loads reads back
    return value
