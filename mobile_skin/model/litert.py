"""A LiteRT interpreter, made and allocated without LiteRT's log line on stderr.

LiteRT writes ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` from C++ straight to
file descriptor 2 when the delegate is applied, at the first ``allocate_tensors()``; Python's
``sys.stderr`` never sees it. Every command that runs a ``.tflite`` makes its interpreter here, so
none of them prints the line (``MOBILE_SKIN_VERBOSE=1`` shows it again).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter


def allocated_interpreter(
    *,
    path: Path | str | None = None,
    content: bytes | None = None,
    threads: int | None = None,
    xnnpack: bool = True,
) -> Interpreter:
    """An interpreter of the file at ``path`` or of ``content``, its tensors allocated.

    Args:
        path: the ``.tflite`` file (give this or ``content``).
        content: the model's bytes.
        threads: interpreter threads (None: LiteRT's default).
        xnnpack: apply LiteRT's default XNNPACK delegate (False: built-in kernels only).

    Raises:
        ValueError, RuntimeError: LiteRT's own, for a file it cannot read or allocate.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from mobile_skin import quiet_native_stderr

    if (path is None) == (content is None):
        raise TypeError("give exactly one of path and content")
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with quiet_native_stderr():
        interpreter = Interpreter(
            model_path=None if path is None else str(path), model_content=content,
            num_threads=threads, experimental_op_resolver_type=resolver,
        )  # fmt: skip
        interpreter.allocate_tensors()
    return interpreter
