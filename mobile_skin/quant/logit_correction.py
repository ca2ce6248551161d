"""Logit bias correction: remove the mean per-class shift an 8-bit body adds to the float head.

Int8 files keep the classifier head in float (:data:`mobile_skin.quant.edge_model.INT8_FLOAT_OPS`),
so the last fully connected layer's bias is a float vector that can absorb a constant shift of the
logits. The int8 body's rounding shifts each class's log-probability by a roughly constant amount
on average; measured on the calibration images (training split: never the splits the parity
gate judges), that mean shift is subtracted from the bias. Softmax ignores a shift common to all
classes, so the correction uses centred log-probabilities, and it is exact for the mean: the file
then agrees with the float model's average log-odds between classes, which is what balanced
accuracy and per-class sensitivity are most sensitive to.

Two estimators of the shift (:data:`ESTIMATORS`): ``mean_log``, the mean difference of centred
log-probabilities (what the exporters use), and ``cross_entropy``, the shift that minimises the
cross-entropy from the float model's probabilities to the corrected file's (the distillation loss;
at its minimum the corrected file's mean probabilities equal the float model's). Log-probabilities
of classes a row all but rules out are large and noisy, and the mean of their differences can move
a class's bias by more than int8 moved its answers; the cross-entropy weighs each class by its
probability instead. A :class:`Correction` is applied only when it does not lower the top-1
agreement on the calibration images it was measured on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mobile_skin.common.errors import UserError

Predict = Callable[[dict[str, np.ndarray]], np.ndarray]


def centred_log(probs: np.ndarray) -> np.ndarray:
    """log p minus its mean over classes, per row."""
    logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, None))
    return logp - logp.mean(axis=1, keepdims=True)


def logit_shift(reference: np.ndarray, quantized: np.ndarray) -> np.ndarray:
    """The mean per-class shift of the quantized model's centred log-probabilities."""
    return (centred_log(quantized) - centred_log(reference)).mean(axis=0)


def fitted_shift(reference: np.ndarray, quantized: np.ndarray) -> np.ndarray:
    """The centred per-class shift ``s`` minimising the mean cross-entropy from ``reference`` to
    ``softmax(log quantized - s)`` (convex in ``s``; L-BFGS)."""
    from scipy.optimize import minimize
    from scipy.special import logsumexp, softmax

    p, logq = np.asarray(reference, np.float64), centred_log(quantized)  # softmax: row-centred

    def loss(s):
        z = logq - s
        grad = (p - softmax(z, axis=1)).mean(axis=0)
        return float((logsumexp(z, axis=1) - (p * z).sum(axis=1)).mean()), grad

    shift = minimize(
        loss, np.zeros(p.shape[1]), jac=True, method="L-BFGS-B", options={"gtol": 1e-9}
    ).x
    return shift - shift.mean()


#: Shift estimators by name (see the module docstring).
ESTIMATORS = {"mean_log": logit_shift, "cross_entropy": fitted_shift}
#: The exporters' estimator.
DEFAULT_ESTIMATOR = "mean_log"


def shifted(probs: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``probs`` as the head would give them with ``shift`` subtracted from its bias."""
    from scipy.special import softmax

    return softmax(centred_log(probs) - shift, axis=1)


@dataclass(frozen=True)
class Correction:
    """A measured logit correction: the shift and the top-1 agreement with the float model on
    the calibration images before and after it. Applied only when it does not lower that
    agreement (:attr:`applied`): a shift that costs answers on the images it was fitted to is
    no constant offset of this model."""

    estimator: str
    shift: np.ndarray
    agreement_before: float
    agreement_after: float

    @classmethod
    def measure(
        cls, reference: np.ndarray, quantized: np.ndarray, estimator: str = DEFAULT_ESTIMATOR
    ) -> Correction:
        """The ``estimator`` shift of ``quantized`` against ``reference`` (probabilities)."""
        if estimator not in ESTIMATORS:
            raise UserError(f"logit correction: unknown estimator {estimator!r}")
        shift = ESTIMATORS[estimator](reference, quantized)
        top = np.argmax(reference, axis=1)
        before = float(np.mean(np.argmax(quantized, axis=1) == top))
        after = float(np.mean(np.argmax(shifted(quantized, shift), axis=1) == top))
        return cls(estimator, shift, before, after)

    @property
    def applied(self) -> bool:
        return self.agreement_after >= self.agreement_before

    def describe(self) -> dict:
        """For a model_spec.json's ``quantization.logit_correction``."""
        return {
            "estimator": self.estimator,
            "shift": [round(float(v), 6) for v in self.shift],
            "calibration_agreement": [round(self.agreement_before, 4),
                                      round(self.agreement_after, 4)],
            "applied": self.applied,
        }  # fmt: skip

    def __str__(self) -> str:
        verdict = "applied" if self.applied else "not applied (it lowers agreement)"
        return (f"logit correction ({self.estimator}) {np.round(self.shift, 3).tolist()}: "
                f"calibration agreement {self.agreement_before:.2%} -> "
                f"{self.agreement_after:.2%}, {verdict}")  # fmt: skip


def predictions(predict: Predict, samples: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
    """``predict`` over calibration samples (dicts of batch-1 inputs), stacked."""
    return np.concatenate([np.asarray(predict(s)) for s in samples])


def tflite_predict(content: bytes, threads: int | None = None) -> Predict:
    """A function running a ``.tflite``'s ``serving_default`` signature on one sample dict."""
    from mobile_skin.model.litert import allocated_interpreter

    interpreter = allocated_interpreter(content=content, threads=threads)
    runner = interpreter.get_signature_runner("serving_default")
    return lambda sample: runner(**sample)["probs"]


def onnx_predict(path) -> Predict:
    """A function running the ONNX file at ``path`` on one sample dict (named inputs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda sample: session.run(["probs"], {k: sample[k] for k in names})[0]


def correct_onnx_on_samples(
    path,
    reference: np.ndarray,
    samples: Sequence[dict[str, np.ndarray]],
    estimator: str = DEFAULT_ESTIMATOR,
):
    """The ONNX file at ``path`` loaded, with its head corrected for the logit shift against
    ``reference`` (the float model's probabilities on ``samples``; ``estimator`` names an entry
    of :data:`ESTIMATORS`) when the :class:`Correction` is applied, or None when it has no float
    head bias to correct; also returns the :class:`Correction`."""
    import onnx

    correction = Correction.measure(reference, predictions(onnx_predict(path), samples), estimator)
    model = onnx.load(str(path))
    shift = correction.shift if correction.applied else np.zeros_like(correction.shift)
    return (model if correct_onnx(model, shift) else None), correction


def correct_tflite_on_samples(
    content: bytes,
    reference: np.ndarray,
    samples: Sequence[dict[str, np.ndarray]],
    estimator: str = DEFAULT_ESTIMATOR,
) -> tuple[bytes, Correction]:
    """``content`` with its head corrected for the logit shift against ``reference`` (the float
    model's probabilities on ``samples``; ``estimator`` names an entry of :data:`ESTIMATORS`)
    when the :class:`Correction` is applied; also returns the :class:`Correction`."""
    quantized = predictions(tflite_predict(content), samples)
    correction = Correction.measure(reference, quantized, estimator)
    if not correction.applied:
        return content, correction
    return correct_tflite(content, correction.shift), correction


def correct_tflite(content: bytes, shift: np.ndarray) -> bytes:
    """``content`` (a ``.tflite`` whose output is SOFTMAX(FULLY_CONNECTED(..., bias))) with
    ``shift`` subtracted from that float bias.

    Raises:
        UserError: the output is not a float softmax over a biased fully connected layer.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    graph = model.subgraphs[0]
    codes = [flatbuffer_utils.get_builtin_code_from_operator_code(c) for c in model.operatorCodes]
    producer = {out: op for op in graph.operators for out in op.outputs}
    ops = schema.BuiltinOperator
    softmax = producer.get(graph.outputs[0])
    fc = producer.get(softmax.inputs[0]) if softmax is not None else None
    if (
        softmax is None
        or codes[softmax.opcodeIndex] != ops.SOFTMAX
        or fc is None
        or codes[fc.opcodeIndex] != ops.FULLY_CONNECTED
        or len(fc.inputs) < 3
        or fc.inputs[2] < 0
    ):
        raise UserError("logit correction: the model does not end in softmax(fully connected)")
    bias = graph.tensors[fc.inputs[2]]
    if bias.type != schema.TensorType.FLOAT32:
        raise UserError("logit correction: the head's bias is not float32 (head quantized?)")
    buffer = model.buffers[bias.buffer]
    values = np.frombuffer(bytes(bytearray(buffer.data)), dtype="<f4").copy()
    if values.shape != np.shape(shift):
        raise UserError(f"logit correction: bias has {values.size} values, shift {np.size(shift)}")
    values -= np.asarray(shift, np.float32)
    buffer.data = np.frombuffer(values.astype("<f4").tobytes(), dtype=np.uint8)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def correct_onnx(model, shift: np.ndarray) -> bool:
    """Subtract ``shift`` from the float bias feeding the ``probs`` softmax of an
    ``onnx.ModelProto`` (a Gemm's, or the Add after a MatMul; in place). False when there is
    none."""
    from onnx import numpy_helper

    producer = {out: node for node in model.graph.node for out in node.output}
    initializers = {i.name: i for i in model.graph.initializer}
    softmax = producer.get("probs")
    last = producer.get(softmax.input[0]) if softmax is not None else None
    if last is not None and last.op_type == "Gemm" and len(last.input) >= 3:
        bias = initializers.get(last.input[2])  # Gemm(x, W, b)
    elif last is not None and last.op_type == "Add":
        bias = next((initializers[i] for i in last.input if i in initializers), None)  # x W + b
    else:
        bias = None
    if bias is None:
        return False
    values = numpy_helper.to_array(bias).astype(np.float32) - np.asarray(shift, np.float32)
    bias.CopyFrom(numpy_helper.from_array(values, bias.name))
    return True
