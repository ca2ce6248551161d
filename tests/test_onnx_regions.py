"""The float regions of an int8 ONNX file: which nodes a Keras layer name keeps float
(:func:`mobile_skin.export.convert_onnx.prefix_nodes` and
:func:`~mobile_skin.export.convert_onnx.tail_nodes`), on a hand-made graph shaped like tf2onnx's
(node names hold ``/<keras layer>/``)."""

from __future__ import annotations

import pytest
from onnx import helper

from mobile_skin.common.errors import UserError
from mobile_skin.export.convert_onnx import prefix_nodes, tail_nodes


def _graph():
    """x -> stem -> block1 (two nodes) -> head; metadata -> meta -> head; block1 also feeds
    side, which nothing reads."""
    node = helper.make_node
    nodes = [
        node("Relu", ["x"], ["a"], name="m/stem/Relu"),
        node("Conv", ["a", "w1"], ["b"], name="m/block1/conv/Conv"),
        node("Relu", ["b"], ["c"], name="m/block1/act/Relu"),
        node("Relu", ["metadata"], ["d"], name="m/meta/Relu"),
        node("Add", ["c", "d"], ["y"], name="m/head/Add"),
        node("Relu", ["c"], ["s"], name="m/side/Relu"),
    ]
    return helper.make_graph(nodes, "g", [], [])


def test_a_float_tail_is_its_layer_and_everything_downstream():
    got = set(tail_nodes(_graph(), "block1"))
    assert got == {"m/block1/conv/Conv", "m/block1/act/Relu", "m/head/Add", "m/side/Relu"}
    assert set(tail_nodes(_graph(), "head")) == {"m/head/Add"}


def test_a_float_prefix_is_its_layer_and_everything_upstream():
    got = set(prefix_nodes(_graph(), "block1"))
    assert got == {"m/stem/Relu", "m/block1/conv/Conv", "m/block1/act/Relu"}


def test_an_unknown_layer_is_a_clear_error():
    with pytest.raises(UserError, match="no node of layer 'nope' to start the float tail"):
        tail_nodes(_graph(), "nope")
    with pytest.raises(UserError, match="no node of layer 'nope' to end the float start"):
        prefix_nodes(_graph(), "nope")
