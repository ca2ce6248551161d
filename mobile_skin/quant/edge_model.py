"""Export-time rewrite of a trained model into an equivalent graph that converts to fast int8.

Full-integer TFLite runs fast on CPU only when XNNPACK takes the whole graph; every op it leaves
to the built-in kernels splits the graph into another partition (reports/int8_profile.md).
XNNPACK has no int8 HARD_SWISH, SOFTMAX or stand-alone RELU6 kernel, and it rejects an int8 ADD
whose input/output scales are too far apart, which ``relu6(x + 3)`` on a wide-range ``x`` is.
:func:`to_edge_model` rebuilds the model from standard layers that convert to kernels XNNPACK
takes, copying the trained weights, without changing the function (equal in float up to
rounding; tests/test_edge_model.py). Training code and saved models are untouched.

The rewrites (x = BatchNorm output, BN(x) = gamma * x_hat + beta):

* hard-swish ``x * relu6(x + 3) / 6`` -> ``(x/6) * relu6(6 * (x/6) + 3)``: the 1/6 goes into the
  BatchNorm (gamma/6, beta/6), the 6 and the +3 into a 1x1 depthwise convolution with ReLU6
  fused, then one Multiply. (A second copy of the convolution with beta + 3 for the gate does
  not survive conversion: the converter merges the two identical convolutions and leaves
  per-channel int8 ADDs that XNNPACK refuses.)
* squeeze-excite gate ``x * relu6(z + 3) / 6``: the +3 goes into z's convolution bias, the 1/6
  into the kernel of the projection convolution that consumes the product.
* SoftAttention + head: the custom layer becomes Conv2D -> Reshape -> Permute -> Softmax over
  positions -> Permute -> Reshape -> 1x1 Conv2D (weights gamma: the sum over heads and the scale)
  -> Multiply; and ``Dense(concat(flatten(pool(t)), flatten(pool(t * alpha)), metadata))`` becomes
  one Dense per part plus Add, so the plain features, the attended features and the metadata
  branch each keep their own int8 scale instead of sharing the concatenation's.

Every layer of the result computes in float32 (a mixed-precision model comes out float32).

:data:`INT8_FLOAT_OPS` are the op types a full-integer export should leave in float: the head
(fully connected layers, the concatenation of partial logits, both softmaxes). They cost little
(about 0.3 MFLOP in all), XNNPACK runs them in the same partition as the int8 ops, and int8
logits tie: two classes whose logits round to the same int8 step get the same probability, and
the top-1 answer then depends on class order (reports/int8_profile.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tf_keras

from mobile_skin.model.keras_graph import (
    Graph,
    apply,
    clone_layer,
    constant_arg,
    is_linear,
    is_op,
    is_relu6,
    rebuild,
    tensor_arg,
)
from mobile_skin.model.soft_attention import SoftAttention

L = tf_keras.layers

F32 = {"dtype": "float32"}

#: Op types an int8 TFLite export keeps in float32 (selective quantization); see the docstring.
INT8_FLOAT_OPS: tuple[str, ...] = ("FULLY_CONNECTED", "CONCATENATION", "SOFTMAX")


def to_edge_model(model: tf_keras.Model) -> tf_keras.Model:
    """An export-ready model computing the same function as ``model``.

    Args:
        model: a functional model from :func:`mobile_skin.model.network.build_model` (any backbone;
            patterns that are not found are copied unchanged).

    Returns:
        A new functional model of standard tf_keras layers, same inputs and output names.
    """
    graph = Graph(model)
    rewrites, _ = _plan(graph)
    return rebuild(graph, rewrites, name=model.name + "_edge")


def rewrite_counts(model: tf_keras.Model) -> dict[str, int]:
    """How many places of each kind :func:`to_edge_model` rewrites in ``model``."""
    return _plan(Graph(model))[1]


def _plan(graph: Graph):
    matchers = {
        "hard_swish": _match_hard_swish,
        "se_gate": _match_se_gate,
        "attention_head": _match_attention_head,
    }
    rewrites, claimed, counts = {}, set(), dict.fromkeys(matchers, 0)
    for node in graph.nodes:
        for kind, match in matchers.items():
            found = match(graph, node)
            if found is not None and not found[0] & claimed:
                rewrites[id(node)] = found
                claimed |= found[0]
                counts[kind] += 1
                break
    return rewrites, counts


def _close(value: float | None, target: float) -> bool:
    return value is not None and abs(value - target) <= 1e-6 * abs(target)


def _plain_bn(layer) -> bool:
    if not isinstance(layer, L.BatchNormalization) or not (layer.center and layer.scale):
        return False
    axis = layer.axis if isinstance(layer.axis, list | tuple) else [layer.axis]
    return len(axis) == 1 and axis[0] in (-1, 3)


def _hard_sigmoid_input(graph: Graph, gate):
    """If ``gate`` is ``relu6(z + 3) / 6`` (single-use steps), return (z, claimed nodes)."""
    scale = Graph.producer(gate)
    if not (is_op(scale, "math.multiply") and _close(constant_arg(scale), 1 / 6)):
        return None
    relu = Graph.producer(tensor_arg(scale))
    if not is_relu6(relu.layer) or graph.only_consumer(tensor_arg(scale)) is not scale:
        return None
    add = Graph.producer(tensor_arg(relu))
    if not (is_op(add, "__operators__.add") and _close(constant_arg(add), 3.0)):
        return None
    if graph.only_consumer(tensor_arg(relu)) is not relu:
        return None
    return tensor_arg(add), [add, relu, scale]


def _gated(graph: Graph, node):
    """For ``Multiply([x, hard_sigmoid(z)])``: yield (x, gate tensor, z, claimed nodes)."""
    if type(node.layer) is not L.Multiply or len(node.keras_inputs) != 2:
        return
    a, b = node.keras_inputs
    for x, gate in ((a, b), (b, a)):
        if graph.only_consumer(gate) is not node:
            continue
        found = _hard_sigmoid_input(graph, gate)
        if found is not None:
            yield x, gate, found[0], found[1]


def _match_hard_swish(graph: Graph, node):
    for x, _gate, z, steps in _gated(graph, node):
        bn = Graph.producer(x)
        if z is x and _plain_bn(bn.layer) and len(graph.consumers(x)) == 2:
            claimed = {id(n) for n in [bn, node, *steps]}
            return claimed, _HardSwish(node, bn, steps[1]).build
    return None


@dataclass
class _HardSwish:
    mul: object
    bn: object
    relu: object

    def build(self, env):
        bn, mul = self.bn.layer, self.mul.layer
        gamma, beta, mean, var = bn.get_weights()
        x = env[id(tensor_arg(self.bn))]
        x6 = apply(clone_layer(bn, name=f"{bn.name}/div6"), x, [gamma / 6, beta / 6, mean, var])
        channels = gamma.shape[0]
        dw = L.DepthwiseConv2D(1, name=f"{mul.name}/times6_plus3", **F32)
        g = apply(dw, x6, [np.full((1, 1, channels, 1), 6.0), np.full((channels,), 3.0)])
        gate = L.ReLU(6.0, name=self.relu.layer.name, **F32)(g)
        return L.Multiply(name=mul.name, **F32)([x6, gate])


def _match_se_gate(graph: Graph, node):
    if type(node.layer) is not L.Conv2D or not is_linear(node.layer):
        return None
    product = tensor_arg(node)
    se_mul = Graph.producer(product)
    if graph.only_consumer(product) is not node:
        return None
    for x, _gate, z, steps in _gated(graph, se_mul):
        squeeze = Graph.producer(z)
        if z is x or type(squeeze.layer) is not L.Conv2D or not squeeze.layer.use_bias:
            continue
        if not is_linear(squeeze.layer) or graph.only_consumer(z) is not steps[0]:
            continue
        claimed = {id(n) for n in [node, se_mul, squeeze, *steps]}
        return claimed, _SeGate(node, se_mul, squeeze, steps[1], x).build
    return None


@dataclass
class _SeGate:
    project: object
    se_mul: object
    squeeze: object
    relu: object
    x: object

    def build(self, env):
        squeeze, project = self.squeeze.layer, self.project.layer
        kernel, bias = squeeze.get_weights()
        z = apply(clone_layer(squeeze), env[id(tensor_arg(self.squeeze))], [kernel, bias + 3])
        gate = L.ReLU(6.0, name=self.relu.layer.name, **F32)(z)  # = 6 * hard_sigmoid
        y = L.Multiply(name=self.se_mul.layer.name, **F32)([env[id(self.x)], gate])
        weights = project.get_weights()
        return apply(clone_layer(project), y, [weights[0] / 6, *weights[1:]])


def _match_attention_head(graph: Graph, node):
    """``Dense(concat(..., Flatten(Dropout(ReLU(MaxPool(SoftAttention(t))))), ...))``."""
    dense = node.layer
    if type(dense) is not L.Dense:
        return None
    chain, tensor = [], tensor_arg(node)
    parts = [tensor]
    concat = Graph.producer(tensor)
    if type(concat.layer) is L.Concatenate and concat.layer.axis in (-1, 1):
        if graph.only_consumer(tensor) is not node:
            return None
        chain.append(concat)
        parts = list(concat.keras_inputs)
    for i, part in enumerate(parts):
        steps, t, user = [], part, chain[0] if chain else node
        for kind in (L.Flatten, L.Dropout, L.ReLU, L.MaxPooling2D, SoftAttention):
            producer = Graph.producer(t)
            if type(producer.layer) is not kind or graph.only_consumer(t) is not user:
                break
            if kind is L.ReLU and producer.layer.get_config().get("max_value") is not None:
                break
            steps.append(producer)
            t, user = tensor_arg(producer), producer
        if len(steps) == 5:
            claimed = {id(n) for n in [node, *chain, *steps]}
            return claimed, _AttentionHead(node, steps, parts, i, t).build
    return None


@dataclass
class _AttentionHead:
    dense: object
    steps: list  # flatten, dropout, relu, pool, attention nodes
    parts: list  # the Dense's inputs (concatenated in this order)
    index: int  # which part is the attention branch
    t: object  # the feature map SoftAttention reads

    def build(self, env):
        flatten, dropout, relu, pool, attention = (s.layer for s in self.steps)
        dense = self.dense.layer
        t = env[id(self.t)]
        _, h, w, c = self.t.shape
        k = attention.heads
        conv = L.Conv2D(
            k,
            attention.kernel_size,
            padding="same",
            use_bias=False,
            name=attention.name + "/logits",
            **F32,
        )
        logits = apply(conv, t, [attention.conv.kernel.numpy()])
        a = L.Reshape((h * w, k), name=attention.name + "/flat", **F32)(logits)
        a = L.Permute((2, 1), name=attention.name + "/heads_first", **F32)(a)
        a = L.Softmax(axis=-1, name=attention.name + "/softmax_positions", **F32)(a)
        a = L.Permute((2, 1), name=attention.name + "/positions_first", **F32)(a)
        a = L.Reshape((h, w, k), name=attention.name + "/maps", **F32)(a)
        gamma = float(attention.gamma.numpy())
        total = L.Conv2D(1, 1, use_bias=False, name=attention.name + "/gamma_alpha", **F32)
        alpha = apply(total, a, [np.full((1, 1, k, 1), gamma)])
        attended = L.Multiply(name=attention.name, **F32)([t, alpha])

        kernel = dense.kernel.numpy()
        bias = dense.bias.numpy() if dense.use_bias else np.zeros(kernel.shape[1], np.float32)
        widths = [int(np.prod(p.shape[1:])) for p in self.parts]
        offsets = np.cumsum([0, *widths])
        features, weights = [], []
        for i, part in enumerate(self.parts):
            block = kernel[offsets[i] : offsets[i + 1]]
            if i != self.index:
                features.append((Graph.producer(part).layer.name, env[id(part)]))
                weights.append(block)
                continue
            block = block.reshape(-1, 2 * c, kernel.shape[1])
            for name, x, half in (
                ("features", t, block[:, :c]),
                ("attended", attended, block[:, c:]),
            ):
                x = clone_layer(pool, name=f"{pool.name}/{name}")(x)
                x = clone_layer(relu, name=f"{relu.name}/{name}")(x)
                x = clone_layer(dropout, name=f"{dropout.name}/{name}")(x)
                x = clone_layer(flatten, name=f"{flatten.name}/{name}")(x)
                features.append((name, x))
                weights.append(half.reshape(-1, kernel.shape[1]))
        n_out = kernel.shape[1]
        partial = []
        for (name, x), wj in zip(features, weights, strict=True):
            layer = L.Dense(n_out, use_bias=False, name=f"{dense.name}/{name}", **F32)
            partial.append(apply(layer, x, [wj]))
        if len(partial) > 1:
            # Sum the partial logits with a Dense over their concatenation (weights: stacked
            # identities) rather than Add: XNNPACK refuses an int8 ADD whose addend is more than
            # ~1000x smaller than the sum (seen on a smoke-trained model).
            stacked = L.Concatenate(name=f"{dense.name}/partial_logits", **F32)(partial)
        else:
            stacked = partial[0]
        total = L.Dense(n_out, name=f"{dense.name}/logits", **F32)
        eye = np.tile(np.eye(n_out, dtype=np.float32), (len(partial), 1))
        logits = apply(total, stacked, [eye, bias])
        activation = tf_keras.activations.serialize(dense.activation)
        return L.Activation(activation, name=dense.name, **F32)(logits)
