"""The parity gate: an exported model must give the Keras model's answers on the test split.

After every export the Keras model and the exported file both run on the run's whole test split
(through :func:`mobile_skin.runtime.predict_frame`, so both see identical pixels), and one row per
format goes into ``<run>/export/parity.json`` and ``parity.md`` (replacing that format's previous
row), next to a ``keras`` reference row.

:data:`TOLERANCES` is the one table of limits:

- float formats (TFLite fp32, ONNX fp32): max |p - p_keras| <= 1e-4 over every row and class;
- fp16 weights: top-1 agreement with Keras >= 99.5%;
- 8-bit formats (TFLite int8, int8 QAT, dynamic-range; ONNX int8): agreement >= 98% and
  balanced accuracy within 1.5 points of Keras' (either direction: the gate asks for the same
  answers, not better ones). Dynamic-range belongs here: its weights are int8 and its kernels
  quantize activations to 8 bits on the fly, so its error is 8-bit sized; the fp16 bar would fail
  it on rounding that is inherent to 8 bits, while the float bar would be meaningless.

Latency is indicative only: batch 1, the median of a few runs after a warm-up, on whatever else the
machine is doing; ``benchmarks/latency.py`` is the measurement.

The Keras predictions are cached per run in ``export/keras_test_probs.npy`` (with a JSON key:
best.keras' mtime and size, the test image ids and the image size), so exporting several formats
runs Keras once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from mobile_skin.fileio import atomic_path, write_json, write_text
from mobile_skin.machine import describe
from mobile_skin.metrics import classification_report
from mobile_skin.run import RunPaths
from mobile_skin.runtime import Runtime, predict_frame
from mobile_skin.spec import ModelSpec

PASS, FAIL, REFERENCE, UNVERIFIED = "PASS", "FAIL", "REFERENCE", "UNVERIFIED"
KERAS = "keras"
PARITY_JSON, PARITY_MD = "parity.json", "parity.md"
CACHE_NPY, CACHE_KEY = "keras_test_probs.npy", "keras_test_probs.json"
LATENCY_RUNS, LATENCY_WARMUP = 10, 2


@dataclass(frozen=True)
class Tolerance:
    """Limits one format must meet against Keras on the test split (None = not checked).

    Attributes:
        max_abs_diff: largest allowed |p - p_keras| over all rows and classes.
        min_agreement: smallest allowed share of rows with Keras' top-1 class.
        max_balanced_accuracy_delta: largest allowed |balanced accuracy - Keras'|, as a fraction
            (0.015 = 1.5 points).
    """

    max_abs_diff: float | None = None
    min_agreement: float | None = None
    max_balanced_accuracy_delta: float | None = None


FLOAT = Tolerance(max_abs_diff=1e-4)
FP16 = Tolerance(min_agreement=0.995)
EIGHT_BIT = Tolerance(min_agreement=0.98, max_balanced_accuracy_delta=0.015)

#: THE tolerance table, one entry per export format (its keys are the format names).
TOLERANCES: dict[str, Tolerance] = {
    "tflite_fp32": FLOAT,
    "tflite_fp16": FP16,
    "tflite_dynamic": EIGHT_BIT,
    "tflite_int8": EIGHT_BIT,
    "tflite_int8_qat": EIGHT_BIT,
    "onnx_fp32": FLOAT,
    "onnx_int8": EIGHT_BIT,
}
ROW_ORDER = (KERAS, *TOLERANCES)


@dataclass
class ParityRow:
    """One format's result on the test split (``keras`` is the reference row)."""

    format: str
    file: str
    size_bytes: int
    size_mb: float
    n: int
    accuracy: float | None = None
    balanced_accuracy: float | None = None
    macro_f1: float | None = None
    macro_auc: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    latency_ms: float | None = None
    threads: int | None = None
    status: str = UNVERIFIED
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ParityRow:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def file_row(fmt: str, path: Path, n: int = 0) -> ParityRow:
    """A row with only the file facts filled in."""
    size = path.stat().st_size
    return ParityRow(fmt, path.name, size, round(size / 1e6, 3), n)


def score(
    row: ParityRow,
    labels: np.ndarray,
    probs: np.ndarray,
    spec: ModelSpec,
    reference: np.ndarray | None = None,
) -> ParityRow:
    """Fill ``row``'s metrics from ``probs``, and agreement/differences against ``reference``."""
    finite = bool(np.isfinite(probs).all())
    report = classification_report(labels, np.nan_to_num(probs), spec.classes)
    row.n = int(len(labels))
    row.accuracy, row.balanced_accuracy = report["accuracy"], report["balanced_accuracy"]
    row.macro_f1, row.macro_auc = report["macro_f1"], report["macro_auc"]
    if reference is not None:
        diff = np.abs(probs.astype(np.float64) - reference) if finite else np.array([np.inf])
        row.agreement = (
            float(np.mean(probs.argmax(1) == reference.argmax(1))) if len(probs) else 0.0
        )
        row.max_abs_diff, row.mean_abs_diff = float(diff.max()), float(diff.mean())
    return row


def judge(row: ParityRow, reference: ParityRow) -> ParityRow:
    """Set ``row.status`` and ``row.reason`` from :data:`TOLERANCES`."""
    tol = TOLERANCES[row.format]
    checks: list[tuple[bool, str]] = []
    if row.max_abs_diff is None or not np.isfinite(row.max_abs_diff):
        checks.append((False, "non-finite probabilities"))
    if tol.max_abs_diff is not None:
        ok = row.max_abs_diff <= tol.max_abs_diff
        checks.append(
            (ok, f"max |dp| {row.max_abs_diff:.1e} {'<=' if ok else '>'} {tol.max_abs_diff:.0e}")
        )
    if tol.min_agreement is not None:
        ok = row.agreement >= tol.min_agreement
        agree = round(row.agreement * row.n)
        checks.append(
            (
                ok,
                f"agreement {_pct(row.agreement)} ({agree}/{row.n}) "
                f"{'>=' if ok else '<'} {_pct(tol.min_agreement)}",
            )
        )
    if tol.max_balanced_accuracy_delta is not None:
        delta = row.balanced_accuracy - reference.balanced_accuracy
        ok = abs(delta) <= tol.max_balanced_accuracy_delta
        checks.append(
            (
                ok,
                f"balanced accuracy {100 * delta:+.2f} points "
                f"({'within' if ok else 'beyond'} {100 * tol.max_balanced_accuracy_delta:.1f})",
            )
        )
    failed = [text for ok, text in checks if not ok]
    row.status = FAIL if failed else PASS
    row.reason = "; ".join(failed + [text for ok, text in checks if ok])
    return row


def first_sample(rows: pd.DataFrame, spec: ModelSpec) -> dict[str, np.ndarray]:
    """The first test row as batch-1 inputs (for latency)."""
    from mobile_skin.pipeline import make_dataset

    ds = make_dataset(
        rows.iloc[:1], spec.image_size, 1, encoding=spec.encoding, labels=False, cache=False
    )
    return {k: v.numpy() for k, v in next(iter(ds)).items()}


def measure_latency(
    runtime: Runtime,
    sample: dict[str, np.ndarray],
    runs: int = LATENCY_RUNS,
    warmup: int = LATENCY_WARMUP,
) -> float | None:
    """Median wall time in ms of ``runtime.predict(sample)`` over ``runs`` runs (indicative)."""
    if runs <= 0:
        return None
    for _ in range(warmup):
        runtime.predict(sample)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runtime.predict(sample)
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1e3, 3)


def keras_reference(
    paths: RunPaths,
    runtime: Runtime,
    rows: pd.DataFrame,
    spec: ModelSpec,
    *,
    latency_runs: int = LATENCY_RUNS,
    log: Callable[[str], None] = print,
) -> tuple[np.ndarray, ParityRow]:
    """Keras' test-split probabilities and reference row, from the cache when it is current."""
    out = paths.root / "export"
    model_stat = paths.best_model.stat()
    ids = "\n".join(rows["image_id"].astype(str))
    key = {
        "model_mtime_ns": model_stat.st_mtime_ns,
        "model_size": model_stat.st_size,
        "image_size": spec.image_size,
        "test_ids_sha1": hashlib.sha1(ids.encode()).hexdigest(),
    }
    try:
        cached = json.loads((out / CACHE_KEY).read_text())
        if cached["key"] == key:
            probs = np.load(out / CACHE_NPY)
            if probs.shape == (len(rows), len(spec.classes)):
                log(f"Keras test predictions: cached in {out / CACHE_NPY}")
                return probs, ParityRow.from_dict(cached["row"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    log(f"Keras test predictions: running {paths.best_model.name} on {len(rows)} test images")
    probs = predict_frame(runtime, rows, spec, progress="keras")
    row = score(file_row(KERAS, paths.best_model), rows["label"].to_numpy(), probs, spec)
    row.latency_ms = measure_latency(runtime, first_sample(rows, spec), latency_runs)
    row.status, row.reason = REFERENCE, "the trained model every format is compared with"
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / CACHE_NPY) as tmp:
        np.save(tmp, probs)
    write_json(out / CACHE_KEY, {"key": key, "row": row.to_dict()})
    return probs, row


def verify(
    fmt: str,
    model_path: Path,
    runtime: Runtime,
    rows: pd.DataFrame,
    spec: ModelSpec,
    reference: np.ndarray,
    reference_row: ParityRow,
    *,
    latency_runs: int = LATENCY_RUNS,
) -> ParityRow:
    """Run the exported model on the test rows and judge it against the Keras reference."""
    probs = predict_frame(runtime, rows, spec, progress=fmt)
    row = score(file_row(fmt, model_path), rows["label"].to_numpy(), probs, spec, reference)
    row.latency_ms = measure_latency(runtime, first_sample(rows, spec), latency_runs)
    row.threads = runtime.threads
    return judge(row, reference_row)


def record(paths: RunPaths, *rows: ParityRow) -> Path:
    """Put ``rows`` into ``export/parity.json`` and ``parity.md``, replacing same-format rows."""
    out = paths.root / "export"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".parity.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        by_format = {r.format: r for r in load_rows(out / PARITY_JSON)}
        by_format.update({r.format: r for r in rows})
        ordered = sorted(
            by_format.values(),
            key=lambda r: ROW_ORDER.index(r.format) if r.format in ROW_ORDER else 99,
        )
        machine = describe()
        write_json(
            out / PARITY_JSON,
            {
                "run": str(paths.root),
                "machine": machine,
                "tolerances": {k: asdict(v) for k, v in TOLERANCES.items()},
                "rows": [r.to_dict() for r in ordered],
            },
        )
        write_text(out / PARITY_MD, render_markdown(paths, ordered, machine))
    return out / PARITY_JSON


def load_rows(path: Path) -> list[ParityRow]:
    """The rows of a ``parity.json`` (empty if absent or unreadable)."""
    try:
        return [ParityRow.from_dict(r) for r in json.loads(Path(path).read_text())["rows"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def render_markdown(paths: RunPaths, rows: list[ParityRow], machine: dict | None = None) -> str:
    """The parity table as Markdown, titled with the machine and the runtime versions."""
    m = machine or describe()
    n = max((r.n for r in rows), default=0)
    lines = [
        f"## Export parity of `{paths.root.name}` on {m['cpu']} ({m['cores']} cores)",
        "",
        f"TensorFlow {m['tensorflow']}, tf-keras {m['tf-keras']}, ai-edge-litert "
        f"{m['ai-edge-litert']}, onnxruntime {m['onnxruntime']}, tf2onnx {m['tf2onnx']}, numpy "
        f"{m['numpy']}; Python {m['python']}, {m['os']}. Test split: {n} images. Agreement and "
        "|dp| are against the Keras row. Latency: batch 1, median of a few runs, indicative only "
        "(see benchmarks/latency.py). Tolerances: mobile_skin/parity.py.",
        "",
        "| format | file | size (MB) | accuracy | balanced acc. | macro F1 | macro AUC | agreement "
        "| max abs dp | mean abs dp | latency (ms) | status | reason |",
        "|" + " --- |" * 13,
    ]
    for r in rows:
        cells = [
            r.format,
            f"`{r.file}`",
            f"{r.size_mb:.2f}",
            _f(r.accuracy),
            _f(r.balanced_accuracy),
            _f(r.macro_f1),
            _f(r.macro_auc),
            "" if r.agreement is None else _pct(r.agreement),
            _e(r.max_abs_diff),
            _e(r.mean_abs_diff),
            "" if r.latency_ms is None else f"{r.latency_ms:.2f}",
            f"**{r.status}**",
            r.reason,
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _pct(x: float) -> str:
    """A share as a percentage, rounded down (99.499% shows as 99.49%, never as the 99.5% bar)."""
    return f"{math.floor(x * 1e4 + 1e-9) / 100:.2f}%"


def _f(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def _e(x: float | None) -> str:
    return "" if x is None else f"{x:.1e}"


def exit_status(row: ParityRow | None) -> int:
    """0 when the export passed (or was not verified), 1 when it failed the gate."""
    return 1 if row is not None and row.status == FAIL else 0
