"""``python -m mobile_skin.compare RUN... --out FILE.md``: finished runs side by side.

Reads each run's ``config.json``, ``metrics.json`` (test split) and, when present,
``metrics_val.json`` (``python -m mobile_skin.evaluate RUN --split val``), and writes one Markdown
page with

- the recipe differences (backbone, metadata, metadata dropout, class weights, epochs);
- per split: accuracy, balanced accuracy, macro F1, macro AUC, and balanced accuracy with the
  metadata as given, each field set to unknown and all three unknown (the robustness table of
  :mod:`mobile_skin.evaluation.robustness`);
- per split, each class's sensitivity per run (the class counts of the first run in brackets);
- a figure: balanced accuracy with full metadata against all metadata unknown, per run.

Used for the metadata-dropout sweep and the paper's ablations (reports/).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mobile_skin.common.cli_args import description
from mobile_skin.common.errors import UserError, cli

CONDITIONS = ("as given", "age masked", "sex masked", "site masked", "all masked")

#: A command records the flags given, not the defaults it ran with; after a default changes, only
#: the saved config trains the same recipe again.
REPRODUCE = (
    "A run's command trains its recipe again only while the defaults are unchanged; its saved "
    "config always does: `python -m mobile_skin.train --config RUN/config.json --out runs/NAME` "
    "(with `--data` where the images are)."
)


def load(run: str | Path) -> dict:
    """One run's config and metrics per split (``test``, and ``val`` when evaluated)."""
    root = Path(run)
    try:
        config = json.loads((root / "config.json").read_text())
        splits = {"test": json.loads((root / "metrics.json").read_text())}
    except (OSError, ValueError) as err:
        raise UserError(f"{root}: not a finished, evaluated run ({err})") from None
    val = root / "metrics_val.json"
    if val.is_file():
        splits["val"] = json.loads(val.read_text())
    return {"name": root.name, "config": config, "splits": splits}


def recipe(config: dict) -> str:
    """The settings that tell runs apart, in a few words."""
    d, m, t = config["data"], config["model"], config["train"]
    parts = [m["backbone"], f"{d['image_size']} px", f"{t['epochs']} epochs"]
    if m["use_metadata"]:
        parts.append(f"metadata dropout {d.get('metadata_dropout', 0.0):g}")
        parts.append("age indicator" if d.get("age_missing_indicator") else "no age indicator")
    else:
        parts.append("no metadata")
    parts.append("class weights" if t["class_weights"] else "no class weights")
    if d.get("drop_missing_age"):
        parts.append("rows without age dropped")
    return ", ".join(parts)


def _f(x) -> str:
    return "" if x is None else f"{x:.3f}"


def render(runs: list[dict], title: str, figure: str | None = None) -> str:
    """The comparison page."""
    lines = [f"# {title}", ""]
    lines += ["| run | recipe | command, as run |", "| --- | --- | --- |"]
    for r in runs:
        lines.append(
            f"| {r['name']} | {recipe(r['config'])} | `{r['config'].get('command', '')}` |"
        )
    lines += ["", REPRODUCE]
    for split in ("test", "val"):
        present = [r for r in runs if split in r["splits"]]
        if not present:
            continue
        lines += [
            "",
            f"## {'Test' if split == 'test' else 'Validation'} split",
            "",
            "| run | images | accuracy | balanced acc. | macro F1 | macro AUC | "
            + " | ".join(f"bal. acc., {c}" for c in CONDITIONS)
            + " | all masked - as given |",
            "|" + " --- |" * (7 + len(CONDITIONS)),
        ]
        for r in present:
            m = r["splits"][split]
            robust = m.get("metadata_robustness", {})
            cells = [_f(robust[c]["balanced_accuracy"]) if c in robust else "" for c in CONDITIONS]
            gap = (
                f"{100 * (robust['all masked']['balanced_accuracy'] - m['balanced_accuracy']):+.1f}"
                if "all masked" in robust
                else ""
            )
            lines.append(
                f"| {r['name']} | {m['n']} | {_f(m['accuracy'])} | {_f(m['balanced_accuracy'])} | "
                f"{_f(m['macro_f1'])} | {_f(m['macro_auc'])} | " + " | ".join(cells) + f" | {gap} |"
            )
    lines += _sensitivity_tables(runs)
    if figure:
        lines += ["", f"![balanced accuracy with and without metadata]({figure})"]
    return "\n".join(lines) + "\n"


def _sensitivity_tables(runs: list[dict]) -> list[str]:
    """Per split, each class's sensitivity (recall) per run: where class weights act."""
    lines: list[str] = []
    for split in ("test", "val"):
        present = [r for r in runs if "per_class" in r["splits"].get(split, {})]
        if not present:
            continue
        classes = [row["class"] for row in present[0]["splits"][split]["per_class"]]
        support = [row["support"] for row in present[0]["splits"][split]["per_class"]]
        lines += [
            "",
            f"## Sensitivity per class, {'test' if split == 'test' else 'validation'} split",
            "",
            "| run | "
            + " | ".join(f"{c} ({n})" for c, n in zip(classes, support, strict=True))
            + " |",
            "|" + " --- |" * (1 + len(classes)),
        ]
        for r in present:
            by_class = {row["class"]: row["sensitivity"] for row in r["splits"][split]["per_class"]}
            lines.append(
                f"| {r['name']} | " + " | ".join(_f(by_class.get(c)) for c in classes) + " |"
            )
    return lines


def plot(runs: list[dict], path: Path) -> None:
    """Balanced accuracy with full metadata and with all of it unknown, per run and split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from mobile_skin.common.fileio import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    for ax, split in zip(axes, ("test", "val"), strict=True):
        present = [r for r in runs if split in r["splits"]]
        x = np.arange(len(present))
        full = [r["splits"][split]["balanced_accuracy"] for r in present]
        blind = [
            r["splits"][split]
            .get("metadata_robustness", {})
            .get("all masked", {})
            .get("balanced_accuracy", np.nan)
            for r in present
        ]
        ax.bar(x - 0.2, full, 0.4, label="metadata as given")
        ax.bar(x + 0.2, blind, 0.4, label="all metadata unknown")
        ax.set_xticks(x, [r["name"] for r in present], rotation=20, ha="right", fontsize=7)
        ax.set(title=f"{split} split", ylim=(0, 1))
    axes[0].set_ylabel("balanced accuracy")
    axes[0].legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)


@cli
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(
        prog="python -m mobile_skin.compare", description=description(__doc__)
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="finished run directories")
    p.add_argument("--out", required=True, type=Path, help="the Markdown page to write")
    p.add_argument("--title", default="Runs side by side", help="the page's title")
    args = p.parse_args(argv)
    from mobile_skin.common.fileio import write_text

    runs = [load(r) for r in args.runs]
    figure = args.out.with_suffix(".png")
    plot(runs, figure)
    write_text(args.out, render(runs, args.title, figure.name))
    print(f"wrote {args.out} and {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
