"""Devices and the GPU code paths: distribution strategy, mixed precision, XLA.

All three run on the CPU too (and are tested there): MirroredStrategy over the CPU device(s),
``mixed_float16`` compute on the CPU, and jit-compiled training steps. ``multi_worker`` trains on
several machines through MultiWorkerMirroredStrategy, each worker told its place by the standard
``TF_CONFIG`` variable (:func:`cluster_role`; docs/distributed.md); the tests run two workers on
localhost.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import tensorflow as tf
import tf_keras

from mobile_skin.common.errors import UserError

STRATEGIES = ("auto", "mirrored", "multi_worker")
#: The TF_CONFIG jobs ``multi_worker`` uses: at most one ``chief`` and any number of ``worker``s.
CLUSTER_JOBS = ("chief", "worker")
#: Where every TF_CONFIG error points.
CLUSTER_DOCS = "docs/distributed.md"


@dataclass(frozen=True)
class ClusterRole:
    """This process's place in a multi-worker cluster, as ``TF_CONFIG`` states it.

    Attributes:
        task_type: ``chief`` or ``worker``.
        index: the task's index within its job.
        workers: tasks in the cluster (the chief included).
        has_chief: whether the cluster names a ``chief`` job; without one, worker 0 is the chief.
    """

    task_type: str
    index: int
    workers: int
    has_chief: bool

    @property
    def is_chief(self) -> bool:
        """Whether this task writes the run directory."""
        if self.has_chief:
            return self.task_type == "chief"
        return self.index == 0

    def describe(self) -> str:
        """E.g. ``worker 1 of 2 (not the chief)``."""
        chief = "the chief" if self.is_chief else "not the chief"
        return f"{self.task_type} {self.index} of {self.workers} task(s) ({chief})"


def cluster_role(environ: Mapping[str, str] | None = None) -> ClusterRole:
    """This task's role from ``TF_CONFIG``; a one-line :class:`UserError` when it is missing or
    does not describe a chief/worker cluster that contains this task."""
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not raw:
        raise UserError(
            "--strategy multi_worker needs TF_CONFIG (the cluster's addresses and this worker's "
            f"task) in the environment of every worker; see {CLUSTER_DOCS}"
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise UserError(f"TF_CONFIG is not valid JSON ({err})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UserError('TF_CONFIG needs "cluster" and "task" objects; see ' + CLUSTER_DOCS)
    for job, addresses in cluster.items():
        if job not in CLUSTER_JOBS:
            raise UserError(
                f"TF_CONFIG cluster job {job!r} is not used by --strategy multi_worker "
                f"(only {' and '.join(CLUSTER_JOBS)})"
            )
        if not isinstance(addresses, list) or not all(
            isinstance(a, str) and ":" in a for a in addresses
        ):
            raise UserError(f'TF_CONFIG cluster "{job}" must be a list of "host:port" addresses')
    if "worker" not in cluster and "chief" not in cluster:
        raise UserError('TF_CONFIG cluster has no "worker" (or "chief") addresses')
    if len(cluster.get("chief", [])) > 1:
        raise UserError("TF_CONFIG cluster has more than one chief")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster or not isinstance(index, int):
        raise UserError(
            f"TF_CONFIG task {task_type}:{index} is not in its cluster "
            f"({', '.join(cluster)}); set task.type and task.index"
        )
    if not 0 <= index < len(cluster[task_type]):
        raise UserError(
            f"TF_CONFIG task {task_type}:{index} is not in its cluster "
            f"({len(cluster[task_type])} {task_type} address(es))"
        )
    return ClusterRole(
        task_type=task_type,
        index=index,
        workers=sum(len(a) for a in cluster.values()),
        has_chief="chief" in cluster,
    )


def describe_devices() -> str:
    """One line naming the devices TensorFlow sees."""
    gpus = tf.config.list_physical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    if gpus:
        names = []
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        return f"{len(gpus)} GPU(s): {', '.join(names)}"
    threads = tf.config.threading.get_inter_op_parallelism_threads() or "all"
    return f"no GPU; CPU ({len(cpus)} logical device(s), {threads} threads)"


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``auto``: the default strategy (the first GPU if any, else the CPU); ``mirrored``:
    tf.distribute.MirroredStrategy over all local GPUs, or over the CPU devices without GPUs;
    ``multi_worker``: tf.distribute.MultiWorkerMirroredStrategy over the cluster ``TF_CONFIG``
    describes (all local GPUs of each worker, or its CPU).

    ``multi_worker`` must be made before TensorFlow runs anything else in the process (a
    :class:`UserError` otherwise); it is made once per process and returned again after that.
    """
    if name == "auto":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        cluster_role()  # a clear error before TensorFlow reads TF_CONFIG itself
        return _multi_worker_strategy()
    raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


@functools.cache
def _multi_worker_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    # AUTO: NCCL all-reduce between GPUs, ring all-reduce over gRPC between CPUs.
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
    )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as err:  # "Collective ops must be configured at program startup"
        raise UserError(
            f"--strategy multi_worker must be set up before TensorFlow runs anything ({err}); "
            "start each worker as its own `python -m mobile_skin.train` process"
        ) from None


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory: always, except on the workers of a
    multi-worker cluster other than its chief."""
    return bool(strategy.extended.should_checkpoint)


@contextlib.contextmanager
def precision(mixed: bool) -> Iterator[None]:
    """Within the block, layers compute in float16 (variables float32) when ``mixed``."""
    previous = tf_keras.mixed_precision.global_policy()
    tf_keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    try:
        yield
    finally:
        tf_keras.mixed_precision.set_global_policy(previous)
