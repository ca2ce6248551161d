"""The export-format table: every consumer reads it, so each format is named in one place."""

from __future__ import annotations

import pytest

from mobile_skin.bench import models as bench_models
from mobile_skin.common.formats import FORMATS, KERAS, benchmarked, file_kind, formats_of
from mobile_skin.export import cli as export_cli
from mobile_skin.export import convert_tflite as export_tflite
from mobile_skin.export import exporter as export
from mobile_skin.parity import gate as parity


def test_every_consumer_takes_its_formats_from_the_table():
    assert export.FORMATS is FORMATS
    assert list(parity.TOLERANCES) == list(FORMATS)
    assert parity.ROW_ORDER == (KERAS, *FORMATS)
    assert bench_models.RUNTIMES == benchmarked() and bench_models.RUNTIMES[0] == KERAS
    assert all(bench_models.SUFFIX[n] == FORMATS[n].suffix for n in bench_models.RUNTIMES[1:])
    assert export_tflite.TFLITE_MODES == tuple(f.mode for f in formats_of("tflite"))


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_row_is_consistent(name):
    f = FORMATS[name]
    assert name == f"{f.runtime}_{f.mode}" and f.rule in parity.RULES
    assert parity.TOLERANCES[name] is parity.RULES[f.rule]
    assert file_kind(name) == f.runtime and f.suffix == f".{f.runtime}"
    assert f.float_head == (f.mode == "int8")


@pytest.mark.parametrize("name", [n for n, f in FORMATS.items() if f.flag])
def test_each_flag_chooses_its_format(name):
    f = FORMATS[name]
    parse = export_cli.parse_tflite_args if f.runtime == "tflite" else export_cli.parse_onnx_args
    assert parse([f.flag]).format == name


def test_defaults_and_aliases():
    assert export_cli.parse_tflite_args([]).format == "tflite_fp32"
    assert export_cli.parse_tflite_args(["--qat"]).format == "tflite_int8"
    assert export_cli.parse_onnx_args([]).format == "onnx_fp32"
    assert file_kind(KERAS) == KERAS
