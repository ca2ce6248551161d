"""Logit bias correction and least-squares ranges on tiny hand-made models and histograms."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tf_keras

from mobile_skin.common.errors import UserError
from mobile_skin.contract.encoding import MetadataEncoding
from mobile_skin.contract.spec import ModelSpec
from mobile_skin.export.convert_onnx import convert_onnx, least_squares_ranges, quantization_error
from mobile_skin.export.convert_tflite import convert_tflite
from mobile_skin.quant import logit_correction as lc

L = tf_keras.layers


@pytest.fixture(scope="module")
def tiny():
    """image, metadata -> Dense -> softmax named probs, like the exported heads."""
    enc = MetadataEncoding()
    image, meta = L.Input((8, 8, 3), name="image"), L.Input((enc.size,), name="metadata")
    x = L.Concatenate()([L.GlobalAveragePooling2D()(image), meta])
    logits = L.Dense(7, name="logits")(x)
    model = tf_keras.Model([image, meta], L.Softmax(name="probs")(logits))
    rng = np.random.default_rng(0)
    model.get_layer("logits").bias.assign(rng.normal(0, 1, 7))  # a zero bias is optimised away
    samples = [
        {"image": rng.uniform(0, 1, (1, 8, 8, 3)).astype(np.float32),
         "metadata": rng.uniform(0, 1, (1, enc.size)).astype(np.float32)}
        for _ in range(5)
    ]  # fmt: skip
    return model, ModelSpec(8, enc), samples


def test_centred_shift_is_removed_exactly(tiny):
    model, spec, samples = tiny
    content = convert_tflite(model, spec, "fp32")
    shift = np.linspace(-0.3, 0.3, 7)
    corrected = lc.correct_tflite(content, shift)
    before = lc.predictions(lc.tflite_predict(content), samples)
    after = lc.predictions(lc.tflite_predict(corrected), samples)
    np.testing.assert_allclose(lc.centred_log(after), lc.centred_log(before) - shift, atol=1e-5)
    # measuring the shift of the corrected file against the original gives it back
    np.testing.assert_allclose(lc.logit_shift(before, after), -shift, atol=1e-5)
    again, measured = lc.correct_tflite_on_samples(corrected, before, samples)
    np.testing.assert_allclose(measured.shift, -shift, atol=1e-5)
    np.testing.assert_allclose(lc.predictions(lc.tflite_predict(again), samples), before, atol=1e-5)


def test_cross_entropy_fit_recovers_a_constant_shift():
    rng = np.random.default_rng(1)
    reference = lc.shifted(rng.dirichlet(np.ones(7), 50), np.zeros(7))
    true = np.linspace(-0.5, 0.7, 7)
    quantized = lc.shifted(reference, -true)  # the int8 body adds `true` to every logit
    np.testing.assert_allclose(lc.fitted_shift(reference, quantized), true - true.mean(), atol=1e-4)
    np.testing.assert_allclose(lc.shifted(quantized, lc.fitted_shift(reference, quantized)),
                               reference, atol=1e-4)  # fmt: skip


def test_cross_entropy_fit_ignores_noise_in_ruled_out_rows():
    """Class 2 is the answer in 4 rows and all but ruled out in 16, where int8 noise lifts its
    tiny probability 1,000-fold. The mean of log-differences takes that noise for a shift and
    removes class 2's answers; the cross-entropy fit, weighted by probability, keeps them."""
    reference = np.tile([0.5, 0.5 - 1e-9, 1e-9], (20, 1))
    reference[:4] = [0.2, 0.2, 0.6]
    quantized = reference.copy()
    quantized[4:, 2] = 1e-6
    mean_log = lc.Correction.measure(reference, quantized, "mean_log")
    fitted = lc.Correction.measure(reference, quantized, "cross_entropy")
    assert mean_log.shift[2] > 3 and mean_log.agreement_after == 0.8 and not mean_log.applied
    assert abs(fitted.shift[2]) < 0.01 and fitted.agreement_after == 1.0 and fitted.applied


def test_a_correction_that_costs_answers_is_not_applied(tiny, monkeypatch):
    model, spec, samples = tiny
    content = convert_tflite(model, spec, "fp32")
    probs = lc.predictions(lc.tflite_predict(content), samples)
    assert lc.correct_tflite_on_samples(content, probs, samples)[1].applied  # shift 0: harmless

    def towards_the_least_likely(reference, quantized):
        return -10.0 * (np.arange(7) == np.argmin(reference.mean(axis=0)))

    monkeypatch.setitem(lc.ESTIMATORS, "bad", towards_the_least_likely)
    same, correction = lc.correct_tflite_on_samples(content, probs, samples, "bad")
    assert correction.agreement_before == 1.0 and correction.agreement_after < 1.0
    assert not correction.applied and same == content
    assert correction.describe()["applied"] is False


def test_onnx_head_is_corrected_in_place(tiny):
    import onnxruntime as ort

    model, spec, samples = tiny
    proto = convert_onnx(model, spec)
    run = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    before = np.concatenate([run.run(["probs"], s)[0] for s in samples])
    shift = np.linspace(0.2, -0.4, 7)
    assert lc.correct_onnx(proto, shift)
    run = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    after = np.concatenate([run.run(["probs"], s)[0] for s in samples])
    centred = shift - shift.mean()  # softmax ignores a shift common to every class
    np.testing.assert_allclose(lc.centred_log(after), lc.centred_log(before) - centred, atol=1e-5)


def test_a_shift_of_the_wrong_size_or_a_head_without_bias_is_refused(tiny):
    model, spec, _ = tiny
    content = convert_tflite(model, spec, "fp32")
    with pytest.raises(UserError, match="bias has 7 values, shift 3"):
        lc.correct_tflite(content, np.zeros(3))
    x = L.Input((4,), name="image")
    relu = tf_keras.Model(x, L.ReLU(name="probs")(x))
    with pytest.raises(UserError, match="does not end in softmax"):
        lc.correct_tflite(convert_tflite(relu, ModelSpec(4, None), "fp32"), np.zeros(4))


def test_least_squares_clips_rare_tails():
    centers = np.linspace(0, 100, 1001)
    counts = np.where(centers < 10, 1e6, 0.0)
    counts[-1] = 1  # one outlier at 100
    full = quantization_error(centers, counts, 0, 100)
    assert quantization_error(centers, counts, 0, 31) < full  # a narrower range wins
    assert quantization_error(centers, counts, 0, 0) == 0.0


def test_least_squares_ranges_of_a_real_graph(tiny, tmp_path):
    import onnx

    model, spec, samples = tiny
    path = tmp_path / "m.onnx"
    onnx.save(convert_onnx(model, spec), path)
    outputs = [n.output[0] for n in onnx.load(path).graph.node][:3]
    ranges = least_squares_ranges(path, outputs, samples)
    assert set(ranges) == set(outputs)
    for lo, hi in ranges.values():
        assert lo <= 0 <= hi and hi > lo


def test_running_a_file_prints_no_delegate_line(tiny, tmp_path):
    """The exporter's log stays clean: LiteRT's "Created TensorFlow Lite XNNPACK delegate" line
    (written by C++ to fd 2 once per process, when the delegate is applied) is silenced. Run in
    a fresh process, since an earlier interpreter in this one may have printed it already."""
    model, spec, samples = tiny
    path = tmp_path / "tiny.tflite"
    path.write_bytes(convert_tflite(model, spec, "fp32"))
    np.savez(tmp_path / "sample.npz", **samples[0])
    code = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from mobile_skin.quant.logit_correction import tflite_predict\n"
        "predict = tflite_predict(Path(sys.argv[1]).read_bytes())\n"
        "print(predict(dict(np.load(sys.argv[2]))).shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), str(tmp_path / "sample.npz")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "MOBILE_SKIN_VERBOSE": "0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 7)"
    assert "XNNPACK" not in done.stderr
