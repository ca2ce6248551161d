"""The evaluation report of a run: ``report.md`` and its figures.

One renderer for both kinds of evaluation (:mod:`mobile_skin.evaluation.evaluate`): a split of the
run (``metrics["split"]``) and an external dataset (``metrics["dataset"]``), each scored with
``best.keras`` or an exported file (``metrics["model"]``).

Figures (PNG, in ``figures/``): confusion matrix, one-vs-rest ROC curves, the reliability diagram
(:mod:`mobile_skin.evaluation.reliability`; raw and temperature-scaled when the model is
calibrated), the metrics with metadata set to unknown, and for a split the training curves; for a
Keras model a grid of images with their Soft-Attention maps overlaid (an exported file has no
attention output).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from mobile_skin.common import paper  # noqa: E402
from mobile_skin.common.config import RunConfig  # noqa: E402
from mobile_skin.common.fileio import atomic_path, write_text  # noqa: E402
from mobile_skin.contract.encoding import CLASS_NAMES  # noqa: E402
from mobile_skin.contract.pipeline import make_dataset  # noqa: E402
from mobile_skin.contract.spec import ModelSpec  # noqa: E402
from mobile_skin.data.run import EvaluationPaths, RunPaths  # noqa: E402
from mobile_skin.evaluation.reliability import Curve, plot_reliability  # noqa: E402
from mobile_skin.evaluation.robustness import markdown_table  # noqa: E402
from mobile_skin.model.network import attention_model  # noqa: E402

HEADLINE = [  # (metrics key, label)
    ("accuracy", "accuracy (top-1)"),
    ("balanced_accuracy", "balanced accuracy (mean recall, ISIC)"),
    ("macro_precision", "macro precision"),
    ("macro_sensitivity", "macro sensitivity (recall)"),
    ("macro_specificity", "macro specificity"),
    ("macro_f1", "macro F1"),
    ("macro_auc", "macro ROC AUC (one-vs-rest)"),
    ("mean_ovr_accuracy", "mean one-vs-rest accuracy (paper Table 7 'accuracy')"),
    ("mean_sens_spec", "mean (sens+spec)/2 (paper Table 7 'balanced accuracy')"),
    ("ece", "expected calibration error (top-1, 15 bins)"),
]
#: The columns of the metadata table: (metrics key, label).
SUBSET_COLUMNS = [
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced acc."),
    ("macro_f1", "macro F1"),
    ("macro_auc", "macro AUC"),
    ("ece", "ECE"),
]


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_confusion(cm: np.ndarray, classes, path: Path) -> None:
    """Counts, coloured by row-normalised recall."""
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=8,
            )
    ax.set(
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xticklabels=classes,
        yticklabels=classes,
        xlabel="predicted",
        ylabel="true",
        title="Confusion matrix (colour: row recall)",
    )
    fig.colorbar(im, ax=ax, fraction=0.046)
    _save(fig, path)


def plot_roc(labels: np.ndarray, probs: np.ndarray, classes, aucs, path: Path) -> None:
    """One-vs-rest ROC curve per class."""
    fig, ax = plt.subplots(figsize=(6, 5))
    for c, name in enumerate(classes):
        positive = labels == c
        if 0 < positive.sum() < len(labels):
            fpr, tpr, _ = roc_curve(positive, probs[:, c])
            ax.plot(fpr, tpr, label=f"{name} (AUC {aucs[c]:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, one vs rest")
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


def plot_history(history: pd.DataFrame, path: Path) -> None:
    """Loss, accuracy, balanced accuracy and learning rate per epoch."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    e = history["epoch"]
    axes[0].plot(e, history["loss"], label="train")
    axes[0].plot(e, history["val_loss"], label="val")
    axes[0].set(title="loss (class-weighted CE)", xlabel="epoch")
    axes[1].plot(e, history["accuracy"], label="train accuracy")
    axes[1].plot(e, history["val_accuracy"], label="val accuracy")
    axes[1].plot(e, history["val_balanced_accuracy"], label="val balanced accuracy")
    axes[1].set(title="accuracy", xlabel="epoch", ylim=(0, 1))
    axes[2].semilogy(e, history["lr"])
    axes[2].set(title="learning rate", xlabel="epoch")
    for ax in axes[:2]:
        ax.legend(fontsize=8)
    _save(fig, path)


def plot_robustness(robustness: dict, classes, path: Path) -> None:
    """Balanced accuracy and per-class recall under each metadata condition."""
    names = list(robustness)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1, 2]})
    bal = [robustness[n]["balanced_accuracy"] for n in names]
    axes[0].barh(names[::-1], bal[::-1], color="tab:blue")
    for y, v in enumerate(bal[::-1]):
        axes[0].text(v, y, f" {v:.3f}", va="center", fontsize=8)
    axes[0].set(title="balanced accuracy", xlim=(0, 1))
    width = 0.8 / len(names)
    x = np.arange(len(classes))
    for i, n in enumerate(names):
        recall = [np.nan if r is None else r for r in robustness[n]["recall"]]
        axes[1].bar(x + i * width, recall, width, label=n)
    axes[1].set(
        xticks=x + 0.4 - width / 2, xticklabels=classes, ylim=(0, 1), title="recall per class"
    )
    axes[1].legend(fontsize=7, ncol=len(names), loc="upper left")
    fig.suptitle("Metadata set to unknown at test time")
    _save(fig, path)


def plot_attention(
    model, rows: pd.DataFrame, spec: ModelSpec, probs: np.ndarray, path: Path, per_class: int = 2
) -> None:
    """Test images (up to ``per_class`` per class) with the Soft-Attention map alpha overlaid."""
    picks = rows.assign(_pos=np.arange(len(rows))).groupby("dx", sort=False).head(per_class)
    picks = picks.sort_values("label")
    ds = make_dataset(picks, spec.image_size, 16, encoding=spec.encoding, labels=False, cache=False)
    images, alphas = [], []
    attn = attention_model(model)
    for batch in ds:
        _, alpha = attn(batch, training=False)
        images.append(batch["image"].numpy())
        alphas.append(tf.image.resize(alpha, (spec.image_size, spec.image_size)).numpy())
    images, alphas = np.concatenate(images), np.concatenate(alphas)
    cols = min(len(picks), 7)
    nrows = int(np.ceil(len(picks) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(2.1 * cols, 2.4 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (ax, (_, row)) in enumerate(zip(axes.flat, picks.iterrows(), strict=False)):
        p = probs[row["_pos"]]
        ax.imshow(images[k].astype(np.uint8))
        ax.imshow(alphas[k, ..., 0], cmap="jet", alpha=0.4)
        pred = spec.classes[int(p.argmax())]
        ax.set_title(
            f"{row['dx']} -> {pred} {p.max():.2f}",
            fontsize=8,
            color="green" if pred == row["dx"] else "red",
        )
    fig.suptitle("Soft-Attention map alpha (true -> predicted, probability)", fontsize=9)
    _save(fig, path)


def _fmt(value) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"
    )


def _title(paths: RunPaths, m: dict) -> str:
    tag = (m.get("model") or {}).get("tag")
    through = f" through `{tag}`" if tag else ""
    if "dataset" in m:
        name = Path(m["dataset"]["root"]).name
        return f"# External evaluation: `{name}` with `{paths.root.name}`{through}"
    title = {"test": "Test", "val": "Validation"}.get(m["split"], str(m["split"]).capitalize())
    return f"# {title} report: `{paths.root.name}`{through}"


def _about(cfg: RunConfig, m: dict, history: pd.DataFrame | None) -> list[str]:
    """The bullet list under the title: command, machine, model, data, calibration."""
    lines = [
        f"- command: `{cfg.command or 'n/a'}`",
        f"- machine: {m['machine']['cpu']}, {m['machine']['cores']} cores; "
        f"TensorFlow {m['machine']['tensorflow']}",
        f"- model: {cfg.model.backbone} (cut {cfg.model.cut}), {cfg.data.image_size} px, "
        f"weights {cfg.model.weights}, "
        f"metadata {'yes' if cfg.model.use_metadata else 'no'}, "
        f"class weights {'yes' if cfg.train.class_weights else 'no'}, metadata dropout "
        f"{cfg.data.metadata_dropout:g}, missing-age indicator "
        f"{'yes' if cfg.data.age_missing_indicator else 'no'}",
    ]
    model = m.get("model") or {}
    if model.get("tag"):
        source = f", exported from `{model['source_run']}`" if model.get("source_run") else ""
        lines.append(f"- scored with `{model['file']}` ({model['format']} runtime){source}")
    if "dataset" in m:
        d = m["dataset"]
        dropped = d["csv_rows"] - d["scored"]
        lines.append(
            f"- dataset: `{d['root']}` (CSV `{Path(d['csv']).name}`): {d['scored']} of "
            f"{d['csv_rows']} rows scored"
            + (f" ({dropped} dropped: missing or unreadable images)" if dropped else "")
        )
        for column, values in (d.get("unmapped_metadata") or {}).items():
            listed = ", ".join(f"'{v}' ({n} row{'s' * (n != 1)})" for v, n in values.items())
            lines.append(f"- {column} values the model does not know, scored as unknown: {listed}")
    else:
        lines.append(f"- split: {cfg.data.split}; evaluated on {m['n']} {m['split']} images")
        if history is not None and len(history):
            best = history.loc[
                history[cfg.train.monitor].idxmax()
                if "loss" not in cfg.train.monitor
                else history[cfg.train.monitor].idxmin()
            ]
            lines.append(
                f"- training: {len(history)} epochs, {history['seconds'].sum() / 60:.1f} min; "
                f"best {cfg.train.monitor} {best[cfg.train.monitor]:.3f} at epoch "
                f"{int(best['epoch'])}"
            )
    lines.append(_calibration_line(m))
    return lines + [f"- note: {n}" for n in cfg.notes]


def _calibration_line(m: dict) -> str:
    c = m.get("calibration")
    if not c:
        return (
            f"- calibration: none (the softmax as trained); expected calibration error "
            f"{_fmt(m.get('ece'))}"
        )
    fitted = f" (fitted on the {c['fitted_on']})" if c.get("fitted_on") else ""
    return (
        f"- calibration: {c.get('method', 'temperature')} scaling, T = {c['temperature']:.3g}"
        f"{fitted}; on these images: "
        f"expected calibration error {_fmt(c['ece_before'])} before, {_fmt(c['ece_after'])} "
        f"after; NLL {_fmt(c['nll_before'])} before, {_fmt(c['nll_after'])} after"
    )


def _headline(m: dict) -> list[str]:
    base = m["baseline_majority"]
    paper_column = "dataset" not in m  # the paper's figures are for HAM10000's own test split
    head = ["metric", "this run" if paper_column else "this set"]
    head += ["paper Table 9"] if paper_column else []
    head += [f"always {base['class']}"]
    lines = ["## Headline metrics", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for key, label in HEADLINE:
        cells = [label, _fmt(m.get(key))]
        cells += [_fmt(paper.TABLE9.get(key))] if paper_column else []
        cells += [_fmt(base.get(key))]
        lines.append("| " + " | ".join(cells) + " |")
    if paper_column:
        lines += [
            "",
            "The paper's numbers come from an image-level split (lesions leak between train and "
            "test) with ImageNet weights; see the run's config for this run's split and weights.",
        ]
    return lines


def _per_class(m: dict) -> list[str]:
    paper_column = "dataset" not in m
    head = ["class", "support", "precision", "sensitivity", "specificity", "F1"]
    head += ["paper F1 (Table 5)"] if paper_column else []
    head += ["AUC"]
    lines = ["## Per class", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in m["per_class"]:
        c = row["class"]
        cells = [f"{CLASS_NAMES.get(c, c)} ({c})", str(row["support"])]
        cells += [_fmt(row[k]) for k in ("precision", "sensitivity", "specificity", "f1")]
        cells += [_fmt(paper.TABLE5_F1.get(c))] if paper_column else []
        cells += [_fmt(row["auc"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _metadata(m: dict) -> list[str]:
    """Full set against the rows with every field known and every field set to unknown, then
    the per-mask table of :mod:`mobile_skin.evaluation.robustness`."""
    missing = m.get("rows_missing_metadata") or {}
    complete, blind = m.get("complete_metadata"), m.get("all_unknown")
    if not complete or not blind:
        return []
    lines = ["## Missing metadata", ""]
    counts = ", ".join(f"{k} {v}" for k, v in missing.items())
    if "note" in blind:
        return lines + [
            f"Rows without age / sex / site: {counts}. Metadata figures: {blind['note']}."
        ]
    lines += [
        "The same images with the metadata as given, on the rows that carry every field, and with "
        "every field set to unknown on every row (what a clinic without the fields, or a phone "
        f"user who skips them, gets). Rows without age / sex / site: {counts}.",
        "",
        "| rows | metadata | n | " + " | ".join(label for _, label in SUBSET_COLUMNS) + " |",
        "|" + " --- |" * (3 + len(SUBSET_COLUMNS)),
    ]
    subsets = [("all", "as given", m), ("age, sex and site known", "as given", complete)]
    subsets.append(("all", "every field unknown", blind))
    for rows, metadata, s in subsets:
        cells = [rows, metadata, str(s.get("n", 0))]
        cells += [_fmt(s.get(key)) for key, _ in SUBSET_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    robust = m.get("metadata_robustness")
    if robust and len(robust) > 1:
        delta = blind["balanced_accuracy"] - m["balanced_accuracy"]
        lines += [
            "",
            f"With every field unknown the balanced accuracy is {100 * delta:+.1f} points from "
            "the figure with the metadata as given. One field at a time:",
            "",
            *markdown_table(robust, [r["class"] for r in m["per_class"]]),
        ]
    return lines


def render_markdown(
    paths: RunPaths,
    cfg: RunConfig,
    metrics: dict,
    figures: list[tuple[str, str]],
    history: pd.DataFrame | None,
) -> str:
    """The report text (a split's or an external dataset's, by ``metrics``)."""
    lines = [_title(paths, metrics), "", *_about(cfg, metrics, history), ""]
    lines += _headline(metrics) + [""] + _per_class(metrics)
    metadata = _metadata(metrics)
    if metadata:
        lines += ["", *metadata]
    lines += ["", "## Figures", ""] + [f"![{title}]({rel})" for title, rel in figures] + [""]
    return "\n".join(lines)


def write_report(
    paths: RunPaths,
    cfg: RunConfig,
    spec: ModelSpec,
    metrics: dict,
    rows: pd.DataFrame,
    probs: np.ndarray,
    model,
    out: EvaluationPaths | None = None,
    *,
    curves: Mapping[str, Curve] | None = None,
) -> Path:
    """Draw the figures and write ``report.md`` (or the files ``out`` names).

    Args:
        paths: the run.
        cfg: its config.
        spec: the scored model's spec.
        metrics: what :mod:`mobile_skin.evaluation.evaluate` wrote to ``metrics.json``.
        rows: the scored rows (``label`` indexes ``spec.classes``).
        probs: their probabilities (N, C).
        model: the Keras model for the attention maps; None (an exported file) leaves them out.
        out: where to write (default: the run's test report).
        curves: the reliability diagram's curves, name -> (labels, probs); default one curve of
            ``probs``.
    """
    out = out or paths.evaluation()
    rel = out.figures.name
    labels = rows["label"].to_numpy()
    aucs = [row["auc"] if row["auc"] is not None else np.nan for row in metrics["per_class"]]
    figures = []
    plot_confusion(
        np.array(metrics["confusion"]), spec.classes, out.figures / "confusion_matrix.png"
    )
    figures.append(("confusion matrix", f"{rel}/confusion_matrix.png"))
    plot_roc(labels, probs, spec.classes, aucs, out.figures / "roc_curves.png")
    figures.append(("ROC curves", f"{rel}/roc_curves.png"))
    plot_reliability(
        curves or {"model output": (labels, probs)},
        out.figures / "reliability.png",
        f"Reliability diagram, {metrics['n']} images",
    )
    figures.append(("reliability diagram", f"{rel}/reliability.png"))
    history = None
    if "split" in metrics and paths.history.is_file():
        history = pd.read_csv(paths.history)
    if history is not None and len(history):
        plot_history(history, out.figures / "training_curves.png")
        figures.append(("training curves", f"{rel}/training_curves.png"))
    robust = metrics.get("metadata_robustness")
    if robust and len(robust) > 1:
        plot_robustness(robust, spec.classes, out.figures / "metadata_robustness.png")
        figures.append(("missing metadata", f"{rel}/metadata_robustness.png"))
    if model is not None:
        plot_attention(model, rows, spec, probs, out.figures / "attention_maps.png")
        figures.append(("attention maps", f"{rel}/attention_maps.png"))
    return write_text(out.report, render_markdown(paths, cfg, metrics, figures, history))
