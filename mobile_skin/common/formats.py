"""The export formats: one row each, and every consumer reads this table.

A format's name is its ``<run>/export/<name>/`` directory and its parity and benchmark row. Each
row says which runtime runs the file (and so its suffix), how it is converted, which rule of the
parity gate judges it (:data:`mobile_skin.parity.gate.TOLERANCES` is built from this column), the
export command's flag, whether the int8 head stays float, whether int8 comes from
quantization-aware training, and whether the Table 10 benchmark (``benchmarks/latency.py``) has
it as a column. Adding a format is one row here plus, for a new conversion mode, its converter
(:mod:`mobile_skin.export.convert_tflite`, :mod:`mobile_skin.export.convert_onnx`).

No TensorFlow here: ``--help`` texts and the benchmark's argument checks read the table.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FORMATS", "KERAS", "ExportFormat", "benchmarked", "file_kind", "formats_of"]

#: The reference: the trained Keras model (a parity and benchmark row, not an export format).
KERAS = "keras"


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: ``<runtime>_<mode>``; the export directory and the row name everywhere.
        runtime: ``tflite`` (LiteRT) or ``onnx`` (onnxruntime); also the file suffix.
        mode: ``fp32``, ``fp16``, ``dynamic`` (int8 weights) or ``int8`` (full integer).
        rule: the parity gate's rule: ``float``, ``fp16`` or ``8bit``.
        flag: the export command's flag choosing it (``python export/to_tflite.py --int8``);
            empty for a command's default.
        help: the flag's help text.
        qat: int8 through quantization-aware fine-tuning (:mod:`mobile_skin.quant.qat`).
        benchmarked: a column of the Table 10 benchmark.
    """

    name: str
    runtime: str
    mode: str
    rule: str
    flag: str
    help: str
    qat: bool = False
    benchmarked: bool = False

    @property
    def suffix(self) -> str:
        """``.tflite`` or ``.onnx``."""
        return f".{self.runtime}"

    @property
    def float_head(self) -> bool:
        """Whether the head (fully connected layers, partial-logit sum, softmax) stays float:
        in every full-integer file, since int8 logits tie
        (:data:`mobile_skin.quant.edge_model.INT8_FLOAT_OPS`)."""
        return self.mode == "int8"


#: THE table, in report order.
FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("tflite_fp32", "tflite", "fp32", "float", "--fp32",
                     "float32, no optimisation (default)", benchmarked=True),
        ExportFormat("tflite_fp16", "tflite", "fp16", "fp16", "--fp16", "float16 weights"),
        ExportFormat("tflite_dynamic", "tflite", "dynamic", "8bit", "--dynamic",
                     "dynamic-range quantization (int8 weights)"),
        ExportFormat("tflite_int8", "tflite", "int8", "8bit", "--int8",
                     "full integer, quantization-aware (see --qat-epochs), the network's start "
                     "float (see --all-int8); float32 input/output",
                     qat=True, benchmarked=True),
        ExportFormat("onnx_fp32", "onnx", "fp32", "float", "", "float32 (default)",
                     benchmarked=True),
        ExportFormat("onnx_int8", "onnx", "int8", "8bit", "--int8",
                     "static int8 quantization (QDQ: uint8 activations with least-squares ranges, "
                     "int8 per-channel weights, the network's start float (see --all-int8), float "
                     "head with its logit shift corrected)",
                     benchmarked=True),
    )
}  # fmt: skip


def formats_of(runtime: str) -> list[ExportFormat]:
    """The formats one runtime runs, in table order."""
    return [f for f in FORMATS.values() if f.runtime == runtime]


def benchmarked() -> tuple[str, ...]:
    """The benchmark's runtime columns: Keras, then every benchmarked format."""
    return (KERAS, *(name for name, f in FORMATS.items() if f.benchmarked))


def file_kind(name: str) -> str:
    """``keras``, ``tflite`` or ``onnx``: what runs ``name`` (a format or ``keras``)."""
    return KERAS if name == KERAS else FORMATS[name].runtime
