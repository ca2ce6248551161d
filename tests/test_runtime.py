"""One runtime interface over .keras, .tflite and .onnx: inputs by name, batches, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from mobile_skin.common.errors import UserError
from mobile_skin.contract.spec import ModelSpec
from mobile_skin.model.runtime import OnnxRuntime, TFLiteRuntime, load_runtime


@pytest.fixture(scope="module")
def spec(smoke_run) -> ModelSpec:
    return ModelSpec.load(smoke_run.spec)


@pytest.fixture(scope="module")
def batch(spec, synthetic_root) -> dict[str, np.ndarray]:
    """Three synthetic lesion photos with three different patients."""
    from mobile_skin.contract.image import load as load_image

    paths = sorted(synthetic_root.rglob("*.jpg"))[:3]
    meta = np.stack(
        [
            spec.encoding.encode(age, sex, site)
            for age, sex, site in [
                (30, "male", "back"),
                (70, "female", "face"),
                (None, "unknown", "unknown"),
            ]
        ]
    )
    return {"image": np.stack([load_image(p, spec.image_size) for p in paths]), "metadata": meta}


@pytest.fixture(scope="module")
def keras_probs(model_files, spec, batch) -> np.ndarray:
    return load_runtime(model_files["keras"], spec).predict(batch)


@pytest.mark.parametrize("kind", ["keras", "tflite", "onnx"])
def test_inputs_are_matched_by_name_not_order(kind, model_files, spec, batch, keras_probs):
    rt = load_runtime(model_files[kind], spec, threads=1)
    assert rt.kind == kind and sorted(rt.input_names) == ["image", "metadata"]
    forward = rt.predict({"image": batch["image"], "metadata": batch["metadata"]})
    backward = rt.predict({"metadata": batch["metadata"], "image": batch["image"]})
    assert forward.shape == (3, 7)
    np.testing.assert_array_equal(forward, backward)
    np.testing.assert_allclose(forward, keras_probs, atol=1e-4)


def test_tflite_has_fixed_batch_one_and_loops_over_a_batch(model_files, spec, batch):
    rt = load_runtime(model_files["tflite"], spec)
    assert isinstance(rt, TFLiteRuntime) and rt.fixed_batch == 1
    rows = [rt.predict({k: v[i : i + 1] for k, v in batch.items()}) for i in range(3)]
    np.testing.assert_array_equal(rt.predict(batch), np.concatenate(rows))


def test_onnx_batch_is_dynamic(model_files, spec, batch):
    rt = load_runtime(model_files["onnx"], spec)
    assert isinstance(rt, OnnxRuntime) and rt.fixed_batch is None
    assert rt.session.get_inputs()[0].shape[0] == "batch"
    one = rt.predict({k: v[:1] for k, v in batch.items()})
    np.testing.assert_allclose(rt.predict(batch)[:1], one, atol=1e-6)


def test_an_onnx_file_with_its_inputs_in_the_other_order_gives_the_same_answer(
    model_files, spec, batch, keras_probs, tmp_path
):
    import onnx

    proto = onnx.load(str(model_files["onnx"]))
    inputs = list(proto.graph.input)
    assert [i.name for i in inputs] == ["image", "metadata"]
    del proto.graph.input[:]
    proto.graph.input.extend(inputs[::-1])
    path = tmp_path / "reversed.onnx"
    onnx.save(proto, path)
    rt = load_runtime(path, spec)
    assert [i.name for i in rt.session.get_inputs()] == ["metadata", "image"]
    np.testing.assert_allclose(rt.predict(batch), keras_probs, atol=1e-4)


def test_a_keras_model_declaring_metadata_first_exports_and_runs_by_name(
    model_files, spec, batch, keras_probs, tmp_path
):
    import onnx
    import tf_keras

    from mobile_skin.export.convert_onnx import convert_onnx
    from mobile_skin.model.network import load_model
    from mobile_skin.model.runtime import KerasRuntime

    base = load_model(model_files["keras"])
    meta = tf_keras.Input((spec.encoding.size,), name="metadata")
    image = tf_keras.Input((spec.image_size, spec.image_size, 3), name="image")
    flipped = tf_keras.Model([meta, image], base({"image": image, "metadata": meta}))
    keras_rt = KerasRuntime(flipped)
    assert keras_rt.input_names == ["metadata", "image"]
    np.testing.assert_allclose(keras_rt.predict(batch), keras_probs, atol=1e-6)
    onnx.save(convert_onnx(flipped, spec), tmp_path / "flipped.onnx")
    np.testing.assert_allclose(
        load_runtime(tmp_path / "flipped.onnx", spec).predict(batch), keras_probs, atol=1e-4
    )


@pytest.mark.slow
def test_a_tflite_file_declaring_metadata_first_runs_by_name(
    model_files, spec, batch, keras_probs, tmp_path
):
    import tensorflow as tf

    from mobile_skin.model.network import load_model

    model = load_model(model_files["keras"])
    s, d = spec.image_size, spec.encoding.size

    @tf.function(
        input_signature=[
            tf.TensorSpec([1, d], tf.float32, name="metadata"),
            tf.TensorSpec([1, s, s, 3], tf.float32, name="image"),
        ]
    )
    def serve(metadata, image):
        return {"probs": model({"image": image, "metadata": metadata}, training=False)}

    fn = serve.get_concrete_function()
    content = tf.lite.TFLiteConverter.from_concrete_functions([fn], model).convert()
    (tmp_path / "m.tflite").write_bytes(content)
    rt = load_runtime(tmp_path / "m.tflite", spec)
    # The converter decides the tensor order (TF 2.21 does not keep the declared one); the
    # runtime goes through the signature's names either way.
    assert set(rt.interpreter.get_signature_list()["serving_default"]["inputs"]) == {
        "image",
        "metadata",
    }
    np.testing.assert_allclose(rt.predict(batch), keras_probs, atol=1e-4)


def test_missing_or_unknown_inputs_are_user_errors(model_files, spec, batch):
    rt = load_runtime(model_files["onnx"], spec)
    with pytest.raises(UserError, match="missing metadata"):
        rt.predict({"image": batch["image"]})
    with pytest.raises(UserError, match="unexpected age"):
        rt.predict({**batch, "age": batch["metadata"][:, :1]})
    with pytest.raises(UserError, match="different batch sizes"):
        rt.predict({"image": batch["image"], "metadata": batch["metadata"][:2]})


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_model_file_is_a_one_line_error_naming_it(suffix, damage, model_files, tmp_path):
    good = model_files[suffix[1:]].read_bytes()
    content = {"truncated": good[: len(good) // 3], "garbage": b"not a model" * 100, "empty": b""}
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content[damage])
    with pytest.raises(UserError) as err:
        load_runtime(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file_unknown_type_and_spec_mismatch(model_files, spec, tmp_path):
    with pytest.raises(UserError, match="model file not found"):
        load_runtime(tmp_path / "nope.tflite")
    with pytest.raises(UserError, match="unknown model type"):
        load_runtime(tmp_path / "model.pt")
    small = ModelSpec(image_size=32, encoding=spec.encoding)
    with pytest.raises(UserError, match="the spec says 32x32"):
        load_runtime(model_files["tflite"], small)
    with pytest.raises(UserError, match="do not match the spec"):
        load_runtime(model_files["onnx"], ModelSpec(image_size=spec.image_size, encoding=None))
