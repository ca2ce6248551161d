"""One ``predict()`` over ``.keras``, ``.tflite`` and ``.onnx`` models: inputs by name, probs out.

Every runtime takes a dict ``{"image": (B, S, S, 3) float32, "metadata": (B, D) float32}`` and
returns ``probs`` (B, C). Inputs are matched by name, never by position: Keras by the model's
input names, TFLite through the ``serving_default`` signature runner (LiteRT's ``ai_edge_litert``),
ONNX by the onnxruntime session's input names.

Batches: Keras and ONNX take any batch size. The exported TFLite files have a fixed batch of 1 (see
:mod:`mobile_skin.export.convert_tflite`); :class:`TFLiteRuntime` feeds a larger batch one row at a
time, which gives exactly the answers the phone gets. A TFLite file with a dynamic batch dimension
is fed whole (the signature runner resizes its inputs).

:func:`predict_frame` runs any runtime over the rows of a data frame through
:func:`mobile_skin.contract.pipeline.make_dataset`, so every runtime sees identical pixels;
:func:`frame_inputs` and :func:`predict_inputs` are its two halves, for callers that run several
models on the same rows (the parity gate decodes each split once).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mobile_skin.common.errors import UserError
from mobile_skin.contract.spec import IMAGE_INPUT, METADATA_INPUT, OUTPUT, ModelSpec

if TYPE_CHECKING:  # only the frame helpers take pandas tables; exported files run without it
    import pandas as pd

#: Model file suffix -> runtime kind.
KINDS = {".keras": "keras", ".tflite": "tflite", ".onnx": "onnx"}
#: The TFLite signature every exported file carries.
SIGNATURE_KEY = "serving_default"


class Runtime(abc.ABC):
    """A loaded model that maps named float32 inputs to class probabilities.

    Attributes:
        kind: ``keras``, ``tflite`` or ``onnx``.
        path: the model file (None for an in-memory Keras model).
        threads: the thread count requested (None = the library's default).
    """

    kind: str = ""

    def __init__(self, path: Path | None, threads: int | None) -> None:
        self.path = path
        self.threads = threads

    @property
    @abc.abstractmethod
    def input_names(self) -> list[str]:
        """Names of the model's inputs (order carries no meaning)."""

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the file is built for, or None when any batch size is accepted."""
        return None

    def input_shape(self, name: str) -> list[int | None] | None:
        """Declared shape of input ``name`` (None for unknown dimensions), if the format has one."""
        return None

    def predict(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Class probabilities (B, C) for a batch of named inputs.

        Raises:
            UserError: an input is missing or unknown, or the batch sizes differ.
        """
        arrays = self._check(inputs)
        return np.asarray(self._run(arrays), dtype=np.float32)

    @abc.abstractmethod
    def _run(self, inputs: dict[str, np.ndarray]) -> np.ndarray: ...

    def _check(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = set(self.input_names)
        missing, extra = names - set(inputs), set(inputs) - names
        if missing or extra:
            what = "; ".join(
                part
                for part in (
                    f"missing {', '.join(sorted(missing))}" if missing else "",
                    f"unexpected {', '.join(sorted(extra))}" if extra else "",
                )
                if part
            )
            raise UserError(f"{self.name}: inputs do not match ({what}); expects {sorted(names)}")
        arrays = {k: np.ascontiguousarray(inputs[k], dtype=np.float32) for k in self.input_names}
        sizes = {len(a) for a in arrays.values()}
        if len(sizes) != 1:
            raise UserError(f"{self.name}: inputs have different batch sizes {sorted(sizes)}")
        return arrays

    @property
    def name(self) -> str:
        """The file name, for messages."""
        return str(self.path) if self.path else f"{self.kind} model"


class KerasRuntime(Runtime):
    """A ``tf_keras`` model; inputs are passed as a dict keyed by the model's input names."""

    kind = "keras"

    def __init__(self, model, path: Path | None = None, threads: int | None = None) -> None:
        super().__init__(path, threads)
        self.model = model

    @property
    def input_names(self) -> list[str]:
        return list(self.model.input_names)

    def input_shape(self, name: str) -> list[int | None] | None:
        shapes = dict(zip(self.model.input_names, self.model.inputs, strict=True))
        return list(shapes[name].shape) if name in shapes else None

    def _run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.model.predict_on_batch(inputs)


class TFLiteRuntime(Runtime):
    """A ``.tflite`` file run by LiteRT through its ``serving_default`` signature."""

    kind = "tflite"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        from mobile_skin.model.litert import allocated_interpreter

        try:
            self.interpreter = allocated_interpreter(path=path, threads=threads)
            signatures = self.interpreter.get_signature_list()
        except (ValueError, RuntimeError) as err:
            raise UserError(f"{path}: not a valid TFLite model ({_first_line(err)})") from None
        if SIGNATURE_KEY not in signatures:
            raise UserError(
                f"{path}: has no {SIGNATURE_KEY!r} signature (found "
                f"{sorted(signatures) or 'none'}); export it with export/to_tflite.py"
            )
        if OUTPUT not in signatures[SIGNATURE_KEY]["outputs"]:
            outputs = signatures[SIGNATURE_KEY]["outputs"]
            raise UserError(f"{path}: signature has no output {OUTPUT!r} (outputs: {outputs})")
        self.runner = self.interpreter.get_signature_runner(SIGNATURE_KEY)
        self._details = self.runner.get_input_details()

    @property
    def input_names(self) -> list[str]:
        return list(self._details)

    @property
    def fixed_batch(self) -> int | None:
        batch = {int(d["shape_signature"][0]) for d in self._details.values()}
        return None if -1 in batch else batch.pop()

    def input_shape(self, name: str) -> list[int | None] | None:
        shape = self._details[name]["shape_signature"]
        return [None if int(s) < 0 else int(s) for s in shape]

    def _run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        batch = self.fixed_batch
        n = len(next(iter(inputs.values())))
        if batch is None or n == batch:
            return self.runner(**inputs)[OUTPUT].copy()
        if batch != 1:
            raise UserError(f"{self.path}: fixed batch {batch} cannot take a batch of {n}")
        rows = [
            self.runner(**{k: v[i : i + 1] for k, v in inputs.items()})[OUTPUT] for i in range(n)
        ]
        return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


class OnnxRuntime(Runtime):
    """A ``.onnx`` file run by onnxruntime on the CPU, fed by input name."""

    kind = "onnx"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise UserError(f"{path}: not a valid ONNX model ({_first_line(err)})") from None
        outputs = [o.name for o in self.session.get_outputs()]
        if OUTPUT not in outputs:
            raise UserError(f"{path}: has no output {OUTPUT!r} (outputs: {outputs})")
        self._inputs = {i.name: i.shape for i in self.session.get_inputs()}

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    def input_shape(self, name: str) -> list[int | None] | None:
        return [d if isinstance(d, int) else None for d in self._inputs[name]]

    def _run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([OUTPUT], inputs)[0]


def load_runtime(
    path: str | os.PathLike, spec: ModelSpec | None = None, threads: int | None = None
) -> Runtime:
    """Load a ``.keras``, ``.tflite`` or ``.onnx`` model behind the :class:`Runtime` interface.

    Args:
        path: the model file; the suffix picks the runtime.
        spec: when given, the model's input names and image size must match it.
        threads: CPU threads for TFLite and onnxruntime (None: the library's default). Keras uses
            TensorFlow's process-wide setting.

    Raises:
        UserError: missing, unknown, corrupted or truncated file, or a model that does not match
            ``spec``; the message names the file.
    """
    path = Path(path)
    kind = KINDS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: unknown model type; expected one of {', '.join(KINDS)}")
    if not path.is_file():
        raise UserError(f"{path}: model file not found")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: model file is empty")
    if kind == "keras":
        from mobile_skin.model.network import load_model

        runtime: Runtime = KerasRuntime(load_model(path), path, threads)
    elif kind == "tflite":
        runtime = TFLiteRuntime(path, threads)
    else:
        runtime = OnnxRuntime(path, threads)
    if spec is not None:
        check_against_spec(runtime, spec)
    return runtime


def check_against_spec(runtime: Runtime, spec: ModelSpec) -> None:
    """Raise :class:`UserError` if the model's inputs or image size differ from ``spec``."""
    if sorted(runtime.input_names) != sorted(spec.input_names):
        raise UserError(
            f"{runtime.name}: inputs {sorted(runtime.input_names)} do not match the spec's "
            f"{sorted(spec.input_names)}"
        )
    shape = runtime.input_shape(IMAGE_INPUT)
    if shape is not None and len(shape) == 4 and shape[1] not in (None, spec.image_size):
        raise UserError(
            f"{runtime.name}: image input is {shape[1]}x{shape[2]} but the spec says "
            f"{spec.image_size}x{spec.image_size}"
        )


def frame_inputs(
    frame: pd.DataFrame, spec: ModelSpec, batch_size: int = 64
) -> dict[str, np.ndarray]:
    """The named inputs of every row of ``frame``: ``image`` (N, S, S, 3) uint8 and ``metadata``.

    Images and metadata come from :func:`mobile_skin.contract.pipeline.make_dataset` (no
    augmentation), the one preprocessing every runtime shares. Images stay uint8 (a quarter of the
    memory of float32); :meth:`Runtime.predict` feeds them as float32 pixel values.
    """
    from mobile_skin.contract.pipeline import make_dataset

    ds = make_dataset(
        frame, spec.image_size, batch_size, encoding=spec.encoding, labels=False, cache=False
    )
    parts: dict[str, list[np.ndarray]] = {name: [] for name in spec.input_names}
    for batch in ds:
        for name, value in batch.items():
            array = value.numpy()
            parts[name].append(array.astype(np.uint8) if name == IMAGE_INPUT else array)
    size = spec.image_size
    empty = {IMAGE_INPUT: np.zeros((0, size, size, 3), np.uint8)}
    if spec.encoding is not None:
        empty[METADATA_INPUT] = np.zeros((0, spec.encoding.size), np.float32)
    return {k: np.concatenate(v) if v else empty[k] for k, v in parts.items()}


def predict_inputs(
    runtime: Runtime,
    inputs: Mapping[str, np.ndarray],
    num_classes: int,
    batch_size: int = 64,
    *,
    progress: str | None = None,
) -> np.ndarray:
    """Class probabilities (N, C) of ``runtime`` for named input arrays, in batches, in order.

    Args:
        runtime: any :class:`Runtime`.
        inputs: arrays by input name, all with N rows (e.g. from :func:`frame_inputs`).
        num_classes: C (the shape of the result when N is 0).
        batch_size: rows per call.
        progress: show a progress bar with this description (None: silent).
    """
    from tqdm.auto import tqdm

    n = len(next(iter(inputs.values()))) if inputs else 0
    out = []
    with tqdm(total=n, desc=progress, disable=progress is None, leave=False) as bar:
        for start in range(0, n, batch_size):
            out.append(
                runtime.predict({k: v[start : start + batch_size] for k, v in inputs.items()})
            )
            bar.update(len(out[-1]))
    return np.concatenate(out) if out else np.zeros((0, num_classes), np.float32)


def predict_frame(
    runtime: Runtime,
    frame: pd.DataFrame,
    spec: ModelSpec,
    batch_size: int = 64,
    *,
    progress: str | None = None,
) -> np.ndarray:
    """Class probabilities (N, C) of ``runtime`` for the rows of ``frame``, in row order.

    Streams: decodes and predicts one batch at a time (any number of rows).

    Args:
        runtime: any :class:`Runtime`.
        frame: validated rows (``path``, ``label`` and the metadata columns).
        spec: image size and metadata encoding.
        batch_size: rows per pipeline batch.
        progress: show a progress bar with this description (None: silent).
    """
    from tqdm.auto import tqdm

    from mobile_skin.contract.pipeline import make_dataset

    ds = make_dataset(
        frame, spec.image_size, batch_size, encoding=spec.encoding, labels=False, cache=False
    )
    out = []
    with tqdm(total=len(frame), desc=progress, disable=progress is None, leave=False) as bar:
        for batch in ds:
            out.append(runtime.predict({k: v.numpy() for k, v in batch.items()}))
            bar.update(len(out[-1]))
    return np.concatenate(out) if out else np.zeros((0, len(spec.classes)), np.float32)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]
