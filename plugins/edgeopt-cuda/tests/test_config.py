"""Provider settings: the exact option dicts ONNX Runtime receives, and their round trip through the artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgeopt.plugin import CompileError

from edgeopt_cuda.config import (
    CONFIG_FILE,
    CachePaths,
    EpConfig,
    TrtProfile,
    default_config,
    provider_options,
    read_config,
    write_config,
)

CACHE = CachePaths(engines=Path("/c/engines"), timing=Path("/c/timing"))
PROFILE = TrtProfile("x", (1, 3, 224, 224), (4, 3, 224, 224), (32, 3, 224, 224))


def test_cuda_ep_options_fp32_with_cuda_graph() -> None:
    assert provider_options(EpConfig()) == [
        (
            "CUDAExecutionProvider",
            {
                "device_id": "0",
                "use_tf32": "0",
                "cudnn_conv_algo_search": "EXHAUSTIVE",
                "enable_cuda_graph": "1",
                "do_copy_in_default_stream": "1",
            },
        )
    ]


def test_cuda_ep_tf32_and_graph_override() -> None:
    ((name, options),) = provider_options(EpConfig(tf32=True, device_id=1), cuda_graph=False)
    assert name == "CUDAExecutionProvider"
    assert (options["use_tf32"], options["enable_cuda_graph"], options["device_id"]) == ("1", "0", "1")


def test_tensorrt_int8_fp16_with_caches_profiles_and_cuda_fallback() -> None:
    config = EpConfig(provider="tensorrt", fp16=True, int8=True, profiles=(PROFILE,))
    (trt_name, trt), (cuda_name, cuda) = provider_options(config, CACHE)
    assert (trt_name, cuda_name) == ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    assert trt == {
        "device_id": "0",
        "trt_fp16_enable": "True",
        "trt_int8_enable": "True",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": "/c/engines",
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": "/c/timing",
        "trt_builder_optimization_level": "3",
        "trt_cuda_graph_enable": "True",
        "trt_profile_min_shapes": "x:1x3x224x224",
        "trt_profile_opt_shapes": "x:4x3x224x224",
        "trt_profile_max_shapes": "x:32x3x224x224",
    }
    assert cuda["enable_cuda_graph"] == "0"  # TensorRT captures its own engines; the CUDA EP must not


def test_tensorrt_fp32_has_both_precision_flags_off_and_no_profiles() -> None:
    ((_, trt), _) = provider_options(EpConfig(provider="tensorrt", cuda_graph=False), CACHE)
    assert (trt["trt_fp16_enable"], trt["trt_int8_enable"], trt["trt_cuda_graph_enable"]) == ("False", "False", "False")
    assert not any(k.startswith("trt_profile") for k in trt)


def test_tensorrt_needs_a_cache() -> None:
    with pytest.raises(CompileError, match="engine cache"):
        provider_options(EpConfig(provider="tensorrt"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"provider": "rocm"}, "unknown execution provider"),
        ({"fp16": True}, "TensorRT settings"),
        ({"int8": True}, "TensorRT settings"),
        ({"profiles": (PROFILE,)}, "TensorRT settings"),
        ({"conv_algo_search": "FAST"}, "conv_algo_search"),
        ({"provider": "tensorrt", "builder_optimization_level": 9}, "builder_optimization_level"),
    ],
)
def test_invalid_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(CompileError, match=message):
        EpConfig(**kwargs)


def test_profiles_must_be_ordered() -> None:
    with pytest.raises(CompileError, match="invalid TensorRT profile") as info:
        TrtProfile("x", (8, 3), (1, 3), (32, 3))
    assert "1 <= min <= opt <= max" in info.value.hint


def test_config_round_trips_through_the_json_file(tmp_path: Path) -> None:
    config = EpConfig(provider="tensorrt", fp16=True, int8=True, cuda_graph=False, profiles=(PROFILE,))
    path = write_config(config, tmp_path)
    assert path.name == CONFIG_FILE
    assert json.loads(path.read_text())["profiles"][0]["max"] == [32, 3, 224, 224]
    assert read_config(tmp_path, precision="fp32") == config
    assert EpConfig.from_params(config.to_params()) == config
    assert config.profile_max_batch() == 32 and EpConfig().profile_max_batch() is None


def test_without_the_file_the_precision_decides(tmp_path: Path) -> None:
    assert read_config(tmp_path, precision="fp16") == EpConfig()
    assert read_config(tmp_path, precision="int8") == default_config("int8")
    assert default_config("int8").provider == "tensorrt" and default_config("int8").int8


def test_broken_or_unknown_config_is_a_compile_error(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text("{nope")
    with pytest.raises(CompileError, match="unreadable"):
        read_config(tmp_path, precision="fp32")
    with pytest.raises(CompileError, match="unknown ep-config option"):
        EpConfig.from_params({"provider": "cuda", "turbo": True})
