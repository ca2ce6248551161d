"""Where a ``.tflite`` file spends its time on the CPU, as far as the Python runtime can tell.

LiteRT's Python interpreter has no op profiler, so this module reconstructs one:

* **ops and partitions**: the interpreter (XNNPACK applied, as by default) lists the model's
  nodes followed by one ``DELEGATE`` node per XNNPACK partition. Walking back from each delegate
  node's outputs to its inputs gives the nodes it replaced; every other node runs on LiteRT's
  built-in kernels and splits the graph into one more partition.
* **timing**: every op (or every segment: one XNNPACK partition or one built-in op) is cut out
  of the flatbuffer as a model of its own (same tensors, quantization and weights), fed random
  inputs and timed alone at batch 1 (warm-up, then ``runs`` invocations, median). The op alone
  pays one interpreter invocation (reported as ``overhead_ms``, measured on an empty model), so
  compare the sum with the whole model's time.

* **against a reference** (:func:`compare`): the ops of one file matched to another's by output
  tensor name (a float32 file against its int8 one), their per-op times summed by op type and
  precision, so the kernels that lose in int8 stand out.

Timing numbers are only meaningful on an idle machine: hold ``/tmp/mobile_skin_timing.lock``.
"""

from __future__ import annotations

import copy
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

from mobile_skin.common.errors import UserError
from mobile_skin.common.fileio import shown_path
from mobile_skin.model.litert import allocated_interpreter


@dataclass
class Op:
    """One node of the model's main subgraph.

    Attributes:
        index: position in the subgraph (execution order before delegation).
        name: builtin op name, e.g. ``CONV_2D``.
        output: name of its first output tensor.
        shape: shape of that output.
        dtype: element type of that output (``int8``, ``float32``...).
        partition: index of the XNNPACK partition that runs it, or None (built-in kernel).
    """

    index: int
    name: str
    output: str
    shape: tuple[int, ...]
    dtype: str
    partition: int | None


@dataclass
class Segment:
    """A run of ops executed as one unit: one XNNPACK partition, or one op outside it."""

    ops: list[Op]
    delegated: bool

    @property
    def label(self) -> str:
        if not self.delegated:
            op = self.ops[0]
            return f"{op.name} {op.dtype} {list(op.shape)} (#{op.index})"
        kinds = ", ".join(f"{k} {v}" for k, v in Counter(o.name for o in self.ops).most_common(4))
        return f"XNNPACK: {len(self.ops)} ops ({kinds})"


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes, or a one-line error if it is not a TFLite model."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UserError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier)")
    return data


def list_ops(content: bytes, *, xnnpack: bool = True) -> list[Op]:
    """The model's ops with the XNNPACK partition each one runs in (None: built-in kernel)."""
    interpreter = allocated_interpreter(content=content, threads=1, xnnpack=xnnpack)
    details = interpreter._get_ops_details()  # no public API lists nodes and delegate nodes
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    nodes = [d for d in details if d["op_name"] != "DELEGATE"]
    producer = {int(t): d["index"] for d in nodes for t in d["outputs"]}
    partition_of: dict[int, int] = {}
    for number, node in enumerate(d for d in details if d["op_name"] == "DELEGATE"):
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        while stack:
            t = stack.pop()
            if t in boundary or t not in producer or producer[t] in partition_of:
                continue
            partition_of[producer[t]] = number
            stack.extend(int(i) for i in details[producer[t]]["inputs"] if i >= 0)
    ops = []
    for d in nodes:
        out = tensors.get(int(d["outputs"][0]), {}) if len(d["outputs"]) else {}
        ops.append(
            Op(
                index=d["index"],
                name=d["op_name"],
                output=out.get("name", ""),
                shape=tuple(int(s) for s in out.get("shape", ())),
                dtype=np.dtype(out["dtype"]).name if "dtype" in out else "",
                partition=partition_of.get(d["index"]),
            )
        )
    return ops


def segments(ops: list[Op]) -> list[Segment]:
    """The ops grouped as they execute: each XNNPACK partition, and each op outside one."""
    groups: dict[tuple, list[Op]] = {}
    for op in ops:
        key = ("p", op.partition) if op.partition is not None else ("op", op.index)
        groups.setdefault(key, []).append(op)
    out = [Segment(g, delegated=k[0] == "p") for k, g in groups.items()]
    return sorted(out, key=lambda s: s.ops[0].index)


def extract(content: bytes, op_indices: list[int]) -> bytes:
    """A model made of only the given ops of subgraph 0 (inputs: the tensors they read but do
    not produce and that hold no constant data; outputs: everything they produce)."""
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    graph = model.subgraphs[0]
    chosen = [graph.operators[i] for i in op_indices]
    produced = [t for op in chosen for t in op.outputs if t >= 0]
    used: list[int] = []
    for op in chosen:
        for t in [*op.inputs, *op.outputs, *(op.intermediates or [])]:
            if t >= 0 and t not in used:
                used.append(t)
    new_id = {old: new for new, old in enumerate(used)}
    buffers = [schema.BufferT()]
    tensors = []
    for old in used:
        tensor = copy.copy(graph.tensors[old])
        buffer = model.buffers[tensor.buffer] if tensor.buffer else None
        if buffer is not None and buffer.data is not None and len(buffer.data):
            buffers.append(buffer)
            tensor.buffer = len(buffers) - 1
        else:
            tensor.buffer = 0
        tensors.append(tensor)
    constant = {old for old in used if tensors[new_id[old]].buffer != 0}
    sub = schema.SubGraphT()
    sub.tensors = tensors
    sub.inputs = [new_id[t] for t in used if t not in produced and t not in constant]
    sub.outputs = [new_id[t] for t in produced]
    sub.operators = []
    for op in chosen:
        op = copy.copy(op)
        op.inputs = [new_id[t] if t >= 0 else -1 for t in op.inputs]
        op.outputs = [new_id[t] for t in op.outputs]
        op.intermediates = [new_id[t] for t in (op.intermediates or [])]
        sub.operators.append(op)
    small = schema.ModelT()
    small.version = model.version
    small.operatorCodes = model.operatorCodes
    small.subgraphs = [sub]
    small.buffers = buffers
    small.description = b"extracted by mobile_skin.bench.tflite_profile"
    return bytes(flatbuffer_utils.convert_object_to_bytearray(small))


def time_model(
    content: bytes, *, runs: int = 200, warmup: int = 20, num_threads: int = 1, xnnpack: bool = True
) -> tuple[float, float]:
    """Median and 90th-percentile milliseconds of one ``invoke()`` on random inputs."""
    interpreter = allocated_interpreter(content=content, threads=num_threads, xnnpack=xnnpack)
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        dtype, shape = np.dtype(detail["dtype"]), detail["shape"]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            value = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        else:
            value = rng.uniform(0.0, 1.0, size=shape).astype(dtype)
        interpreter.set_tensor(detail["index"], value)
    for _ in range(warmup):
        interpreter.invoke()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times[i] = time.perf_counter() - start
    return float(np.median(times) * 1e3), float(np.percentile(times, 90) * 1e3)


def empty_model() -> bytes:
    """A model with one input, no ops: what one ``invoke()`` costs by itself."""
    tensor = schema.TensorT()
    tensor.shape, tensor.type, tensor.buffer, tensor.name = [1], schema.TensorType.FLOAT32, 0, b"x"
    sub = schema.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators = [tensor], [0], [0], []
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [], [sub]
    model.buffers = [schema.BufferT()]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def profile(
    path: str | Path,
    *,
    timing: bool = True,
    per_op: bool = True,
    runs: int = 200,
    warmup: int = 20,
    num_threads: int = 1,
) -> dict:
    """Everything this module can say about one file, as plain rows.

    Args:
        path: the ``.tflite`` file.
        timing: time the whole model and each segment (XNNPACK on, and the whole model off).
        per_op: also time every op alone.
        runs: timed invocations per measurement (after ``warmup`` untimed ones).
        num_threads: interpreter threads.

    Returns:
        ``{"file", "ops", "op_counts", "segments", "partitions", "outside", "timing"}``; op and
        segment rows carry ``ms`` when timed.
    """
    content = read_bytes(path)
    try:
        ops = list_ops(content)
    except (RuntimeError, ValueError) as err:
        raise UserError(
            f"{path}: LiteRT cannot load it ({str(err).splitlines()[0][:200]})"
        ) from None
    segs = segments(ops)
    kw = {"runs": runs, "warmup": warmup, "num_threads": num_threads}
    op_rows = [{**vars(o), "shape": list(o.shape)} for o in ops]
    seg_rows = [
        {
            "segment": i,
            "label": s.label,
            "delegated": s.delegated,
            "ops": len(s.ops),
            "first_op": s.ops[0].index,
        }
        for i, s in enumerate(segs)
    ]
    timing_row: dict = {}
    if timing:
        timing_row["model_ms"], timing_row["model_p90_ms"] = time_model(content, **kw)
        timing_row["model_no_xnnpack_ms"], _ = time_model(content, xnnpack=False, **kw)
        timing_row["overhead_ms"], _ = time_model(empty_model(), **kw)
        for row, seg in zip(seg_rows, segs, strict=True):
            row["ms"] = _time_part(content, [o.index for o in seg.ops], row, kw)
        timing_row["segments_sum_ms"] = sum(r["ms"] or 0.0 for r in seg_rows)
        if per_op:
            for row in op_rows:
                row["ms"] = _time_part(content, [row["index"]], row, kw)
            timing_row["ops_sum_ms"] = sum(r["ms"] or 0.0 for r in op_rows)
    counts = Counter(o.name for o in ops)
    outside = Counter(o.name for o in ops if o.partition is None)
    count_rows = []
    for name, n in counts.most_common():
        row = {"op": name, "count": n, "outside_xnnpack": outside.get(name, 0)}
        if timing and per_op:
            row["ms"] = sum(r["ms"] or 0.0 for r in op_rows if r["name"] == name)
        count_rows.append(row)
    return {
        "file": shown_path(path),
        "size_bytes": len(content),
        "partitions": len({o.partition for o in ops if o.partition is not None}),
        "outside": sum(outside.values()),
        "ops": op_rows,
        "op_counts": count_rows,
        "segments": seg_rows,
        "timing": timing_row,
        "settings": kw,
    }


def op_key(row: dict) -> tuple[str, str]:
    """An op's identity across two conversions of one Keras model: its op name and the first
    name of its output tensor without the model's own name (``model/re_lu_6/Relu;...`` and
    ``model_qat_graph/re_lu_6/Relu;...`` are one op)."""
    first = row["output"].split(";")[0]
    return row["name"], first.split("/", 1)[1] if "/" in first else first


def compare(reference: dict, result: dict) -> list[dict]:
    """Per-op time of ``result`` against ``reference`` (both :func:`profile` results, timed per
    op), summed by op type and ``result``'s precision.

    Ops are matched by :func:`op_key` in execution order. Rows: ``op``, ``dtype``, ``count``,
    ``reference_ms``, ``ms``, ``ratio`` (``ms / reference_ms``); ops with no match in the
    reference (``QUANTIZE``, ``DEQUANTIZE``...) form rows with ``reference_ms`` None, and the
    reference's unmatched ops one row ``dtype`` "only in reference".

    Raises:
        UserError: either profile has no per-op times.
    """
    for r in (reference, result):
        if not r["ops"] or "ms" not in r["ops"][0]:
            raise UserError(
                f"{r['file']}: no per-op times to compare (profile it without --no-per-op)"
            )
    pending: dict[tuple[str, str], deque] = defaultdict(deque)
    for row in reference["ops"]:
        pending[op_key(row)].append(row)
    groups: dict[tuple[str, str], list[float | None]] = {}
    for row in result["ops"]:
        queue = pending.get(op_key(row))
        ref = queue.popleft() if queue else None
        key = (row["name"], row["dtype"] if ref else f"{row['dtype']}, no match")
        g = groups.setdefault(key, [0, 0.0, 0.0 if ref else None])
        g[0] += 1
        g[1] += row["ms"] or 0.0
        if ref is not None:
            g[2] += ref["ms"] or 0.0
    left = [r for q in pending.values() for r in q]
    rows = [
        {
            "op": op,
            "dtype": dtype,
            "count": n,
            "reference_ms": ref_ms,
            "ms": ms,
            "ratio": ms / ref_ms if ref_ms else None,
        }
        for (op, dtype), (n, ms, ref_ms) in groups.items()
    ]
    rows.sort(key=lambda r: -max(r["ms"], r["reference_ms"] or 0.0))
    if left:
        rows.append(
            {
                "op": ", ".join(sorted({r["name"] for r in left})),
                "dtype": "only in reference",
                "count": len(left),
                "reference_ms": sum(r["ms"] or 0.0 for r in left),
                "ms": None,
                "ratio": None,
            }
        )
    return rows


#: Ratio from which :func:`compare_markdown` calls an op type slower than in the reference: one
#: op timed twice alone differs by a few percent between rounds.
SLOWER = 1.1


def compare_markdown(reference: dict, result: dict, rows: list[dict]) -> str:
    """:func:`compare`'s rows as a Markdown table with totals and a one-line reading."""
    name, ref_name = Path(result["file"]).name, Path(reference["file"]).name
    paired = [r for r in rows if r["reference_ms"] is not None and r["ms"] is not None]
    slower = [r for r in paired if r["ratio"] and r["ratio"] >= SLOWER]
    lost = sum(r["ms"] - r["reference_ms"] for r in slower)
    out = [
        f"#### `{name}` against `{ref_name}`, op by op",
        "",
        "Each op timed alone in both files, matched by output tensor name; ms summed by op type "
        "and this file's precision.",
        "",
        _table(rows, ["op", "dtype", "count", "reference_ms", "ms", "ratio"]),
        "",
        f"Ops at least {SLOWER:g}x slower than in `{ref_name}`: "
        + (
            ", ".join(f"{r['op']} {r['dtype']} ({r['ratio']:.2f}x)" for r in slower)
            + f", {lost:.3f} ms lost in all"
            if slower
            else "none"
        )
        + ".",
        "",
    ]
    return "\n".join(out)


def _time_part(content: bytes, op_indices: list[int], row: dict, kw: dict) -> float | None:
    """Median ms of the ops cut out alone; None (and ``row["error"]``) if that cannot run,
    e.g. an op that calls another subgraph."""
    try:
        return time_model(extract(content, op_indices), **kw)[0]
    except (RuntimeError, ValueError, IndexError, KeyError) as err:
        row["error"] = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        return None


def _table(rows: list[dict], columns: list[str]) -> str:
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else str(v))

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(result: dict, *, title: str = "", top: int = 15) -> str:
    """The profile as Markdown: summary, op counts, segments and the slowest ops."""
    t = result["timing"]
    name = Path(result["file"]).name
    out = [f"### {title or name}", ""]
    summary = (
        f"`{name}`: {result['size_bytes'] / 1e6:.2f} MB, {len(result['ops'])} ops, "
        f"{result['partitions']} XNNPACK partition(s), {result['outside']} op(s) outside XNNPACK"
    )
    if t:
        summary += (
            f"; whole model {t['model_ms']:.3f} ms median (p90 {t['model_p90_ms']:.3f}), "
            f"without XNNPACK {t['model_no_xnnpack_ms']:.3f} ms; segments timed alone sum to "
            f"{t['segments_sum_ms']:.3f} ms"
        )
        if "ops_sum_ms" in t:
            summary += f", ops timed alone to {t['ops_sum_ms']:.3f} ms"
        summary += f" (each includes one invoke, {t['overhead_ms'] * 1e3:.1f} us)"
    out += [summary + ".", ""]
    has_ms = bool(t) and "ms" in (result["op_counts"][0] if result["op_counts"] else {})
    out += [
        _table(
            result["op_counts"], ["op", "count", "outside_xnnpack"] + (["ms"] if has_ms else [])
        ),
        "",
    ]
    out += [_table(result["segments"], ["segment", "label", "ops"] + (["ms"] if t else [])), ""]
    if t and "ms" in (result["ops"][0] if result["ops"] else {}):
        slow = sorted(result["ops"], key=lambda r: -(r["ms"] or 0.0))[:top]
        out += [f"Slowest {len(slow)} ops (each timed alone):", ""]
        out += [_table(slow, ["index", "name", "dtype", "shape", "partition", "ms"]), ""]
    return "\n".join(out)
