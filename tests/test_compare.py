"""Runs side by side: the comparison page from finished runs' configs and metrics."""

from __future__ import annotations

import json

import pytest

from mobile_skin.common.config import RunConfig
from mobile_skin.evaluation import compare


def fake_run(root, name, dropout, full, blind, *, val=True, metadata=True):
    run = root / name
    run.mkdir()
    cfg = RunConfig()
    cfg.data.metadata_dropout, cfg.model.use_metadata = dropout, metadata
    cfg.command = f"python -m mobile_skin.train --metadata-dropout {dropout}"
    cfg.save(run / "config.json")
    robust = {c: {"balanced_accuracy": full, "accuracy": 0.5, "recall": [0.5] * 7}
              for c in compare.CONDITIONS}  # fmt: skip
    robust["all masked"]["balanced_accuracy"] = blind
    per_class = [
        {"class": c, "support": 10 + i, "sensitivity": full if c == "mel" else 0.5}
        for i, c in enumerate(("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"))
    ]
    metrics = {"n": 100, "accuracy": 0.7, "balanced_accuracy": full, "macro_f1": 0.5,
               "macro_auc": 0.9, "metadata_robustness": robust if metadata else {},
               "per_class": per_class}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(metrics))
    if val:
        (run / "metrics_val.json").write_text(json.dumps({**metrics, "n": 90}))
    return run


def test_page_lists_every_run_and_the_masked_gap(tmp_path, capsys):
    a = fake_run(tmp_path, "md000", 0.0, 0.62, 0.40)
    b = fake_run(tmp_path, "md050", 0.5, 0.61, 0.59, val=False)
    c = fake_run(tmp_path, "nometa", 0.0, 0.55, 0.55, metadata=False)
    out = tmp_path / "cmp.md"
    assert compare.main([str(a), str(b), str(c), "--out", str(out), "--title", "Sweep"]) == 0
    page = out.read_text()
    assert page.startswith("# Sweep") and (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Test split" in page and "## Validation split" in page
    # Each run's own image count: runs with different splits must not look alike.
    assert "| md000 | 100 | 0.700 | 0.620 |" in page and "| md000 | 90 | 0.700 | 0.620 |" in page
    assert page.rstrip().count("| -22.0 |") == 2
    assert "| md050 | 100 | 0.700 | 0.610 |" in page and "| -2.0 |" in page
    assert "metadata dropout 0.5" in page and "no metadata" in page
    assert compare.REPRODUCE in page  # the commands are history; the configs reproduce
    # Per-class sensitivity, with the class counts: where class weights act.
    assert "## Sensitivity per class, test split" in page and "| mel (14) |" in page
    assert "| nometa | 0.500 | 0.500 | 0.500 | 0.500 | 0.550 | 0.500 | 0.500 |" in page


def test_an_unfinished_run_is_one_line(tmp_path):
    (tmp_path / "r").mkdir()
    with pytest.raises(SystemExit) as stop:
        compare.main([str(tmp_path / "r"), "--out", str(tmp_path / "x.md")])
    assert stop.value.code == 2
