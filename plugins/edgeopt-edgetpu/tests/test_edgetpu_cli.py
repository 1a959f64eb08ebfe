"""``edgeopt edgetpu check`` and ``edgeopt edgetpu toolchain`` through Typer (no converter needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from conftest import needs_litert
from tflite_builders import int8_conv_net
from typer.testing import CliRunner

from edgeopt_edgetpu import toolchain
from edgeopt_edgetpu.cli import register


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()
    root.command("noop")(lambda: None)  # a root with one command keeps `edgetpu` a group
    register(root)
    return root


@needs_litert
def test_check_prints_the_per_op_report(app: typer.Typer, tmp_path: Path) -> None:
    model = int8_conv_net(tmp_path / "m.tflite", tail="DEQUANTIZE")
    result = CliRunner().invoke(app, ["edgetpu", "check", str(model)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Edge TPU: 2/3 ops (67%)" in result.output
    assert "unsupported op DEQUANTIZE" in result.output and "coral.ai/docs/edgetpu" in result.output


@needs_litert
def test_check_json_and_an_artifact_folder(app: typer.Typer, tmp_path: Path) -> None:
    int8_conv_net(tmp_path / "model.tflite")
    result = CliRunner().invoke(app, ["edgetpu", "check", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)["compatibility"]
    assert data["mapped_ops"] == 3 and data["first_fallback"] is None


def test_check_refuses_what_is_not_a_model(app: typer.Typer, tmp_path: Path) -> None:
    from edgeopt.plugin import InputSpecError

    result = CliRunner().invoke(app, ["edgetpu", "check", str(tmp_path / "missing.onnx")])
    assert isinstance(result.exception, InputSpecError)


def test_toolchain_without_one_says_how_to_create_it(app: typer.Typer, isolated_cache: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toolchain, "converter_importable", lambda: False)
    result = CliRunner().invoke(app, ["edgetpu", "toolchain"])
    assert result.exit_code == 1 and "edgeopt edgetpu toolchain --create" in result.output
