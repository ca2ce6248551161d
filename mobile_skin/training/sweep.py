"""``python -m mobile_skin.sweep --cuts 230,240,246 --out DIR -- TRAIN FLAGS``: the cut sweep.

The paper's Table 8 trains MobileNetV3Large cut after different numbers of layers. The sweep trains
each cut as its own run, ``DIR/cut_<N>/``, one after another, each in its own process::

    python -m mobile_skin.train TRAIN FLAGS --cut N --out DIR/cut_<N>

then writes, for every finished ``cut_<N>`` run under ``DIR``:

- ``summary.md``, ``summary.csv``, ``summary.json``: per cut (the backbone layers kept), the
  model's parameters, the best epoch and its validation balanced accuracy (the model kept as
  ``best.keras``), the test accuracy and balanced accuracy, and the paper's Table 8 accuracy;
- ``compare.md`` and ``compare.png``: the runs side by side (:mod:`mobile_skin.evaluation.compare`).

A cut whose run is finished (it has ``metrics.json``) is skipped, so the same command continues an
interrupted sweep. A cut whose run started but did not finish stops the sweep with the training
command's own message (``--force`` among the training flags starts it again). ``--summary-only``
trains nothing: it writes the summary of what ``DIR`` holds, for when machines trained the cuts
into one shared ``DIR`` (docs/distributed.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mobile_skin  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from mobile_skin.common.errors import UserError, cli
from mobile_skin.common.fileio import write_json, write_text
from mobile_skin.common.paper import TABLE8_CUT_ACCURACY
from mobile_skin.evaluation import compare

#: The cuts of the paper's Table 8 that tf_keras' MobileNetV3Large (263 layers without its top)
#: can make; the paper's 266 and 270 are beyond it.
DEFAULT_CUTS = "230,240,246,251,260"
#: The backbone the cut applies to.
CUT_BACKBONE = "mobilenet_v3_large_240"
#: Training flags the sweep sets itself, per cut.
OWN_FLAGS = {"cut": "--cut", "out": "--out", "resume": "--resume", "no_eval": "--no-eval"}
SUMMARY_COLUMNS = (
    "cut", "params", "best_epoch", "val_balanced_accuracy", "test_accuracy",
    "test_balanced_accuracy", "paper_accuracy", "run",
)  # fmt: skip


@dataclass(frozen=True)
class CutRun:
    """One cut's run: where it goes, the training command's arguments, whether it is done."""

    cut: int
    root: Path
    argv: list[str]

    @property
    def finished(self) -> bool:
        """Trained and evaluated."""
        return (self.root / "metrics.json").is_file()


def parse_cuts(text: str) -> list[int]:
    """``"230,240"`` -> ``[230, 240]``; a one-line error for anything else."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise UserError(f"--cuts needs at least one cut, e.g. {DEFAULT_CUTS}")
    cuts = []
    for part in parts:
        try:
            cut = int(part)
        except ValueError:
            raise UserError(f"--cuts: {part!r} is not a whole number") from None
        if cut in cuts:
            raise UserError(f"--cuts: {cut} is listed twice")
        cuts.append(cut)
    return cuts


def backbone_layers() -> int:
    """Layers of MobileNetV3Large without its top, the largest cut (builds it once, no weights)."""
    import tf_keras

    base = tf_keras.applications.MobileNetV3Large(
        input_shape=(32, 32, 3), include_top=False, weights=None, include_preprocessing=True
    )
    layers = len(base.layers)
    tf_keras.backend.clear_session()
    return layers


def check_cuts(cuts: list[int], layers: int) -> None:
    """Every cut keeps between 2 and ``layers`` layers."""
    for cut in cuts:
        if not 2 <= cut <= layers:
            raise UserError(
                f"--cuts: {cut} is outside 2..{layers} "
                f"(MobileNetV3Large without its top has {layers} layers)"
            )


def plan(cuts: list[int], out: Path, train_args: list[str]) -> list[CutRun]:
    """One run per cut, each training command checked as the training command checks it."""
    from mobile_skin.training import train

    args = train.parse_args(train_args)
    for attr, flag in OWN_FLAGS.items():
        if getattr(args, attr):
            raise UserError(f"the sweep sets {flag} itself; remove it from the training flags")
    runs = []
    for cut in cuts:
        root = out / f"cut_{cut}"
        argv = [*train_args, "--cut", str(cut), "--out", str(root)]
        cfg = train.resolve_config(train.parse_args(argv))
        if cfg.model.backbone != CUT_BACKBONE:
            raise UserError(f"--cut applies to {CUT_BACKBONE} only, not {cfg.model.backbone}")
        if cfg.train.strategy == "multi_worker":
            raise UserError(
                "the sweep trains on one machine; to train each cut on a cluster, run one "
                "training command per cut on every worker (docs/distributed.md)"
            )
        runs.append(CutRun(cut, root, argv))
    return runs


def train_cut(run: CutRun, log=print) -> None:
    """Train and evaluate one cut in its own process; a one-line error if it fails."""
    log(f"== cut {run.cut}: python -m mobile_skin.train {' '.join(run.argv)}")
    done = subprocess.run([sys.executable, "-m", "mobile_skin.train", *run.argv], check=False)
    if done.returncode != 0:
        raise UserError(
            f"cut {run.cut}: training failed (exit {done.returncode}); finished cuts are kept, "
            "and the same command continues the sweep"
        )


def _best_row(run: Path, monitor: str) -> dict:
    """The history row of the epoch ``best.keras`` comes from (the first best, as kept)."""
    import pandas as pd

    history = pd.read_csv(run / "history.csv")
    values = history[monitor]
    index = values.idxmin() if "loss" in monitor else values.idxmax()
    return history.loc[index].to_dict()


def _params(model_file: Path) -> int:
    import tf_keras

    model = tf_keras.models.load_model(model_file, compile=False)
    params = int(model.count_params())
    tf_keras.backend.clear_session()
    return params


def cut_row(run: Path) -> dict:
    """One finished cut run's summary row."""
    loaded = compare.load(run)
    cfg, test = loaded["config"], loaded["splits"]["test"]
    cut = int(cfg["model"]["cut"])
    best = _best_row(run, cfg["train"]["monitor"])
    return {
        "cut": cut,
        "params": _params(run / "best.keras"),
        "best_epoch": int(best["epoch"]),
        "val_balanced_accuracy": float(best["val_balanced_accuracy"]),
        "test_accuracy": test["accuracy"],
        "test_balanced_accuracy": test["balanced_accuracy"],
        "paper_accuracy": TABLE8_CUT_ACCURACY.get(cut),
        "run": run.name,
    }


def finished_runs(out: Path) -> list[Path]:
    """The finished ``cut_<N>`` runs under ``out``, by cut."""
    runs = [p for p in out.glob("cut_*") if p.name[4:].isdigit() and (p / "metrics.json").is_file()]
    return sorted(runs, key=lambda p: int(p.name[4:]))


def render(rows: list[dict], unfinished: list[str]) -> str:
    """The summary page."""
    lines = [
        "# Cut sweep (the paper's Table 8)",
        "",
        "MobileNetV3Large keeps `layers[:cut]`; validation balanced accuracy of the best epoch "
        "(the model kept), test scores of that model; the paper's accuracy is on its image-level "
        "split with ImageNet weights.",
        "",
        "| cut | params | best epoch | val balanced acc. | test accuracy | test balanced acc. "
        "| paper accuracy | run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        paper = "" if r["paper_accuracy"] is None else f"{r['paper_accuracy']:.2f}"
        lines.append(
            f"| {r['cut']} | {r['params']:,} | {r['best_epoch']} | "
            f"{r['val_balanced_accuracy']:.3f} | {r['test_accuracy']:.3f} | "
            f"{r['test_balanced_accuracy']:.3f} | {paper} | {r['run']} |"
        )
    if unfinished:
        lines += ["", f"Not finished yet: {', '.join(unfinished)}."]
    lines += ["", "Everything else side by side: [compare.md](compare.md)."]
    return "\n".join(lines) + "\n"


def summarize(out: Path, log=print) -> list[dict]:
    """Write the summary and the comparison page of the finished cut runs under ``out``."""
    import pandas as pd

    runs = finished_runs(out)
    if not runs:
        raise UserError(f"{out}: no finished cut_<N> run to summarise")
    rows = [cut_row(run) for run in runs]
    unfinished = sorted(p.name for p in out.glob("cut_*") if p.is_dir() and p not in runs)
    write_text(out / "summary.md", render(rows, unfinished))
    write_json(out / "summary.json", rows)
    write_text(out / "summary.csv", pd.DataFrame(rows, columns=SUMMARY_COLUMNS).to_csv(index=False))
    loaded = [compare.load(run) for run in runs]
    compare.plot(loaded, out / "compare.png")
    write_text(
        out / "compare.md", compare.render(loaded, "Cut sweep: runs side by side", "compare.png")
    )
    log(f"wrote {out / 'summary.md'} ({len(rows)} cut(s)), summary.csv, summary.json, compare.md")
    return rows


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The sweep's own flags, and the training flags after ``--``."""
    split = argv.index("--") if "--" in argv else len(argv)
    own, train_args = argv[:split], argv[split + 1 :]
    p = argparse.ArgumentParser(
        prog="python -m mobile_skin.sweep",
        description="The paper's Table 8 cut sweep: one training run per cut, then a summary.",
        epilog="Training flags go after `--`, e.g. `-- --data DIR --weights none --epochs 30`; "
        "the sweep adds --cut and --out per cut.",
    )
    p.add_argument(
        "--cuts", default=DEFAULT_CUTS, help=f"comma-separated cuts (default {DEFAULT_CUTS})"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/cut_sweep"),
        help="sweep directory (default runs/cut_sweep)",
    )
    p.add_argument(
        "--summary-only", action="store_true", help="train nothing; summarise the finished cuts"
    )
    return p.parse_args(own), train_args


@cli
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args, train_args = parse_args(sys.argv[1:] if argv is None else list(argv))
    if not args.summary_only:
        cuts = parse_cuts(args.cuts)
        runs = plan(cuts, args.out, train_args)
        check_cuts(cuts, backbone_layers())
        for run in runs:
            if run.finished:
                print(f"== cut {run.cut}: finished already ({run.root})")
                continue
            train_cut(run)
    summarize(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
