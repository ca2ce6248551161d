"""Every export format of the smoke run: the file runs, the spec round-trips, the gate is honest."""

from __future__ import annotations

import json
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from mobile_skin.common.errors import UserError
from mobile_skin.common.fileio import shown_path
from mobile_skin.contract import embedded_spec
from mobile_skin.contract.encoding import CLASSES
from mobile_skin.contract.spec import LABELS_FILE, SPEC_FILE, ModelSpec
from mobile_skin.data.run import RunPaths
from mobile_skin.evaluation.robustness import CONDITIONS
from mobile_skin.export.exporter import FORMATS, model_path
from mobile_skin.model.runtime import load_runtime
from mobile_skin.parity.gate import FAIL, PASS, TOLERANCES, UNVERIFIED, judge, load_rows
from mobile_skin.quant import edge_model
from mobile_skin.quant.logit_correction import DEFAULT_ESTIMATOR

ROOT = Path(__file__).resolve().parents[1]
EXPORTED = list(FORMATS)


def run_script(name: str, *argv: str) -> int:
    """Run ``export/<name>`` in-process as ``python export/<name> ARGV...``; its exit status."""
    old = sys.argv
    sys.argv = [str(ROOT / "export" / name), *map(str, argv)]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        sys.argv = old
    return 0


@pytest.mark.parametrize("fmt", EXPORTED)
def test_each_format_exports_runs_and_is_gated(fmt, smoke_run, exported):
    row = exported(fmt)
    kind, mode = FORMATS[fmt].runtime, FORMATS[fmt].mode
    path = model_path(smoke_run, fmt, failed=row.status == FAIL)
    assert path.is_file() and row.file == path.name
    assert not model_path(smoke_run, fmt, failed=row.status != FAIL).exists()
    # The spec beside the file round-trips and describes it.
    spec = ModelSpec.load(path.parent)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert json.loads((path.parent / SPEC_FILE).read_text()) == spec.to_dict()
    assert spec.model_file == path.name and spec.source_run == str(smoke_run.root)
    assert spec.quantization["mode"] == mode and spec.quantization["format"] == kind
    assert spec.image_size == ModelSpec.load(smoke_run.spec).image_size
    assert (path.parent / LABELS_FILE).read_text().split() == list(CLASSES)
    # The file runs, by name, and the row's numbers are the ones the gate judged.
    rt = load_runtime(path, spec)
    assert sorted(rt.input_names) == ["image", "metadata"]
    assert row.size_bytes == path.stat().st_size
    assert list(row.splits) == ["test", "val"]  # judged on both splits
    assert all(c.n > 0 for c in row.splits.values())
    status = row.status
    assert status in (PASS, FAIL) and status == judge(row, CLASSES).status
    # Sanity bounds that hold for any smoke model (the gate itself may PASS or FAIL 8-bit files:
    # the smoke model differs per session and its near-tied answers flip easily).
    for c in row.splits.values():
        if mode in ("fp32", "fp16"):
            # fp16 weights move a smoke model's probabilities by up to ~0.016 (seen in CI); a
            # broken conversion moves them by tenths.
            assert c.max_abs_diff < (1e-4 if mode == "fp32" else 5e-2)
        else:
            assert c.mean_abs_diff < 0.05 and c.agreement >= 0.5
        assert c.flips == sum(c.flips_by_margin.values()) == len(c.flipped)
    if mode == "fp32":
        assert row.status == PASS, row.reason
    recorded = {r.format: r for r in load_rows(smoke_run.root / "export" / "parity.json")}
    assert recorded[fmt].status == row.status and recorded["keras"].status == "REFERENCE"
    assert spec.parity["status"] == row.status and set(spec.parity["splits"]) == {"test", "val"}
    if kind == "tflite":  # the file carries the same spec inside it
        assert embedded_spec.read_file(path) == json.loads((path.parent / SPEC_FILE).read_text())


def test_quantized_files_are_smaller_and_int8_is_integer(smoke_run, exported):
    sizes = {f: exported(f).size_bytes for f in EXPORTED}
    assert sizes["tflite_fp16"] < 0.6 * sizes["tflite_fp32"]
    for fmt in ("tflite_dynamic", "tflite_int8", "onnx_int8"):
        assert sizes[fmt] < 0.4 * sizes[fmt.split("_")[0] + "_fp32"], fmt
    quant = ModelSpec.load(smoke_run.export("tflite_int8")).quantization
    assert quant["inputs"]["image"]["dtype"] == "float32"  # callers feed raw pixels
    assert quant["outputs"]["probs"]["dtype"] == "float32"
    # MobileNetV3's stem and first three blocks stay float (Backbone.int8_float_prefix): six
    # convolutions (the stem's, block 0's projection, blocks 1 and 2's expansions and
    # projections) and four depthwise ones (the hard-swish's and one per block); the rest is int8.
    assert quant["float_prefix"] == "expanded_conv_2/Add"
    ops = quant["ops"]
    assert ops["CONV_2D:float32"] == 6 and ops["DEPTHWISE_CONV_2D:float32"] == 4, ops
    assert ops["CONV_2D:int8"] > 35 and ops["DEPTHWISE_CONV_2D:int8"] > 25, ops
    lines = quant["qat_layers"]  # and the spec says so in words
    assert "Conv2D x 6: float32, not fake-quantized (a float region the int8 file keeps)" in lines
    assert not any("None" in line for line in lines), lines
    onnx_quant = ModelSpec.load(smoke_run.export("onnx_int8")).quantization
    assert onnx_quant["ops"]["QuantizeLinear"] > 0 and onnx_quant["quant_format"] == "QDQ"
    assert "Softmax" in onnx_quant["float_op_types"]  # the head stays float, as in TFLite
    # ... and so does the start: the stem's convolution reads float, the second block's int8.
    assert onnx_quant["float_prefix"] == "expanded_conv_2/Add"
    for q in (quant, onnx_quant):  # the head's correction: measured, and applied only if harmless
        lc = q["logit_correction"]
        assert lc["estimator"] == DEFAULT_ESTIMATOR and len(lc["shift"]) == 7, lc
        before, after = lc["calibration_agreement"]
        assert lc["applied"] == (after >= before), lc
    graph = onnx.load(smoke_run.export("onnx_int8") / exported("onnx_int8").file).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}

    def reads(layer: str) -> str:
        conv = next(n for n in graph.node if n.op_type == "Conv" and f"/{layer}/" in n.name)
        return producer.get(conv.input[1], "initializer")

    assert reads("Conv") == "initializer"  # float weights
    assert reads("expanded_conv_2/expand") == "initializer"  # still in the float start
    assert reads("expanded_conv_3/expand") == "DequantizeLinear"  # int8 weights


def test_parity_table_names_the_machine_and_every_format(smoke_run, exported):
    for fmt in EXPORTED:
        exported(fmt)
    md = (smoke_run.root / "export" / "parity.md").read_text()
    doc = json.loads((smoke_run.root / "export" / "parity.json").read_text())
    assert doc["machine"]["cpu"] in md.splitlines()[0]
    assert (
        doc["run"] == shown_path(smoke_run.root)
        and f"of `{smoke_run.root.name}` on" in md.splitlines()[0]
    )
    assert doc["tolerances"].keys() == TOLERANCES.keys()
    for fmt in ["keras", *EXPORTED]:
        assert f"| {fmt} |" in md
    # Every format is also scored with the metadata set to unknown (shown, not judged).
    assert "### Balanced accuracy with metadata set to unknown" in md
    for row in doc["rows"]:
        for split in row["splits"].values():
            assert list(split["masked"]) == list(CONDITIONS)
            assert split["masked"]["as given"]["balanced_accuracy"] == split["balanced_accuracy"]


def test_a_damaged_model_fails_the_gate_with_exit_1_and_a_failed_name(
    run_copy, monkeypatch, capsys
):
    def damaged(model):
        dense = model.get_layer("probs")
        kernel, bias = dense.get_weights()
        rng = np.random.default_rng(0)
        noise = rng.normal(0, 3 * kernel.std(), kernel.shape).astype(kernel.dtype)
        dense.set_weights([kernel + noise, bias])
        return model

    monkeypatch.setattr(edge_model, "to_edge_model", damaged)
    assert run_script("to_onnx.py", run_copy, "--calibration-samples", "7") == 1
    out_dir = run_copy / "export" / "onnx_fp32"
    assert (out_dir / "model.FAILED.onnx").is_file() and not (out_dir / "model.onnx").exists()
    assert ModelSpec.load(out_dir).model_file == "model.FAILED.onnx"
    row = {r.format: r for r in load_rows(run_copy / "export" / "parity.json")}["onnx_fp32"]
    assert row.status == FAIL and "max |dp|" in row.reason
    assert row.splits["test"].max_abs_diff > 1e-4
    assert "onnx_fp32: FAIL" in capsys.readouterr().out

    # Re-exported without the gate: the good name comes back, the failed file goes, it says so.
    monkeypatch.undo()
    assert run_script("to_onnx.py", run_copy, "--no-verify") == 0
    assert (out_dir / "model.onnx").is_file() and not (out_dir / "model.FAILED.onnx").exists()
    row = {r.format: r for r in load_rows(run_copy / "export" / "parity.json")}["onnx_fp32"]
    assert row.status == UNVERIFIED
    assert "NOT checked" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("to_tflite.py", ["{tmp}/missing"], "run directory not found"),
        ("to_onnx.py", ["{nomodel}"], "best.keras: model file not found"),
        (
            "to_tflite.py",
            ["{run}", "--int8", "--calibration-samples", "3"],
            "--calibration-samples 3 is smaller than the number of classes (7)",
        ),
        (
            "to_onnx.py",
            ["{run}", "--int8", "--calibration-samples", "0"],
            "smaller than the number",
        ),
        ("to_onnx.py", ["{run}", "--opset", "9"], "--opset 9 is outside"),
        ("to_tflite.py", ["{run}", "--qat", "--fp16"], "--qat converts to int8"),
        (
            "to_tflite.py",
            ["{run}", "--fp16", "--qat-epochs", "3"],
            "--qat-epochs and --qat-lr only apply with --int8 (or --qat)",
        ),
        ("to_tflite.py", ["{run}", "--qat", "--qat-lr", "0"], "--qat-lr > 0 (got 0.0)"),
        ("to_onnx.py", ["{run}", "--all-int8"], "--all-int8 only applies with --int8"),
        ("to_tflite.py", ["{run}", "--dynamic", "--float-tail"], "--float-tail only applies"),
        ("to_onnx.py", ["{run}", "--float-tail"], "--float-tail only applies with --int8"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(script, args, message, smoke_run, tmp_path, capsys):
    nomodel = tmp_path / "nomodel"
    nomodel.mkdir()
    for name in ("config.json", SPEC_FILE):
        shutil.copy(smoke_run.root / name, nomodel)
    argv = [a.format(tmp=tmp_path, nomodel=nomodel, run=smoke_run.root) for a in args]
    assert run_script(script, *argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_scripts_run_from_the_repo_root(tmp_path):
    import subprocess

    done = subprocess.run(
        [sys.executable, "export/to_tflite.py", str(tmp_path / "none")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip().splitlines()[-1]
        == f"error: {tmp_path / 'none'}: run directory not found"
    )


class _Stop(Exception):
    """Raised by the QAT spy: the test has seen what it needs, no fine-tuning or conversion."""


@pytest.fixture
def qat_spy(monkeypatch):
    """Replace ``qat.quantize_aware`` by a spy recording its arguments, then stopping the export."""
    from mobile_skin.quant import qat

    seen: dict = {}

    def spy(data, model, **kwargs):
        seen.update(data=data, kwargs=kwargs)
        raise _Stop

    monkeypatch.setattr(qat, "quantize_aware", spy)
    return seen


def test_qat_reads_the_images_from_data(run_copy, synthetic_root, tmp_path, qat_spy):
    from mobile_skin.export.exporter import export_formats

    moved = tmp_path / "moved"
    shutil.copytree(synthetic_root, moved)
    with pytest.raises(_Stop):
        export_formats(
            RunPaths(run_copy), ["tflite_int8"], data_dir=str(moved), calibration_samples=14,
            verify=False, log=lambda _m: None,
        )  # fmt: skip
    data = qat_spy["data"]
    paths = [*data.train["path"], *data.val["path"]]
    assert paths and all(str(p).startswith(str(moved)) for p in paths)


def test_qat_calibrates_on_the_requested_number_of_images(run_copy, qat_spy):
    from mobile_skin.export.exporter import export_formats

    with pytest.raises(_Stop):
        export_formats(
            RunPaths(run_copy), ["tflite_int8"], calibration_samples=21, verify=False,
            log=lambda _m: None,
        )  # fmt: skip
    assert qat_spy["kwargs"]["calibration_samples"] == 21


def test_float_tail_reaches_qat_as_a_float_region(run_copy, qat_spy):
    """``--float-tail`` adds MobileNetV3's late tail to the float start QAT keeps; without it,
    the start alone."""
    from mobile_skin.export.cli import parse_tflite_args
    from mobile_skin.export.exporter import export_formats
    from mobile_skin.quant.qat_scheme import FloatRegions

    for argv, tail in ((["--float-tail"], ("expanded_conv_12/expand",)), ([], ())):
        args = parse_tflite_args([str(run_copy), "--int8", *argv])
        with pytest.raises(_Stop):
            export_formats(
                RunPaths(run_copy), [args.format], calibration_samples=14, verify=False,
                float_tail=args.float_tail, log=lambda _m: None,
            )  # fmt: skip
        want = FloatRegions(prefix_end="expanded_conv_2/Add", tail_start=tail)
        assert qat_spy["kwargs"]["float_regions"] == want
    with pytest.raises(UserError, match="--float-tail only applies with --int8"):
        export_formats(RunPaths(run_copy), ["tflite_fp32", "onnx_fp32"], float_tail=True)


def test_a_failed_int8_export_suggests_the_float_tail(run_copy, monkeypatch):
    """When the int8 TFLite file fails the gate, the exporter names ``--float-tail``; not when
    the tail was already float."""
    from types import SimpleNamespace

    from mobile_skin.export import exporter

    def failed(paths, fmt, *args):
        return SimpleNamespace(format=fmt, status=FAIL)

    monkeypatch.setattr(exporter, "_export_one", failed)
    for float_tail, hinted in ((False, True), (True, False)):
        log: list[str] = []
        exporter.export_formats(
            RunPaths(run_copy), ["tflite_int8"], calibration_samples=14, verify=False,
            float_tail=float_tail, log=log.append,
        )  # fmt: skip
        assert any(m.strip().startswith("--float-tail keeps more answers") for m in log) == hinted


def test_float_tail_files_keep_the_late_blocks_and_the_attention_float(run_copy):
    """The int8 files ``--float-tail`` writes: besides the start's, every convolution of blocks
    12-14 and the attention is float, the spec names the tail, and the middle stays int8."""
    from mobile_skin.export.exporter import export_formats

    row, onnx_row = export_formats(
        RunPaths(run_copy), ["tflite_int8", "onnx_int8"], calibration_samples=14, qat_epochs=0,
        verify=False, float_tail=True, log=lambda _m: None,
    )  # fmt: skip
    onnx_quant = ModelSpec.load(RunPaths(run_copy).export("onnx_int8")).quantization
    assert onnx_quant["float_tail"] == ["expanded_conv_12/expand"]
    graph = onnx.load(RunPaths(run_copy).export("onnx_int8") / onnx_row.file).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    weights = {  # where each convolution's weights come from: float initializer or int8
        n.name: producer.get(n.input[1], "initializer") for n in graph.node if n.op_type == "Conv"
    }
    for layer, source in (("expanded_conv_2/expand", "initializer"),
                          ("expanded_conv_11/expand", "DequantizeLinear"),
                          ("expanded_conv_12/expand", "initializer"),
                          ("expanded_conv_13/project", "initializer")):  # fmt: skip
        assert {s for name, s in weights.items() if f"/{layer}/" in name} == {source}, layer
    quant = ModelSpec.load(RunPaths(run_copy).export("tflite_int8")).quantization
    assert quant["float_prefix"] == "expanded_conv_2/Add"
    assert quant["float_tail"] == ["expanded_conv_12/expand"]
    ops = quant["ops"]
    # the start's 6 convolutions and 4 depthwise ones (as without the tail); blocks 12 and 13's
    # expansion, squeeze-excite pair and projection and their depthwise convolution and two
    # hard-swishes (which convert to depthwise ones); of block 14, cut short by the 240 layers,
    # its expansion and hard-swish; the attention's two convolutions
    assert ops["CONV_2D:float32"] == 6 + 2 * 4 + 1 + 2, ops
    assert ops["DEPTHWISE_CONV_2D:float32"] == 4 + 2 * 3 + 1, ops
    assert ops["CONV_2D:int8"] > 20, ops
    assert row.status == onnx_row.status == UNVERIFIED


def test_a_tflite_file_that_travels_alone_still_runs(smoke_run, exported, tmp_path, capsys):
    from mobile_skin.model import predict

    exported("tflite_int8")
    source = next(smoke_run.export("tflite_int8").glob("model*.tflite"))
    alone = tmp_path / "lesion_model.tflite"
    shutil.copy(source, alone)  # no model_spec.json beside it
    spec = ModelSpec.for_model(alone)
    assert spec == ModelSpec.load(source.parent)
    image = str(
        next(Path(json.loads((smoke_run.config).read_text())["data"]["data_dir"]).rglob("*.jpg"))
    )
    assert predict.main([image, "--model", str(alone), "--age", "40"]) == 0
    assert capsys.readouterr().out.startswith(image)
    (tmp_path / "plain.onnx").write_bytes(b"")  # an ONNX file carries no spec
    with pytest.raises(UserError, match="model spec not found"):
        ModelSpec.for_model(tmp_path / "plain.onnx")
