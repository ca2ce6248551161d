"""The int8 sensitivity probe on the smoke run: bit widths really change, reports are written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mobile_skin.data.run import open_run
from mobile_skin.quant import sensitivity as qs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import int8_sensitivity  # noqa: E402


@pytest.fixture(scope="module")
def probe(smoke_run):
    return qs.probe_run(
        open_run(smoke_run.root), calibration_samples=14, limit=16, log=lambda _m: None
    )


def test_bit_widths_reach_every_quantizer_and_are_restored(probe):
    calls = {cls: cls.__call__ for cls in (*qs.ACTIVATION_QUANTIZERS, *qs.WEIGHT_QUANTIZERS)}
    wide = probe.evaluate("16/16", 16, 16)
    int8 = probe.evaluate("8/8", 8, 8)
    crude = probe.evaluate("3/3", 3, 3)
    # 3 bits: far more error than 8 or 16. (16 vs 8 is not ordered on every smoke model: the
    # positional softmax keeps TFLite's fixed int8 output range [0, 255/256] at every width,
    # which clips the smoke model's 2x2 attention maps.)
    assert max(wide.mean_dp, int8.mean_dp) < crude.mean_dp, (wide, int8, crude)
    assert crude.mean_dp > 2 * int8.mean_dp
    assert {cls: cls.__call__ for cls in calls} == calls  # patch undone
    # Keys: graph order, the exact image input excluded, every calibrated range included.
    keys = probe.activation_keys
    # (Names depend on how many QAT models this process built: quantize_layer, _1, ...)
    assert keys[0].startswith("rescaling") and probe.image_key not in keys
    assert probe.image_key.startswith("quantize_layer")
    assert len(keys) == len(set(keys)) > 40


def test_wide_and_narrow_lists_override_the_default_width(probe):
    keys = probe.activation_keys
    all8, all16 = probe.evaluate("8", 8, 8), probe.evaluate("16", 16, 8)
    assert np.isclose(probe.evaluate("all narrow", 16, 8, narrow=keys).mean_dp, all8.mean_dp)
    none, every = qs.most_harmful_wide(probe, keys, [0, len(keys)])
    assert none.name == "0 most sensitive at 16 bits"
    assert np.isclose(none.mean_dp, all8.mean_dp) and np.isclose(every.mean_dp, all16.mean_dp)


def test_tensor_sensitivity_ranks_most_harmful_first(probe, monkeypatch):
    monkeypatch.setattr(probe, "activation_keys", probe.activation_keys[:3])
    seen = []
    base, rows = qs.tensor_sensitivity(probe, lambda i, n: seen.append((i, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert [r.mean_dp for r in rows] == sorted((r.mean_dp for r in rows), reverse=True)
    assert {r.name for r in rows} == set(probe.activation_keys)
    assert all(r.mean_dp >= 0 and 0 <= r.agreement <= 1 for r in [base, *rows])


def test_script_writes_tables_and_rejects_bad_flags(smoke_run, dotted_run, tmp_path, capsys):
    """The tables of the split asked for, named after the run whole (``runs/v1.2`` gives
    ``int8_sensitivity_v1.2_val.json``, not ``int8_sensitivity_v1.json``), with the command and
    the machine's int8-relevant CPU features beside them; bad flags are one-line errors."""
    from mobile_skin.common.machine import headline

    argv = [str(dotted_run), "--split", "val", "--limit", "8", "--no-per-tensor", "--sweep", "8,8",
            "16,16", "--calibration-samples", "14", "--out", str(tmp_path)]  # fmt: skip
    assert int8_sensitivity.main(argv) == 0
    # --out is a directory; the names keep the run's whole name
    json_file, md = (tmp_path / f"int8_sensitivity_v1.2_val{e}" for e in (".json", ".md"))
    assert sorted(p.name for p in tmp_path.glob("int8_sensitivity_*")) == [
        "int8_sensitivity_v1.2_val.json", "int8_sensitivity_v1.2_val.md"
    ]  # fmt: skip
    assert int8_sensitivity.results_name("v1.2", "test") == "int8_sensitivity_v1.2"
    data = json.loads(json_file.read_text())
    (rows,) = data["sections"].values()
    assert [r["name"] for r in rows] == ["activations 8, weights 8", "activations 16, weights 16"]
    assert data["split"] == "val" and data["images"] == 8
    assert all(0 <= r["agreement"] <= 1 for r in rows)
    assert "| activations 8, weights 8 |" in md.read_text()
    assert md.read_text().startswith("# Int8 sensitivity: v1.2, 8 val images")
    # The command that made the tables, flags included, is written beside them.
    flags = f"--sweep 8,8 16,16 --calibration-samples 14 --out {tmp_path}"
    assert data["command"].endswith(flags)
    assert f"`{data['command']}`" in md.read_text()
    assert f"Machine: {headline()}." in md.read_text()
    for bad, message in (
        (["--sweep", "8"], "--sweep: '8' is not ACTIVATION_BITS,WEIGHT_BITS"),
        (["--sweep", "8,20"], "bit widths must be 2..16"),
        (["--limit", "0"], "--limit must be at least 1"),
        (["--calibration-samples", "3"], "calibration"),
        (["--data", str(tmp_path / "moved")], str(tmp_path / "moved")),  # --data reaches the read
    ):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            int8_sensitivity.main([str(smoke_run.root), *bad])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    with pytest.raises(SystemExit) as exit_info:  # argparse's choices: usage, then the error
        int8_sensitivity.main([str(smoke_run.root), "--split", "train"])
    assert exit_info.value.code == 2
    assert "argument --split: invalid choice: 'train'" in capsys.readouterr().err
    assert np.isfinite(rows[0]["mean_dp"])
