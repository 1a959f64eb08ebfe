"""How a compiled model is run: the execution provider and its settings, as plain data.

An ``EpConfig`` travels three ways: as the params of the plan's ``ep-config`` pass (so the manifest
records it), as ``cuda_config.json`` beside the model (so a loaded artifact runs exactly as it was
measured; the core keeps only files, not passes, when it reloads an artifact), and as the provider
list handed to ``onnxruntime.InferenceSession`` (:func:`provider_options`). Option names and value
formats are ONNX Runtime's own (checked against the onnxruntime-gpu 1.31.1 providers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from edgeopt.plugin import CompileError

CONFIG_FILE = "cuda_config.json"
PROVIDERS = ("cuda", "tensorrt")
CONV_ALGO_SEARCH = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")
ORT_NAMES = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


@dataclass(frozen=True)
class TrtProfile:
    """One TensorRT optimization profile entry: the shapes an input may take (min <= opt <= max)."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def __post_init__(self) -> None:
        if not len(self.min) == len(self.opt) == len(self.max) or not all(
            1 <= a <= b <= c for a, b, c in zip(self.min, self.opt, self.max, strict=True)
        ):
            raise CompileError(
                f"invalid TensorRT profile for {self.name!r}: min {self.min}, opt {self.opt}, max {self.max}",
                hint="every dimension needs 1 <= min <= opt <= max",
            )


@dataclass(frozen=True)
class EpConfig:
    """Execution-provider settings for one plan. Every field is recorded in the manifest."""

    provider: Literal["cuda", "tensorrt"] = "cuda"
    """``cuda``: CUDAExecutionProvider alone; ``tensorrt``: TensorrtExecutionProvider first, CUDA EP for the
    nodes TensorRT does not take."""
    fp16: bool = False
    """TensorRT may pick fp16 kernels per layer (``trt_fp16_enable``). The CUDA EP ignores it: fp16 on the
    CUDA EP comes from converting the model (the ``fp16-convert`` pass)."""
    int8: bool = False
    """TensorRT int8 (``trt_int8_enable``) for a QDQ model: the Q/DQ scales set the ranges, no calibration table."""
    cuda_graph: bool = True
    """Capture the whole run as one CUDA graph and replay it (``enable_cuda_graph`` / ``trt_cuda_graph_enable``).
    Needs static shapes, IO binding at fixed addresses and every node on the GPU; the runner drops it (and says
    so) when the session refuses."""
    tf32: bool = False
    """Let the CUDA EP use TF32 tensor cores for fp32 MatMul/Conv (``use_tf32``; 10-bit mantissa products)."""
    conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = "EXHAUSTIVE"
    """cuDNN convolution algorithm search (``cudnn_conv_algo_search``); EXHAUSTIVE benchmarks on the first run."""
    builder_optimization_level: int = 3
    """TensorRT builder optimization level 0-5 (``trt_builder_optimization_level``); higher builds longer."""
    profiles: tuple[TrtProfile, ...] = ()
    """TensorRT optimization profile (min/opt/max shapes) for inputs with a dynamic batch dimension."""
    device_id: int = 0
    """CUDA device ordinal (after ``CUDA_VISIBLE_DEVICES``)."""

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise CompileError(f"unknown execution provider {self.provider!r}", hint=f"choose {' or '.join(PROVIDERS)}")
        if self.conv_algo_search not in CONV_ALGO_SEARCH:
            raise CompileError(
                f"invalid conv_algo_search {self.conv_algo_search!r}",
                hint=f"choose one of {', '.join(CONV_ALGO_SEARCH)}",
            )
        if self.provider == "cuda" and (self.fp16 or self.int8 or self.profiles):
            raise CompileError(
                "fp16/int8 flags and optimization profiles are TensorRT settings; the CUDA EP has none",
                hint="use provider='tensorrt', or the fp16-convert pass for fp16 on the CUDA EP",
            )
        if not 0 <= self.builder_optimization_level <= 5:
            raise CompileError(f"invalid builder_optimization_level {self.builder_optimization_level}", hint="0 to 5")

    @property
    def ort_provider(self) -> str:
        return ORT_NAMES[self.provider]

    def to_params(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        params = asdict(self)
        params["profiles"] = [
            {k: list(v) if isinstance(v, tuple) else v for k, v in p.items()} for p in params["profiles"]
        ]
        return params

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> EpConfig:
        """Rebuild from ``to_params`` output; unknown keys raise ``CompileError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise CompileError(
                f"unknown ep-config option(s): {', '.join(unknown)}", hint=f"known: {', '.join(sorted(known))}"
            )
        values = dict(params)
        values["profiles"] = tuple(
            TrtProfile(p["name"], tuple(p["min"]), tuple(p["opt"]), tuple(p["max"])) for p in values.get("profiles", ())
        )
        return cls(**values)

    def profile_max_batch(self) -> int | None:
        """The largest batch every profiled input allows, or None without profiles."""
        return min((p.max[0] for p in self.profiles), default=None)


@dataclass(frozen=True)
class CachePaths:
    """Where TensorRT keeps built engines (one folder per model and batch) and its shared timing cache."""

    engines: Path
    timing: Path


def _bool(value: bool, *, trt: bool) -> str:
    return ("True" if value else "False") if trt else ("1" if value else "0")


def _shapes(profiles: tuple[TrtProfile, ...], which: str) -> str:
    return ",".join(f"{p.name}:{'x'.join(str(d) for d in getattr(p, which))}" for p in profiles)


def cuda_options(config: EpConfig, *, cuda_graph: bool | None = None) -> dict[str, str]:
    """CUDAExecutionProvider options for ``config`` (``cuda_graph`` overrides the config's choice)."""
    graph = config.cuda_graph if cuda_graph is None else cuda_graph
    return {
        "device_id": str(config.device_id),
        "use_tf32": _bool(config.tf32, trt=False),
        "cudnn_conv_algo_search": config.conv_algo_search,
        "enable_cuda_graph": _bool(graph, trt=False),
        "do_copy_in_default_stream": "1",
    }


def tensorrt_options(config: EpConfig, cache: CachePaths, *, cuda_graph: bool | None = None) -> dict[str, str]:
    """TensorrtExecutionProvider options: precision flags, engine and timing caches, profiles, CUDA graph."""
    graph = config.cuda_graph if cuda_graph is None else cuda_graph
    options = {
        "device_id": str(config.device_id),
        "trt_fp16_enable": _bool(config.fp16, trt=True),
        "trt_int8_enable": _bool(config.int8, trt=True),
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache.engines),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache.timing),
        "trt_builder_optimization_level": str(config.builder_optimization_level),
        "trt_cuda_graph_enable": _bool(graph, trt=True),
    }
    if config.profiles:
        options["trt_profile_min_shapes"] = _shapes(config.profiles, "min")
        options["trt_profile_opt_shapes"] = _shapes(config.profiles, "opt")
        options["trt_profile_max_shapes"] = _shapes(config.profiles, "max")
    return options


def provider_options(
    config: EpConfig, cache: CachePaths | None = None, *, cuda_graph: bool | None = None
) -> list[tuple[str, dict[str, str]]]:
    """The ``providers`` argument for ``onnxruntime.InferenceSession``, most preferred first.

    TensorRT takes the subgraphs it supports; the CUDA EP takes the rest (without its own CUDA graph:
    TensorRT captures its engines' graphs itself). ONNX Runtime adds the CPU EP last by itself.
    """
    if config.provider == "cuda":
        return [(ORT_NAMES["cuda"], cuda_options(config, cuda_graph=cuda_graph))]
    if cache is None:
        raise CompileError("the TensorRT provider needs an engine cache folder", hint="pass CachePaths")
    return [
        (ORT_NAMES["tensorrt"], tensorrt_options(config, cache, cuda_graph=cuda_graph)),
        (ORT_NAMES["cuda"], cuda_options(config, cuda_graph=False)),
    ]


def write_config(config: EpConfig, directory: Path) -> Path:
    """Write ``cuda_config.json`` into ``directory`` and return its path."""
    path = Path(directory) / CONFIG_FILE
    path.write_text(json.dumps(config.to_params(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_config(directory: Path, *, precision: str) -> EpConfig:
    """The config stored beside the model, or the default for ``precision`` when there is none."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        return default_config(precision)
    try:
        params = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CompileError(f"{CONFIG_FILE} is unreadable: {exc}", hint="re-run edgeopt deploy") from exc
    if not isinstance(params, dict):
        raise CompileError(f"{CONFIG_FILE} does not hold an object", hint="re-run edgeopt deploy")
    return EpConfig.from_params(params)


def default_config(precision: str) -> EpConfig:
    """What a model of ``precision`` runs with when no config file came with it."""
    if precision == "int8":
        return EpConfig(provider="tensorrt", int8=True, fp16=True)
    return EpConfig()
