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


#: CPU features that decide int8 speed: x86 (``/proc/cpuinfo`` flags) and ARM (``Features``).
#: VNNI (AVX-512 VNNI, AVX-VNNI) and ARM dotprod (``asimddp``) / i8mm are int8 dot products.
INT8_DOT_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
CPU_FEATURES = ("avx2", "fma", "avx512f", *INT8_DOT_FEATURES)


def cpu_features(cpuinfo: str | None = None) -> list[str]:
    """The :data:`CPU_FEATURES` this CPU has, read from ``/proc/cpuinfo`` (or the given text)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return []
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return [f for f in CPU_FEATURES if f in flags]


def has_int8_dot_product(features: list[str] | None = None) -> bool:
    """Whether the CPU has int8 dot-product instructions (where int8 inference pays)."""
    features = cpu_features() if features is None else features
    return any(f in INT8_DOT_FEATURES for f in features)


def int8_speed_note(features: list[str] | None = None) -> str:
    """One line for int8 results: empty on a CPU with int8 dot products, else a warning."""
    features = cpu_features() if features is None else features
    if has_int8_dot_product(features):
        return ""
    have = " ".join(features) or "no AVX2"
    return (
        f"note: this CPU ({have}) has no int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI, "
        "ARM dotprod): int8 files run about as fast as float32 here; phones with ARMv8.2 dotprod "
        "and VNNI servers show the speedup"
    )


def feature_tag(features: list[str] | None = None) -> str:
    """A file-name tag for the int8-relevant feature set: ``vnni``, ``avx512``, ``avx2``,
    ``dotprod`` or ``basic``."""
    features = cpu_features() if features is None else features
    for tag, have in (
        ("vnni", ("avx512_vnni", "avx_vnni", "amx_int8")),
        ("dotprod", ("asimddp", "i8mm")),
        ("avx512", ("avx512f",)),
        ("avx2", ("avx2",)),
    ):
        if any(f in features for f in have):
            return tag
    return "basic"


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
    """CPU, core count, the CPU features int8 speed depends on, OS, Python, library versions."""
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "cpu_features": " ".join(cpu_features()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        **versions(),
    }


def slug(text: str) -> str:
    """A file-name-safe form: 'Intel(R) Xeon(R) 8481C @ 2.7GHz' -> 'intel-xeon-8481c-2-7ghz'."""
    text = re.sub(r"\((R|TM)\)|CPU|@", " ", text, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def headline(m: dict | None = None) -> str:
    """The machine in one phrase for table titles: CPU, cores and int8-relevant features."""
    m = m or describe()
    features = m.get("cpu_features") or "features unknown"
    return f"{m['cpu']} ({m['cores']} cores; {features})"
