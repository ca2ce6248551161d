"""Classification metrics from the confusion matrix, named exactly (see docs/design.md).

- ``accuracy``: overall top-1 accuracy.
- ``balanced_accuracy``: mean per-class recall (the ISIC 2018 metric; scikit-learn's
  ``balanced_accuracy_score``).
- per class, one-vs-rest: sensitivity (recall), specificity, precision, F1 = 2TP / (2TP + FP + FN),
  ``ovr_accuracy`` = (TP + TN) / all, ``sens_spec`` = (sensitivity + specificity) / 2, ROC AUC.
- ``mean_ovr_accuracy`` and ``mean_sens_spec``: the macro means the paper's Table 7 reports
  under the names "accuracy" and "balanced accuracy".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts; rows are true classes, columns predicted classes."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def from_confusion(cm: np.ndarray) -> dict[str, np.ndarray | float]:
    """Per-class arrays and their macro means from a confusion matrix."""
    cm = np.asarray(cm, dtype=np.int64)
    total = cm.sum()
    tp = np.diag(cm).astype(float)
    fn = cm.sum(axis=1) - tp
    fp = cm.sum(axis=0) - tp
    tn = total - tp - fn - fp
    support = cm.sum(axis=1)
    per = {
        "support": support,
        "sensitivity": _div(tp, tp + fn),
        "specificity": _div(tn, tn + fp),
        "precision": _div(tp, tp + fp),
        "f1": _div(2 * tp, 2 * tp + fp + fn),
        "ovr_accuracy": _div(tp + tn, np.full_like(tp, total)),
    }
    per["sens_spec"] = (per["sensitivity"] + per["specificity"]) / 2
    present = support > 0
    out: dict[str, np.ndarray | float] = dict(per)
    out["accuracy"] = float(tp.sum() / total) if total else 0.0
    out["balanced_accuracy"] = float(per["sensitivity"][present].mean()) if present.any() else 0.0
    for key in ("precision", "sensitivity", "specificity", "f1", "ovr_accuracy", "sens_spec"):
        name = {"ovr_accuracy": "mean_ovr_accuracy", "sens_spec": "mean_sens_spec"}.get(
            key, f"macro_{key}"
        )
        out[name] = float(per[key].mean())
    return out


def roc_auc_per_class(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC per class; NaN for a class absent from (or the whole of) ``y_true``."""
    y_true = np.asarray(y_true)
    aucs = np.full(probs.shape[1], np.nan)
    for c in range(probs.shape[1]):
        positive = y_true == c
        if 0 < positive.sum() < len(y_true):
            aucs[c] = roc_auc_score(positive, probs[:, c])
    return aucs


def classification_report(
    y_true: Sequence[int] | np.ndarray, probs: np.ndarray, classes: Sequence[str]
) -> dict:
    """All metrics as a JSON-ready dict: scalars plus ``per_class`` rows and ``confusion``."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, len(classes))
    m = from_confusion(cm)
    aucs = roc_auc_per_class(y_true, probs)
    per_class = [
        {
            "class": c,
            "support": int(m["support"][i]),
            "precision": float(m["precision"][i]),
            "sensitivity": float(m["sensitivity"][i]),
            "specificity": float(m["specificity"][i]),
            "f1": float(m["f1"][i]),
            "ovr_accuracy": float(m["ovr_accuracy"][i]),
            "sens_spec": float(m["sens_spec"][i]),
            "auc": None if np.isnan(aucs[i]) else float(aucs[i]),
        }
        for i, c in enumerate(classes)
    ]
    scalars = {k: v for k, v in m.items() if isinstance(v, float)}
    return {
        "n": int(len(y_true)),
        **scalars,
        "macro_auc": float(np.nanmean(aucs)) if np.isfinite(aucs).any() else None,
        "per_class": per_class,
        "confusion": cm.tolist(),
        "classes": list(classes),
    }
