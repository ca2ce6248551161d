"""The run directory: where a training run keeps everything, and how later commands find it.

Layout of ``runs/<name>/``::

    config.json        resolved RunConfig            model_spec.json, labels.txt
    split.csv          image_id -> train/val/test    best.keras (best validation epoch)
    checkpoint/        resume state (weights, optimizer, epoch, callback state)
    backup/            multi-worker restart state while training (mobile_skin.training.multi_worker)
    history.csv        one row per epoch             tensorboard/
    metrics.json, report.md, figures/                test report (mobile_skin.evaluation.evaluate)
    metrics_val.json, report_val.md, figures_val/    the same for another split (--split val)
    eval_<dataset>/, test_<format>/    metrics.json, report.md, figures/ of an external dataset
                       (--dataset) or an exported file (--model) (mobile_skin.evaluation.evaluate)
    export/<format>/   exported models, each with model_spec.json and labels.txt

``runs/latest`` is a symlink to the newest run, the default of every later command.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mobile_skin.common.config import RunConfig
from mobile_skin.common.errors import UserError
from mobile_skin.contract.spec import SPEC_FILE, ModelSpec
from mobile_skin.data.ham10000 import load_ham10000
from mobile_skin.data.splits import load_split, subset

RUNS_DIR = Path("runs")
LATEST = "latest"


@dataclass(frozen=True)
class EvaluationPaths:
    """The files one evaluation writes."""

    metrics: Path
    report: Path
    figures: Path


@dataclass(frozen=True)
class RunPaths:
    """Paths inside one run directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def spec(self) -> Path:
        return self.root / SPEC_FILE

    @property
    def split(self) -> Path:
        return self.root / "split.csv"

    @property
    def best_model(self) -> Path:
        return self.root / "best.keras"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def evaluation(self, split: str = "test") -> EvaluationPaths:
        """Where the evaluation of one split goes: ``metrics.json``, ``report.md`` and
        ``figures/`` for the test split, ``metrics_<split>.json``, ``report_<split>.md`` and
        ``figures_<split>/`` for another."""
        if split == "test":
            return EvaluationPaths(self.metrics, self.report, self.figures)
        return EvaluationPaths(
            self.root / f"metrics_{split}.json",
            self.root / f"report_{split}.md",
            self.root / f"figures_{split}",
        )

    def evaluation_dir(self, name: str) -> EvaluationPaths:
        """An evaluation kept in its own folder ``<run>/<name>/``: ``metrics.json``,
        ``report.md`` and ``figures/`` (an external dataset, an exported file)."""
        folder = self.root / name
        return EvaluationPaths(folder / "metrics.json", folder / "report.md", folder / "figures")

    @property
    def export_root(self) -> Path:
        """``export/``: every format's directory, and the parity tables (``parity.json``,
        ``parity.md``) with the cached Keras reference."""
        return self.root / "export"

    def export(self, fmt: str) -> Path:
        """Directory of one exported format, e.g. ``tflite_int8``."""
        return self.export_root / fmt


def default_run_name(backbone: str) -> str:
    """``<backbone>_<YYYYmmdd-HHMMSS>``."""
    return f"{backbone}_{time.strftime('%Y%m%d-%H%M%S')}"


def resolve_run(path: str | os.PathLike | None) -> RunPaths:
    """The run at ``path``, or ``runs/latest``; a clear error if it is not a finished run."""
    root = Path(path) if path else RUNS_DIR / LATEST
    if not root.exists():
        hint = " (train one with `python -m mobile_skin.train`)" if not path else ""
        raise UserError(f"{root}: run directory not found{hint}")
    paths = RunPaths(root.resolve())
    for need in (paths.config, paths.spec):
        if not need.is_file():
            raise UserError(f"{root}: not a run directory ({need.name} missing)")
    return paths


def point_latest(run_dir: Path, runs_dir: Path | None = None) -> None:
    """Make ``<runs_dir>/latest`` a relative symlink to ``run_dir`` (replaced atomically)."""
    runs_dir = runs_dir or run_dir.parent
    link = runs_dir / LATEST
    tmp = runs_dir / f".{LATEST}.tmp{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(run_dir.resolve(), runs_dir.resolve()))
    os.replace(tmp, link)


def load_run_data(
    paths: RunPaths, data_dir: str | None = None, *, verify_images: bool = True
) -> tuple[RunConfig, ModelSpec, pd.DataFrame, pd.Series]:
    """The run's config and spec, its data (re-validated) and its split.

    Args:
        paths: the run.
        data_dir: read the data from here instead of the directory recorded in the config.
        verify_images: decode every image once (catches files damaged since training).
    """
    cfg = RunConfig.load(paths.config)
    spec = ModelSpec.load(paths.spec)
    root = data_dir or cfg.data.data_dir
    csv = cfg.data.csv if not data_dir else None
    frame = load_ham10000(
        root,
        csv,
        skip_bad_images=cfg.data.skip_bad_images,
        drop_missing_age=cfg.data.drop_missing_age,
        verify_images=verify_images,
        log=lambda _msg: None,
    )
    frame, split = load_split(paths.split, frame)
    return cfg, spec, frame, split


@dataclass(frozen=True)
class RunData:
    """A finished run, opened: where it is, its config and spec, its data and its split. A
    command opens it (:func:`open_run`, honouring ``--data``); the stages it calls take it."""

    paths: RunPaths
    cfg: RunConfig
    spec: ModelSpec
    frame: pd.DataFrame
    split: pd.Series

    def rows(self, name: str) -> pd.DataFrame:
        """The rows of one split (``train``, ``val`` or ``test``)."""
        return subset(self.frame, self.split, name)


def open_run(
    run_dir: str | os.PathLike | None, data_dir: str | None = None, *, verify_images: bool = True
) -> RunData:
    """:func:`resolve_run` then :func:`load_run_data`: the run at ``run_dir`` (None:
    ``runs/latest``) with its data, read from ``data_dir`` when given."""
    paths = resolve_run(run_dir)
    return RunData(paths, *load_run_data(paths, data_dir, verify_images=verify_images))
