"""How coarse 8 bits are for each activation tensor of a model, and why.

The int8 probe (:mod:`mobile_skin.quant.sensitivity`) says *which* tensors cost agreement; this
module says what those tensors look like: their range, how much of it a typical channel uses, and
the signal-to-quantization-noise ratio (SQNR) 8 bits leave them. Two models of one recipe that
quantize very differently (reports/int8.md, section 6) can then be compared tensor by tensor.

Every statistic is of the float model's export form (:func:`mobile_skin.quant.edge_model.
to_edge_model`), on the images given, each tensor quantized alone (no error carried from earlier
tensors). The range is the exporter's: min/max (0 included), narrowed by the least-squares search
:func:`mobile_skin.quant.qat.mse_range` on a sample of the values, here fitted on the measured
images themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import tf_keras

from mobile_skin.quant.qat import SAMPLES_PER_CALL, fake_quant, mse_range

__all__ = ["TensorRange", "measure", "quantized_layers", "tensor_layers"]


@dataclass(frozen=True)
class TensorRange:
    """One activation tensor's statistics over a set of images.

    Attributes:
        name: the layer whose output it is.
        channels: size of the last axis.
        low: smallest value (0 if all are positive: int8 ranges always hold 0).
        high: largest value (0 if all are negative).
        clip_low: lower end of the least-squares 8-bit range.
        clip_high: upper end of it.
        std: standard deviation of all values.
        channel_spread: the largest absolute value over the median channel's largest absolute
            value: near 1 when every channel fills the range, large when a few channels set it.
        sqnr_db: signal-to-quantization-noise ratio at 8 bits over the least-squares range, in
            dB: ``10 log10(var(x) / mean((q(x) - x)^2))``. A uniform signal filling its range
            gets 48.1 dB; each dB less is resolution lost to outliers or a narrow core.
        channel_sqnr_db: the median channel's SQNR (each channel's variance over its own
            quantization noise). Below ``sqnr_db`` when a few loud channels set the range and
            carry most of the variance: the quiet ones are quantized coarsely, whatever the
            whole tensor's figure says.
    """

    name: str
    channels: int
    low: float
    high: float
    clip_low: float
    clip_high: float
    std: float
    channel_spread: float
    sqnr_db: float
    channel_sqnr_db: float

    def to_dict(self) -> dict:
        return asdict(self)


def tensor_layers(model: tf_keras.Model) -> list[str]:
    """The layers of ``model``, in graph order, with one float output of at least two axes (the
    activations an int8 converter quantizes; inputs and multi-output layers left out)."""
    names = []
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.InputLayer):
            continue
        out = layer.output
        if isinstance(out, list | tuple) or len(out.shape) < 2 or not out.dtype.is_floating:
            continue
        names.append(layer.name)
    return names


def quantized_layers(model: tf_keras.Model, batch: dict) -> list[str]:
    """The layers of ``model`` whose outputs the exporter's int8 graph quantizes, in the order
    that graph calls them: the layers behind the activation ranges of
    :func:`mobile_skin.quant.qat.build_qat_model` (BatchNorm folded into its convolution,
    identities left out, as the converter does; the image input and its rescaling, fixed and
    exact, left out too). ``batch`` is one input batch (the graph is traced on it)."""
    from mobile_skin.quant import qat
    from mobile_skin.quant.sensitivity import bit_widths

    qat_model, _ = qat.build_qat_model(model)
    seen: list[str] = []
    with bit_widths(lambda kind, key: 8, seen):
        qat_model(batch, training=False)
    layers = {layer.name for layer in model.layers}
    names = [key.rsplit("/", 1)[0] for key in seen]
    return list(dict.fromkeys(n for n in names if n in layers))


def measure(
    model: tf_keras.Model,
    batches: Iterable[dict],
    names: Sequence[str],
    *,
    bits: int = 8,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[TensorRange]:
    """Statistics of the outputs of layers ``names`` (:func:`quantized_layers`, or
    :func:`tensor_layers` for every one) over ``batches``, in two passes: the first finds each
    tensor's min/max and a sample of its values (for the least-squares range), the second its
    quantization noise at ``bits`` (over that 8-bit range, as the exporter's). ``batches`` is
    iterated twice; ``progress`` is called with the number of batches done in each pass."""
    names = list(names)
    if not names:
        raise ValueError(f"{model.name}: no activation tensors to measure")
    probe = tf_keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    rng = np.random.default_rng(seed)
    n = len(names)
    low, high = np.zeros(n), np.zeros(n)
    channel_max: list[np.ndarray | None] = [None] * n
    samples: list[list[np.ndarray]] = [[] for _ in names]
    for inputs in batches:
        for i, x in enumerate(_outputs(probe, inputs)):
            low[i], high[i] = min(low[i], float(x.min())), max(high[i], float(x.max()))
            ch = np.abs(x.reshape(-1, x.shape[-1])).max(axis=0)
            channel_max[i] = ch if channel_max[i] is None else np.maximum(channel_max[i], ch)
            flat = x.ravel()
            samples[i].append(flat[rng.integers(0, flat.size, min(flat.size, SAMPLES_PER_CALL))])
        if progress:
            progress(1)
    ranges = [
        mse_range(np.concatenate(s), lo, hi) if hi > lo else (lo, hi)
        for s, lo, hi in zip(samples, low, high, strict=True)
    ]
    # Per channel: values, sum, sum of squares, squared quantization error.
    sums: list[np.ndarray | None] = [None] * n
    for inputs in batches:
        for i, x in enumerate(_outputs(probe, inputs)):
            flat = x.reshape(-1, x.shape[-1])
            lo, hi = ranges[i]
            error = fake_quant(flat, lo, hi, bits) - flat if hi > lo else np.zeros_like(flat)
            part = np.stack(
                [
                    np.full(flat.shape[1], flat.shape[0], np.float64),
                    flat.sum(axis=0, dtype=np.float64),
                    np.square(flat).sum(axis=0, dtype=np.float64),
                    np.square(error).sum(axis=0, dtype=np.float64),
                ]
            )
            sums[i] = part if sums[i] is None else sums[i] + part
        if progress:
            progress(1)
    rows = []
    for i, name in enumerate(names):
        count, total, squares, noise = sums[i]
        ch = channel_max[i]
        median = float(np.median(ch))
        channel_var = np.maximum(squares / count - (total / count) ** 2, 0.0)
        var = max(squares.sum() / count.sum() - (total.sum() / count.sum()) ** 2, 0.0)
        rows.append(
            TensorRange(
                name=name,
                channels=int(ch.size),
                low=float(low[i]),
                high=float(high[i]),
                clip_low=float(ranges[i][0]),
                clip_high=float(ranges[i][1]),
                std=float(np.sqrt(var)),
                channel_spread=float(ch.max() / median) if median > 0 else float("inf"),
                sqnr_db=_db(var, noise.sum() / count.sum()),
                channel_sqnr_db=float(np.median(_db(channel_var, noise / count))),
            )
        )
    return rows


def _db(signal, noise):
    """``10 log10(signal / noise)``; infinite where there is no noise, -inf where no signal."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10 * np.log10(np.asarray(signal, np.float64) / np.asarray(noise, np.float64))
    out = np.where(np.asarray(noise) > 0, out, np.inf)
    return float(out) if out.ndim == 0 else out


def _outputs(probe: tf_keras.Model, inputs: dict) -> list[np.ndarray]:
    out = probe(inputs, training=False)
    out = out if isinstance(out, list | tuple) else [out]
    return [t.numpy() for t in out]
