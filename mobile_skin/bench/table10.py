"""``python benchmarks/latency.py``: the paper's Table 10, measured side by side on one machine.

For each model (:mod:`mobile_skin.bench.models`: the registry's three backbones with the shared
Soft-Attention + metadata head at their own sizes, untrained, plus a training run's model with
``--run``), each runtime (Keras, TFLite float32 and int8, ONNX Runtime float32 and int8) and each
thread count, one process of its own (:mod:`mobile_skin.bench.worker`) measures single-image
latency, batch-32 throughput and peak memory; a second one measures training images/s for the
Keras rows. Files are converted once by the exporter's code and cached. Rows, tables and the chart:
:mod:`mobile_skin.bench.report`.

Timing needs a quiet machine: on a shared one run
``flock /tmp/mobile_skin_timing.lock python benchmarks/latency.py ...`` (``--convert-only`` fills
the cache first without holding the lock).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mobile_skin.bench import report as bench_report
from mobile_skin.bench.cache import ModelFiles, default_cache_dir, file_digest
from mobile_skin.bench.measure import (
    ADAM_EPSILON,
    FULL,
    LEARNING_RATE,
    QUICK,
    TRAIN_BATCH,
    Iterations,
    TrainSetup,
    measure,
)
from mobile_skin.bench.models import (
    DEPTH_DEFINITION,
    GFLOPS_DEFINITION,
    MOBILENET,
    RUNTIMES,
    BenchModel,
    Calibration,
    model_spec,
    synthetic_calibration,
)
from mobile_skin.bench.report import OK, BenchRow
from mobile_skin.common import machine
from mobile_skin.common.cli_args import add_results_dir, description, thread_count
from mobile_skin.common.errors import UserError, cli
from mobile_skin.contract.encoding import CLASSES, MetadataEncoding
from mobile_skin.quant.calibration import DEFAULT_SAMPLES

#: Training images of the HAM10000 grouped split (runs/ham10000_mnv3_160/split.csv), used for
#: seconds per epoch when no run is given.
HAM10000_TRAIN_IMAGES = 7942
#: HAM10000 images per class (akiec, bcc, bkl, df, mel, nv, vasc), for the loss' class weights
#: when no run is given (the values do not change the speed).
HAM10000_CLASS_COUNTS = (327, 514, 1099, 115, 1113, 6705, 142)


@dataclass
class Settings:
    """The resolved command line."""

    run: str | None
    models: list[str]
    runtimes: list[str]
    threads: list[int]
    quick: bool
    image_size: int | None
    out: Path
    cache_dir: Path
    calibration_samples: int
    train: bool
    convert_only: bool
    timeout: float
    iterations: Iterations


def _names(values: list[str] | None, allowed, flag: str) -> list[str] | None:
    if not values:
        return None
    names = [v for value in values for v in value.split(",") if v]
    for name in names:
        if name not in allowed:
            raise UserError(f"unknown {flag} {name!r}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(names))


def parse_threads(text: str) -> list[int]:
    """``"1,all"`` -> ``[1, os.cpu_count()]`` (duplicates dropped); each part as
    :func:`mobile_skin.common.cli_args.thread_count` reads ``--threads`` in every command."""
    try:
        return list(dict.fromkeys(thread_count(part) for part in text.split(",")))
    except ValueError:
        raise UserError(f"--threads {text!r}: use positive integers or 'all', e.g. 1,all") from None


def _run_dir(positional: str | None, flag: str | None) -> str | None:
    if positional and flag and positional != flag:
        raise UserError(f"two runs given: {positional} and --run {flag}; give one")
    return positional or flag


def parse_args(argv: list[str] | None = None) -> Settings:
    """The command line as :class:`Settings`."""
    from mobile_skin.model.network import BACKBONES

    p = argparse.ArgumentParser(
        prog="python benchmarks/latency.py", description=description(__doc__)
    )
    p.add_argument(
        "run",
        nargs="?",
        help="training run whose model is measured too, at its own input size (or --run RUN)",
    )
    p.add_argument("--run", dest="run_flag", metavar="RUN", help="the same as the positional RUN")
    p.add_argument("--models", nargs="+", help=f"backbones (default all: {', '.join(BACKBONES)})")
    p.add_argument("--runtimes", nargs="+", help=f"runtimes (default all: {', '.join(RUNTIMES)})")
    p.add_argument(
        "--threads", default="1,all", help="thread counts, each N or all, e.g. 1,all (default)"
    )
    p.add_argument("--quick", action="store_true", help="MobileNetV3 rows only, few iterations")
    p.add_argument(
        "--image-size",
        type=int,
        help="input side of the untrained models (default: each backbone's paper size)",
    )
    add_results_dir(p, "table10_<machine>_<threads>_<versions>.md, .csv, .json and a chart")
    p.add_argument(
        "--cache-dir", help="converted-file cache (default <repo>/.cache/mobile_skin/benchmark)"
    )
    p.add_argument(
        "--calibration-samples",
        type=int,
        help=f"int8 calibration images (default {DEFAULT_SAMPLES}; 32 with --quick)",
    )
    p.add_argument("--no-train", action="store_true", help="skip the training images/s column")
    p.add_argument(
        "--convert-only", action="store_true", help="build and cache the files, measure nothing"
    )
    p.add_argument(
        "--timeout", type=float, default=3600, help="seconds per measurement process (default 3600)"
    )
    args = p.parse_args(argv)
    models = _names(args.models, BACKBONES, "--models") or list(BACKBONES)
    if args.quick and not args.models:
        models = [MOBILENET]
    samples = args.calibration_samples or (32 if args.quick else DEFAULT_SAMPLES)
    from mobile_skin.quant.calibration import check_sample_count

    check_sample_count(samples)
    if args.timeout <= 0:
        raise UserError(f"--timeout must be positive, got {args.timeout}")
    return Settings(
        run=_run_dir(args.run, args.run_flag),
        models=models,
        runtimes=_names(args.runtimes, RUNTIMES, "--runtimes") or list(RUNTIMES),
        threads=parse_threads(args.threads),
        quick=args.quick,
        image_size=args.image_size,
        out=Path(args.out),
        cache_dir=Path(args.cache_dir) if args.cache_dir else default_cache_dir(),
        calibration_samples=samples,
        train=not args.no_train,
        convert_only=args.convert_only,
        timeout=args.timeout,
        iterations=QUICK if args.quick else FULL,
    )


@dataclass
class Plan:
    """The models, their calibration, and the training-epoch facts."""

    models: list[BenchModel]
    calibration: Calibration
    train: TrainSetup
    train_images_source: str


def make_plan(settings: Settings) -> Plan:
    """Resolve the run (if any) and list the models to measure."""
    import pandas as pd

    from mobile_skin.model.losses import class_weights
    from mobile_skin.model.network import get_backbone

    encoding: MetadataEncoding | None = MetadataEncoding()
    models: list[BenchModel] = []
    counts = HAM10000_CLASS_COUNTS
    train_images, source = HAM10000_TRAIN_IMAGES, "HAM10000 grouped split of runs/ham10000_mnv3_160"
    calibration = synthetic_calibration(settings.calibration_samples)
    if settings.run:
        from mobile_skin.common.config import RunConfig
        from mobile_skin.contract.spec import ModelSpec
        from mobile_skin.data.run import load_run_data, resolve_run
        from mobile_skin.data.splits import subset

        paths = resolve_run(settings.run)
        for need in (paths.best_model, paths.split):
            if not need.is_file():
                raise UserError(f"--run {settings.run}: {need.name} missing (did training finish?)")
        spec, cfg = ModelSpec.load(paths.spec), RunConfig.load(paths.config)
        encoding = spec.encoding
        split = pd.read_csv(paths.split)
        train = split[split["split"] == "train"]
        train_images, source = len(train), f"training split of {paths.root.name}"
        counts = [int((train["dx"] == c).sum()) for c in CLASSES]

        def rows():
            _cfg, _spec, frame, assigned = load_run_data(paths, verify_images=False)
            return subset(frame, assigned, "train")

        calibration = Calibration(
            rows,
            settings.calibration_samples,
            cfg.data.seed,
            f"run:{paths.root.name}:split {file_digest(paths.split)}:{cfg.data.data_dir}",
        )
        if spec.backbone in settings.models:
            run_spec = replace(spec, model_file="", quantization={}, source_run="")
            models.append(BenchModel(spec.backbone, run_spec, paths.best_model))
    for name in settings.models:
        backbone = get_backbone(name)
        size = settings.image_size or backbone.default_size
        if size < backbone.min_size:
            raise UserError(
                f"--image-size {size} is too small for {name} (minimum {backbone.min_size})"
            )
        models.append(BenchModel(name, model_spec(size, encoding, name)))
    weights = class_weights([c for c, n in enumerate(counts) for _ in range(n)], len(CLASSES))
    return Plan(models, calibration, TrainSetup([float(w) for w in weights], train_images), source)


def prepare(plan: Plan, settings: Settings, log=print) -> dict[str, dict]:
    """Build (or find in the cache) every model's files and facts.

    Returns:
        ``{model.slug: {"facts": {...}, "files": {runtime: Path or error message}}}``.
    """
    from tqdm.auto import tqdm

    out: dict[str, dict] = {}
    jobs = [(m, rt) for m in plan.models for rt in settings.runtimes]
    bar = tqdm(total=len(jobs) + len(plan.models), desc="models and files", unit="file")
    for model in plan.models:
        files = ModelFiles(model, settings.cache_dir, plan.calibration, log=tqdm.write)
        entry: dict = {"facts": {}, "files": {}}
        out[model.slug] = entry
        bar.set_postfix_str(f"{model.slug} keras")
        try:
            entry["files"]["keras"] = files.keras_file()
        except Exception as err:  # noqa: BLE001  a model that fails to build is a row, not a crash
            entry["keras_error"] = _first_line(err)
            log(f"{model.slug}: {entry['keras_error']}")
        else:
            try:
                entry["facts"] = files.facts()
            except Exception as err:  # noqa: BLE001  facts are optional columns
                log(f"{model.slug}: parameters/depth/GFLOPs not counted ({_first_line(err)})")
        bar.update(1)
        for runtime in settings.runtimes:
            bar.set_postfix_str(f"{model.slug} {runtime}")
            if runtime == "keras":
                entry["files"].setdefault("keras", entry.get("keras_error", "no .keras file"))
            elif "keras_error" in entry:
                entry["files"][runtime] = f"no Keras model: {entry['keras_error']}"
            else:
                started = time.perf_counter()
                try:
                    entry["files"][runtime] = files.converted(runtime)
                except Exception as err:  # noqa: BLE001  a failed format is a row with a status
                    entry["files"][runtime] = _first_line(err)
                    log(f"{model.slug} {runtime}: conversion failed: {entry['files'][runtime]}")
                else:
                    seconds = time.perf_counter() - started
                    if seconds > 5:  # a cache hit takes well under a second
                        tqdm.write(f"{model.slug} {runtime}: converted in {seconds:.0f} s")
            bar.update(1)
        files.release()
    bar.close()
    return out


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:250] if text else ''}"


def describe_settings(plan: Plan, settings: Settings, load: tuple) -> tuple[str, list[str]]:
    """The title (machine, threads, versions) and the notes that say how everything was measured."""
    m = machine.describe()
    it = settings.iterations
    title = (
        f"Table 10 on {machine.headline(m)}, threads "
        f"{', '.join(map(str, settings.threads))}: "
        f"TensorFlow {m['tensorflow']}, tf-keras {m['tf-keras']}, LiteRT (ai-edge-litert) "
        f"{m['ai-edge-litert']}, onnxruntime {m['onnxruntime']}, tf2onnx {m['tf2onnx']}"
        + (" (--quick)" if settings.quick else "")
    )
    notes = [
        "Untrained models (built with seed 0) stand in for trained ones: latency does not depend "
        "on weight values." + (f" The trained model is {settings.run}." if settings.run else ""),
        f"Latency: batch 1, random inputs, {it.warmup} warm-up runs, then at least {it.min_runs} "
        f"runs and {it.min_seconds:g} s; median, p90, mean ± std in ms. Keras: the exporter's "
        "serving tf.function (compiled graph). TFLite: LiteRT signature runner, XNNPACK default "
        "delegate. ONNX: onnxruntime CPU execution provider.",
        f"Batch-32 throughput: {it.batch_warmup} warm-up batch, then at least "
        f"{it.batch_min_runs} batches and {it.min_seconds:g} s; n/a for TFLite files, which the "
        "exporter writes with a fixed batch of 1.",
        "Threads: TFLite num_threads, onnxruntime intra_op_num_threads (inter 1), TensorFlow "
        "intra- and inter-op threads; set in each row's own process.",
        f"Depth: {DEPTH_DEFINITION}. GFLOPs: {GFLOPS_DEFINITION}. Params: Keras count_params().",
        "File: .keras for Keras, the exported file otherwise. Peak RSS: the peak resident memory "
        "of the row's own process after loading the model and the batch-1 runs (TFLite and ONNX "
        "processes do not import TensorFlow); rss_before_load_mb and peak_rss_batch_mb are in "
        "the CSV/JSON.",
        "MNV3 x faster: median of this row / median of the MobileNetV3 row with the same runtime "
        "and threads (the untrained 224 px one when present). x faster than IRV2 Keras: median of "
        "the InceptionResNetV2 Keras row at the same threads / median of this row.",
        f"Training: Keras train_on_batch at batch {TRAIN_BATCH} on in-memory random batches, "
        f"Adam (lr {LEARNING_RATE:g}, epsilon {ADAM_EPSILON:g}), class-weighted cross-entropy, "
        "after "
        f"{it.train_warmup} warm-up steps, at least {it.train_min_steps} steps and "
        f"{it.train_min_seconds:g} s; s/epoch = {plan.train.images} images "
        f"({plan.train_images_source}) / images per s.",
        f"int8: full integer, calibrated on {plan.calibration.n} images "
        f"({plan.calibration.source}), "
        "head kept float as the exporter does. Conversion: the exporter's path "
        "(edge_model.to_edge_model, then mobile_skin.export.exporter's TFLite/ONNX writers), "
        "cached.",
        f"Load average (1 min) at start {load[0]:.2f}, at end {load[1]:.2f}; per row in load_1m.",
    ]
    return title, notes


def run_benchmark(settings: Settings, log=print) -> tuple[list[BenchRow], list[Path]]:
    """Plan, convert (cached), measure, and write the results; returns the rows and files."""
    plan = make_plan(settings)
    log("models: " + ", ".join(m.slug for m in plan.models))
    prepared = prepare(plan, settings, log)
    if settings.convert_only:
        return [], []
    start_load = os.getloadavg()[0]
    train = plan.train if settings.train else None
    rows = measure(
        plan.models,
        prepared,
        settings.runtimes,
        settings.threads,
        settings.iterations,
        settings.timeout,
        train,
    )
    title, notes = describe_settings(plan, settings, (start_load, os.getloadavg()[0]))
    top = max(settings.threads)
    comparison = "" if settings.quick else bench_report.paper_table(rows, top, plan.train.images)
    markdown = bench_report.render_markdown(title, notes, rows, comparison)
    v = machine.describe()
    stem = settings.out / (
        f"table10{'_quick' if settings.quick else ''}_{machine.slug(v['cpu'])}-"
        f"{machine.feature_tag()}_threads-"
        f"{'-'.join(map(str, settings.threads))}_tf-{v['tensorflow']}_litert-"
        f"{v['ai-edge-litert']}_ort-{v['onnxruntime']}"
    )
    document = {"title": title, "notes": notes, "machine": v, "settings": {
        "run": settings.run, "threads": settings.threads, "quick": settings.quick,
        "iterations": asdict(settings.iterations),
        "train_images": plan.train.images, "calibration": plan.calibration.key}}  # fmt: skip
    paths = bench_report.write_all(stem, document, markdown, rows, settings.threads)
    print(markdown)
    return rows, paths


@cli
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    settings = parse_args(argv)
    rows, paths = run_benchmark(settings)
    for path in paths:
        print(f"wrote {path}")
    if settings.convert_only:
        print(f"files ready in {settings.cache_dir}")
    failed = [r for r in rows if r.status != OK]
    if failed:
        names = ", ".join(sorted({f"{r.model} {r.runtime}" for r in failed}))
        print(
            f"error: {len(failed)} of {len(rows)} rows failed ({names}); the tables above hold "
            "every row, with its status",
            file=sys.stderr,
        )
        return 1
    return 0
