"""The Table 10 benchmark (benchmarks/latency.py) and the training-throughput benchmark.

No timing thresholds: a benchmark is not a test. These check that ``--quick`` writes well-formed
rows (every column, positive numbers where the row is ok, a failed format as a row with a status),
that the cache is reused, that the ratios are computed as documented, and that bad flags are
one-line errors.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mobile_skin.bench import report as bench_report
from mobile_skin.bench import table10 as benchmark
from mobile_skin.bench.models import RUNTIMES
from mobile_skin.bench.report import COLUMNS, CONVERT_FAILED, OK, BenchRow
from mobile_skin.common.errors import EXIT_USAGE
from mobile_skin.common.machine import cpu_features, cpu_name, feature_tag, slug
from mobile_skin.export import exporter as export

POSITIVE = ("latency_median_ms", "latency_p90_ms", "latency_mean_ms", "params", "depth", "gflops",
            "file_mb", "peak_rss_mb", "rss_before_load_mb", "latency_runs")  # fmt: skip


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """``--quick`` at 64 px, one thread, with ONNX int8 conversion made to fail."""
    out = tmp_path_factory.mktemp("bench")
    original = export.convert
    calls = {}

    def failing_int8(fmt, *args, **kwargs):
        calls[fmt] = kwargs
        if fmt == "onnx_int8":
            raise RuntimeError("simulated conversion failure")
        return original(fmt, *args, **kwargs)

    args = ["--quick", "--image-size", "64", "--threads", "1", "--out", str(out / "results"),
            "--cache-dir", str(out / "cache"), "--calibration-samples", "8"]  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(export, "convert", failing_int8)
        assert benchmark.main(args) == 1  # rows failed: written, and said with a non-zero exit
        cache = {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("model.*")}
        assert benchmark.main([*args, "--convert-only"]) == 0  # second run: from the cache
        again = {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("model.*")}
    return out, cache, again, calls


def test_quick_writes_every_output_named_after_machine_and_versions(quick):
    out, *_ = quick
    files = sorted((out / "results").iterdir())
    assert {f.suffix for f in files} == {".md", ".csv", ".json", ".png"}
    for f in files:
        assert f.name.startswith(f"table10_quick_{slug(cpu_name())}-{feature_tag()}_threads-1_tf-")
        assert "_litert-" in f.name and "_ort-" in f.name
    assert (out / "results" / (files[0].name.rsplit(".", 1)[0] + ".png")).read_bytes()[:4] == (
        b"\x89PNG"
    )


def test_quick_rows_are_well_formed(quick):
    out, *_ = quick
    doc = json.loads(next((out / "results").glob("*.json")).read_text())
    rows = doc["rows"]
    assert [r["runtime"] for r in rows] == list(RUNTIMES)
    assert cpu_name() in doc["title"]
    for r in rows:
        assert set(r) == set(COLUMNS)
        assert r["cpu_features"] == " ".join(cpu_features())  # int8 speed depends on them
        assert r["threads"] == 1 and r["image_size"] == 64 and r["weights"] == "untrained"
    by_runtime = {r["runtime"]: r for r in rows}
    failed = by_runtime.pop("onnx_int8")
    assert failed["status"] == CONVERT_FAILED and "simulated conversion failure" in failed["reason"]
    assert failed["latency_median_ms"] is None
    for runtime, r in by_runtime.items():
        assert r["status"] == OK, (runtime, r["reason"])
        for key in POSITIVE:
            assert r[key] > 0, (runtime, key)
        assert r["latency_std_ms"] >= 0
        assert r["latency_p90_ms"] >= r["latency_median_ms"]
        assert r["mnv3_speedup"] == pytest.approx(1.0)  # its own MobileNetV3 row
        assert r["speedup_vs_irv2_keras"] is None  # no InceptionResNetV2 row in --quick
        if runtime.startswith("tflite"):  # fixed batch of 1: no batched throughput
            assert r["batch_images_per_s"] is None and "fixed batch" in r["batch_note"]
        else:
            assert r["batch_images_per_s"] > 0
        if runtime == "keras":
            assert r["train_images_per_s"] > 0
            assert r["train_s_per_epoch"] == pytest.approx(7942 / r["train_images_per_s"])
        else:
            assert r["train_images_per_s"] is None
    # the same rows in the CSV and the Markdown table
    with open(next((out / "results").glob("*.csv"))) as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == COLUMNS and len(table) == len(rows)
    markdown = next((out / "results").glob("*.md")).read_text()
    assert markdown.count("| MobileNetV3Large[:240] + SA + metadata | 64 |") == len(rows)
    assert "**convert_failed**: RuntimeError: simulated conversion failure" in markdown


def test_second_run_reuses_the_cache(quick):
    _, before, after, _ = quick
    assert len(before) == 4  # .keras, two .tflite, one .onnx (the int8 one failed)
    assert after == before


def test_int8_rows_time_the_graph_the_exporter_writes(quick):
    """The float head and MobileNetV3's float start (Backbone.int8_float_prefix), as --int8."""
    from mobile_skin.export.convert_tflite import tflite_quantization_info

    out, _, _, calls = quick
    assert calls["onnx_int8"]["float_prefix"] == "expanded_conv_2/Add"
    assert calls["tflite_int8"]["quantization_aware"] is True  # the calibrated QAT graph
    assert calls["tflite_fp32"]["float_prefix"] is None
    (path,) = (out / "cache").glob("*_tflite_int8_*/model.tflite")
    ops = tflite_quantization_info(path.read_bytes(), "int8")["ops"]
    assert ops["CONV_2D:float32"] == 6 and ops["DEPTHWISE_CONV_2D:float32"] == 4, ops
    assert ops["CONV_2D:int8"] > 35 and ops["FULLY_CONNECTED:float32"] >= 1, ops


def _row(backbone, runtime, ms, weights="untrained", threads=1):
    r = BenchRow("m", backbone, 224, weights, runtime, threads)
    r.latency_median_ms = ms
    return r


def test_speedups_are_the_documented_ratios():
    rows = [
        _row("mobilenet_v3_large_240", "keras", 5.0, weights="trained (run)"),
        _row("mobilenet_v3_large_240", "keras", 10.0),
        _row("inception_resnet_v2", "keras", 100.0),
        _row("mobilenet_v3_large_240", "tflite_int8", 2.0),
        _row("inception_resnet_v2", "tflite_int8", 8.0),
        _row("inception_resnet_v2", "keras", 300.0, threads=2),
    ]
    failed = _row("densenet201", "keras", None)
    failed.status = CONVERT_FAILED
    rows.append(failed)
    bench_report.fill_speedups(rows)
    trained, mnv3, irv2, mnv3_int8, irv2_int8, irv2_two, failed = rows
    assert mnv3.mnv3_speedup == 1.0 and irv2.mnv3_speedup == 10.0  # the untrained row is the ref
    assert trained.mnv3_speedup == 0.5
    assert irv2_int8.mnv3_speedup == 4.0
    assert mnv3_int8.speedup_vs_irv2_keras == 50.0 and trained.speedup_vs_irv2_keras == 20.0
    assert irv2_two.mnv3_speedup is None  # no MobileNetV3 row at 2 threads
    assert failed.mnv3_speedup is None and failed.speedup_vs_irv2_keras is None


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--threads", "0"], "--threads"),
        (["--threads", "1,many"], "--threads"),
        (["--models", "resnet50"], "--models 'resnet50'"),
        (["--runtimes", "tflite_fp16"], "--runtimes 'tflite_fp16'"),
        (["--calibration-samples", "3"], "--calibration-samples 3"),
        (["--quick", "--image-size", "16"], "--image-size 16"),
        (["--run", "/nonexistent/run"], "/nonexistent/run"),
    ],
)
def test_bad_flags_are_one_line_errors(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main([*flags, "--out", str(tmp_path), "--cache-dir", str(tmp_path / "c")])
    assert exit_info.value.code == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_throughput_refuses_more_steps_than_images(synthetic_root):
    from mobile_skin.bench.throughput import measure_throughput
    from mobile_skin.common.errors import UserError

    with pytest.raises(UserError, match="training split"):
        measure_throughput(synthetic_root, 64, 32, steps=1000, log=lambda _m: None)


def test_throughput_table_reports_the_cached_share():
    from mobile_skin.bench.throughput import ThroughputRow, render_markdown

    passes = (("in-memory (before)", 1.0), ("first pass", 4.0), ("cached", 1.25), ("after", 1.0))
    rows = [ThroughputRow(feed, 2, 64, s, 64 / s) for feed, s in passes]
    for r in rows:
        r.share_of_in_memory = r.images_per_s / 64
    facts = {"steps": 2, "batch_size": 32, "images": 64, "image_size": 64, "augmentation": "flip",
             "in_memory_images_per_s": 64.0, "load_1m": {"start": 0.1, "end": 0.2},
             "target": 0.9, "target_met": False, "cached_share": 0.8}  # fmt: skip
    text = render_markdown("t", rows, facts)
    assert "| cached | 2 | 64 | 1.2 | 51.2 | 80% |" in text
    assert "**NOT met** (80%)" in text


@pytest.mark.slow
def test_throughput_end_to_end(synthetic_root, tmp_path):
    from mobile_skin.bench.throughput import measure_throughput, write_results

    rows, facts = measure_throughput(synthetic_root, 64, 8, steps=2, log=lambda _m: None)
    assert [r.images for r in rows] == [16] * 4
    assert all(r.images_per_s > 0 and r.seconds > 0 for r in rows)
    mean = (rows[0].images_per_s + rows[3].images_per_s) / 2
    assert rows[2].share_of_in_memory == pytest.approx(rows[2].images_per_s / mean)
    paths = write_results(tmp_path, rows, facts)
    assert {Path(p).suffix for p in paths} == {".csv", ".json", ".md"}


def test_the_cache_key_reads_every_module_it_names():
    """The cache key hashes the source of the modules and functions bench.cache lists: each must
    exist (a moved or renamed module would otherwise fail only in a real benchmark)."""
    from mobile_skin.bench.cache import CODE, INT8_CODE, code_version, default_cache_dir

    keys = {kind: code_version(names) for kind, names in CODE.items()}
    assert len(set(keys.values())) == len(keys) and len(code_version(INT8_CODE)) == 16
    assert (default_cache_dir().parents[2] / "pyproject.toml").is_file()
