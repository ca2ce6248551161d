"""The parity gate: an exported model must give the Keras model's answers, on two splits.

After every export the Keras model and the exported file both run on the run's whole test split
**and** its validation split (the same decoded pixels,
:func:`mobile_skin.model.runtime.frame_inputs`); one row per format goes into
``<run>/export/parity.json`` and ``parity.md`` (replacing that format's previous row), next to a
``keras`` reference row. A format passes only when it passes on
both splits: a method tuned on one split must not pass by luck.

:data:`TOLERANCES` is the one table of limits; each rule, and why:

- float formats (TFLite fp32, ONNX fp32): max |p - p_keras| <= 1e-4 over every row and class.
  They compute the same function in the same precision, so any larger difference is a bug.
- fp16 weights: decided-row agreement >= 99.9%. Float16 weights move probabilities by about
  1e-3, so they may flip a row only where Keras itself is split between two classes.
- 8-bit formats (TFLite int8, dynamic-range; ONNX int8):

  * decided-row agreement >= 99%: at most one decided answer in a hundred may change;
  * |delta balanced accuracy| <= 1.5 points, either direction (the gate asks for the same
    answers, not better ones), and the lower end of its paired-bootstrap 95% interval above
    -3 points (the export is not plausibly much worse than Keras);
  * no class's sensitivity more than 5 points below Keras': a drop in melanoma sensitivity
    matters more than the same drop spread over nv, which balanced accuracy alone would hide.

  Dynamic-range belongs here: its weights are int8 and its kernels quantize activations to 8
  bits on the fly, so its error is 8-bit sized.

**Decided rows.** A row is decided when Keras' top-1 probability beats its runner-up by at least
:data:`DECIDED_MARGIN` (0.05). A flip below that margin is a numerical tie: Keras' own answer there
turns on a few hundredths of probability, less than the per-row error any 8-bit format has, and no
reader of "mel 0.46, nv 0.43" takes it as a decision. Raw agreement stays in every table and in the
JSON, with the flips counted by Keras margin and the agreement at other margins
(``parity.md``), so a reader sees whether the flips are ties or real changes of answer.

Every format, and Keras, is also scored with the metadata set to unknown field by field
(:mod:`mobile_skin.evaluation.robustness`): a quantized model must not be more fragile than the
float one. That table is shown, not judged.

Latency is indicative only: batch 1, the median of a few runs after a warm-up, on whatever else the
machine is doing; ``benchmarks/latency.py`` is the measurement.

The Keras predictions are cached per run and split in ``export/keras_<split>_probs.npy`` (with
a JSON key: best.keras' mtime and size, the split's image ids and the image size), so exporting
several formats runs Keras once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mobile_skin.common.fileio import atomic_path, write_json, write_text
from mobile_skin.common.formats import FORMATS, KERAS
from mobile_skin.common.machine import describe
from mobile_skin.contract.spec import ModelSpec
from mobile_skin.evaluation.robustness import condition_metrics, condition_probs
from mobile_skin.evaluation.stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    SplitComparison,
    compare,
    margin_bins,
    margin_sweep,
)
from mobile_skin.model.runtime import Runtime, frame_inputs, predict_inputs
from mobile_skin.parity.report import pct, render

PASS, FAIL, REFERENCE, UNVERIFIED = "PASS", "FAIL", "REFERENCE", "UNVERIFIED"
PARITY_JSON, PARITY_MD = "parity.json", "parity.md"
CACHE_NPY, CACHE_KEY = "keras_{split}_probs.npy", "keras_{split}_probs.json"
LATENCY_RUNS, LATENCY_WARMUP = 10, 2
#: The splits every format is judged on, in table order.
SPLITS: tuple[str, ...] = ("test", "val")
#: Keras top-1 minus top-2 probability at or above which a row counts as decided.
DECIDED_MARGIN = 0.05
#: Margins shown in parity.md's decided-agreement sweep.
SWEEP_MARGINS: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)


@dataclass(frozen=True)
class Tolerance:
    """Limits one format must meet against Keras on every split (None = not checked).

    Attributes:
        max_abs_diff: largest allowed |p - p_keras| over all rows and classes.
        min_decided_agreement: smallest allowed share of decided rows (Keras margin >=
            :data:`DECIDED_MARGIN`) with Keras' top-1 class.
        max_balanced_accuracy_delta: largest allowed |balanced accuracy - Keras'|, as a fraction
            (0.015 = 1.5 points).
        min_delta_ci_low: the lower end of the paired-bootstrap 95% interval of the balanced
            accuracy delta must be above this (-0.03 = -3 points).
        max_sensitivity_drop: largest allowed drop of any class's sensitivity below Keras'
            (0.05 = 5 points).
    """

    max_abs_diff: float | None = None
    min_decided_agreement: float | None = None
    max_balanced_accuracy_delta: float | None = None
    min_delta_ci_low: float | None = None
    max_sensitivity_drop: float | None = None


FLOAT = Tolerance(max_abs_diff=1e-4)
FP16 = Tolerance(min_decided_agreement=0.999)
EIGHT_BIT = Tolerance(
    min_decided_agreement=0.99,
    max_balanced_accuracy_delta=0.015,
    min_delta_ci_low=-0.03,
    max_sensitivity_drop=0.05,
)

#: The rules by name, as :data:`mobile_skin.common.formats.FORMATS` assigns them.
RULES: dict[str, Tolerance] = {"float": FLOAT, "fp16": FP16, "8bit": EIGHT_BIT}
#: THE tolerance table, one entry per export format (its keys are the format names).
TOLERANCES: dict[str, Tolerance] = {name: RULES[f.rule] for name, f in FORMATS.items()}
ROW_ORDER = (KERAS, *TOLERANCES)


@dataclass
class ParityRow:
    """One format's result (``keras`` is the reference row), with one comparison per split."""

    format: str
    file: str
    size_bytes: int
    size_mb: float
    splits: dict[str, SplitComparison] = field(default_factory=dict)
    latency_ms: float | None = None
    threads: int | None = None
    status: str = UNVERIFIED
    reason: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["splits"] = {k: v.to_dict() for k, v in self.splits.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ParityRow:
        return cls(
            format=d["format"],
            file=d["file"],
            size_bytes=int(d["size_bytes"]),
            size_mb=float(d["size_mb"]),
            splits={k: SplitComparison.from_dict(v) for k, v in d.get("splits", {}).items()},
            latency_ms=d.get("latency_ms"),
            threads=d.get("threads"),
            status=d.get("status", UNVERIFIED),
            reason=d.get("reason", ""),
        )


@dataclass
class SplitData:
    """One split's rows, decoded once and fed to every model.

    Attributes:
        name: ``test`` or ``val``.
        ids: image ids, in row order.
        labels: class indices.
        inputs: named input arrays (:func:`mobile_skin.model.runtime.frame_inputs`).
    """

    name: str
    ids: list[str]
    labels: np.ndarray
    inputs: dict[str, np.ndarray]

    @classmethod
    def from_frame(cls, name: str, rows: pd.DataFrame, spec: ModelSpec) -> SplitData:
        return cls(
            name,
            rows["image_id"].astype(str).tolist(),
            rows["label"].to_numpy(),
            frame_inputs(rows, spec),
        )

    def first_sample(self) -> dict[str, np.ndarray]:
        """The first row as batch-1 float32 inputs (for latency)."""
        return {k: v[:1].astype(np.float32) for k, v in self.inputs.items()}


def file_row(fmt: str, path: Path) -> ParityRow:
    """A row with only the file facts filled in."""
    size = path.stat().st_size
    return ParityRow(fmt, path.name, size, round(size / 1e6, 3))


@dataclass(frozen=True)
class Check:
    """One rule on one split: whether it held, its short name and its full text."""

    ok: bool
    rule: str  # short: "max |dp|", "decided", "bal. acc.", "interval" or the worst class's name
    text: str


def _checks(tol: Tolerance, c: SplitComparison, classes) -> list[Check]:
    """Each rule of ``tol`` on one split's comparison."""
    s = c.split
    checks: list[Check] = []
    if c.max_abs_diff is None or not np.isfinite(c.max_abs_diff):
        checks.append(Check(False, "max |dp|", f"{s}: non-finite probabilities"))
    elif tol.max_abs_diff is not None:
        ok = c.max_abs_diff <= tol.max_abs_diff
        op = "<=" if ok else ">"
        text = f"{s}: max |dp| {c.max_abs_diff:.1e} {op} {tol.max_abs_diff:.0e}"
        checks.append(Check(ok, "max |dp|", text))
    if tol.min_decided_agreement is not None:
        ok = c.decided_agreement >= tol.min_decided_agreement
        agree = c.decided - c.decided_flips
        text = (
            f"{s}: decided agreement {pct(c.decided_agreement)} ({agree}/{c.decided}) "
            f"{'>=' if ok else '<'} {pct(tol.min_decided_agreement)}"
        )
        checks.append(Check(ok, "decided", text))
    if tol.max_balanced_accuracy_delta is not None:
        delta = c.delta_balanced_accuracy
        ok = abs(delta) <= tol.max_balanced_accuracy_delta
        text = (
            f"{s}: balanced accuracy {100 * delta:+.2f} points "
            f"({'within' if ok else 'beyond'} {100 * tol.max_balanced_accuracy_delta:.1f})"
        )
        checks.append(Check(ok, "bal. acc.", text))
    if tol.min_delta_ci_low is not None:
        low = c.delta_balanced_accuracy_ci[0]
        ok = low > tol.min_delta_ci_low
        text = (
            f"{s}: its 95% interval starts at {100 * low:+.2f} "
            f"({'above' if ok else 'not above'} {100 * tol.min_delta_ci_low:+.0f})"
        )
        checks.append(Check(ok, "interval", text))
    if tol.max_sensitivity_drop is not None:
        drops = [
            (d, name) for d, name in zip(c.delta_sensitivity, classes, strict=True) if d is not None
        ]
        worst, name = min(drops, default=(0.0, "-"))
        ok = worst >= -tol.max_sensitivity_drop - 1e-12
        text = (
            f"{s}: worst sensitivity change {name} {100 * worst:+.1f} points "
            f"({'within' if ok else 'beyond'} -{100 * tol.max_sensitivity_drop:.0f})"
        )
        checks.append(Check(ok, name, text))
    return checks


def broken_rules(tol: Tolerance, c: SplitComparison, classes) -> list[Check]:
    """The rules of ``tol`` that one split's comparison breaks (empty: it passes on that split).
    ``c`` needs only the fields the rules read, so stored figures can be judged again."""
    return [check for check in _checks(tol, c, classes) if not check.ok]


def judge(row: ParityRow, classes) -> ParityRow:
    """Set ``row.status`` and ``row.reason`` from :data:`TOLERANCES`, over every split."""
    tol = TOLERANCES[row.format]
    checks = [check for c in row.splits.values() for check in _checks(tol, c, classes)]
    if not row.splits:
        checks.append(Check(False, "splits", "no split was compared"))
    failed = [check.text for check in checks if not check.ok]
    row.status = FAIL if failed else PASS
    row.reason = "; ".join(failed + [check.text for check in checks if check.ok])
    return row


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


def _cache_key(model_file: Path, split: SplitData, spec: ModelSpec) -> dict:
    model_stat = model_file.stat()
    return {
        "model_mtime_ns": model_stat.st_mtime_ns,
        "model_size": model_stat.st_size,
        "image_size": spec.image_size,
        "ids_sha1": hashlib.sha1("\n".join(split.ids).encode()).hexdigest(),
    }


def _cached(out: Path, key: dict, n: int, spec: ModelSpec) -> tuple[np.ndarray, dict] | None:
    """The cached probabilities and comparison of one split, if the cache is current."""
    try:
        cached = json.loads((out / CACHE_KEY.format(split=key["split"])).read_text())
        if cached["key"] == key:
            probs = np.load(out / CACHE_NPY.format(split=key["split"]))
            if probs.shape == (n, len(spec.classes)):
                return probs, cached["comparison"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def keras_reference(
    model_file: Path,
    out_dir: Path,
    runtime: Runtime,
    data: Mapping[str, SplitData],
    spec: ModelSpec,
    *,
    latency_runs: int = LATENCY_RUNS,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, np.ndarray], ParityRow]:
    """Keras' probabilities on each split and its reference row: ``runtime`` runs ``model_file``
    on ``data``; each split's probabilities are cached apart in ``out_dir`` (a run's
    ``export/``), keyed by the model file, the image size and the split's rows."""
    probs, row = {}, file_row(KERAS, model_file)
    for name, d in data.items():
        key = {"split": name, **_cache_key(model_file, d, spec)}
        hit = _cached(out_dir, key, len(d.ids), spec)
        if hit is not None:
            log(f"Keras {name} predictions: cached in {out_dir / CACHE_NPY.format(split=name)}")
            probs[name], row.splits[name] = hit[0], SplitComparison.from_dict(hit[1])
            continue
        log(f"Keras predictions: running {model_file.name} on {len(d.ids)} {name} images")
        probs[name] = predict_inputs(runtime, d.inputs, len(spec.classes), progress=f"keras {name}")
        row.splits[name] = compare(name, d.labels, probs[name], spec.classes, None, DECIDED_MARGIN)
        row.splits[name].masked = _masked(runtime, d, spec, probs[name])
        with atomic_path(out_dir / CACHE_NPY.format(split=name)) as tmp, open(tmp, "wb") as f:
            np.save(f, probs[name])
        write_json(
            out_dir / CACHE_KEY.format(split=name),
            {"key": key, "comparison": row.splits[name].to_dict()},
        )
    first = next(iter(data.values()))
    row.latency_ms = measure_latency(runtime, first.first_sample(), latency_runs)
    row.status, row.reason = REFERENCE, "the trained model every format is compared with"
    return probs, row


def verify(
    fmt: str,
    model_path: Path,
    runtime: Runtime,
    data: Mapping[str, SplitData],
    spec: ModelSpec,
    reference: Mapping[str, np.ndarray],
    *,
    latency_runs: int = LATENCY_RUNS,
) -> tuple[ParityRow, dict[str, np.ndarray]]:
    """Run the exported model on every split and judge it against the Keras reference.

    Returns:
        The judged row and the model's probabilities per split.
    """
    row = file_row(fmt, model_path)
    probs = {}
    for name, d in data.items():
        probs[name] = predict_inputs(runtime, d.inputs, len(spec.classes), progress=f"{fmt} {name}")
        row.splits[name] = compare(
            name,
            d.labels,
            probs[name],
            spec.classes,
            reference[name],
            DECIDED_MARGIN,
            ids=d.ids,
            resamples=BOOTSTRAP_RESAMPLES,
            seed=BOOTSTRAP_SEED,
        )
        row.splits[name].masked = _masked(runtime, d, spec, probs[name])
    row.latency_ms = measure_latency(
        runtime, next(iter(data.values())).first_sample(), latency_runs
    )
    row.threads = runtime.threads
    return judge(row, spec.classes), probs


def _masked(runtime: Runtime, d: SplitData, spec: ModelSpec, as_given: np.ndarray) -> dict | None:
    """Balanced accuracy, accuracy and recall with metadata fields set to unknown
    (:mod:`mobile_skin.evaluation.robustness`); None for an image-only model."""
    if spec.encoding is None:
        return None
    k = len(spec.classes)
    by_condition = condition_probs(
        lambda x: predict_inputs(runtime, x, k), d.inputs, spec.encoding, as_given
    )
    return condition_metrics(d.labels, by_condition, spec.classes)


def sweep(
    probs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]
) -> dict[str, list[list[float]]]:
    """Decided rows and decided-row agreement at each of :data:`SWEEP_MARGINS`, per split."""
    return {
        name: [list(t) for t in margin_sweep(p, reference[name], SWEEP_MARGINS)]
        for name, p in probs.items()
    }


def record(out_dir: Path, run: str, *rows: ParityRow, sweeps: dict | None = None) -> Path:
    """Put ``rows`` into ``out_dir/parity.json`` and ``parity.md``, replacing same-format rows.

    Args:
        out_dir: where the tables go (a run's ``export/``).
        run: the run as the tables name it (``runs/NAME``; the Markdown title takes ``NAME``).
        *rows: judged rows (and the reference row).
        sweeps: format -> :func:`sweep` result, kept beside the rows.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".parity.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = _load(out_dir / PARITY_JSON)
        by_format = {r.format: r for r in old["rows"]}
        by_format.update({r.format: r for r in rows})
        all_sweeps = {k: v for k, v in old["sweeps"].items() if k in by_format}
        all_sweeps.update(sweeps or {})
        ordered = sorted(
            by_format.values(),
            key=lambda r: ROW_ORDER.index(r.format) if r.format in ROW_ORDER else 99,
        )
        machine = describe()
        write_json(
            out_dir / PARITY_JSON,
            {
                "run": run,
                "machine": machine,
                "decided_margin": DECIDED_MARGIN,
                "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED},
                "tolerances": {k: asdict(v) for k, v in TOLERANCES.items()},
                "rows": [r.to_dict() for r in ordered],
                "sweeps": all_sweeps,
            },
        )
        write_text(
            out_dir / PARITY_MD, render_markdown(Path(run).name, ordered, machine, all_sweeps)
        )
    return out_dir / PARITY_JSON


def _load(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
        return {
            "rows": [ParityRow.from_dict(r) for r in doc["rows"]],
            "sweeps": dict(doc.get("sweeps", {})),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {"rows": [], "sweeps": {}}


def load_rows(path: Path) -> list[ParityRow]:
    """The rows of a ``parity.json`` (empty if absent or unreadable, or of an older layout)."""
    return _load(path)["rows"]


def render_markdown(
    run_name: str,
    rows: list[ParityRow],
    machine: dict | None = None,
    sweeps: dict | None = None,
) -> str:
    """The parity tables as Markdown, titled with the machine and the runtime versions."""
    return render(
        run_name, rows, machine or describe(), sweeps or {}, DECIDED_MARGIN, SWEEP_MARGINS
    )


def summary(row: ParityRow) -> dict:
    """The verdict an exported file carries in its spec: status, rules and per-split figures."""
    keys = ("n", "agreement", "decided_agreement", "decided", "delta_balanced_accuracy",
            "max_abs_diff")  # fmt: skip
    return {
        "status": row.status,
        "reason": row.reason,
        "decided_margin": DECIDED_MARGIN,
        "splits": {name: {k: getattr(c, k) for k in keys} for name, c in row.splits.items()},
    }


def exit_status(row: ParityRow | None) -> int:
    """0 when the export passed (or was not verified), 1 when it failed the gate."""
    return 1 if row is not None and row.status == FAIL else 0


__all__ = [
    "DECIDED_MARGIN",
    "EIGHT_BIT",
    "FLOAT",
    "FP16",
    "SPLITS",
    "TOLERANCES",
    "ParityRow",
    "SplitData",
    "Tolerance",
    "exit_status",
    "judge",
    "keras_reference",
    "load_rows",
    "margin_bins",
    "record",
    "verify",
]
