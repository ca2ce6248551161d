"""The Table 10 benchmark's rows and how they are written: Markdown, CSV, JSON and a bar chart.

One :class:`BenchRow` per (model, runtime, thread count). A row whose file could not be built
or run keeps its place with a status and a reason. :func:`fill_speedups` adds the two ratios the
issue asks for; :func:`paper_table` puts our figures beside the paper's Table 10.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from mobile_skin.bench.models import INCEPTION, MOBILENET, RUNTIMES
from mobile_skin.common.fileio import atomic_path, suffixed, write_json, write_text
from mobile_skin.common.paper import TABLE10

OK, CONVERT_FAILED, RUN_FAILED = "ok", "convert_failed", "run_failed"


@dataclass
class BenchRow:
    """One measured (or failed) combination; times in ms, sizes in MB, rates in images/s."""

    model: str
    backbone: str
    image_size: int
    weights: str
    runtime: str
    threads: int
    status: str = OK
    reason: str = ""
    latency_median_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_mean_ms: float | None = None
    latency_std_ms: float | None = None
    latency_runs: int | None = None
    batch_images_per_s: float | None = None
    batch_runs: int | None = None
    batch_note: str = ""
    params: int | None = None
    depth: int | None = None
    gflops: float | None = None
    file: str = ""
    file_mb: float | None = None
    rss_before_load_mb: float | None = None
    peak_rss_mb: float | None = None
    peak_rss_batch_mb: float | None = None
    mnv3_speedup: float | None = None
    speedup_vs_irv2_keras: float | None = None
    train_images_per_s: float | None = None
    train_steps: int | None = None
    train_s_per_epoch: float | None = None
    load_1m: float | None = None
    cpu_features: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return self.status == OK and self.latency_median_ms is not None


COLUMNS = [f.name for f in fields(BenchRow)]


def _reference(rows: list[BenchRow], backbone: str, runtime: str, threads: int) -> BenchRow | None:
    """The ok row of ``backbone``/``runtime``/``threads``; for MobileNetV3 the untrained one
    (the paper's input size, like the other backbones) is preferred over a trained run's."""
    found = [
        r
        for r in rows
        if r.ok and r.backbone == backbone and r.runtime == runtime and r.threads == threads
    ]
    found.sort(key=lambda r: r.weights != "untrained")
    return found[0] if found else None


def fill_speedups(rows: list[BenchRow]) -> None:
    """``mnv3_speedup``: how many times faster the MobileNetV3 row of the same runtime and
    threads is than this row; ``speedup_vs_irv2_keras``: how many times faster this row is than
    the InceptionResNetV2 Keras row at the same threads."""
    for row in rows:
        if not row.ok:
            continue
        mnv3 = _reference(rows, MOBILENET, row.runtime, row.threads)
        irv2 = _reference(rows, INCEPTION, "keras", row.threads)
        if mnv3 is not None:
            row.mnv3_speedup = row.latency_median_ms / mnv3.latency_median_ms
        if irv2 is not None:
            row.speedup_vs_irv2_keras = irv2.latency_median_ms / row.latency_median_ms


def _num(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:,.{digits}f}"


def _cells(r: BenchRow) -> list[str]:
    status = r.status if r.status == OK else f"**{r.status}**: {r.reason[:160]}"
    mean = "" if r.latency_mean_ms is None else f"{r.latency_mean_ms:.2f} ± {r.latency_std_ms:.2f}"
    batch = _num(r.batch_images_per_s, 1) if r.batch_images_per_s else (r.batch_note and "n/a")
    return [
        r.model,
        str(r.image_size),
        r.weights,
        r.runtime,
        str(r.threads),
        status,
        _num(r.latency_median_ms),
        _num(r.latency_p90_ms),
        mean,
        batch or "",
        _num(r.params / 1e6 if r.params else None),
        "" if r.depth is None else str(r.depth),
        _num(r.gflops, 3),
        _num(r.file_mb, 1),
        _num(r.peak_rss_mb, 0),
        _num(r.mnv3_speedup, 1),
        _num(r.speedup_vs_irv2_keras, 1),
        _num(r.train_images_per_s, 1),
        _num(r.train_s_per_epoch, 0),
    ]


HEADER = [
    "model",
    "px",
    "weights",
    "runtime",
    "threads",
    "status",
    "median ms",
    "p90 ms",
    "mean ± std ms",
    "batch-32 img/s",
    "params (M)",
    "depth",
    "GFLOPs",
    "file MB",
    "peak RSS MB",
    "MNV3 x faster",
    "x faster than IRV2 Keras",
    "train img/s",
    "train s/epoch",
]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (``|`` inside cells escaped)."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for cells in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def paper_table(rows: list[BenchRow], threads: int, train_images: int) -> str:
    """Table 10 of the paper beside ours (Keras rows at ``threads``; TFLite int8 alongside).

    Ratios are to the MobileNetV3 row at the paper's size (224 px, untrained weights) when there
    is one; a trained run's MobileNetV3 row is listed too, with its own ratios.
    """
    keras = [r for r in rows if r.runtime == "keras" and r.threads == threads]
    ref = _reference(rows, MOBILENET, "keras", threads)
    int8 = {(r.backbone, r.image_size, r.weights): r for r in rows if r.runtime == "tflite_int8"}
    base = TABLE10[MOBILENET]
    out = []
    for r in keras:
        paper = TABLE10.get(r.backbone, {})
        lite = int8.get((r.backbone, r.image_size, r.weights))
        lite = lite if lite is not None and lite.ok and lite.threads == threads else None
        epoch = r.train_s_per_epoch
        ref_epoch = ref.train_s_per_epoch if ref else None
        out.append(
            [
                f"{r.model} ({r.image_size} px, {r.weights})",
                f"{paper.get('params_m', '')} / {_num(r.params / 1e6 if r.params else None, 1)}",
                f"{paper.get('depth', '')} / {'' if r.depth is None else r.depth}",
                f"{paper.get('s_per_epoch', '')} / {_num(epoch, 0)}",
                f"{_num(paper['s_per_epoch'] / base['s_per_epoch'], 1) if paper else ''} / "
                f"{_num(epoch / ref_epoch if epoch and ref_epoch else None, 1)}",
                f"{paper.get('inference_s', '')} / {_num(r.latency_median_ms / 1e3, 3)}",
                f"{_num(paper['inference_s'] / base['inference_s'], 1) if paper else ''} / "
                f"{_num(r.mnv3_speedup, 1)}",
                _num(lite.latency_median_ms, 2) if lite else "",
            ]
        )
    header = [
        "model (ours: input, weights)",
        "params M (paper / ours)",
        "depth (paper / ours)",
        f"s/epoch (paper Titan V / ours CPU, {train_images} images)",
        "epoch time ratio to MNV3 (paper / ours)",
        "s per prediction (paper / ours Keras)",
        "prediction time ratio to MNV3 (paper / ours Keras)",
        "ours TFLite int8 ms",
    ]
    return markdown_table(header, out)


def render_markdown(title: str, notes: list[str], rows: list[BenchRow], comparison: str) -> str:
    """The whole report: title, notes, the rows table and the side-by-side with the paper."""
    parts = [
        f"## {title}",
        "",
        *[f"- {n}" for n in notes],
        "",
        markdown_table(HEADER, [_cells(r) for r in rows]),
    ]
    if comparison:
        parts += ["", "### Beside the paper's Table 10", "", comparison]
    return "\n".join(parts) + "\n"


def write_csv(path: Path, rows: list[BenchRow]) -> Path:
    """All columns of all rows (atomically)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    for r in rows:
        writer.writerow(r.to_dict())
    return write_text(path, buf.getvalue())


def write_chart(path: Path, title: str, rows: list[BenchRow], threads: list[int]) -> Path:
    """Bars of median latency per model and runtime (one panel per thread count) and of training
    seconds per epoch, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(dict.fromkeys((r.model, r.image_size, r.weights) for r in rows))
    # "(run name)" on a line of its own: a long run name would run into the next label
    labels = [
        f"{name.split(' +')[0]}\n{size} px\n{weights.replace(' (', chr(10) + '(')}"
        for name, size, weights in models
    ]
    runtimes = [rt for rt in RUNTIMES if any(r.runtime == rt for r in rows)]
    fig, axes = plt.subplots(1, len(threads) + 1, figsize=(6.5 * (len(threads) + 1), 5.5))
    x = np.arange(len(models))
    width = 0.8 / max(len(runtimes), 1)
    for ax, t in zip(axes, threads, strict=False):
        for i, rt in enumerate(runtimes):
            values = []
            for m in models:
                hit = [r for r in rows if (r.model, r.image_size, r.weights) == m]
                hit = [r for r in hit if r.runtime == rt and r.threads == t and r.ok]
                values.append(hit[0].latency_median_ms if hit else np.nan)
            ax.bar(x + (i - (len(runtimes) - 1) / 2) * width, values, width, label=rt)
        ax.set_yscale("log")
        ax.set_title(f"latency per image, batch 1, {t} thread(s)")
        ax.set_ylabel("median ms (log scale)")
        ax.set_xticks(x, labels, fontsize=7)
        ax.legend(fontsize=7)
    ok = [r.latency_median_ms for r in rows if r.ok]
    for ax in axes[:-1] if ok else []:  # one scale for every thread count
        ax.set_ylim(min(ok) / 1.5, max(ok) * 1.5)
    ax = axes[-1]
    for i, t in enumerate(threads):
        values = []
        for m in models:
            hit = [r for r in rows if (r.model, r.image_size, r.weights) == m]
            hit = [r for r in hit if r.runtime == "keras" and r.threads == t]
            values.append(hit[0].train_s_per_epoch if hit and hit[0].train_s_per_epoch else np.nan)
        ax.bar(x + (i - (len(threads) - 1) / 2) * 0.8 / len(threads), values, 0.8 / len(threads),
               label=f"{t} thread(s)")  # fmt: skip
    ax.set_yscale("log")
    ax.set_title("training, s per epoch (Keras, batch 32)")
    ax.set_ylabel("seconds (log scale)")
    ax.set_xticks(x, labels, fontsize=7)
    ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def write_all(stem: Path, document: dict, markdown: str, rows: list[BenchRow], threads: list[int]):
    """``<stem>.md``, ``.csv``, ``.json`` and ``.png``; returns their paths."""

    paths = [
        write_text(suffixed(stem, ".md"), markdown),
        write_csv(suffixed(stem, ".csv"), rows),
        write_json(suffixed(stem, ".json"), {**document, "rows": [r.to_dict() for r in rows]}),
    ]
    paths.append(write_chart(suffixed(stem, ".png"), document["title"], rows, threads))
    return paths
