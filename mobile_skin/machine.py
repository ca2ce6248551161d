"""What machine and library versions a result was measured on (for titles and file names)."""

from __future__ import annotations

import os
import platform
import re
from importlib import metadata


def cpu_name() -> str:
    """The CPU model string, e.g. 'Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz'."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` (default: the ones results depend on)."""
    packages = packages or (
        "tensorflow",
        "tf-keras",
        "ai-edge-litert",
        "onnxruntime",
        "tf2onnx",
        "numpy",
    )
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def describe() -> dict:
    """CPU, core count, OS, Python and library versions."""
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        **versions(),
    }


def slug(text: str) -> str:
    """A file-name-safe form: 'Intel(R) Xeon(R) 8481C @ 2.7GHz' -> 'intel-xeon-8481c-2-7ghz'."""
    text = re.sub(r"\((R|TM)\)|CPU|@", " ", text, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
