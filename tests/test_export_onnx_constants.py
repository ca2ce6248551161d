"""ONNX export of a model whose preprocessing holds constants (DenseNet201's Normalization).

tf2onnx's ``from_function`` lists the constants a function captures as graph inputs;
:func:`mobile_skin.export.convert_onnx.convert_onnx` must put them back inside the file, so the file
has exactly the spec's inputs and gives the Keras model's answers.
"""

from __future__ import annotations

import numpy as np
import tf_keras

from mobile_skin.contract.encoding import METADATA_SIZE, MetadataEncoding
from mobile_skin.contract.spec import ModelSpec
from mobile_skin.export.convert_onnx import convert_onnx


def test_captured_normalization_constants_stay_inside_the_file():
    import onnxruntime as ort

    L = tf_keras.layers
    image, meta = L.Input((32, 32, 3), name="image"), L.Input((METADATA_SIZE,), name="metadata")
    x = L.Normalization(mean=[120.0, 110.0, 100.0], variance=[900.0, 800.0, 700.0])(image)
    x = L.Concatenate()([L.GlobalAveragePooling2D()(x), meta])
    model = tf_keras.Model([image, meta], L.Dense(7, activation="softmax", name="probs")(x))

    proto = convert_onnx(model, ModelSpec(32, MetadataEncoding()))

    assert [i.name for i in proto.graph.input] == ["image", "metadata"]
    rng = np.random.default_rng(0)
    inputs = {
        "image": rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32),
        "metadata": rng.random((2, METADATA_SIZE), dtype=np.float32),
    }
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    got = session.run(["probs"], inputs)[0]
    np.testing.assert_allclose(got, model.predict(inputs, verbose=0), atol=1e-5)
