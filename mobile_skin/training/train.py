"""``python -m mobile_skin.train``: train a classifier on HAM10000 with the paper's recipe.

The recipe (defaults): Adam (lr 1e-3, epsilon 0.1), class-weighted cross-entropy,
ReduceLROnPlateau (factor 0.2, min lr 1e-7) and EarlyStopping (patience 25) on validation
accuracy, batch 32; the best epoch's model is kept and evaluated on the test split at the end.
See :mod:`mobile_skin.data.run` for what the run directory holds. This module is the command: the
run directory, the config, the data and its split, and what follows training (calibration,
evaluation); the loop itself, which takes the rows, is :mod:`mobile_skin.training.loop`.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import mobile_skin  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from mobile_skin.common.cli_args import description
from mobile_skin.common.config import (
    DEFAULT_METADATA_DROPOUT,
    SCRATCH_BN_MOMENTUM,
    RunConfig,
    TrainConfig,
    preset,
)
from mobile_skin.common.errors import UserError, cli
from mobile_skin.contract.encoding import CLASSES, MetadataEncoding
from mobile_skin.contract.spec import ModelSpec
from mobile_skin.data.ham10000 import load_ham10000
from mobile_skin.data.run import RUNS_DIR, RunPaths, default_run_name, resolve_run
from mobile_skin.data.splits import (
    draw_run_split,
    leaking_lesions,
    load_split,
    save_split,
    split_table,
    subset,
)
from mobile_skin.model.losses import class_weights
from mobile_skin.training import accel, loop, multi_worker

if TYPE_CHECKING:
    import tensorflow as tf


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, its options grouped by topic in ``--help``; every field flag defaults to
    None (= keep the preset's value)."""
    p = argparse.ArgumentParser(
        prog="python -m mobile_skin.train", description=description(__doc__)
    )
    for title, add in (
        ("the run", _run_args),
        ("data", _data_args),
        ("model", _model_args),
        ("training recipe", _recipe_args),
        ("devices (GPU paths; tested on CPU)", _device_args),
    ):
        add(p.add_argument_group(title))
    return p.parse_args(argv)


def _run_args(g) -> None:
    """Where the run goes and what it starts from (a preset or a saved config)."""
    g.add_argument("--out", help="run directory (default: runs/<backbone>_<time>)")
    g.add_argument(
        "--resume", action="store_true", help="continue the run in --out (default runs/latest)"
    )
    g.add_argument("--force", action="store_true", help="overwrite an existing --out")
    g.add_argument("--no-eval", action="store_true", help="skip the test-split report at the end")
    g.add_argument(
        "--config",
        metavar="FILE",
        help="start from a saved config.json (another run's) instead of a preset; flags given "
        "here override it",
    )
    g.add_argument(
        "--preset",
        help="default (the default) | paper (image-level split, rows without age dropped, no "
        "metadata dropout) | smoke (tiny, a few minutes on CPU)",
    )


def _data_args(g) -> None:
    """Which images and rows, how they are split, resized, augmented and encoded."""
    g.add_argument(
        "--data", help="data root: metadata CSV + images anywhere below (required unless --resume)"
    )
    g.add_argument("--csv", help="metadata CSV (default: DATA/HAM10000_metadata.csv)")
    g.add_argument(
        "--split", help="grouped (default: by lesion_id) | paper (image-level 90/10; leaks)"
    )
    g.add_argument("--seed", type=int, help="split, shuffle and augmentation seed (default 42)")
    g.add_argument("--max-images", type=int, help="use at most this many images (quick trials)")
    g.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="drop missing/unreadable images with a warning",
    )
    missing = g.add_mutually_exclusive_group()
    missing.add_argument(
        "--drop-missing-age",
        action="store_true",
        help="drop rows without an age, as the paper does (the paper preset's choice)",
    )
    missing.add_argument(
        "--keep-missing-age",
        action="store_true",
        help="keep rows without an age, encoded as unknown (the default)",
    )
    g.add_argument("--image-size", type=int, help="input side in pixels (default 224)")
    g.add_argument("--augment", help="none | flip | flip_rotate (default) | full")
    g.add_argument(
        "--metadata-dropout",
        type=float,
        metavar="P",
        help="chance of each metadata field (age, sex, site) being set to unknown per training "
        f"image (default {DEFAULT_METADATA_DROPOUT:g}; 0 never)",
    )
    g.add_argument(
        "--no-age-indicator",
        action="store_true",
        help="encode an unknown age as the mean age only, without the missing-age feature",
    )


def _model_args(g) -> None:
    """The backbone, its cut and start, and whether the metadata branch exists."""
    g.add_argument(
        "--backbone", help="mobilenet_v3_large_240 (default) | densenet201 | inception_resnet_v2"
    )
    g.add_argument("--cut", type=int, help="MobileNetV3Large keeps layers[:CUT] (default 240)")
    g.add_argument(
        "--weights",
        help="imagenet (default; downloads) | none | PATH to a .keras/.h5 of this model",
    )
    g.add_argument(
        "--bn-momentum",
        type=float,
        help=f"backbone BatchNorm momentum (default: {SCRATCH_BN_MOMENTUM:g} with --weights none)",
    )
    g.add_argument("--no-metadata", action="store_true", help="image only, no age/sex/site branch")


def _recipe_args(g) -> None:
    """The optimizer, loss, schedule, stopping rule, calibration and the training seed."""
    g.add_argument("--epochs", type=int, help="maximum epochs (default 100)")
    g.add_argument("--batch-size", type=int, help="global batch size (default 32)")
    g.add_argument(
        "--learning-rate",
        type=float,
        help=f"Adam learning rate (default {TrainConfig.learning_rate:g})",
    )
    g.add_argument(
        "--adam-epsilon",
        type=float,
        help=f"Adam epsilon (default {TrainConfig.adam_epsilon:g}, the paper's)",
    )
    g.add_argument(
        "--monitor",
        help="val_accuracy (default, paper) | val_balanced_accuracy | val_macro_auc | val_loss",
    )
    g.add_argument("--patience", type=int, help="EarlyStopping patience in epochs (default 25)")
    g.add_argument("--lr-schedule", help="plateau (default, ReduceLROnPlateau) | cosine")
    g.add_argument(
        "--no-class-weights", action="store_true", help="plain (unweighted) cross-entropy"
    )
    g.add_argument(
        "--no-calibration",
        action="store_true",
        help="keep raw softmax (default: fit a temperature on the validation split after "
        "training and fold it into the model)",
    )
    g.add_argument("--steps-per-epoch", type=int, help="cap training steps per epoch")
    g.add_argument(
        "--train-seed",
        type=int,
        help=f"training seed: initial weights, dropout masks, shuffle order (default "
        f"{TrainConfig.seed}); runs that differ only here share their split (--seed)",
    )


def _device_args(g) -> None:
    """Mixed precision, XLA and the distribution strategy."""
    g.add_argument(
        "--mixed-precision", action="store_true", help="float16 compute, float32 softmax output"
    )
    g.add_argument("--xla", action="store_true", help="jit-compile the training step")
    g.add_argument(
        "--strategy",
        help="auto (default) | mirrored (all local GPUs via tf.distribute) | multi_worker "
        "(several machines, each with its TF_CONFIG; docs/distributed.md)",
    )


_FIELDS = {  # flag -> (section, field)
    "backbone": ("model", "backbone"), "cut": ("model", "cut"), "weights": ("model", "weights"),
    "bn_momentum": ("model", "bn_momentum"), "image_size": ("data", "image_size"),
    "augment": ("data", "augment"), "split": ("data", "split"), "seed": ("data", "seed"),
    "csv": ("data", "csv"), "max_images": ("data", "max_images"), "epochs": ("train", "epochs"),
    "batch_size": ("train", "batch_size"), "learning_rate": ("train", "learning_rate"),
    "adam_epsilon": ("train", "adam_epsilon"), "monitor": ("train", "monitor"),
    "patience": ("train", "patience"), "lr_schedule": ("train", "lr_schedule"),
    "steps_per_epoch": ("train", "steps_per_epoch"), "strategy": ("train", "strategy"),
    "metadata_dropout": ("data", "metadata_dropout"), "train_seed": ("train", "seed"),
}  # fmt: skip


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """Preset (or ``--config FILE``) + flags -> config; what was decided automatically goes into
    ``cfg.notes``. A flag left out keeps the starting point's value, switches included."""
    if args.config and args.preset:
        raise UserError("--config and --preset both choose the starting point; give one")
    if args.config:
        cfg = RunConfig.load(args.config)
        cfg.command = ""
    else:
        cfg = preset(args.preset or "default")
    for flag, (section, name) in _FIELDS.items():
        value = getattr(args, flag)
        if value is not None:
            setattr(getattr(cfg, section), name, value)
    if args.data:
        cfg.data.data_dir = str(Path(args.data))
    switches = {  # flag -> (section, field, value when given)
        "no_metadata": ("model", "use_metadata", False),
        "no_class_weights": ("train", "class_weights", False),
        "no_calibration": ("train", "calibrate", False),
        "skip_bad_images": ("data", "skip_bad_images", True),
        "no_age_indicator": ("data", "age_missing_indicator", False),
        "mixed_precision": ("train", "mixed_precision", True),
        "xla": ("train", "xla", True),
    }
    for flag, (section, name, value) in switches.items():
        if getattr(args, flag):
            setattr(getattr(cfg, section), name, value)
    if args.drop_missing_age or args.keep_missing_age:
        cfg.data.drop_missing_age = args.drop_missing_age
    if cfg.model.weights == "none" and cfg.model.bn_momentum is None:
        cfg.model.bn_momentum = SCRATCH_BN_MOMENTUM
        cfg.notes.append(
            f"training from scratch: backbone BatchNorm momentum lowered to "
            f"{SCRATCH_BN_MOMENTUM:g} (docs/design.md)"
        )
    _validate(cfg)
    return cfg


def _validate(cfg: RunConfig) -> None:
    if not cfg.data.data_dir:
        raise UserError(
            "--data is required (the folder holding HAM10000_metadata.csv and the images)"
        )
    checks = [
        (cfg.train.epochs >= 1, "--epochs must be at least 1"),
        (cfg.train.batch_size >= 1, "--batch-size must be at least 1"),
        (cfg.train.monitor in ("val_accuracy", "val_balanced_accuracy", "val_loss",
                               "val_macro_auc"),
         f"unknown --monitor {cfg.train.monitor!r}"),
        (cfg.train.lr_schedule in ("plateau", "cosine"),
         f"unknown --lr-schedule {cfg.train.lr_schedule!r}"),
        (0.0 <= cfg.data.metadata_dropout <= 1.0,
         f"--metadata-dropout {cfg.data.metadata_dropout:g} is outside 0..1"),
        (cfg.train.strategy in accel.STRATEGIES,
         f"unknown --strategy {cfg.train.strategy!r}; choose from {', '.join(accel.STRATEGIES)}"),
    ]  # fmt: skip
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    if cfg.train.strategy == "multi_worker":
        accel.cluster_role()  # TF_CONFIG names this worker's place in a cluster


def prepare_run_dir(out: str | None, cfg: RunConfig, *, resume: bool, force: bool) -> RunPaths:
    """Create (or, with resume, reopen) the run directory; never overwrite silently."""
    root = Path(out) if out else RUNS_DIR / default_run_name(cfg.model.backbone)
    paths = RunPaths(root)
    if resume:
        if not paths.config.is_file():
            raise UserError(f"{root}: nothing to resume (no config.json)")
        return paths
    if root.exists() and any(root.iterdir()):
        if not force:
            raise UserError(
                f"{root}: run directory exists; "
                "pass --resume to continue it or --force to overwrite"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    return paths


def train(
    cfg: RunConfig,
    paths: RunPaths,
    *,
    resume: bool = False,
    evaluate: bool = True,
    extra_callbacks: list | None = None,
    log=print,
) -> dict:
    """Train (or continue) the run in ``paths``; return test metrics ({} without evaluate).

    Under ``--strategy multi_worker`` only the chief writes ``paths`` and evaluates; the other
    workers write to a temporary directory and return {} (:mod:`mobile_skin.training.multi_worker`).
    """
    multi = cfg.train.strategy == "multi_worker"
    if resume and multi:
        raise multi_worker.resume_refused(paths)
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs anything else.
    strategy = accel.make_strategy(cfg.train.strategy)
    if multi:
        log(f"cluster: this process is {accel.cluster_role().describe()}")
    try:
        with multi_worker.worker_run_dir(paths, strategy, log=log) as own:
            return _train(
                cfg, own, paths, strategy, resume=resume, evaluate=evaluate,
                extra_callbacks=extra_callbacks, log=log,
            )  # fmt: skip
    except multi_worker.LOST_WORKER_ERRORS as err:
        if not multi:
            raise
        raise multi_worker.lost_worker(err, paths) from None


def _train(
    cfg: RunConfig,
    paths: RunPaths,
    shared: RunPaths,
    strategy: tf.distribute.Strategy,
    *,
    resume: bool,
    evaluate: bool,
    extra_callbacks: list | None,
    log,
) -> dict:
    """:func:`train` with ``strategy``, writing to ``paths``: the run itself (``shared``), or a
    temporary directory on the workers of a multi-worker cluster other than its chief."""
    log(f"devices: {accel.describe_devices()}")
    data = _run_data(cfg, paths, resume=resume, log=log)
    loop.fit(
        cfg, data, paths, shared, strategy, resume=resume, extra_callbacks=extra_callbacks, log=log
    )
    if cfg.train.strategy == "multi_worker":
        multi_worker.finish(shared)
    if not accel.is_chief(strategy):
        return {}
    finished = resolve_run(paths.root)
    if cfg.train.calibrate:
        from mobile_skin.evaluation.temperature import calibrate_run

        calibrate_run(finished, log=log)
    if not evaluate:
        return {}
    from mobile_skin.evaluation.evaluate import evaluate_run

    return evaluate_run(finished, log=log)


def _run_data(cfg: RunConfig, paths: RunPaths, *, resume: bool, log) -> loop.TrainData:
    """The run's data: the dataset read and split (the saved split when resuming), the metadata
    encoding fitted on the training rows, the class weights; a new run's config and spec are
    written here."""
    frame = load_ham10000(
        cfg.data.data_dir,
        cfg.data.csv,
        skip_bad_images=cfg.data.skip_bad_images,
        drop_missing_age=False,
        log=log,
    )
    if resume:
        frame, split = load_split(paths.split, frame)
        log(f"resuming {paths.root} with its saved split")
    else:
        frame, split = draw_run_split(frame, cfg.data, log)
        save_split(paths.split, frame, split)
    log("images per class and split:\n" + split_table(frame, split).to_string())
    log(f"lesions with images in more than one split: {len(leaking_lesions(frame, split))}")
    train_rows, val_rows = subset(frame, split, "train"), subset(frame, split, "val")

    encoding = (
        MetadataEncoding.fit(
            train_rows["age"], age_missing_indicator=cfg.data.age_missing_indicator
        )
        if cfg.model.use_metadata
        else None
    )
    spec = ModelSpec(
        image_size=cfg.data.image_size,
        encoding=encoding,
        backbone=cfg.model.backbone,
        source_run=str(paths.root),
        model_file=paths.best_model.name,
    )
    if not resume:
        cfg.save(paths.config)
        spec.save(paths.root)
    weights = class_weights(train_rows["label"], len(CLASSES)) if cfg.train.class_weights else None
    if weights is not None:
        log(
            "class weights: "
            + ", ".join(f"{c} {w:.2f}" for c, w in zip(CLASSES, weights, strict=True))
        )
    return loop.TrainData(train_rows, val_rows, encoding, weights)


def _new_run_dir(args: argparse.Namespace, cfg: RunConfig) -> RunPaths:
    """The directory of a new run (refused if it exists, unless --force). With --strategy
    multi_worker: on the chief, the same, or the unfinished run at --out to continue; on the other
    workers, the run the chief writes (they write nothing there)."""

    def fresh() -> RunPaths:
        return prepare_run_dir(args.out, cfg, resume=False, force=args.force)

    if cfg.train.strategy != "multi_worker":
        return fresh()
    if not args.out:
        raise UserError(
            "--strategy multi_worker needs --out: the same run directory, on a filesystem every "
            "worker sees, in every worker's command"
        )
    # Join the cluster before anything can fail here, so that the other workers learn of it.
    accel.make_strategy(cfg.train.strategy)
    if not accel.cluster_role().is_chief:
        return RunPaths(Path(args.out))
    paths, continuing = multi_worker.prepare_run_dir(args.out, cfg, force=args.force, fresh=fresh)
    if continuing:
        print(f"continuing the unfinished multi-worker run in {paths.root}")
    return paths


@cli
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse_args(argv)
    if args.resume:
        paths = prepare_run_dir(
            args.out or str(RUNS_DIR / "latest"), RunConfig(), resume=True, force=False
        )
        cfg = RunConfig.load(paths.config)
        if cfg.train.strategy == "multi_worker":
            raise multi_worker.resume_refused(paths)
        if args.epochs:
            cfg.train.epochs = args.epochs
            cfg.save(paths.config)
    else:
        cfg = resolve_config(args)
        cfg.command = "python -m mobile_skin.train " + shlex.join(
            sys.argv[1:] if argv is None else argv
        )
        paths = _new_run_dir(args, cfg)
        for note in cfg.notes:
            print(f"note: {note}")
    print(f"run directory: {paths.root}")
    metrics = train(cfg, paths, resume=args.resume, evaluate=not args.no_eval)
    if metrics:
        print(
            f"test: accuracy {metrics['accuracy']:.3f}, "
            f"balanced accuracy {metrics['balanced_accuracy']:.3f}, "
            f"macro AUC {metrics['macro_auc']:.3f} -> {paths.report}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
