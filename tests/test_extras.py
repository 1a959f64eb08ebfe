"""Optional extras: a feature whose library is missing fails before any work with one E900 line naming the extra;
the HTML reports degrade to tables without matplotlib instead of losing the deploy.

Modules are hidden by setting ``sys.modules[name] = None`` (what Python does for a module known to be missing):
``import name`` then raises ``ModuleNotFoundError`` and ``importlib.util.find_spec(name)`` returns None."""

from __future__ import annotations

import json
import sys

import pytest

import edgeopt
import edgeopt.cli as cli
from edgeopt.compression.prune import prune_structured
from edgeopt.compression.spec import CompressionSpec, parse_prune
from edgeopt.errors import MissingExtraError
from edgeopt.extras import available, check_request, import_optional, plots_note, require
from edgeopt.importers.sklearn import to_onnx_model
from edgeopt.importers.torch import _resolve
from edgeopt.types import ImportOptions
from tests.security.helpers import DIGITS


def hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def test_a_hidden_module_is_missing_and_named_with_its_extra(monkeypatch) -> None:
    hide(monkeypatch, "torch_pruning")
    assert not available("torch_pruning") and available("numpy")
    with pytest.raises(MissingExtraError) as info:
        require("compress", feature="--prune structured:0.5")
    assert info.value.code == "E900"
    assert info.value.message == "--prune structured:0.5 needs torch-pruning, which is not installed"
    assert info.value.hint == "pip install 'edgeopt[compress]'"
    with pytest.raises(MissingExtraError, match="needs torch-pruning"):
        import_optional("torch_pruning", extra="compress", feature="--prune structured:0.5")


@pytest.mark.parametrize(
    ("source", "weights", "hidden", "extra"),
    [
        ("model.keras", None, "keras", "keras"),
        ("model.joblib", None, "skl2onnx", "sklearn"),
        ("model.pkl", None, "sklearn", "sklearn"),
        ("model.skops", None, "skops", "sklearn"),
        ("pkg.models:make_net", None, "torch", "torch"),
        ("whole.pt", None, "torch", "torch"),
        ("pkg.models:make_net", "w.safetensors", "safetensors", "torch"),
    ],
)
def test_each_source_needs_its_importers_extra(source, weights, hidden, extra, monkeypatch) -> None:
    check_request(source, weights=weights)  # everything is installed here
    hide(monkeypatch, hidden)
    with pytest.raises(MissingExtraError) as info:
        check_request(source, weights=weights)
    assert info.value.hint == f"pip install 'edgeopt[{extra}]'" and source in info.value.message


def test_an_onnx_file_needs_no_extra(monkeypatch) -> None:
    hide(monkeypatch, "torch", "keras", "sklearn", "skl2onnx", "torch_pruning", "matplotlib")
    check_request("model.onnx")
    check_request(DIGITS)


def test_compression_needs_the_compress_extra(monkeypatch) -> None:
    structured = CompressionSpec(prune=parse_prune("structured:0.5"))
    unstructured = CompressionSpec(prune=parse_prune("unstructured:0.5"))
    hide(monkeypatch, "torch_pruning")
    with pytest.raises(MissingExtraError, match=r"^--prune structured:0.5 needs torch-pruning"):
        check_request("pkg.models:make_net", compression=structured)
    check_request("pkg.models:make_net", compression=unstructured)  # magnitude pruning is torch alone
    hide(monkeypatch, "torch")
    with pytest.raises(MissingExtraError, match=r"needs torch, which is not installed") as info:
        check_request(object(), compression=CompressionSpec(distill=True))
    assert info.value.hint == "pip install 'edgeopt[compress]'"


def test_the_importers_themselves_refuse_with_the_extra(monkeypatch) -> None:
    """The request check comes first; the import sites use the same helper (SDK calls that skip the check)."""
    hide(monkeypatch, "torch_pruning", "skl2onnx", "torch")
    with pytest.raises(MissingExtraError, match="torch-pruning"):
        prune_structured(None, (), ratio=0.5)  # type: ignore[arg-type]
    with pytest.raises(MissingExtraError, match="skl2onnx"):
        to_onnx_model(object(), ImportOptions())
    with pytest.raises(MissingExtraError, match="importing the torch model pkg.models:make_net needs torch"):
        _resolve("pkg.models:make_net", ImportOptions())


def _cli(argv: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["edgeopt", *argv])
    monkeypatch.setenv("EDGEOPT_REGISTRY", "off")
    with pytest.raises(SystemExit) as info:
        cli.main()
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_prune_without_torch_pruning_fails_first_in_one_line(tmp_path, capsys, monkeypatch) -> None:
    """The factory does not exist and --train is missing: the missing extra is still what the user hears first,
    before any import, data loading or search."""
    monkeypatch.chdir(tmp_path)
    hide(monkeypatch, "torch_pruning")
    status, out, err = _cli(["deploy", "nosuch.models:make_net", "--prune", "structured:0.5",
                             "--train", "missing.npz", "--json"], capsys, monkeypatch)
    assert status == MissingExtraError.exit_status
    assert json.loads(out) == {"error": {"code": "E900", "hint": "pip install 'edgeopt[compress]'",
                                         "message": "--prune structured:0.5 needs torch-pruning, which is not "
                                         "installed"}}
    assert [line for line in err.splitlines() if line.startswith("error[")] == [
        "error[E900]: --prune structured:0.5 needs torch-pruning, which is not installed"]
    assert "  hint: pip install 'edgeopt[compress]'" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("source", "hidden", "extra"), [("m.keras", "keras", "keras"),
                                                          ("m.joblib", "skl2onnx", "sklearn")])
def test_compare_and_deploy_check_the_source_extra_first(source, hidden, extra, tmp_path, capsys,
                                                         monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    hide(monkeypatch, hidden)
    for command in ("deploy", "compare"):
        status, _, err = _cli([command, source], capsys, monkeypatch)
        assert status == MissingExtraError.exit_status, err
        assert err.startswith("error[E900]: importing ") and f"edgeopt[{extra}]" in err, err


def test_target_auto_without_matplotlib_deploys_with_tables_and_a_note(tmp_path, monkeypatch) -> None:
    """Issue 22: ``--target auto`` crashed in the HTML report after its whole search without matplotlib."""
    hide(monkeypatch, "matplotlib", "matplotlib.figure", "matplotlib.pyplot")
    note = plots_note()
    assert note is not None and "edgeopt[report]" in note
    monkeypatch.setenv("EDGEOPT_REGISTRY", "off")
    deployment = edgeopt.deploy(DIGITS, target="auto", targets=["cpu"], precision="fp32", runs=3, timing_s=0.05,
                                out=tmp_path / "auto.edgeopt")
    page = (deployment.path / "report.html").read_text()
    assert "Runtimes compared (--target auto)" in page and "<table>" in page and "<svg" not in page
    assert page.count("plots need edgeopt[report]") >= 2  # the runtimes plot and the Pareto plot
    assert deployment.manifest["selection"]["winner"] == "cpu"
