"""``--strategy multi_worker``: TF_CONFIG errors, the run-directory rules, and two real workers.

The two-worker tests start two ``python -m mobile_skin.train`` processes on localhost ports, each
with its TF_CONFIG, as a cluster would (docs/distributed.md). Each takes minutes on 2 CPU cores
(process start-up, graph tracing under MultiWorkerMirroredStrategy, a second launch after the
kill), so they are marked slow.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mobile_skin.common.config import RunConfig
from mobile_skin.common.errors import EXIT_USAGE, UserError
from mobile_skin.data.run import RunPaths
from mobile_skin.training import accel, multi_worker, train

#: The smoke preset, shrunk further (32 px, the backbone cut after 40 layers, 3 steps per epoch).
FLAGS = ["--preset", "smoke", "--weights", "none", "--image-size", "32", "--cut", "40",
         "--steps-per-epoch", "3", "--batch-size", "8"]  # fmt: skip
#: The per-epoch summary line ValidationMetrics prints; the validation part must agree between
#: workers (same weights, predictions gathered from both).
EPOCH_LINE = re.compile(r"^epoch (\d+)/\d+: .*?\| (val loss .*?) \| lr", re.MULTILINE)


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps(
        {
            "cluster": {"worker": [f"localhost:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
    )


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Worker:
    """One ``python -m mobile_skin.train`` worker process, its output in a log file."""

    def __init__(self, index: int, ports: list[int], argv: list[str], log: Path):
        self.log = log
        env = {**os.environ, "TF_CONFIG": tf_config(ports, index), "TF_CPP_MIN_LOG_LEVEL": "2"}
        with open(log, "w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mobile_skin.train", *argv],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent,
            )  # fmt: skip

    def wait(self, timeout: float = 600) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(
                f"worker still running after {timeout} s:\n{self.output()}"
            ) from None

    def output(self) -> str:
        return self.log.read_text()


def start_cluster(tmp_path: Path, argv: list[str], tag: str, ports: list[int]) -> list[Worker]:
    return [Worker(i, ports, argv, tmp_path / f"worker{i}_{tag}.log") for i in range(2)]


def epoch_lines(text: str) -> dict[int, str]:
    return {int(e): val for e, val in EPOCH_LINE.findall(text)}


def tree(root: Path) -> set[str]:
    """Top-level names in a run directory, and every path containing a worker's temp dir."""
    return {p.name for p in root.iterdir()} | {
        str(p.relative_to(root)) for p in root.rglob("*workertemp*")
    }


# -- without a cluster -----------------------------------------------------------------------


@pytest.fixture
def run_main(run_cli):
    """train.main(argv) -> (exit code, stdout, stderr)."""
    return functools.partial(run_cli, train.main)


@pytest.mark.parametrize(
    "value,message",
    [
        (None, "--strategy multi_worker needs TF_CONFIG"),
        ("{not json", "TF_CONFIG is not valid JSON"),
        ('{"cluster": {"worker": ["localhost:1"]}}', 'TF_CONFIG needs "cluster" and "task"'),
        ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 1}}',
         "TF_CONFIG task worker:1 is not in its cluster (1 worker address(es))"),
        ('{"cluster": {"ps": ["h:1"], "worker": ["h:2"]}, "task": {"type": "worker", "index": 0}}',
         "TF_CONFIG cluster job 'ps' is not used by --strategy multi_worker"),
        ('{"cluster": {"worker": ["nohost"]}, "task": {"type": "worker", "index": 0}}',
         'TF_CONFIG cluster "worker" must be a list of "host:port" addresses'),
    ],
)  # fmt: skip
def test_multi_worker_without_a_valid_tf_config_is_one_line(
    value, message, synthetic_root, tmp_path, monkeypatch, run_main
):
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    out = tmp_path / "r"
    code, stdout, err = run_main(["--data", str(synthetic_root), *FLAGS, "--strategy",
                                  "multi_worker", "--out", str(out)])  # fmt: skip
    assert code == EXIT_USAGE
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert "Traceback" not in err and "epoch 1/" not in stdout
    assert not out.exists()  # refused before anything was written


def test_multi_worker_needs_out_and_refuses_resume(synthetic_root, tmp_path, monkeypatch, run_main):
    monkeypatch.setenv("TF_CONFIG", tf_config([12345], 0))
    code, _, err = run_main(["--data", str(synthetic_root), *FLAGS, "--strategy",
                             "multi_worker"])  # fmt: skip
    assert code == EXIT_USAGE and "--strategy multi_worker needs --out" in err
    run = tmp_path / "r"
    run.mkdir()
    cfg = RunConfig()
    cfg.train.strategy = "multi_worker"
    cfg.save(run / "config.json")
    code, _, err = run_main(["--resume", "--out", str(run)])
    assert code == EXIT_USAGE and "continues when every worker reruns its own command" in err


def test_cluster_role_names_the_chief():
    chiefless = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}
    role = accel.cluster_role({"TF_CONFIG": json.dumps(chiefless)})
    assert role.is_chief and role.workers == 2 and "worker 0 of 2" in role.describe()
    chiefless["task"]["index"] = 1
    assert not accel.cluster_role({"TF_CONFIG": json.dumps(chiefless)}).is_chief
    with_chief = {
        "cluster": {"chief": ["c:1"], "worker": ["a:1", "b:2"]},
        "task": {"type": "worker", "index": 0},
    }
    role = accel.cluster_role({"TF_CONFIG": json.dumps(with_chief)})
    assert not role.is_chief and role.workers == 3  # worker 0 is not the chief when one is named
    with_chief["task"] = {"type": "chief", "index": 0}
    assert accel.cluster_role({"TF_CONFIG": json.dumps(with_chief)}).is_chief


def test_an_unfinished_run_is_continued_only_with_the_same_settings(tmp_path):
    cfg = RunConfig()
    cfg.train.strategy, cfg.command = "multi_worker", "python -m mobile_skin.train --a"
    run = RunPaths(tmp_path / "r")
    fresh_calls = []

    def fresh():
        fresh_calls.append(1)
        return run

    # Nothing there: a new run (the single-machine rules decide).
    assert multi_worker.prepare_run_dir(str(run.root), cfg, force=False, fresh=fresh) == (
        run,
        False,
    )
    run.root.mkdir()
    cfg.save(run.config)
    multi_worker.mark_started(run)  # what the chief does before its first epoch
    assert multi_worker.is_unfinished(run)
    # The same settings (typed in another order): continued, even with --force.
    same = RunConfig.from_dict(cfg.to_dict())
    same.command = "python -m mobile_skin.train --b"
    assert multi_worker.prepare_run_dir(str(run.root), same, force=True, fresh=fresh) == (run, True)
    assert fresh_calls == [1]
    other = RunConfig.from_dict(cfg.to_dict())
    other.train.epochs = 7
    with pytest.raises(UserError, match="unfinished multi-worker run with other settings"):
        multi_worker.prepare_run_dir(str(run.root), other, force=True, fresh=fresh)


@pytest.mark.parametrize(
    "text",
    [  # the two ways TensorFlow reported worker 1's death to worker 0 here
        "{{function_node __wrapped__CollectiveReduceV2_device_/job:worker/replica:0/task:0/device:"
        "CPU:0}} Collective ops is aborted by: Error reported from /job:worker/task:1: The "
        "following tasks are unhealthy (stopped sending heartbeats):\n"
        "/job:worker/replica:0/task:1\nThe tasks have crashed.",
        "{{function_node __wrapped__CollectiveReduceV2_device_/job:worker/replica:0/task:0/device:"
        "CPU:0}} recvmsg:Connection reset by peer\nAdditional GRPC error information from remote "
        "target /job:worker/replica:0/task:1 while calling /tensorflow.WorkerService/RecvBuf:",
    ],
)
def test_a_lost_worker_is_named(text):
    message = str(multi_worker.lost_worker(Exception(text), RunPaths(Path("runs/r"))))
    assert message.startswith("training stopped: the cluster lost worker 1 (Exception)")
    assert "same command" in message and "\n" not in message
    other = str(multi_worker.lost_worker(Exception("deadline"), RunPaths(Path("runs/r"))))
    assert other.startswith("training stopped: the cluster lost a worker (Exception)")


# -- two real workers ------------------------------------------------------------------------


@pytest.mark.slow
def test_two_workers_train_one_run(synthetic_root, tmp_path):
    run = tmp_path / "run"
    argv = ["--data", str(synthetic_root), *FLAGS, "--epochs", "2", "--strategy", "multi_worker",
            "--out", str(run)]  # fmt: skip
    started = time.perf_counter()
    workers = start_cluster(tmp_path, argv, "run", free_ports(2))
    codes = [w.wait() for w in workers]
    took = time.perf_counter() - started
    chief, other = (w.output() for w in workers)
    assert codes == [0, 0], f"{codes}\n--- chief:\n{chief[-3000:]}\n--- worker 1:\n{other[-3000:]}"
    print(f"two workers: {took:.0f} s")

    assert "this process is worker 0 of 2 task(s) (the chief)" in chief
    assert "this process is worker 1 of 2 task(s) (not the chief)" in other
    assert "with 2 replica(s)" in chief and "with 2 replica(s)" in other
    # Both workers ran every epoch's validation on the same model, so their lines agree.
    assert sorted(epoch_lines(chief)) == [1, 2] and epoch_lines(chief) == epoch_lines(other)
    # Only the chief evaluated; the other worker's own files went to a temp dir, now gone.
    assert "test: accuracy" in chief and "test: accuracy" not in other
    temp = re.search(r"this worker writes to (\S+) \(temporary\)", other)
    assert temp and not Path(temp.group(1)).exists()
    assert (tmp_path / "latest").resolve() == run.resolve()  # set by the chief

    # The layout of a single-process run with the same flags, less its --resume checkpoint.
    single = tmp_path / "single"
    assert train.main(["--data", str(synthetic_root), *FLAGS, "--epochs", "2",
                       "--out", str(single)]) == 0  # fmt: skip
    assert tree(run.resolve()) == tree(single) - {"checkpoint"}
    assert multi_worker.BACKUP_DIR not in tree(run)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["strategy"] == "multi_worker" and cfg["model"]["cut"] == 40
    assert pd.read_csv(run / "history.csv")["epoch"].tolist() == [1, 2]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n"] == (pd.read_csv(run / "split.csv")["split"] == "test").sum()


@pytest.mark.slow
def test_a_killed_worker_restarted_resumes(synthetic_root, tmp_path):
    run = tmp_path / "run"
    argv = ["--data", str(synthetic_root), *FLAGS, "--epochs", "4", "--strategy", "multi_worker",
            "--out", str(run), "--no-eval"]  # fmt: skip
    ports = free_ports(2)
    started = time.perf_counter()
    workers = start_cluster(tmp_path, argv, "first", ports)
    backup = run / multi_worker.BACKUP_DIR
    deadline = time.monotonic() + 600
    while not (backup / "chief" / "checkpoint").is_file():  # epoch 1 is backed up
        assert time.monotonic() < deadline, workers[0].output()[-3000:]
        assert workers[0].process.poll() is None, workers[0].output()[-3000:]
        time.sleep(0.1)
    workers[1].process.send_signal(signal.SIGKILL)
    workers[1].wait()
    # The chief cannot go on without it: it stops with a one-line error naming the lost worker.
    assert workers[0].wait() == EXIT_USAGE
    first = workers[0].output()
    # (worker 1 is named when TensorFlow's message names it, which depends on who noticed first)
    assert re.search(
        r"error: training stopped: the cluster lost (worker 1|a worker) \(Unavail", first
    )
    assert "Traceback" not in first
    done_before = max(epoch_lines(first))
    assert 1 <= done_before < 4 and multi_worker.is_unfinished(RunPaths(run))

    # Every worker restarted with its same command.
    workers = start_cluster(tmp_path, argv, "again", ports)
    codes = [w.wait() for w in workers]
    took = time.perf_counter() - started
    chief, other = (w.output() for w in workers)
    assert codes == [0, 0], f"{codes}\n--- chief:\n{chief[-3000:]}\n--- worker 1:\n{other[-3000:]}"
    print(f"two workers, killed and restarted: {took:.0f} s")
    assert f"continuing the unfinished multi-worker run in {run}" in chief
    resumed = re.search(r"continuing at epoch (\d+) of 4", chief)
    assert resumed and int(resumed.group(1)) >= 2  # past epoch 1: it did not start over
    assert f"continuing at epoch {resumed.group(1)} of 4" in other
    assert min(epoch_lines(chief)) == int(resumed.group(1)) == min(epoch_lines(other))
    history = pd.read_csv(run / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4]  # every epoch once
    # The best score so far survived the restart: best.keras is the first best epoch of all four.
    best_epoch = int(history.loc[history["val_accuracy"].idxmax(), "epoch"])
    assert f"best val_accuracy {history['val_accuracy'].max():.4f} at epoch {best_epoch}" in chief
    assert (run / "best.keras").is_file() and multi_worker.BACKUP_DIR not in tree(run)
