"""Can the percentages be trusted? Reliability bins and the reliability diagram.

A model is calibrated when, of the images it calls with 80% confidence, 80% are right. The rows
are put into equal-width bins of top-1 confidence (:data:`~mobile_skin.evaluation.stats.ECE_BINS`,
the bins of :func:`~mobile_skin.evaluation.stats.expected_calibration_error`, so the two agree);
per bin, the mean confidence is set against the top-1 accuracy. The reliability diagram draws
accuracy over confidence for one or more sets of probabilities (say the raw softmax and the
temperature-scaled one) beside the diagonal of perfect calibration; points below the diagonal are
overconfident bins, points above it underconfident ones. The expected calibration error (ECE) is
the support-weighted mean gap between a bin's accuracy and its confidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mobile_skin.common.fileio import atomic_path  # noqa: E402
from mobile_skin.evaluation.stats import ECE_BINS  # noqa: E402

#: One set of probabilities to draw: (labels (N,), probs (N, C)).
Curve = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ReliabilityBins:
    """Top-label reliability of a set of probabilities, per equal-width confidence bin.

    Attributes:
        edges: the bin edges, ``bins + 1`` values from 0 to 1.
        count: rows per bin.
        confidence: mean top-1 probability per bin (NaN for an empty bin).
        accuracy: share of rows whose top-1 class is the label, per bin (NaN for an empty bin).
    """

    edges: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def n(self) -> int:
        """Rows in all bins."""
        return int(self.count.sum())

    @property
    def ece(self) -> float:
        """Expected calibration error: the support-weighted mean |accuracy - confidence|."""
        if not self.n:
            return 0.0
        filled = self.count > 0
        gap = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((self.count[filled] * gap).sum() / self.n)

    def to_dict(self) -> dict:
        """JSON-ready: one entry per non-empty bin (lower edge, upper edge, count, means)."""
        return {
            "ece": self.ece,
            "bins": [
                {
                    "low": float(self.edges[i]),
                    "high": float(self.edges[i + 1]),
                    "count": int(self.count[i]),
                    "confidence": float(self.confidence[i]),
                    "accuracy": float(self.accuracy[i]),
                }
                for i in np.flatnonzero(self.count)
            ],
        }


def reliability_bins(
    labels: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS
) -> ReliabilityBins:
    """Bin the rows of ``probs`` (N, C) by top-1 confidence; accuracy against ``labels`` (N,).

    The binning is :func:`~mobile_skin.evaluation.stats.expected_calibration_error`'s (a confidence
    of exactly 1 falls in the last bin), so ``reliability_bins(...).ece`` equals it.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    if not len(probs):
        empty = np.full(bins, np.nan)
        return ReliabilityBins(edges, np.zeros(bins, np.int64), empty, empty.copy())
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    mean_conf = np.full(bins, np.nan)
    mean_acc = np.full(bins, np.nan)
    np.divide(
        np.bincount(which, weights=confidence, minlength=bins), count, mean_conf, where=count > 0
    )
    np.divide(np.bincount(which, weights=correct, minlength=bins), count, mean_acc, where=count > 0)
    return ReliabilityBins(edges, count.astype(np.int64), mean_conf, mean_acc)


def plot_reliability(
    curves: Mapping[str, Curve], path: str | Path, title: str = "Reliability diagram"
) -> Path:
    """Draw the reliability diagram of every curve into the PNG at ``path`` (written atomically).

    Top: accuracy against mean confidence per bin, one line per curve, marker area proportional
    to the bin's share of the rows, the diagonal of perfect calibration, each curve's ECE in the
    legend. Bottom: rows per confidence bin (side-by-side bars, one colour per curve).

    Args:
        curves: name -> (labels, probs), e.g. ``{"raw softmax": ..., "calibrated": ...}``.
        path: the PNG to write.
        title: the figure title.
    """
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.5, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfectly calibrated")
    width = 1.0 / ECE_BINS / max(len(curves), 1)
    for i, (name, (labels, probs)) in enumerate(curves.items()):
        rb = reliability_bins(labels, probs)
        filled = rb.count > 0
        share = rb.count[filled] / max(rb.n, 1)
        (line,) = top.plot(
            rb.confidence[filled],
            rb.accuracy[filled],
            "-",
            lw=1.2,
            label=f"{name} (ECE {rb.ece:.3f})",
        )
        top.scatter(
            rb.confidence[filled],
            rb.accuracy[filled],
            s=20 + 300 * share,
            color=line.get_color(),
            clip_on=False,
        )
        bottom.bar(rb.edges[:-1] + i * width, rb.count, width, align="edge", color=line.get_color())
    top.set(
        xlim=(0, 1),
        ylim=(0, 1),
        ylabel="accuracy (top-1)",
        title=f"{title}\n(below the diagonal: overconfident; marker area: share of rows)",
    )
    top.title.set_fontsize(9)
    top.legend(fontsize=8, loc="upper left")
    bottom.set(xlabel="confidence (top-1 probability)", ylabel="rows")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
