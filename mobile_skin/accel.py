"""Devices and the GPU code paths: distribution strategy, mixed precision, XLA.

All three run on the CPU too (and are tested there): MirroredStrategy over the CPU device(s),
``mixed_float16`` compute on the CPU, and jit-compiled training steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import tensorflow as tf
import tf_keras

STRATEGIES = ("auto", "mirrored")


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
    tf.distribute.MirroredStrategy over all local GPUs, or over the CPU devices without GPUs."""
    if name == "auto":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


@contextlib.contextmanager
def precision(mixed: bool) -> Iterator[None]:
    """Within the block, layers compute in float16 (variables float32) when ``mixed``."""
    previous = tf_keras.mixed_precision.global_policy()
    tf_keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    try:
        yield
    finally:
        tf_keras.mixed_precision.set_global_policy(previous)
