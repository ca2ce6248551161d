"""Training on several machines (``--strategy multi_worker``): who writes what, and restarts.

Every worker runs the same ``python -m mobile_skin.train ... --strategy multi_worker --out RUN``
command with its own ``TF_CONFIG`` (:func:`mobile_skin.training.accel.cluster_role`;
docs/distributed.md). TensorFlow's MultiWorkerMirroredStrategy splits each global batch across the
workers and all-reduces the gradients, so every worker holds the same model. The rules that keep the
run directory a single run's directory:

- **Only the chief writes ``RUN``** (config, split, history, ``best.keras``, TensorBoard, the
  report, the ``latest`` link). The other workers run the same callbacks, which is required: the
  validation pass (``model.predict``) and model saving take part in the workers' collective
  operations, and a worker that skipped them would leave the others waiting. They write to a
  temporary directory of their own, deleted at the end (:func:`worker_run_dir`).
- **A restarted cluster continues.** tf_keras' ``BackupAndRestore`` keeps the weights, optimizer
  and epoch in ``RUN/backup/`` after every epoch (the chief's copy; the others write theirs to
  ``RUN/backup/workertemp_<i>/`` and delete it). When a worker dies the others stop with an
  error; starting every worker again with its same command restores the last finished epoch.
  :class:`BackupCounters` keeps what BackupAndRestore does not (the best score so far, early
  stopping's and the learning-rate schedule's counters) in ``RUN/backup/callbacks.json``, per
  finished epoch, and trims ``history.csv`` to the epochs the backup holds. The file also marks
  the run as unfinished (:func:`prepare_run_dir`); both go when training ends.

``RUN`` must therefore be on a filesystem every worker sees (NFS, a cluster volume): the workers
read the chief's backup when they restart. Training data must be readable on every worker at the
same ``--data`` path.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import tensorflow as tf
import tf_keras

from mobile_skin.common.config import RunConfig
from mobile_skin.common.errors import UserError
from mobile_skin.common.fileio import write_json
from mobile_skin.data.run import RunPaths
from mobile_skin.training import accel
from mobile_skin.training.callbacks import ValidationMetrics, callback_counters, restore_counters

#: The backup directory inside the run directory, and the counters file inside it.
BACKUP_DIR = "backup"
COUNTERS_FILE = "callbacks.json"
#: Errors a collective operation raises when a peer worker has gone (or stopped answering).
LOST_WORKER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError)


def backup_dir(run: RunPaths) -> Path:
    """``RUN/backup``: BackupAndRestore's state and :class:`BackupCounters`' file."""
    return run.root / BACKUP_DIR


def is_unfinished(run: RunPaths) -> bool:
    """Whether ``run`` holds a multi-worker run that has started and not finished training."""
    return (backup_dir(run) / COUNTERS_FILE).is_file()


def _settings(cfg: RunConfig) -> dict:
    """The config without the command line it was typed as."""
    return {**cfg.to_dict(), "command": ""}


def prepare_run_dir(
    out: str, cfg: RunConfig, *, force: bool, fresh: Callable[[], RunPaths]
) -> tuple[RunPaths, bool]:
    """The chief's run directory: an unfinished multi-worker run at ``out`` with the same
    settings is continued (even with ``force``: a restart must not wipe the backup), anything
    else goes through ``fresh()`` (the single-machine rules: refuse or, with ``force``, replace).

    Returns:
        The run's paths and whether an unfinished run is continued.
    """
    run = RunPaths(Path(out))
    if not is_unfinished(run):
        return fresh(), False
    if not run.config.is_file():
        raise UserError(f"{run.root}: has {BACKUP_DIR}/{COUNTERS_FILE} but no config.json")
    if _settings(RunConfig.load(run.config)) != _settings(cfg):
        raise UserError(
            f"{run.root}: holds an unfinished multi-worker run with other settings; rerun its "
            "own command (config.json, 'command') or choose another --out"
        )
    return run, True


def mark_started(run: RunPaths) -> None:
    """Create the counters file (empty) unless a restart left one: the run is now unfinished."""
    path = backup_dir(run) / COUNTERS_FILE
    if not path.is_file():
        write_json(path, {"epochs": {}})


@contextlib.contextmanager
def worker_run_dir(
    run: RunPaths, strategy: tf.distribute.Strategy, log=print
) -> Iterator[RunPaths]:
    """The directory this process writes: ``run`` on the chief (and on a single machine), a
    temporary directory on the other workers of a cluster, deleted when the block ends."""
    if accel.is_chief(strategy):
        yield run
        return
    own = Path(tempfile.mkdtemp(prefix="mobile_skin_worker_"))
    log(f"not the chief: the chief writes {run.root}; this worker writes to {own} (temporary)")
    try:
        yield RunPaths(own)
    finally:
        shutil.rmtree(own, ignore_errors=True)
        _remove_if_empty(backup_dir(run))


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def shard_by_element(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Shard ``dataset`` between workers by element (each worker takes its part of every global
    batch) rather than by input file: the datasets are built from a table, not from files."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def backup_callbacks(
    run: RunPaths,
    metrics: ValidationMetrics,
    others: list[tf_keras.callbacks.Callback],
    *,
    chief: bool,
    log=print,
) -> list[tf_keras.callbacks.Callback]:
    """The callbacks that make a multi-worker run restartable, to come last in the list (after
    ``others``, whose counters they keep): :class:`BackupCounters`, then BackupAndRestore."""
    directory = backup_dir(run)
    return [
        BackupCounters(
            directory / COUNTERS_FILE, metrics, run.history, others, write=chief, log=log
        ),
        tf_keras.callbacks.BackupAndRestore(backup_dir=str(directory)),
    ]


class BackupCounters(tf_keras.callbacks.Callback):
    """The callback counters of every finished epoch, beside BackupAndRestore's backup.

    BackupAndRestore restores weights, optimizer and epoch; this restores, for the epoch training
    continues from, the counters :data:`mobile_skin.training.callbacks.STATE_ATTRS` lists (best
    score, patience waits) and the history rows up to it. Every worker reads the same file, so every
    worker makes the same early-stopping decision (a worker that stopped alone would leave the
    others waiting). Only the chief writes it, before BackupAndRestore's backup of the same epoch
    (so the file always holds the backup's epoch); the chief deletes it when training ends.

    Args:
        path: the counters file (``RUN/backup/callbacks.json``).
        metrics: the validation callback whose rows are trimmed to the restored epochs.
        history: the run's ``history.csv`` (read on a restart).
        others: the callbacks whose counters are kept.
        write: whether this worker writes the file (the chief).
        log: where the "continuing" line goes.
    """

    def __init__(self, path, metrics, history, others, *, write: bool, log=print):
        super().__init__()
        self.path = Path(path)
        self.metrics = metrics
        self.history = Path(history)
        self.others = others
        self.write = write
        self.log = log
        self._first_epoch: int | None = None

    def _read(self) -> dict:
        if not self.path.is_file():
            return {"epochs": {}}
        return json.loads(self.path.read_text())

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch is not None:
            return
        self._first_epoch = epoch  # BackupAndRestore has restored the epoch count by now
        if epoch == 0:
            return
        state = self._read()["epochs"].get(str(epoch))
        if state is None:
            raise UserError(f"{self.path}: no callback state for epoch {epoch}, the backup's")
        restore_counters(self.others, state)
        if self.history.is_file():
            table = pd.read_csv(self.history)
            self.metrics.rows = table[table["epoch"] <= epoch].to_dict("records")
        self.log(
            f"restored the backup in {self.path.parent}: continuing at epoch {epoch + 1} "
            f"of {self.params['epochs']}"
        )

    def on_epoch_end(self, epoch, logs=None):
        if not self.write:
            return
        state = self._read()
        state["epochs"][str(epoch + 1)] = callback_counters(self.others)
        # The backup holds this epoch or the one before: keep those two.
        state["epochs"] = {k: v for k, v in state["epochs"].items() if int(k) >= epoch}
        write_json(self.path, state)

    def on_train_end(self, logs=None):
        if self.write:
            self.path.unlink(missing_ok=True)


def finish(run: RunPaths) -> None:
    """After training: remove ``RUN/backup`` if nothing is left in it (a worker may still be
    deleting its temporary copy; it removes the directory then)."""
    _remove_if_empty(backup_dir(run))


def resume_refused(run: RunPaths) -> UserError:
    """The one-line error for ``--resume`` on a multi-worker run."""
    return UserError(
        f"{run.root}: a multi-worker run continues when every worker reruns its own command, "
        "not with --resume (docs/distributed.md)"
    )


def lost_worker(err: Exception, run: RunPaths) -> UserError:
    """The one-line error for a cluster that lost a worker mid-training."""
    text = str(err)  # names the lost task as unhealthy, or as the remote end of a failed call
    unhealthy = text[text.find("unhealthy") :] if "unhealthy" in text else ""
    tasks = set(re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", unhealthy))
    tasks |= set(re.findall(r"remote target /job:(\w+)/replica:\d+/task:(\d+)", text))
    named = ", ".join(f"{job} {index}" for job, index in sorted(tasks)) or "a worker"
    return UserError(
        f"training stopped: the cluster lost {named} ({type(err).__name__}); start every "
        f"worker again with its same command to continue from the last finished epoch "
        f"({backup_dir(run)})"
    )
