"""``mobile-skin``: one name for every command, the same functions as the long spellings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mobile_skin import cli


def test_usage_lists_every_command_by_stage(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for stage, group in cli.COMMANDS.items():
        assert f"{stage}:" in out
        for name, command in group.items():
            assert f"  {name} " in out and command.long_form in out
    assert cli.main([]) == 2  # no command: the list, and a usage exit


def test_every_command_resolves_to_a_function():
    import importlib

    for group in cli.COMMANDS.values():
        for command in group.values():
            assert callable(getattr(importlib.import_module(command.module), command.function))


def test_unknown_command_is_one_line_and_exit_2(capsys):
    assert cli.main(["trian", "--data", "x"]) == 2
    assert cli.main(["export", "tflight"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "error: unknown command 'trian'"
    assert "error: unknown command 'export tflight'" in err


def test_commands_pass_their_arguments_through(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:  # the command's own --help, and its exit
        cli.main(["export", "tflite", "--help"])
    assert stop.value.code == 0 and "--qat-epochs" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:  # the command's own one-line error
        cli.main(["compare", str(tmp_path / "none"), "--out", str(tmp_path / "x.md")])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'none'}: not a finished")


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "mobile-skin"
    assert script.is_file(), "pip install -e . installs the mobile-skin entry point"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "export tflite" in done.stdout and done.stderr == ""


def test_threads_mean_the_same_in_every_command():
    import os

    from mobile_skin.bench import profile_cli
    from mobile_skin.bench import table10 as benchmark
    from mobile_skin.common.cli_args import thread_count

    assert thread_count("all") == (os.cpu_count() or 1) and thread_count("3") == 3
    for bad in ("0", "-1", "x", ""):
        with pytest.raises(ValueError):
            thread_count(bad)
    assert benchmark.parse_threads("1,all,1") == list(dict.fromkeys([1, os.cpu_count() or 1]))
    assert profile_cli.parse_args(["m.tflite", "--threads", "all"]).threads == thread_count("all")


def test_benchmark_takes_the_run_positionally_or_as_run(capsys):
    from mobile_skin.bench import table10 as benchmark

    assert benchmark.parse_args(["runs/x", "--quick"]).run == "runs/x"
    assert benchmark.parse_args(["--run", "runs/x", "--quick"]).run == "runs/x"
    assert benchmark.parse_args(["--quick"]).run is None
    with pytest.raises(Exception, match="two runs given"):
        benchmark.parse_args(["runs/a", "--run", "runs/b"])


def test_help_descriptions_show_no_markup(capsys):
    from mobile_skin.common.cli_args import description

    doc = "``python -m x``: see :func:`~mobile_skin.quant.qat.quantize` and :mod:`a.b`.\n\nMore."
    assert description(doc) == "python -m x: see mobile_skin.quant.qat.quantize and a.b."
    for group in cli.COMMANDS.values():
        for name in group:
            with pytest.raises(SystemExit) as stop:
                cli.main([*name.split(), "--help"])
            out = capsys.readouterr().out
            assert stop.value.code == 0 and "``" not in out and ":mod:" not in out, name
