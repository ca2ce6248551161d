"""Walking and rebuilding a functional tf_keras graph: the machinery under :mod:`edge_model`.

A :class:`Graph` indexes one functional model's nodes (in topological order), the producer of
every tensor and the consumers of every tensor. :func:`clone_layer` copies one layer (config and
weights, as float32); :func:`call_like` calls a copy on new tensors with the original node's
arguments (constants included, e.g. the ``3.0`` of a ``TFOpLambda``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tf_keras

L = tf_keras.layers


class Graph:
    """The nodes of a functional model and who produces and consumes each tensor.

    Args:
        model: a functional (or Sequential) tf_keras model.

    Attributes:
        nodes: the model's nodes, every node after all the nodes it depends on.
    """

    def __init__(self, model: tf_keras.Model):
        if not getattr(model, "_is_graph_network", False):
            raise ValueError(f"{model.name}: not a functional model; cannot rewrite its graph")
        self.model = model
        self.nodes = [
            n for d in sorted(model._nodes_by_depth, reverse=True) for n in model._nodes_by_depth[d]
        ]
        self._consumers: dict[int, list] = {}
        for node in self.nodes:
            for kt in node.keras_inputs:
                self._consumers.setdefault(id(kt), []).append(node)
        self._outputs = {id(t) for t in model.outputs}

    def consumers(self, tensor) -> list:
        """The nodes of this model that take ``tensor`` as an input."""
        return self._consumers.get(id(tensor), [])

    def only_consumer(self, tensor):
        """The one node consuming ``tensor``; None if several or none do, or it is an output."""
        users = self.consumers(tensor)
        if len(users) != 1 or id(tensor) in self._outputs:
            return None
        return users[0]

    @staticmethod
    def producer(tensor):
        """The node that computed ``tensor``."""
        layer, node_index, _ = tensor._keras_history
        return layer._inbound_nodes[node_index]


def is_keras_tensor(x) -> bool:
    """True for a symbolic tensor of a functional model (it knows the layer that made it)."""
    return hasattr(x, "_keras_history")


def node_output(node):
    """The single output tensor of ``node``."""
    outputs = tf.nest.flatten(node.outputs)
    if len(outputs) != 1:
        raise ValueError(f"layer {node.layer.name} has {len(outputs)} outputs, expected 1")
    return outputs[0]


def tensor_arg(node, index: int = 0):
    """The ``index``-th tensor among the node's positional arguments (lists flattened)."""
    tensors = [a for a in tf.nest.flatten(node.call_args) if is_keras_tensor(a)]
    return tensors[index] if index < len(tensors) else None


def constant_arg(node) -> float | None:
    """The one Python-number argument of a ``TFOpLambda`` node (e.g. the 3 of x + 3).

    A freshly built model holds it positionally (``(x, 3.0)``), a loaded one as ``y=3.0``.
    """
    values = list(node.call_args) + [v for k, v in node.call_kwargs.items() if k != "name"]
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    tensors = [v for v in values if is_keras_tensor(v)]
    if len(numbers) != 1 or len(tensors) != 1 or len(values) != 2:
        return None
    return float(numbers[0])


def is_op(node, function: str) -> bool:
    """True if ``node`` is a ``TFOpLambda`` call of ``function`` (e.g. ``math.multiply``)."""
    layer = node.layer
    return type(layer).__name__ == "TFOpLambda" and layer.get_config().get("function") == function


def is_relu6(layer) -> bool:
    """True for a plain ``ReLU(max_value=6)`` layer."""
    if not isinstance(layer, L.ReLU):
        return False
    cfg = layer.get_config()
    return (
        cfg.get("max_value") is not None
        and float(cfg["max_value"]) == 6.0
        and float(cfg.get("negative_slope") or 0.0) == 0.0
        and float(cfg.get("threshold") or 0.0) == 0.0
    )


def is_linear(layer) -> bool:
    """True if the layer has no activation (or a linear one)."""
    activation = getattr(layer, "activation", None)
    return activation is None or activation is tf_keras.activations.linear


def float32_config(layer, **overrides) -> dict:
    """The layer's config, computing in float32, with ``overrides`` applied."""
    cfg = layer.get_config()
    cfg["dtype"] = "float32"
    cfg.update(overrides)
    return cfg


def clone_layer(layer, **overrides):
    """A new, unbuilt layer with ``layer``'s config (float32) and ``overrides``."""
    if isinstance(layer, tf_keras.Model):
        raise ValueError(
            f"nested model {layer.name}: rewrite its layers into the outer model first"
        )
    return type(layer).from_config(float32_config(layer, **overrides))


def call_like(node, layer, env: dict[int, tf.Tensor]):
    """Call ``layer`` with ``node``'s arguments, Keras tensors replaced by ``env[id(tensor)]``."""

    def new(x):
        return env[id(x)] if is_keras_tensor(x) else x

    args = tf.nest.map_structure(new, node.call_args)
    kwargs = tf.nest.map_structure(new, node.call_kwargs)
    return layer(*args, **kwargs)


def apply(layer, inputs, weights: list[np.ndarray] | None = None):
    """Call ``layer`` on ``inputs`` (which builds it), then set its ``weights`` if given."""
    out = layer(inputs)
    if weights is not None:
        layer.set_weights([np.asarray(w, dtype=np.float32) for w in weights])
    return out


def rebuild(
    graph: Graph,
    rewrites: dict[int, tuple[set[int], Callable[[dict[int, tf.Tensor]], tf.Tensor]]],
    name: str,
) -> tf_keras.Model:
    """A new functional model: ``graph``'s nodes copied, except where a rewrite takes over.

    Args:
        graph: the original model's graph.
        rewrites: for the id of an *anchor* node, ``(claimed, build)``: ``claimed`` are ids of the
            nodes the rewrite replaces (anchor included; they are not copied), ``build(env)``
            returns the new tensor that stands for the anchor's output. Every claimed node's
            output other than the anchor's must be consumed only inside ``claimed``.
        name: the new model's name.
    """
    claimed = set().union(*(c for c, _ in rewrites.values())) if rewrites else set()
    env: dict[int, tf.Tensor] = {}
    for node in graph.nodes:
        layer = node.layer
        if id(node) in rewrites:
            env[id(node_output(node))] = rewrites[id(node)][1](env)
        elif id(node) in claimed:
            continue
        elif node.is_input:
            kt = node_output(node)
            env[id(kt)] = L.Input(kt.shape[1:], name=layer.name, dtype=kt.dtype)
        else:
            copy = clone_layer(layer)
            out = call_like(node, copy, env)
            copy.set_weights(layer.get_weights())
            for old, new in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(out), strict=True):
                env[id(old)] = new
    inputs = [env[id(t)] for t in graph.model.inputs]
    outputs = [env[id(t)] for t in graph.model.outputs]
    return tf_keras.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=name)
