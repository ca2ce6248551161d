"""``mobile-skin COMMAND [ARGS]``: every command of the project under one name.

Each command is the same function the longer spelling runs, so both take the same arguments and
give the same output and exit status (``mobile-skin train ...`` is ``python -m mobile_skin.train
...``, ``mobile-skin export tflite ...`` is ``python export/to_tflite.py ...``). ``mobile-skin``
alone or with ``--help`` lists the commands by stage; ``mobile-skin COMMAND --help`` shows a
command's own options. Installed as a console entry point by ``pip install -e .``
(``pyproject.toml``).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from mobile_skin.common.errors import EXIT_USAGE


@dataclass(frozen=True)
class Command:
    """One command: where its ``main(argv)`` is, what it does, and the same command spelt long."""

    module: str
    function: str
    summary: str
    long_form: str


#: Stage -> command name -> command, in pipeline order.
COMMANDS: dict[str, dict[str, Command]] = {
    "train and evaluate": {
        "train": Command("mobile_skin.training.train", "main",
                         "train a model on a HAM10000-shaped folder",
                         "python -m mobile_skin.train"),
        "evaluate": Command("mobile_skin.evaluation.evaluate", "main",
                            "score a run's split or an external set, in Keras or an exported file",
                            "python -m mobile_skin.evaluate"),
        "calibrate": Command("mobile_skin.evaluation.calibrate", "main",
                             "fit and fold a run's temperature (training does it too)",
                             "python -m mobile_skin.calibrate"),
        "compare": Command("mobile_skin.evaluation.compare", "main", "finished runs side by side",
                           "python -m mobile_skin.compare"),
        "sweep": Command("mobile_skin.training.sweep", "main",
                         "the paper's Table 8 cut sweep: one run per cut, then a summary",
                         "python -m mobile_skin.sweep"),
    },
    "export and use": {
        "export tflite": Command("mobile_skin.export.cli", "tflite_main",
                                 "convert to TFLite, gated on parity with Keras",
                                 "python export/to_tflite.py"),
        "export onnx": Command("mobile_skin.export.cli", "onnx_main",
                               "convert to ONNX, gated on parity with Keras",
                               "python export/to_onnx.py"),
        "predict": Command("mobile_skin.model.predict", "main",
                           "classify photos with a run or an exported file",
                           "python -m mobile_skin.predict"),
        "device-golden": Command("mobile_skin.export.device_golden", "main",
                                 "write the Android instrumented test's golden",
                                 "python -m mobile_skin.device_golden"),
    },
    "measure": {
        "bench": Command("mobile_skin.bench.table10", "main",
                         "the paper's Table 10 on this machine", "python benchmarks/latency.py"),
        "profile": Command("mobile_skin.bench.profile_cli", "main",
                           "ops outside XNNPACK and per-op time of .tflite files",
                           "python benchmarks/profile_tflite.py"),
    },
}  # fmt: skip


def usage() -> str:
    """The command list, grouped by stage."""
    lines = ["usage: mobile-skin COMMAND [ARGS]  (mobile-skin COMMAND --help for its options)"]
    width = max(len(name) for group in COMMANDS.values() for name in group)
    for stage, group in COMMANDS.items():
        lines += ["", f"{stage}:"]
        lines += [f"  {name:<{width}}  {c.summary} (= {c.long_form})" for name, c in group.items()]
    return "\n".join(lines)


def find(argv: list[str]) -> tuple[Command, list[str]] | None:
    """The command ``argv`` names (one or two words) and the arguments left for it."""
    table = {name: c for group in COMMANDS.values() for name, c in group.items()}
    for words in (2, 1):
        name = " ".join(argv[:words])
        if len(argv) >= words and name in table:
            return table[name], argv[words:]
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mobile-skin`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else EXIT_USAGE
    found = find(argv)
    if found is None:
        name = " ".join(argv[:2]) if argv[0] == "export" else argv[0]
        print(f"error: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return EXIT_USAGE
    command, rest = found
    function = getattr(importlib.import_module(command.module), command.function)
    return function(rest)


if __name__ == "__main__":
    sys.exit(main())
