"""Activation range statistics: SQNR as theory gives it, loud channels seen, the report written."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import tf_keras

from mobile_skin.quant.activation_ranges import measure, quantized_layers, tensor_layers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import int8_ranges  # noqa: E402

#: 10 log10(255^2): a uniform signal filling its 8-bit range.
UNIFORM_8BIT_DB = 20 * math.log10(255)


def _identity_model(channels: int = 8) -> tf_keras.Model:
    x = tf_keras.Input((16, channels), name="x")
    return tf_keras.Model(x, tf_keras.layers.Activation("linear", name="same")(x))


def _batches(scale: np.ndarray, n: int = 4) -> list[dict]:
    rng = np.random.default_rng(1)
    return [{"x": (rng.random((64, 16, len(scale))) * scale).astype("float32")} for _ in range(n)]


def test_a_uniform_signal_gets_six_db_per_bit():
    model, batches = _identity_model(), _batches(np.ones(8))
    (row,) = measure(model, batches, ["same"])
    assert row.name == "same" and row.channels == 8
    assert row.low == 0.0 and 0.99 < row.high <= 1.0
    assert (row.clip_low, row.clip_high) == (row.low, row.high)  # clipping a uniform signal hurts
    assert row.sqnr_db == pytest.approx(UNIFORM_8BIT_DB, abs=0.3)
    assert row.channel_sqnr_db == pytest.approx(UNIFORM_8BIT_DB, abs=0.3)
    assert row.channel_spread == pytest.approx(1.0, abs=0.02)
    (four,) = measure(model, batches, ["same"], bits=4)
    assert four.sqnr_db == pytest.approx(20 * math.log10(15), abs=0.5)


def test_one_loud_channel_sets_the_range_and_the_quiet_ones_pay():
    """Channel 0 a hundred times louder: the whole tensor still looks fine (the loud channel
    carries its variance), the median channel is quantized with about 8 dB of SQNR
    (10 log10(255^2 / 100^2))."""
    (row,) = measure(_identity_model(), _batches(np.array([100.0] + [1.0] * 7)), ["same"])
    assert row.channel_spread == pytest.approx(100, rel=0.03)
    assert row.sqnr_db > 40
    assert row.channel_sqnr_db == pytest.approx(20 * math.log10(2.55), abs=1.0)


def test_progress_counts_both_passes_and_bad_names_fail():
    seen = []
    measure(_identity_model(), _batches(np.ones(8), n=3), ["same"], progress=seen.append)
    assert seen == [1] * 6
    with pytest.raises(ValueError, match="no activation tensors"):
        measure(_identity_model(), _batches(np.ones(8)), [])


def test_quantized_layers_are_the_int8_graphs_ranges(smoke_run):
    from mobile_skin.contract.pipeline import make_dataset
    from mobile_skin.data.run import open_run
    from mobile_skin.model.network import load_model
    from mobile_skin.quant import edge_model

    run = open_run(smoke_run.root)
    model = edge_model.to_edge_model(load_model(run.paths.best_model))
    batch = next(
        iter(
            make_dataset(
                run.rows("val").head(4), run.spec.image_size, 4, encoding=run.spec.encoding,
                labels=False,
            )
        )
    )  # fmt: skip
    names = quantized_layers(model, batch)
    every = tensor_layers(model)
    assert len(names) == len(set(names)) > 20
    assert set(names) < set(every)  # folded BatchNorm inputs and identities are not quantized
    assert not any(n.startswith("rescaling") for n in names)  # the exact image input's scaling
    assert "soft_attention" in names


def test_the_script_writes_json_markdown_and_plot(dotted_run, tmp_path):
    """The three outputs, named after the run whole (``runs/v1.2`` gives ``int8_ranges_v1.2.*``,
    not ``int8_ranges_v1.*``), with the machine's int8-relevant CPU features in the table and
    the data."""
    from mobile_skin.common.machine import cpu_features, headline

    assert int8_ranges.main([str(dotted_run), "--limit", "8", "--out", str(tmp_path)]) == 0
    json_file, md, png = (tmp_path / f"int8_ranges_v1.2{e}" for e in (".json", ".md", ".png"))
    assert sorted(p.name for p in tmp_path.glob("int8_ranges_*")) == [
        f"int8_ranges_v1.2{e}" for e in (".json", ".md", ".png")
    ]
    doc = json.loads(json_file.read_text())
    tensors = doc["runs"]["v1.2"]["tensors"]
    assert doc["limit"] == 8 and doc["split"] == "val"
    assert len(tensors) > 20 and all(t["clip_low"] <= 0 <= t["clip_high"] for t in tensors)
    text = md.read_text()
    assert f"| v1.2 | {len(tensors)} |" in text
    assert "python benchmarks/int8_ranges.py" in text and "(int8_ranges_v1.2.png)" in text
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert f"Machine: {headline()}." in text
    assert doc["machine"]["cpu_features"] == " ".join(cpu_features())


def test_bad_flags_and_twin_run_names_are_one_line_errors(smoke_run, capsys):
    for argv, message in (
        ([str(smoke_run.root), "--limit", "-1"], "--limit must be 0 (all) or more"),
        ([str(smoke_run.root), "--count", "0"], "--count must be at least 1"),
        ([str(smoke_run.root), str(smoke_run.root), "--limit", "4"], "share a directory name"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            int8_ranges.main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
