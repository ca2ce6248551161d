"""Measuring the Table 10 rows: each row in a process of its own (:mod:`mobile_skin.bench.worker`).

:func:`measure` runs one ``infer`` process per (thread count, model, runtime) and, for the Keras
rows, one ``train`` process, and fills :class:`~mobile_skin.bench.report.BenchRow` objects; a
file that could not be built, or a process that failed, leaves a row with a status and a reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mobile_skin.bench import report as bench_report
from mobile_skin.bench.models import BenchModel
from mobile_skin.bench.report import CONVERT_FAILED, RUN_FAILED, BenchRow
from mobile_skin.bench.worker import RESULT_TAG
from mobile_skin.common import machine
from mobile_skin.common.config import TrainConfig
from mobile_skin.common.fileio import shown_path
from mobile_skin.common.formats import file_kind
from mobile_skin.contract.encoding import CLASSES

#: Training batch size (the paper's) and optimiser settings (Adam, the paper's lr and epsilon).
TRAIN_BATCH = 32
LEARNING_RATE, ADAM_EPSILON = TrainConfig.learning_rate, TrainConfig.adam_epsilon


@dataclass(frozen=True)
class Iterations:
    """How long each measurement runs (see :mod:`mobile_skin.bench.worker`)."""

    warmup: int = 5
    min_runs: int = 50
    min_seconds: float = 2.0
    batch: int = 32
    batch_warmup: int = 1
    batch_min_runs: int = 3
    train_warmup: int = 2
    train_min_steps: int = 3
    train_min_seconds: float = 10.0


FULL = Iterations()
QUICK = Iterations(warmup=1, min_runs=5, min_seconds=0.0, batch_min_runs=1, train_warmup=1,
                   train_min_steps=1, train_min_seconds=0.0)  # fmt: skip


@dataclass(frozen=True)
class TrainSetup:
    """What the training column needs: the loss' class weights and the epoch's image count."""

    class_weights: list[float]
    images: int


def run_job(job: dict, timeout: float) -> dict:
    """Run one :mod:`mobile_skin.bench.worker` job in its own process; its result dict.

    Raises:
        RuntimeError: the process failed or timed out (message: the reason, one line).
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": str(job["threads"])}
    cmd = [sys.executable, "-m", "mobile_skin.bench.worker", json.dumps(job)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {timeout:.0f} s") from None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    raise RuntimeError((lines[-1] if lines else f"exit status {proc.returncode}")[:300])


def measure(
    models: list[BenchModel],
    prepared: dict[str, dict],
    runtimes: list[str],
    threads_list: list[int],
    it: Iterations,
    timeout: float,
    train: TrainSetup | None,
) -> list[BenchRow]:
    """One row per (thread count, model, runtime), each measured in its own process.

    Args:
        models: the models.
        prepared: per model slug, ``{"facts": {...}, "files": {runtime: Path or error}}``.
        runtimes: runtimes to measure.
        threads_list: thread counts.
        it: iteration counts.
        timeout: seconds per process.
        train: measure training images/s for the Keras rows (None: skip).
    """
    from tqdm.auto import tqdm

    rows: list[BenchRow] = []
    jobs = [(t, m, rt) for t in threads_list for m in models for rt in runtimes]
    for threads, model, runtime in tqdm(jobs, desc="measuring", unit="row"):
        entry = prepared[model.slug]
        row = BenchRow(
            model.name, model.backbone, model.image_size, model.weights, runtime, threads
        )
        row.params, row.depth, row.gflops = (
            entry["facts"].get(k) for k in ("params", "depth", "gflops")
        )
        row.cpu_features = " ".join(machine.cpu_features())
        rows.append(row)
        file = entry["files"].get(runtime)
        if not isinstance(file, Path):
            row.status, row.reason = CONVERT_FAILED, str(file)
            continue
        row.file, row.file_mb = shown_path(file), file.stat().st_size / 1e6
        row.load_1m = os.getloadavg()[0]
        job = dict(
            task="infer",
            runtime=file_kind(runtime),
            file=str(file),
            threads=threads,
            image_size=model.image_size,
            metadata_size=model.metadata_size,
            spec=model.spec.to_dict(),
            classes=len(CLASSES),
            warmup=it.warmup,
            min_runs=it.min_runs,
            min_seconds=it.min_seconds,
            batch=it.batch,
            batch_warmup=it.batch_warmup,
            batch_min_runs=it.batch_min_runs,
        )
        try:
            for key, value in run_job(job, timeout).items():
                setattr(row, key, value)
        except RuntimeError as err:
            row.status, row.reason = RUN_FAILED, str(err)
            tqdm.write(f"{model.slug} {runtime} {threads} thread(s): {row.reason}")
            continue
        if runtime == "keras" and train is not None:
            _measure_training(row, model, file, threads, it, timeout, train)
        tqdm.write(
            f"{model.slug} {runtime} {threads} thread(s): median {row.latency_median_ms:.2f} ms"
            + (f", train {row.train_images_per_s:.1f} img/s" if row.train_images_per_s else "")
        )
    bench_report.fill_speedups(rows)
    return rows


def _measure_training(
    row: BenchRow,
    model: BenchModel,
    file: Path,
    threads: int,
    it: Iterations,
    timeout: float,
    train: TrainSetup,
) -> None:
    job = dict(
        task="train",
        file=str(file),
        threads=threads,
        image_size=model.image_size,
        metadata_size=model.metadata_size,
        batch=TRAIN_BATCH,
        learning_rate=LEARNING_RATE,
        adam_epsilon=ADAM_EPSILON,
        class_weights=train.class_weights,
        warmup=it.train_warmup,
        min_runs=it.train_min_steps,
        min_seconds=it.train_min_seconds,
    )
    try:
        result = run_job(job, timeout)
    except RuntimeError as err:
        row.reason = f"training measurement failed: {err}"
        return
    row.train_images_per_s, row.train_steps = result["train_images_per_s"], result["train_steps"]
    row.train_s_per_epoch = train.images / row.train_images_per_s
