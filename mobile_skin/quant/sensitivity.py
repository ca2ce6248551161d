"""Where int8 agreement is lost: fake-quant bit-width experiments on one of a run's splits.

The QAT graph of :mod:`mobile_skin.quant.qat` (calibrated, not fine-tuned) emulates the int8 TFLite
file: on the 160-px run both flip the same number of test images (53 of 998). Its fake-quant ops
take their bit width from each quantizer, so re-running the test split with some quantizers at
16 bits (about float for this purpose) answers what converting files cannot cheaply (on the test
split by default, or on the validation split, which chooses a float region without the test
images):

- :meth:`Probe.evaluate` with ``activation_bits`` / ``weight_bits``: how far int8 is from what
  wider activations or weights would give (the floor of an int8 format);
- :func:`tensor_sensitivity`: each activation tensor alone at 8 bits, every other at 16: which
  tensors' rounding moves the answers most;
- :func:`most_harmful_wide`: the N most sensitive tensors at 16 bits, the rest at 8: what
  keeping a few tensors in higher precision (a float island in the file) could buy.

Rows report ``flips`` (images whose top-1 differs from the float model's), ``agreement``,
``mean_dp`` (mean over images of the largest probability difference) and balanced accuracy.
``benchmarks/int8_sensitivity.py`` is the command line; results: ``reports/int8_profile.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import tensorflow_model_optimization as tfmot

from mobile_skin.common.errors import UserError
from mobile_skin.contract.encoding import CLASSES
from mobile_skin.contract.spec import IMAGE_INPUT
from mobile_skin.model.metrics import classification_report
from mobile_skin.quant import qat
from mobile_skin.quant.calibration import DEFAULT_SAMPLES
from mobile_skin.quant.qat_describe import feeds_on
from mobile_skin.quant.quantizer_patch import replaced_calls

if TYPE_CHECKING:
    from mobile_skin.data.run import RunData

_q = tfmot.quantization.keras.quantizers
#: Quantizers of activations (ranges from data or fixed) and of weights (ranges from the weights).
ACTIVATION_QUANTIZERS = (_q.MovingAverageQuantizer, _q.AllValuesQuantizer, _q.FixedQuantizer)
WEIGHT_QUANTIZERS = (_q.LastValueQuantizer,)

#: ``bits(kind, key)`` -> bit width; kind "activation" or "weight"; key the quantizer's range
#: variable name (e.g. ``"expanded_conv/Add/output_min:0"``).
BitRule = Callable[[str, str], int]


@contextlib.contextmanager
def bit_widths(rule: BitRule, seen: list[str] | None = None) -> Iterator[None]:
    """While active, every tfmot quantizer call uses the bit width ``rule`` gives it.

    Args:
        rule: bit width per quantizer (2..16, tfmot's fake-quant limits).
        seen: if given, the activation keys met, in call order, are appended (first call only).
    """

    def patched(kind):
        def make(original):
            def call(self, inputs, training, weights, **kwargs):
                key = _key(self, weights)
                if seen is not None and kind == "activation" and key not in seen:
                    seen.append(key)
                self.num_bits = rule(kind, key)
                return original(self, inputs, training, weights, **kwargs)

            return call

        return make

    with replaced_calls(
        {
            **dict.fromkeys(ACTIVATION_QUANTIZERS, patched("activation")),
            **dict.fromkeys(WEIGHT_QUANTIZERS, patched("weight")),
        }
    ):
        yield


def _key(quantizer, weights) -> str:
    if weights and "min_var" in weights:
        return weights["min_var"].name
    return f"fixed/{id(quantizer)}"  # FixedQuantizer: no range variables


@dataclass
class Row:
    """One experiment on the probe's split."""

    name: str
    flips: int
    agreement: float
    mean_dp: float
    balanced_accuracy: float


class Probe:
    """A calibrated fake-quant model and one split's inputs, float probabilities and labels.

    Args:
        qat_model: from :func:`mobile_skin.quant.qat.build_qat_model`, ranges set by
            :func:`mobile_skin.quant.qat.calibrate`.
        batches: the split's inputs (dicts of arrays by input name), in order.
        reference: the float model's probabilities for them, (N, C).
        labels: true class indices, (N,).
    """

    def __init__(
        self, qat_model, batches: Sequence[dict], reference: np.ndarray, labels: np.ndarray
    ):
        self.model, self.batches = qat_model, list(batches)
        self.reference, self.labels = reference, labels
        seen: list[str] = []
        with bit_widths(lambda kind, key: 8, seen):
            self.model(self.batches[0], training=False)
        #: The image input's range key: fixed to [0, 255] at scale 1 (exact in int8), never varied.
        self.image_key = next(
            var.name
            for layer in qat_model.layers
            if type(layer).__name__ == "QuantizeLayer" and feeds_on(layer) == IMAGE_INPUT
            for var in layer.weights
            if var.name.endswith("_min:0")
        )
        #: Activation range keys in graph order, the image input excluded.
        self.activation_keys = [k for k in seen if k != self.image_key]

    def evaluate(
        self,
        name: str,
        activation_bits: int = 8,
        weight_bits: int = 8,
        wide: Sequence[str] = (),
        narrow: Sequence[str] = (),
        wide_bits: int = 16,
    ) -> Row:
        """Run the test split with the given bit widths.

        Args:
            name: the row's name.
            activation_bits, weight_bits: default widths (the image input stays 8: exact).
            wide: activation keys at ``wide_bits`` instead.
            narrow: activation keys at 8 bits instead (applied after ``wide``).
            wide_bits: the width of ``wide`` keys.
        """
        wide_set, narrow_set = set(wide), set(narrow)

        def rule(kind: str, key: str) -> int:
            if kind == "weight":
                return weight_bits
            if key == self.image_key or key in narrow_set:
                return 8
            return wide_bits if key in wide_set else activation_bits

        with bit_widths(rule):
            probs = np.concatenate([self.model(b, training=False).numpy() for b in self.batches])
        flips = int((probs.argmax(-1) != self.reference.argmax(-1)).sum())
        report = classification_report(self.labels, probs, CLASSES)
        return Row(
            name=name,
            flips=flips,
            agreement=1.0 - flips / len(probs),
            mean_dp=float(np.abs(probs - self.reference).max(axis=1).mean()),
            balanced_accuracy=float(report["balanced_accuracy"]),
        )


def bit_sweep(probe: Probe, configs: Sequence[tuple[int, int]]) -> list[Row]:
    """One row per ``(activation_bits, weight_bits)``."""
    return [probe.evaluate(f"activations {a}, weights {w}", a, w) for a, w in configs]


def tensor_sensitivity(
    probe: Probe, progress: Callable[[int, int], None] | None = None
) -> tuple[Row, list[Row]]:
    """Each activation tensor alone at 8 bits (all others 16, weights 8), most harmful first.

    Returns:
        The all-16 baseline row and one row per tensor, named by its key, sorted by ``mean_dp``.
    """
    base = probe.evaluate("activations 16, weights 8", 16, 8)
    rows = []
    for i, key in enumerate(probe.activation_keys):
        rows.append(probe.evaluate(key, 16, 8, narrow=[key]))
        if progress:
            progress(i + 1, len(probe.activation_keys))
    return base, sorted(rows, key=lambda r: -r.mean_dp)


def most_harmful_wide(probe: Probe, ranking: Sequence[str], counts: Sequence[int]) -> list[Row]:
    """The first ``n`` keys of ``ranking`` at 16 bits, the rest at 8, for each ``n``."""
    return [
        probe.evaluate(f"{n} most sensitive at 16 bits", 8, 8, wide=ranking[:n]) for n in counts
    ]


def probe_run(
    run: RunData,
    *,
    split: str = "test",
    calibration_samples: int = DEFAULT_SAMPLES,
    limit: int | None = None,
    log: Callable[[str], None] = print,
) -> Probe:
    """The exporter's calibrated QAT graph of a run's model, over one of its splits.

    Args:
        run: the training run, opened with its data (:func:`mobile_skin.data.run.open_run`).
        split: the split whose images are run: ``test`` or ``val`` (the parity gate's splits).
        calibration_samples: training images (drawn per class) setting the ranges, as the
            int8 export draws them.
        limit: only the split's first ``limit`` images (for quick looks and tests).
        log: where progress lines go.
    """
    from mobile_skin.contract.pipeline import make_dataset
    from mobile_skin.model.network import load_model
    from mobile_skin.model.runtime import KerasRuntime
    from mobile_skin.parity import gate as parity
    from mobile_skin.quant import edge_model
    from mobile_skin.quant.calibration import calibration_frame

    if split not in parity.SPLITS:
        raise UserError(f"--split: unknown split {split!r}; choose from {', '.join(parity.SPLITS)}")
    paths, spec, rows = run.paths, run.spec, run.rows(split)
    model = load_model(paths.best_model)
    data = {split: parity.SplitData.from_frame(split, rows, spec)}
    keras = KerasRuntime(model, paths.best_model)
    references, _ = parity.keras_reference(
        paths.best_model, paths.export_root, keras, data, spec, latency_runs=0, log=log
    )
    reference = references[split]
    if limit is not None:
        rows, reference = rows.head(limit), reference[:limit]
    qat_model, _ = qat.build_qat_model(edge_model.to_edge_model(model))
    calib_rows = calibration_frame(run.rows("train"), calibration_samples, run.cfg.data.seed)
    batches = make_dataset(
        calib_rows, spec.image_size, 32, encoding=spec.encoding, cache=False, labels=False
    )
    # min/max, as TFLite's post-training calibration sets them (what --int8 files compute).
    ranges = len(qat.calibrate(qat_model, batches, method="minmax"))
    log(f"{ranges} ranges calibrated on {len(calib_rows)} images (min/max)")
    split_batches = make_dataset(
        rows, spec.image_size, 100, encoding=spec.encoding, cache=False, labels=False
    )
    inputs = [{k: v.numpy() for k, v in b.items()} for b in split_batches]
    return Probe(qat_model, inputs, reference, rows["label"].to_numpy())


def rows_to_dicts(rows: Sequence[Row]) -> list[dict]:
    return [asdict(r) for r in rows]


def render_markdown(sections: dict[str, list[Row]], header: str) -> str:
    """The rows as Markdown tables, one per section."""
    lines = [header, ""]
    for title, rows in sections.items():
        lines += [
            f"## {title}",
            "",
            "| experiment | flips | agreement | mean max abs dp | balanced acc. |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {r.name} | {r.flips} | {r.agreement:.2%} | {r.mean_dp:.4f} | "
            f"{r.balanced_accuracy:.4f} |"
            for r in rows
        ]
        lines.append("")
    return "\n".join(lines)


def run_report(
    run: RunData,
    out_prefix,
    *,
    sweep: Sequence[tuple[int, int]],
    per_tensor: bool,
    keep_wide: Sequence[int],
    split: str = "test",
    limit: int | None = None,
    calibration_samples: int = DEFAULT_SAMPLES,
    command: str = "python benchmarks/int8_sensitivity.py",
    log: Callable[[str], None] = print,
) -> list:
    """Run the experiments on a run and write ``<out_prefix>.json`` and ``.md``; ``command`` is
    the command line recorded in both (the one that reproduces them).

    Returns:
        The paths written.
    """
    from pathlib import Path

    from tqdm.auto import tqdm

    from mobile_skin.common.fileio import shown_path, suffixed, write_json, write_text
    from mobile_skin.common.machine import describe, headline

    probe = probe_run(
        run, split=split, calibration_samples=calibration_samples, limit=limit, log=log
    )
    n = len(probe.labels)
    log(f"{len(probe.activation_keys)} activation tensors; {n} {split} images")
    sections: dict[str, list[Row]] = {"Bit widths (all activations / all weights)": []}
    for a, w in tqdm(sweep, desc="bit widths", leave=False):
        sections["Bit widths (all activations / all weights)"] += bit_sweep(probe, [(a, w)])
    if per_tensor:
        with tqdm(total=len(probe.activation_keys), desc="per tensor", leave=False) as bar:
            base, ranked = tensor_sensitivity(probe, lambda i, total: bar.update(1))
        title = "One activation tensor at 8 bits, all others at 16 (weights 8), most harmful first"
        sections[title] = [base, *ranked]
        if keep_wide:
            keys = [r.name for r in ranked]
            title = "The N most harmful tensors at 16 bits, all others at 8 (weights 8)"
            sections[title] = most_harmful_wide(probe, keys, keep_wide)
    out = Path(out_prefix)
    machine = describe()
    header = (
        f"# Int8 sensitivity: {run.paths.root.name}, {n} {split} images\n\n"
        f"Fake-quant emulation of the int8 export (calibrated on {calibration_samples} training "
        f"images, not fine-tuned); 'flips' are {split} images whose top-1 differs from the float "
        f"model's. Machine: {headline(machine)}. Command: `{command}`."
    )
    return [
        write_json(
            suffixed(out, ".json"),
            {
                "run": shown_path(run.paths.root),
                "command": command,
                "split": split,
                "images": n,
                "calibration_samples": calibration_samples,
                "machine": machine,
                "sections": {t: rows_to_dicts(rows) for t, rows in sections.items()},
            },
        ),
        write_text(suffixed(out, ".md"), render_markdown(sections, header)),
    ]
