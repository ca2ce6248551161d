"""Swap tfmot quantizers' ``__call__`` for a while, and put it back.

Calibration (:func:`mobile_skin.quant.qat.calibrate`), the sensitivity probe's bit widths
(:func:`mobile_skin.quant.sensitivity.bit_widths`) and learnt ranges
(:meth:`mobile_skin.quant.learned_ranges.LearnedRanges.active`) each change what tfmot's
quantizers compute without rebuilding the QAT graph: tfmot builds a quantizer's fake-quant op from
``Quantizer.__call__`` each time a wrapped layer runs (eagerly, or when a ``tf.function`` traces).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

__all__ = ["replaced_calls"]

#: Given a quantizer class's original ``__call__``, the one to use instead.
CallFactory = Callable[[Callable], Callable]


@contextlib.contextmanager
def replaced_calls(factories: Mapping[type, CallFactory]) -> Iterator[None]:
    """While active, each class ``cls`` in ``factories`` has ``__call__ =
    factories[cls](original)``; the originals are restored on exit, also after an error."""
    originals = {cls: cls.__call__ for cls in factories}
    try:
        for cls, make in factories.items():
            cls.__call__ = make(originals[cls])
        yield
    finally:
        for cls, call in originals.items():
            cls.__call__ = call
