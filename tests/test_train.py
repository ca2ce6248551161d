"""The training command: artifacts, refusal to overwrite, resume, bad input, GPU paths on CPU."""

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import tensorflow as tf
import tf_keras

from mobile_skin.common.errors import EXIT_USAGE
from mobile_skin.data.run import RunPaths
from mobile_skin.training import train

#: A tiny model; calibration is tested on the session's smoke run (test_calibration_temperature).
TINY = ["--preset", "smoke", "--weights", "none", "--image-size", "32", "--no-calibration"]


@pytest.fixture
def run_main(run_cli):
    """train.main(argv) -> (exit code, stdout, stderr)."""
    return functools.partial(run_cli, train.main)


def test_smoke_run_writes_everything(smoke_run: RunPaths):
    p = smoke_run
    for path in (p.config, p.spec, p.root / "labels.txt", p.split, p.best_model, p.history,
                 p.metrics, p.report, p.tensorboard, p.checkpoint,
                 p.root / "best_uncalibrated.keras"):  # fmt: skip
        assert path.exists(), path
    cfg = json.loads(p.config.read_text())
    assert cfg["preset"] == "smoke" and cfg["command"].startswith("python -m mobile_skin.train")
    assert len(pd.read_csv(p.history)) == cfg["train"]["epochs"]
    figures = {f.name for f in p.figures.iterdir()}
    assert figures == {
        "confusion_matrix.png",
        "roc_curves.png",
        "training_curves.png",
        "attention_maps.png",
        "metadata_robustness.png",
        "reliability.png",
    }
    metrics = json.loads(p.metrics.read_text())
    assert metrics["n"] == (pd.read_csv(p.split)["split"] == "test").sum()
    assert 0 <= metrics["balanced_accuracy"] <= 1 and len(metrics["per_class"]) == 7
    # The same test rows with metadata fields set to unknown, as given first.
    robust = metrics["metadata_robustness"]
    assert list(robust) == ["as given", "age masked", "sex masked", "site masked", "all masked"]
    assert robust["as given"]["balanced_accuracy"] == metrics["balanced_accuracy"]
    assert all(len(m["recall"]) == 7 for m in robust.values())
    assert "## Missing metadata" in p.report.read_text()
    # Rows without an age are kept (encoded as unknown), so the encoding has the indicator.
    assert cfg["data"]["drop_missing_age"] is False and cfg["data"]["metadata_dropout"] > 0
    spec = json.loads(p.spec.read_text())["inputs"]["metadata"]["encoding"]
    assert spec["age_missing_indicator"] is True and spec["size"] == 20
    report = p.report.read_text()
    assert (
        "balanced accuracy" in report
        and "paper Table 9" in report
        and "figures/attention_maps.png" in report
    )
    assert (p.root.parent / "latest").resolve() == p.root.resolve()
    model = tf_keras.models.load_model(p.best_model, compile=False)
    assert model.input_names == ["image", "metadata"] and model.output_names == ["probs"]


def test_existing_run_is_not_overwritten(smoke_run, synthetic_root, run_main):
    code, _, err = run_main(["--data", str(synthetic_root), *TINY, "--out", str(smoke_run.root)])
    assert code == EXIT_USAGE
    assert "run directory exists; pass --resume" in err and err.count("\n") == 1


class StopAfter(tf_keras.callbacks.Callback):
    """Simulates Ctrl-C at the end of an epoch (before that epoch's checkpoint is written)."""

    def __init__(self, epoch):
        super().__init__()
        self.stop_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.stop_epoch:
            raise KeyboardInterrupt


def test_resume_continues_instead_of_restarting(synthetic_root, tmp_path, run_main):
    out = tmp_path / "run"
    args = train.parse_args(["--data", str(synthetic_root), *TINY, "--epochs", "4",
                             "--steps-per-epoch", "3", "--cut", "40",
                             "--out", str(out)])  # fmt: skip
    cfg = train.resolve_config(args)
    paths = train.prepare_run_dir(str(out), cfg, resume=False, force=False)
    with pytest.raises(KeyboardInterrupt):
        train.train(cfg, paths, evaluate=False, extra_callbacks=[StopAfter(3)], log=lambda m: None)
    split_before = paths.split.read_text()
    assert len(pd.read_csv(paths.history)) == 3  # epoch 3 finished but was not checkpointed
    code, stdout, _ = run_main(["--resume", "--out", str(out), "--no-eval"])
    assert code == 0
    assert "continuing at epoch 3 of 4" in stdout
    assert stdout.count("epoch 3/4:") == 1 and "epoch 1/4:" not in stdout
    history = pd.read_csv(paths.history)
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert paths.split.read_text() == split_before
    # the optimizer state came back too: 4 epochs x 3 steps, not 2 (checkpointed) + 2 x 3
    ckpt = tf.train.load_checkpoint(str(paths.checkpoint))
    assert ckpt.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 12
    assert ckpt.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE") == 4
    callbacks = json.loads((paths.checkpoint / "callbacks.json").read_text())
    assert 1 <= callbacks["BestModel"]["best_epoch"] <= 4


def test_paper_preset_is_the_papers_protocol():
    cfg = train.resolve_config(train.parse_args(["--data", "d", "--preset", "paper"]))
    assert cfg.data.split == "paper" and cfg.data.drop_missing_age
    assert cfg.data.metadata_dropout == 0 and not cfg.data.age_missing_indicator
    cfg = train.resolve_config(
        train.parse_args(["--data", "d", "--metadata-dropout", "0.4", "--no-age-indicator"])
    )
    assert cfg.data.metadata_dropout == 0.4 and not cfg.data.age_missing_indicator


def test_config_from_an_older_version_keeps_its_behaviour():
    from mobile_skin.common.config import RunConfig

    old = RunConfig().to_dict()
    for key in ("metadata_dropout", "age_missing_indicator"):
        del old["data"][key]
    cfg = RunConfig.from_dict(old)
    assert cfg.data.metadata_dropout == 0.0 and not cfg.data.age_missing_indicator


@pytest.mark.parametrize(
    "args,message",
    [
        (["--data", "/no/such/dir"], "/no/such/dir: data directory not found"),
        (["--metadata-dropout", "1.2"], "--metadata-dropout 1.2 is outside 0..1"),
        (["--backbone", "vgg16"], "unknown --backbone 'vgg16'"),
        (["--image-size", "16"], "--image-size 16 is too small for mobilenet_v3_large_240"),
        (["--weights", "/no/weights.h5"], "--weights /no/weights.h5: file not found"),
        (["--strategy", "tpu"], "unknown --strategy 'tpu'"),
        (["--preset", "huge"], "unknown --preset 'huge'"),
    ],
)
def test_bad_input_is_one_line_before_training(args, message, synthetic_root, tmp_path, run_main):
    base = ["--data", str(synthetic_root), *TINY, "--out", str(tmp_path / "r"), "--no-eval"]
    code, stdout, err = run_main(base + args)
    assert code == EXIT_USAGE
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert "epoch 1/" not in stdout


def test_missing_data_flag(run_main):
    code, _, err = run_main(["--preset", "smoke"])
    assert code == EXIT_USAGE and "--data is required" in err


def _saved_float32(best: Path) -> None:
    """The saved model computes its output and the attention in float32, for every runtime."""
    model = tf_keras.models.load_model(best, compile=False)
    assert model.get_layer("probs").dtype_policy.name == "float32"
    assert model.get_layer("soft_attention").dtype_policy.name == "float32"


def test_xla_path_runs_on_cpu(synthetic_root, tmp_path, run_main):
    # The backbone cut after 40 layers: the code path is the same, the graph to trace smaller.
    code, stdout, _ = run_main(["--data", str(synthetic_root), *TINY, "--epochs", "1",
                                "--steps-per-epoch", "2", "--xla", "--out", str(tmp_path / "r"),
                                "--no-eval", "--cut", "40"])  # fmt: skip
    assert code == 0
    assert "XLA on" in stdout
    _saved_float32(tmp_path / "r" / "best.keras")


def test_mirrored_strategy_and_mixed_precision_on_two_cpu_replicas(synthetic_root, tmp_path):
    """The multi-GPU recipe (MirroredStrategy, mixed precision) on two logical CPU devices, in
    one training: a process of its own, since logical devices are fixed at TensorFlow's start.
    XLA is left out: on logical CPU devices it cannot read a variable placed on the other one
    (a known XLA limitation), so ``--xla`` is tested alone above."""
    script = textwrap.dedent(f"""
        import mobile_skin, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        from mobile_skin.training import train
        train.main(["--data", {str(synthetic_root)!r}, "--preset", "smoke", "--weights", "none",
                    "--image-size", "32", "--epochs", "1", "--steps-per-epoch", "2",
                    "--batch-size", "8", "--cut", "40", "--mixed-precision",
                    "--strategy", "mirrored", "--out", {str(tmp_path / "r")!r}, "--no-eval",
                    "--no-calibration"])
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "MirroredStrategy with 2 replica(s); mixed precision on" in done.stdout
    _saved_float32(tmp_path / "r" / "best.keras")


def test_validation_report_is_written_beside_the_test_one(smoke_run, capsys):
    from mobile_skin.evaluation import evaluate

    test_metrics = smoke_run.metrics.read_text()
    assert evaluate.main([str(smoke_run.root), "--split", "val"]) == 0
    out = smoke_run.evaluation("val")
    metrics = json.loads(out.metrics.read_text())
    assert out.metrics.name == "metrics_val.json" and metrics["split"] == "val"
    assert metrics["n"] == (pd.read_csv(smoke_run.split)["split"] == "val").sum()
    assert out.report.read_text().startswith("# Validation report")
    assert "figures_val/confusion_matrix.png" in out.report.read_text()
    assert (out.figures / "confusion_matrix.png").is_file()
    assert smoke_run.metrics.read_text() == test_metrics  # the test report is untouched
    assert "val: accuracy" in capsys.readouterr().out


def test_config_file_starts_a_run_and_flags_override_it(tmp_path, run_main):
    """--config FILE: a saved config.json is the starting point, switches included; a flag
    given overrides it; --preset beside it is refused in one line."""
    first = train.resolve_config(
        train.parse_args(
            [
                "--data",
                "d",
                *TINY,
                "--no-metadata",
                "--no-class-weights",
                "--epochs",
                "3",
                "--learning-rate",
                "0.01",
            ]
        )  # fmt: skip
    )
    first.command = "python -m mobile_skin.train ..."
    saved = first.save(tmp_path / "config.json")
    again = train.resolve_config(train.parse_args(["--config", str(saved)]))
    assert again.to_dict() == {**first.to_dict(), "command": ""}
    changed = train.resolve_config(
        train.parse_args(["--config", str(saved), "--epochs", "5", "--data", "other"])
    )
    assert changed.train.epochs == 5 and changed.data.data_dir == "other"
    assert changed.model.use_metadata is False and changed.train.class_weights is False
    assert changed.train.learning_rate == 0.01 and changed.preset == "smoke"
    code, _, err = run_main(["--config", str(saved), "--preset", "paper"])
    assert code != 0 and err.strip().count("\n") == 0 and "--config and --preset" in err
    code, _, err = run_main(["--config", str(tmp_path / "missing.json")])
    assert code != 0 and "missing.json: config not found" in err


def test_a_config_saved_before_a_default_changed_trains_its_own_recipe(tmp_path):
    """A config.json written before metadata dropout, the age indicator, calibration and the
    split-first order existed (the first committed run's) starts that recipe on that split,
    while its recorded command, typed today, starts today's defaults: the reason reports advise
    --config to train a run again. One saved after the split-first order keeps it."""
    legacy = train.resolve_config(train.parse_args(["--data", "d", *TINY, "--drop-missing-age"]))
    doc = legacy.to_dict()
    for section, key in (("data", "metadata_dropout"), ("data", "age_missing_indicator"),
                         ("data", "drop_before_split"), ("train", "calibrate")):  # fmt: skip
        del doc[section][key]
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps(doc))
    again = train.resolve_config(train.parse_args(["--config", str(saved)]))
    assert again.data.metadata_dropout == 0.0 and again.data.age_missing_indicator is False
    assert again.train.calibrate is False and again.data.drop_missing_age is True
    assert again.data.drop_before_split is True  # its split was drawn after the drop
    today = train.resolve_config(train.parse_args(["--data", "d"]))
    assert today.data.metadata_dropout > 0 and today.train.calibrate is True
    assert today.data.drop_before_split is False
    doc["data"]["metadata_dropout"] = 0.0  # saved after the split-first order, before the key
    saved.write_text(json.dumps(doc))
    later = train.resolve_config(train.parse_args(["--config", str(saved)]))
    assert later.data.drop_before_split is False


def test_the_loop_fits_the_rows_it_is_given(tmp_path, synthetic_root):
    """training.loop takes rows, not a run directory: it trains on exactly the rows it is given
    (two epochs of 24 images at batch 8: 3 steps each) and writes where the paths say."""
    from mobile_skin.common.config import preset
    from mobile_skin.data.ham10000 import load_ham10000
    from mobile_skin.training import accel, loop

    frame = load_ham10000(synthetic_root, log=lambda *_: None)
    cfg = preset("smoke")
    cfg.model.weights, cfg.model.cut = "none", 40
    cfg.data.image_size, cfg.train.batch_size, cfg.train.epochs = 32, 8, 2
    cfg.model.use_metadata, cfg.train.lr_schedule = False, "cosine"
    data = loop.TrainData(frame.iloc[:24], frame.iloc[24:32], None, None)
    train_ds, val_ds, steps = loop.make_datasets(cfg, data, multi=False)
    assert steps == 3 and sum(1 for _ in val_ds) == 1
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    lines = []
    best = loop.fit(cfg, data, paths, paths, accel.make_strategy("auto"), resume=False,
                    log=lines.append)  # fmt: skip
    history = pd.read_csv(paths.history)
    assert list(history["epoch"]) == [1, 2] and paths.best_model.is_file()
    assert best.best_epoch in (1, 2) and lines[-1].startswith("training done")
    cosine = loop.lr_callback(cfg, "max").schedule
    assert cosine(0, None) == pytest.approx(cfg.train.learning_rate)
    assert cosine(cfg.train.epochs, None) == pytest.approx(cfg.train.min_lr)


def test_one_training_seed_trains_one_model(tmp_path, synthetic_root):
    """--train-seed fixes the initial weights, dropout masks and shuffle order: the same rows
    and recipe give the same weights to the last bit, in one process too, another seed other
    weights; a config saved before the field existed stays unseeded."""
    import numpy as np

    from mobile_skin.common.config import RunConfig, preset
    from mobile_skin.data.ham10000 import load_ham10000
    from mobile_skin.model.network import load_model
    from mobile_skin.training import accel, loop

    frame = load_ham10000(synthetic_root, log=lambda *_: None)
    data = loop.TrainData(frame.iloc[:16], frame.iloc[16:24], None, None)

    def weights(seed, name):
        cfg = preset("smoke")
        cfg.model.weights, cfg.model.cut, cfg.model.use_metadata = "none", 40, False
        cfg.data.image_size, cfg.train.batch_size, cfg.train.epochs = 32, 8, 1
        cfg.train.seed = seed
        paths = RunPaths(tmp_path / name)
        paths.root.mkdir()
        loop.fit(cfg, data, paths, paths, accel.make_strategy("auto"), resume=False,
                 log=lambda *_: None)  # fmt: skip
        return load_model(paths.best_model).get_weights()

    first, again, other = weights(3, "a"), weights(3, "b"), weights(4, "c")
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other, strict=True))
    assert train.resolve_config(train.parse_args(["--data", "d"])).train.seed == 0
    assert (
        train.resolve_config(train.parse_args(["--data", "d", "--train-seed", "7"])).train.seed == 7
    )
    old = RunConfig().to_dict()
    del old["train"]["seed"]
    assert RunConfig.from_dict(old).train.seed is None


def test_metadata_dropout_leaves_the_seeded_initial_weights_alone(synthetic_root):
    """Trainings that differ only in --metadata-dropout start from the same weights under one
    --train-seed, so a pair of them isolates the dropout (reports/int8.md, section 6)."""
    import numpy as np

    from mobile_skin.common.config import preset
    from mobile_skin.contract.encoding import MetadataEncoding
    from mobile_skin.data.ham10000 import load_ham10000
    from mobile_skin.training import accel, loop

    frame = load_ham10000(synthetic_root, log=lambda *_: None)
    encoding = MetadataEncoding.fit(frame["age"].iloc[:16], age_missing_indicator=True)
    data = loop.TrainData(frame.iloc[:16], frame.iloc[16:24], encoding, np.ones(7, "float32"))

    def initial_weights(dropout, seed=0):
        cfg = preset("smoke")
        cfg.model.weights, cfg.model.cut = "none", 40
        cfg.data.image_size, cfg.train.batch_size = 32, 8
        cfg.data.metadata_dropout, cfg.train.seed = dropout, seed
        loop.seed_training(cfg.train.seed, log=lambda *_: None)
        train_ds, _, _ = loop.make_datasets(cfg, data, multi=False, log=lambda *_: None)
        next(iter(train_ds))
        return loop.compile_model(cfg, data, accel.make_strategy("auto")).model.get_weights()

    none, half, other = initial_weights(0.0), initial_weights(0.5), initial_weights(0.5, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(none, half, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(half, other, strict=True))
