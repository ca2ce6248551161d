"""Logit bias correction: remove the mean per-class shift an 8-bit body adds to the float head.

Int8 files keep the classifier head in float (:data:`mobile_skin.edge_model.INT8_FLOAT_OPS`), so
the last fully connected layer's bias is a float vector that can absorb a constant shift of the
logits. The int8 body's rounding shifts each class's log-probability by a roughly constant amount
on average; measured on the calibration images (training split: never the splits the parity
gate judges), that mean shift is subtracted from the bias. Softmax ignores a shift common to all
classes, so the correction uses centred log-probabilities, and it is exact for the mean: the file
then agrees with the float model's average log-odds between classes, which is what balanced
accuracy and per-class sensitivity are most sensitive to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mobile_skin.errors import UserError

Predict = Callable[[dict[str, np.ndarray]], np.ndarray]


def centred_log(probs: np.ndarray) -> np.ndarray:
    """log p minus its mean over classes, per row."""
    logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, None))
    return logp - logp.mean(axis=1, keepdims=True)


def logit_shift(reference: np.ndarray, quantized: np.ndarray) -> np.ndarray:
    """The mean per-class shift of the quantized model's centred log-probabilities."""
    return (centred_log(quantized) - centred_log(reference)).mean(axis=0)


def predictions(predict: Predict, samples: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
    """``predict`` over calibration samples (dicts of batch-1 inputs), stacked."""
    return np.concatenate([np.asarray(predict(s)) for s in samples])


def tflite_predict(content: bytes, threads: int | None = None) -> Predict:
    """A function running a ``.tflite``'s ``serving_default`` signature on one sample dict."""
    from ai_edge_litert.interpreter import Interpreter

    from mobile_skin import quiet_native_stderr

    with quiet_native_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        interpreter = Interpreter(model_content=content, num_threads=threads)
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


def correct_onnx_on_samples(path, reference: np.ndarray, samples: Sequence[dict[str, np.ndarray]]):
    """The ONNX file at ``path`` loaded, with its head corrected for the mean logit shift against
    ``reference`` (the float model's probabilities on ``samples``), or None when it has no float
    head bias to correct; also returns the shift."""
    import onnx

    shift = logit_shift(reference, predictions(onnx_predict(path), samples))
    model = onnx.load(str(path))
    return (model if correct_onnx(model, shift) else None), shift


def correct_tflite_on_samples(
    content: bytes, reference: np.ndarray, samples: Sequence[dict[str, np.ndarray]]
) -> tuple[bytes, np.ndarray]:
    """``content`` with its head corrected for the mean logit shift against ``reference`` (the
    float model's probabilities on ``samples``); also returns the shift."""
    shift = logit_shift(reference, predictions(tflite_predict(content), samples))
    return correct_tflite(content, shift), shift


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
