"""The cut sweep: bad --cuts, the per-cut training commands, the summary, and one real sweep."""

from __future__ import annotations

import functools
import json
import shutil

import pandas as pd
import pytest
import tf_keras

from mobile_skin.common.config import RunConfig
from mobile_skin.common.errors import EXIT_USAGE, UserError
from mobile_skin.training import sweep

#: The smoke preset, shrunk to one step of one epoch at 32 px.
TINY = ["--preset", "smoke", "--weights", "none", "--image-size", "32", "--epochs", "1",
        "--steps-per-epoch", "1", "--batch-size", "8"]  # fmt: skip


@pytest.fixture
def run_main(run_cli):
    """sweep.main(argv) -> (exit code, stdout, stderr)."""
    return functools.partial(run_cli, sweep.main)


@pytest.mark.parametrize(
    "cuts,message",
    [
        ("", "--cuts needs at least one cut"),
        (" , ", "--cuts needs at least one cut"),
        ("240,abc", "--cuts: 'abc' is not a whole number"),
        ("240,24.5", "--cuts: '24.5' is not a whole number"),
        ("230,240,230", "--cuts: 230 is listed twice"),
    ],
)
def test_bad_cuts_are_one_line(cuts, message, tmp_path, run_main):
    code, _, err = run_main(["--cuts", cuts, "--out", str(tmp_path / "s"), "--", "--data", "d"])
    assert code == EXIT_USAGE
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "s").exists()


def test_cuts_are_parsed_and_bounded():
    assert sweep.parse_cuts("230, 240,260") == [230, 240, 260]
    sweep.check_cuts([2, 263], 263)
    for cut in (1, 264):
        with pytest.raises(UserError, match=f"--cuts: {cut} is outside 2..263"):
            sweep.check_cuts([cut], 263)


def test_a_cut_beyond_the_backbone_is_refused_before_training(tmp_path, run_main):
    code, _, err = run_main(["--cuts", "240,266", "--out", str(tmp_path / "s"), "--", "--data",
                             str(tmp_path)])  # fmt: skip
    assert code == EXIT_USAGE
    assert "--cuts: 266 is outside 2..263 (MobileNetV3Large without its top has 263 layers)" in err
    assert not (tmp_path / "s").exists()


def test_each_cut_is_its_own_training_command(tmp_path):
    runs = sweep.plan([200, 240], tmp_path / "s", ["--data", "d", "--epochs", "3"])
    assert [r.cut for r in runs] == [200, 240]
    assert runs[1].root == tmp_path / "s" / "cut_240"
    assert runs[1].argv == ["--data", "d", "--epochs", "3", "--cut", "240", "--out",
                            str(tmp_path / "s" / "cut_240")]  # fmt: skip
    assert not runs[0].finished


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--cut", "200"], "the sweep sets --cut itself"),
        (["--out=x"], "the sweep sets --out itself"),
        (["--no-eval"], "the sweep sets --no-eval itself"),
        (["--resume"], "the sweep sets --resume itself"),
        (["--backbone", "densenet201"], "--cut applies to mobilenet_v3_large_240 only"),
        (["--strategy", "multi_worker"], "the sweep trains on one machine"),
        (["--epochs", "0"], "--epochs must be at least 1"),
    ],
)
def test_training_flags_are_checked_before_any_training(flags, message, tmp_path, monkeypatch):
    monkeypatch.setenv(
        "TF_CONFIG",
        '{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}',
    )
    with pytest.raises(UserError, match=message):
        sweep.plan([240], tmp_path / "s", ["--data", "d", *flags])


def fake_cut_run(out, cut, val_accuracy, *, finished=True):
    """A run directory as training leaves it: config, history, best.keras, metrics."""
    root = out / f"cut_{cut}"
    root.mkdir(parents=True)
    cfg = RunConfig()
    cfg.model.cut = cut
    cfg.save(root / "config.json")
    if not finished:
        return root
    pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "val_accuracy": val_accuracy,
            "val_balanced_accuracy": [0.1, 0.5, 0.3],
        }
    ).to_csv(root / "history.csv", index=False)
    model = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(cut // 10)])
    model.save(root / "best.keras")
    metrics = {"n": 10, "accuracy": 0.6, "balanced_accuracy": cut / 1000, "macro_f1": 0.4,
               "macro_auc": 0.8}  # fmt: skip
    (root / "metrics.json").write_text(json.dumps(metrics))
    return root


def test_summary_lists_every_finished_cut(tmp_path):
    out = tmp_path / "s"
    fake_cut_run(out, 240, [0.2, 0.7, 0.7])  # best epoch: the first of the two 0.7s
    fake_cut_run(out, 20, [0.2, 0.7, 0.1])
    fake_cut_run(out, 30, None, finished=False)
    rows = sweep.summarize(out, log=lambda _m: None)
    assert [r["cut"] for r in rows] == [20, 240]
    table = pd.read_csv(out / "summary.csv")
    assert table["cut"].tolist() == [20, 240]
    assert table["params"].tolist() == [4 * 2 + 2, 4 * 24 + 24]
    assert table["best_epoch"].tolist() == [2, 2]
    assert table["val_balanced_accuracy"].tolist() == [0.5, 0.5]
    assert table["test_balanced_accuracy"].tolist() == [0.02, 0.24]
    assert table["paper_accuracy"].isna().tolist() == [True, False]  # Table 8 has 240, not 20
    assert json.loads((out / "summary.json").read_text())[1]["paper_accuracy"] == 0.86
    page = (out / "summary.md").read_text()
    assert "| 240 | 120 | 2 | 0.500 | 0.600 | 0.240 | 0.86 | cut_240 |" in page
    assert "Not finished yet: cut_30." in page
    assert (out / "compare.md").read_text().startswith("# Cut sweep: runs side by side")
    assert (out / "compare.png").is_file()


def test_summary_of_nothing_is_one_line(tmp_path, run_main):
    code, _, err = run_main(["--out", str(tmp_path), "--summary-only"])
    assert code == EXIT_USAGE and "no finished cut_<N> run to summarise" in err


@pytest.mark.slow
def test_sweep_trains_each_cut_once(synthetic_root, tmp_path, capsys):
    out = tmp_path / "sweep"
    flags = ["--", "--data", str(synthetic_root), *TINY]
    assert sweep.main(["--cuts", "20", "--out", str(out), *flags]) == 0
    first = capsys.readouterr().out
    assert "== cut 20: python -m mobile_skin.train" in first
    assert json.loads((out / "cut_20" / "config.json").read_text())["model"]["cut"] == 20
    # A second cut, finished elsewhere (a copy, relabelled), and the same cut again: both kept.
    shutil.copytree(out / "cut_20", out / "cut_30")
    cfg = RunConfig.load(out / "cut_30" / "config.json")
    cfg.model.cut = 30
    cfg.save(out / "cut_30" / "config.json")
    assert sweep.main(["--cuts", "20,30", "--out", str(out), *flags]) == 0
    again = capsys.readouterr().out
    assert "cut 20: finished already" in again and "cut 30: finished already" in again
    assert "python -m mobile_skin.train" not in again
    table = pd.read_csv(out / "summary.csv")
    assert table["cut"].tolist() == [20, 30] and table["best_epoch"].tolist() == [1, 1]
    metrics = json.loads((out / "cut_20" / "metrics.json").read_text())
    assert table["test_balanced_accuracy"][0] == pytest.approx(metrics["balanced_accuracy"])
