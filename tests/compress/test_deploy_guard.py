"""What a deploy checks around compression: the --max-drop budget it spends and the target's declared speedups."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeopt.compression.deploy_guard import charge_budget, speedup_warnings, target_request, with_deployed
from edgeopt.compression.spec import CompressionSpec, TrainConfig, parse_prune
from edgeopt.errors import AccuracyBudgetExceeded
from edgeopt.pipeline.deploy import run_deploy
from edgeopt.pipeline.request import DeployRequest
from edgeopt.plugin.manager import get_plugin_manager
from edgeopt.types import TargetInfo

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"


def _record(before: float, after: float) -> dict:
    stage = {"metric_name": "accuracy"}
    return {"stages": [{**stage, "metric": before}, {**stage, "metric": after}],
            "summary": {"metric_drop": before - after}}


def test_first_party_targets_declare_the_pruning_they_speed_up():
    targets = {t.name: t for t in get_plugin_manager().targets()}
    assert targets["cpu"].compression_speedups == ("structured",)
    for name in ("openvino", "cuda"):
        if name in targets:
            assert "structured" in targets[name].compression_speedups
    assert TargetInfo("x", "p", "d", ("fp32",)).compression_speedups == ()


def test_speedup_warnings_name_what_the_target_gains():
    cpu = TargetInfo("cpu", "cpu", "", ("fp32",), compression_speedups=("structured",))
    gpu = TargetInfo("gpu", "gpu", "", ("fp32",), compression_speedups=("structured", "2:4"))
    spec = CompressionSpec(prune=parse_prune("2:4"))
    (warning,) = speedup_warnings(spec, cpu, [cpu, gpu])
    assert "speeds nothing up on target 'cpu'" in warning and "shrinks nothing" in warning
    assert "Targets that declare it: gpu" in warning and "--prune structured:RATIO" in warning
    assert speedup_warnings(spec, gpu, [cpu, gpu]) == []
    assert speedup_warnings(CompressionSpec(prune=parse_prune("structured:0.5")), cpu, [cpu]) == []
    (glob,) = speedup_warnings(CompressionSpec(prune=parse_prune("unstructured-global:0.5")), gpu, [cpu, gpu])
    assert "No installed target declares it" in glob
    assert speedup_warnings(CompressionSpec(cluster=16), cpu, [cpu]) == []  # size needs no declaration


def test_compression_drop_is_charged_to_max_drop():
    record = charge_budget(_record(98.0, 97.4), max_drop=1.0, metric=None)
    assert record["budget"]["target_max_drop"] == pytest.approx(0.4)
    assert "uses 0.60 of --max-drop 1" in record["warnings"][-1]
    request = target_request(DeployRequest(source="m.onnx", max_drop=1.0), record)
    assert request.max_drop == pytest.approx(0.4)
    gained = charge_budget(_record(97.0, 97.5), max_drop=1.0, metric="accuracy")
    assert gained["budget"]["target_max_drop"] == 1.0  # a gain never loosens the target's budget
    with pytest.raises(AccuracyBudgetExceeded, match="exceeds --max-drop 1"):
        charge_budget(_record(98.0, 96.5), max_drop=1.0, metric=None)
    other = charge_budget(_record(98.0, 90.0), max_drop=1.0, metric="f1_macro")  # other units: noted, not charged
    assert "budget" not in other and "not charged" in other["warnings"][-1]
    deployed = with_deployed(record, {"metric": "accuracy", "candidate": 97.0, "higher_is_better": True})
    assert deployed["deployed"]["drop_vs_uncompressed"] == pytest.approx(1.0)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_deploy_warns_that_two_four_gains_nothing_on_cpu(tmp_path, digits, monkeypatch):
    import numpy as np

    monkeypatch.chdir(ROOT)
    x_train, _, y_train, _ = digits
    np.savez(tmp_path / "train.npz", input=x_train[:200], labels=y_train[:200])
    spec = CompressionSpec(prune=parse_prune("2:4"), train=tmp_path / "train.npz", training=TrainConfig(epochs=0))
    deployment = run_deploy(DeployRequest(
        source="examples.digits.model:factory", weights=DIGITS / "digits_cnn.safetensors",
        input_shapes={"": (1, 1, 8, 8)}, eval=DIGITS / "eval.npz", precision="fp32", out=tmp_path / "art",
        timing_s=0.1, cache=False, max_drop=100.0, compression=spec,
    ))
    warnings = deployment.manifest["warnings"]
    assert any("--prune 2:4 speeds nothing up on target 'cpu'" in w for w in warnings)
    original, pruned = deployment.manifest["compression"]["stages"]
    assert pruned["nonzero_params"] < 0.6 * original["nonzero_params"]
    assert pruned["size_bytes"] > 0.95 * original["size_bytes"]  # the warning's claim: zeros shrink no dense file
