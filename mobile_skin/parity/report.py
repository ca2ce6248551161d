"""``parity.md``: the parity gate's rows as Markdown tables (see :mod:`mobile_skin.parity.gate`).

Four tables, each one line per format and split: the summary (metrics, agreement, decided-row
agreement, balanced-accuracy delta with its bootstrap interval, calibration, status), the flips
counted by Keras' top-2 margin, the per-class sensitivity changes, and decided-row agreement at
other margins; then each format's verdict with every rule it was judged by.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mobile_skin.common import machine as machine_info
from mobile_skin.common.formats import KERAS
from mobile_skin.contract.encoding import CLASSES
from mobile_skin.evaluation.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, margin_bins


def _f(x: float | None, digits: int = 3) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _e(x: float | None) -> str:
    return "" if x is None else f"{x:.1e}"


def _points(x: float | None) -> str:
    return "" if x is None else f"{100 * x:+.1f}"


def _cells(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _table(header: Sequence[str], lines: list[Sequence[str]]) -> list[str]:
    return [_cells(header), "|" + " --- |" * len(header), *(_cells(c) for c in lines), ""]


def pct(x: float) -> str:
    """A share as a percentage, rounded down (99.499% shows as 99.49%, never as the 99.5% bar)."""
    return f"{math.floor(x * 1e4 + 1e-9) / 100:.2f}%"


def render(
    run_name: str,
    rows: list,
    machine: dict,
    sweeps: dict,
    decided_margin: float,
    sweep_margins: Sequence[float],
) -> str:
    """The whole ``parity.md`` for ``rows`` (:class:`mobile_skin.parity.gate.ParityRow`), with the
    gate's decided-row margin and the margins of its sweep."""
    m = machine
    keras = next((r for r in rows if r.format == KERAS), None)
    sizes = ", ".join(f"{name} {c.n}" for name, c in (keras.splits.items() if keras else []))
    classes = list(CLASSES)
    lines = [
        f"## Export parity of `{run_name}` on {machine_info.headline(m)}",
        "",
        f"TensorFlow {m['tensorflow']}, tf-keras {m['tf-keras']}, ai-edge-litert "
        f"{m['ai-edge-litert']}, onnxruntime {m['onnxruntime']}, tf2onnx {m['tf2onnx']}, numpy "
        f"{m['numpy']}; Python {m['python']}, {m['os']}. Images: {sizes or 'n/a'}. Agreement, "
        f"|dp| and deltas are against the Keras row. Decided rows: Keras' top-1 probability "
        f"beats its runner-up by at least {decided_margin:g}. Delta balanced accuracy in points, "
        f"with a paired bootstrap 95% interval ({BOOTSTRAP_RESAMPLES} resamples of the rows, "
        f"seed {BOOTSTRAP_SEED}). ECE: expected calibration error (15 bins). Latency: batch 1, "
        "median of a few runs, indicative only (see benchmarks/latency.py). A format passes only "
        "on both splits. Tolerances: mobile_skin/parity/gate.py.",
        "",
    ]
    lines += summary_table(rows)
    compared = [(r, name, c) for r in rows for name, c in r.splits.items() if c.flips is not None]
    if compared:
        bins = margin_bins()
        lines += ["### Flips by Keras' top-2 margin", ""]
        lines += _table(
            ["format", "split", "flips", *(f"margin {b}" for b in bins)],
            [
                [r.format, name, str(c.flips), *(str(c.flips_by_margin.get(b, 0)) for b in bins)]
                for r, name, c in compared
            ],
        )
        lines += ["### Sensitivity per class (Keras) and its change (points)", ""]
        ref_lines = [
            ["keras", name, *(_f(s, 3) for s in c.sensitivity)]
            for name, c in (keras.splits.items() if keras else [])
        ]
        lines += _table(
            ["format", "split", *classes],
            ref_lines
            + [
                [r.format, name, *(_points(d) for d in c.delta_sensitivity)]
                for r, name, c in compared
            ],
        )
        lost = class_losses(compared, classes)
        if lost:
            lines += [
                "### Where classes lost sensitivity: Keras' top-2 margin of each answer lost",
                "",
                "Rows of the class that Keras answered right and the file wrong (lost) or the "
                "other way round (regained); a margin below "
                f"{decided_margin:g} is an undecided row, a near tie for Keras itself.",
                "",
            ]
            lines += _table(["format", "split", "class", "lost (margins)", "regained"], lost)
    masked = [(r, name, c) for r in rows for name, c in r.splits.items() if c.masked]
    if masked:
        conditions = list(masked[0][2].masked)
        lines += ["### Balanced accuracy with metadata set to unknown", ""]
        lines += _table(
            ["format", "split", *conditions],
            [
                [r.format, name, *(_f(c.masked[k]["balanced_accuracy"]) for k in conditions)]
                for r, name, c in masked
            ],
        )
    if sweeps:
        lines += ["### Decided-row agreement at other margins (decided rows in brackets)", ""]
        lines += _table(
            ["format", "split", *(f">= {mg:g}" for mg in sweep_margins)],
            [
                [fmt, name, *(f"{pct(a)} ({n})" for _m, n, a in points)]
                for fmt, per_split in sweeps.items()
                for name, points in per_split.items()
            ],
        )
    lines += ["### Verdicts", ""]
    lines += [f"- **{r.format}**: {r.status}. {r.reason}" for r in rows]
    return "\n".join(lines) + "\n"


def class_losses(compared: list, classes: list[str]) -> list[list[str]]:
    """Table lines for every (format, split, class) whose sensitivity went down: the Keras
    margins of the rows of that class the file lost, and how many it regained."""
    lines = []
    for r, name, c in compared:
        for k, delta in zip(classes, c.delta_sensitivity, strict=True):
            if delta is None or delta >= 0:
                continue
            rows = [f for f in c.flipped if f["label"] == k]
            lost = [f"{f['margin']:.3f}" for f in rows if f["reference"] == k]
            regained = sum(f["model"] == k for f in rows)
            lines.append([r.format, name, k, ", ".join(lost), str(regained)])
    return lines


def summary_table(rows: list) -> list[str]:
    """The summary table alone: one line per format and split, status on the first."""
    summary = []
    for r in rows:
        for i, (name, c) in enumerate(r.splits.items()):
            ci = c.delta_balanced_accuracy_ci
            delta = (
                ""
                if c.delta_balanced_accuracy is None
                else f"{_points(c.delta_balanced_accuracy)} [{_points(ci[0])}, {_points(ci[1])}]"
            )
            summary.append(
                [
                    r.format if i == 0 else "",
                    f"{r.size_mb:.2f}" if i == 0 else "",
                    name,
                    _f(c.accuracy),
                    _f(c.balanced_accuracy),
                    delta,
                    "" if c.agreement is None else f"{pct(c.agreement)} ({c.n - c.flips}/{c.n})",
                    ""
                    if c.decided_agreement is None
                    else f"{pct(c.decided_agreement)} ({c.decided - c.decided_flips}/{c.decided})",
                    _e(c.max_abs_diff),
                    _f(c.ece),
                    "" if r.latency_ms is None or i else f"{r.latency_ms:.2f}",
                    f"**{r.status}**" if i == 0 else "",
                ]
            )
    return _table(
        [
            "format",
            "MB",
            "split",
            "accuracy",
            "balanced acc.",
            "delta bal. acc. [95% CI]",
            "agreement",
            "decided agreement",
            "max abs dp",
            "ECE",
            "latency (ms)",
            "status",
        ],
        summary,
    )
