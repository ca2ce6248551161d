"""One benchmark measurement in a process of its own: ``python -m mobile_skin.bench.worker JOB``.

The benchmark (:mod:`mobile_skin.bench.table10`) starts one process per row so that the peak
resident memory it reports is that model's and that runtime's, and so that thread settings apply
from the start. ``JOB`` is a JSON object; the result is printed as one line ``BENCH_RESULT {...}``.

Tasks:
    ``infer``: load one model file (``keras`` through a compiled ``tf.function``, the exporter's
        serving function; ``tflite`` and ``onnx`` through
        :func:`mobile_skin.model.runtime.load_runtime`, without importing TensorFlow), then
        single-image latency (warm-up, then at least ``min_runs`` runs and ``min_seconds``) and,
        where the file takes a batch, throughput at ``batch``; peak RSS after the single-image runs
        and after the batched ones.
    ``train``: training images/s of a ``.keras`` model: Adam (the paper's lr and epsilon), the
        class-weighted cross-entropy, ``train_on_batch`` on in-memory batches, warm-up steps first.

Inputs are random pixels in 0..255 and random metadata: speed does not depend on the values.
Threads: TFLite ``num_threads``, onnxruntime ``intra_op_num_threads``, TensorFlow intra- and
inter-op threads, all set to ``threads`` before the model loads.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable

import numpy as np

import mobile_skin  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

RESULT_TAG = "BENCH_RESULT "


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mb() -> float | None:
    """Current resident set size of this process, MB (None where /proc is missing)."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB.

    Linux' ``VmHWM`` (the high-water mark of this program's memory). Not ``ru_maxrss``: that one
    survives ``exec`` and so starts at the parent's resident size (the benchmark's, with
    TensorFlow and the models it converted), which is exactly what a row must not include.
    """
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def inputs(batch: int, size: int, metadata: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random named inputs: pixels 0..255 (float32) and metadata in 0..1."""
    rng = np.random.default_rng(seed)
    out = {"image": rng.integers(0, 256, (batch, size, size, 3)).astype(np.float32)}
    if metadata:
        out["metadata"] = rng.random((batch, metadata), dtype=np.float32)
    return out


def time_calls(
    call: Callable[[], object], warmup: int, min_runs: int, min_seconds: float
) -> list[float]:
    """Wall times (s) of ``call``: ``warmup`` untimed calls, then at least ``min_runs`` calls and
    at least ``min_seconds`` in all."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def latency_stats(times: list[float]) -> dict:
    """Median, p90, mean and standard deviation in ms, and the number of runs."""
    ms = np.asarray(times) * 1e3
    return {
        "latency_median_ms": float(np.median(ms)),
        "latency_p90_ms": float(np.percentile(ms, 90)),
        "latency_mean_ms": float(ms.mean()),
        "latency_std_ms": float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
        "latency_runs": len(ms),
    }


def _set_tf_threads(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _keras_predictor(job: dict) -> tuple[Callable, int | None]:
    """A compiled ``tf.function`` of the model (the exporter's serving function, any batch)."""
    _set_tf_threads(job["threads"])
    from mobile_skin.contract.spec import OUTPUT, ModelSpec
    from mobile_skin.export.convert_tflite import serving_function
    from mobile_skin.model.network import load_model

    model = load_model(job["file"])
    serve = serving_function(model, ModelSpec.from_dict(job["spec"]), batch=None)
    return lambda x: serve(**x)[OUTPUT].numpy(), None


def _file_predictor(job: dict) -> tuple[Callable, int | None]:
    from mobile_skin.model.runtime import load_runtime

    runtime = load_runtime(job["file"], threads=job["threads"])
    return runtime.predict, runtime.fixed_batch


def infer(job: dict) -> dict:
    """The ``infer`` task (see the module docstring)."""
    result = {"rss_before_load_mb": rss_mb()}
    load = _keras_predictor if job["runtime"] == "keras" else _file_predictor
    predict, fixed_batch = load(job)
    one = inputs(1, job["image_size"], job["metadata_size"])
    probs = predict(one)
    if probs.shape != (1, job["classes"]) or not np.isfinite(probs).all():
        raise SystemExit(f"unexpected output {probs.shape} (finite: {np.isfinite(probs).all()})")
    times = time_calls(lambda: predict(one), job["warmup"], job["min_runs"], job["min_seconds"])
    result.update(latency_stats(times))
    result["peak_rss_mb"] = peak_rss_mb()
    batch = job["batch"]
    if fixed_batch is not None and fixed_batch != batch:
        result["batch_note"] = f"file has a fixed batch of {fixed_batch}"
    elif batch:
        many = inputs(batch, job["image_size"], job["metadata_size"], seed=1)
        times = time_calls(
            lambda: predict(many), job["batch_warmup"], job["batch_min_runs"], job["min_seconds"]
        )
        result["batch_images_per_s"] = batch * len(times) / sum(times)
        result["batch_runs"] = len(times)
        result["peak_rss_batch_mb"] = peak_rss_mb()
    return result


def train(job: dict) -> dict:
    """The ``train`` task (see the module docstring)."""
    _set_tf_threads(job["threads"])
    import tensorflow as tf
    import tf_keras

    from mobile_skin.model.losses import WeightedCategoricalCrossentropy
    from mobile_skin.model.network import load_model

    model = load_model(job["file"])
    optimizer = tf_keras.optimizers.Adam(job["learning_rate"], epsilon=job["adam_epsilon"])
    loss = WeightedCategoricalCrossentropy(job["class_weights"])
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    batch = job["batch"]
    x = {
        k: tf.constant(v) for k, v in inputs(batch, job["image_size"], job["metadata_size"]).items()
    }
    classes = len(job["class_weights"])
    y = tf.constant(np.eye(classes, dtype=np.float32)[np.arange(batch) % classes])
    times = time_calls(
        lambda: model.train_on_batch(x, y), job["warmup"], job["min_runs"], job["min_seconds"]
    )
    return {
        "train_images_per_s": batch * len(times) / sum(times),
        "train_steps": len(times),
        "train_step_median_s": float(np.median(times)),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the job given as JSON in ``argv[0]``; print the result line."""
    job = json.loads((argv if argv is not None else sys.argv[1:])[0])
    task = {"infer": infer, "train": train}[job["task"]]
    result = task(job)
    print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
