"""Training throughput: does the JPEG input pipeline keep the model busy? (issue 3)

One process, one model (the default MobileNetV3Large[:240] + SA + metadata, compiled exactly as
:mod:`mobile_skin.training.train` compiles it), four timed passes of ``N`` training steps at batch
``B`` over the same ``N * B`` training-split images:

1. **in-memory tensors (before)**: one batch of decoded images held in memory, repeated;
2. **pipeline, first pass**: :func:`mobile_skin.contract.pipeline.make_dataset` with
   ``training=True`` and augmentation, reading and decoding the JPEGs while its cache fills;
3. **pipeline, cached**: the same dataset again, decoded images from its in-memory cache;
4. **in-memory tensors (after)**: as 1, to show how much the rate drifted meanwhile.

Every pass is one ``model.fit`` epoch timed by the wall clock, after a few untimed steps that
trace the training function; all feeds have the same element spec, so no pass traces again. The
target: the cached pipeline reaches at least 90% of the in-memory rate (the mean of 1 and 4).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mobile_skin.common.errors import UserError

TARGET = 0.90
WARMUP_STEPS = 3


@dataclass
class ThroughputRow:
    """One timed pass."""

    feed: str
    steps: int
    images: int
    seconds: float
    images_per_s: float
    share_of_in_memory: float | None = None


def _compiled_model(image_size: int, metadata_size: int, weights: np.ndarray):
    import tf_keras

    from mobile_skin.common.config import SCRATCH_BN_MOMENTUM, ModelConfig, TrainConfig
    from mobile_skin.model.losses import WeightedCategoricalCrossentropy
    from mobile_skin.model.network import build_model

    config = ModelConfig(weights="none", bn_momentum=SCRATCH_BN_MOMENTUM)
    model = build_model(config, image_size, metadata_size)
    optimizer = tf_keras.optimizers.Adam(
        TrainConfig.learning_rate, epsilon=TrainConfig.adam_epsilon
    )
    loss = WeightedCategoricalCrossentropy(weights)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model


def _timed_fit(model, dataset, steps: int | None) -> float:
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    return time.perf_counter() - start


def measure_throughput(
    data_dir: str | os.PathLike,
    image_size: int = 160,
    batch_size: int = 32,
    steps: int | None = None,
    *,
    augmentation: str = "flip_rotate",
    seed: int = 42,
    log=print,
) -> tuple[list[ThroughputRow], dict]:
    """Time the four passes (see the module docstring).

    Args:
        data_dir: a HAM10000-shaped data root.
        image_size: input side S.
        batch_size: training batch size B.
        steps: steps per pass N (default: the whole grouped training split, one epoch).
        augmentation: the pipeline's augmentation
            (:data:`mobile_skin.contract.pipeline.AUGMENTATIONS`).
        seed: split, sampling, shuffle and augmentation seed.
        log: where progress goes.

    Returns:
        The rows, and the run's facts (images, steps, augmentation, load average).
    """
    import tensorflow as tf

    from mobile_skin.contract.encoding import CLASSES, MetadataEncoding
    from mobile_skin.contract.pipeline import make_dataset
    from mobile_skin.data.ham10000 import load_ham10000
    from mobile_skin.data.splits import make_split, subset
    from mobile_skin.model.losses import class_weights

    if batch_size < 1 or (steps is not None and steps < 1):
        raise UserError("--batch-size and --steps must be at least 1")
    frame = load_ham10000(data_dir, verify_images=False, log=log)
    train = subset(frame, make_split(frame, "grouped", seed=seed), "train")
    n_steps = steps or len(train) // batch_size
    if n_steps < 1 or n_steps * batch_size > len(train):
        raise UserError(
            f"--steps {n_steps} x --batch-size {batch_size} needs {n_steps * batch_size} images; "
            f"the training split of {data_dir} has {len(train)}"
        )
    rows = train.sample(n=n_steps * batch_size, random_state=seed).sort_index()
    encoding = MetadataEncoding.fit(train["age"])
    model = _compiled_model(image_size, encoding.size, class_weights(train["label"], len(CLASSES)))

    head = rows.iloc[:batch_size]
    first = make_dataset(head, image_size, batch_size, encoding=encoding, cache=False)
    x, y = next(iter(first))
    in_memory = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch_size)
    pipeline = make_dataset(rows, image_size, batch_size, encoding=encoding, training=True,
                            augmentation=augmentation, seed=seed)  # fmt: skip
    if in_memory.element_spec != pipeline.element_spec:  # a different spec would trace again
        raise AssertionError(f"{in_memory.element_spec} != {pipeline.element_spec}")
    log(f"tracing the training step ({WARMUP_STEPS} untimed steps)")
    _timed_fit(model, in_memory, WARMUP_STEPS)

    images = n_steps * batch_size
    out: list[ThroughputRow] = []
    passes = [
        ("in-memory tensors (before)", in_memory, n_steps),
        ("JPEG pipeline, first pass (cache filling)", pipeline, None),
        ("JPEG pipeline, cached", pipeline, None),
        ("in-memory tensors (after)", in_memory, n_steps),
    ]
    load = [os.getloadavg()[0]]
    for feed, dataset, limit in passes:
        log(f"timing: {feed}, {n_steps} steps of {batch_size}")
        seconds = _timed_fit(model, dataset, limit)
        out.append(ThroughputRow(feed, n_steps, images, round(seconds, 3), images / seconds))
    load.append(os.getloadavg()[0])
    reference = (out[0].images_per_s + out[3].images_per_s) / 2
    for row in out:
        row.share_of_in_memory = row.images_per_s / reference
    facts = {
        "data_dir": str(data_dir),
        "image_size": image_size,
        "batch_size": batch_size,
        "steps": n_steps,
        "images": images,
        "training_split_images": len(train),
        "augmentation": augmentation,
        "in_memory_images_per_s": reference,
        "cached_share": out[2].share_of_in_memory,
        "target": TARGET,
        "target_met": out[2].share_of_in_memory >= TARGET,
        "load_1m": {"start": load[0], "end": load[1]},
    }
    return out, facts


def render_markdown(title: str, rows: list[ThroughputRow], facts: dict) -> str:
    """The table and the verdict."""
    lines = [
        f"## {title}",
        "",
        f"{facts['steps']} steps x {facts['batch_size']} = {facts['images']} training images "
        f"({facts['image_size']} px, augmentation {facts['augmentation']}) per pass; rate = images "
        f"/ wall time of one model.fit epoch. Share = rate / mean of the two in-memory passes "
        f"({facts['in_memory_images_per_s']:.1f} images/s). Load average (1 min): "
        f"{facts['load_1m']['start']:.2f} at start, {facts['load_1m']['end']:.2f} at end.",
        "",
        "| feed | steps | images | seconds | images/s | share of in-memory |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.feed} | {r.steps} | {r.images} | {r.seconds:.1f} | {r.images_per_s:.1f} | "
            f"{r.share_of_in_memory:.0%} |"
        )
    verdict = "met" if facts["target_met"] else "NOT met"
    lines += [
        "",
        f"Target (cached pipeline >= {facts['target']:.0%} of in-memory): **{verdict}** "
        f"({facts['cached_share']:.0%}).",
    ]
    return "\n".join(lines) + "\n"


def write_results(out_dir: Path, rows: list[ThroughputRow], facts: dict) -> list[Path]:
    """CSV, JSON and Markdown under ``out_dir``, named after the machine, size and versions."""
    import pandas as pd

    from mobile_skin.common import machine
    from mobile_skin.common.fileio import atomic_path, write_json, write_text

    m = machine.describe()
    stem = (
        f"train_throughput_{machine.slug(m['cpu'])}_{facts['image_size']}px_"
        f"b{facts['batch_size']}_tf-{m['tensorflow']}"
    )
    title = (
        f"Training throughput, JPEG pipeline vs in-memory tensors: {machine.headline(m)}, "
        f"TensorFlow {m['tensorflow']}, tf-keras {m['tf-keras']}"
    )
    csv_path = out_dir / f"{stem}.csv"
    with atomic_path(csv_path) as tmp:
        pd.DataFrame([asdict(r) for r in rows]).to_csv(tmp, index=False)
    document = {"title": title, "machine": m, **facts, "rows": [asdict(r) for r in rows]}
    return [
        csv_path,
        write_json(out_dir / f"{stem}.json", document),
        write_text(out_dir / f"{stem}.md", render_markdown(title, rows, facts)),
    ]
