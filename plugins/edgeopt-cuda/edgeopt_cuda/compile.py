"""Build a plan's model for the GPU: run its model passes in order into ``workdir``, store its EP settings.

Passes: ``fp16-convert`` (onnxconverter-common, fp32 I/O), ``quantize-static`` (the core's QDQ int8, for
TensorRT), and ``ep-config`` (not a model change: the provider settings, written to ``cuda_config.json``
beside ``model.onnx`` and listed in the compiled files). Every result is opened once in a plain ONNX
Runtime CPU session, so a broken graph fails here and not on the device. When a GPU is usable, the model
is also loaded on it once: that builds the TensorRT engines into ``workdir/trt_cache`` (not part of the
artifact), settles whether a CUDA graph works, and records the GPU's power limit and clocks.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgeopt.plugin import (
    Compiled,
    CompileError,
    Dataset,
    Graph,
    PassSpec,
    Plan,
    QuantizeReport,
    StaticInt8Options,
    model_files,
    quantize_static_int8,
    run_pass_chain,
)

from edgeopt_cuda.config import CONFIG_FILE, EpConfig, default_config, write_config
from edgeopt_cuda.fp16 import Fp16Options, convert_fp16
from edgeopt_cuda.status import CudaStatus

MODEL_FILE = "model.onnx"
MODEL_PASSES = ("fp16-convert", "quantize-static")
PASSES = (*MODEL_PASSES, "ep-config")


def _quant_summary(report: QuantizeReport) -> str:
    by_op = ", ".join(f"{op} {n}" for op, n in report.quantized_by_op.items())
    return (
        f"int8 QDQ for TensorRT: {report.quantized_nodes}/{report.quantizable_nodes} weighted nodes quantized "
        f"({by_op}); weights {report.weight_bytes_before / 1e6:.2f} MB -> {report.weight_bytes_after / 1e6:.2f} MB"
    )


def _apply(spec: PassSpec, src: Path, dst: Path, calibration: Dataset) -> tuple[PassSpec, tuple[str, ...]]:
    """Run one model pass from ``src`` to ``dst``; return it with its final parameters, and notes."""
    if spec.name == "fp16-convert":
        options = Fp16Options.from_params(spec.params)
        report = convert_fp16(src, dst, options)
        return PassSpec(spec.name, {**options.to_params(), **report.as_params()}), (report.summary(),)
    if spec.name == "quantize-static":
        static = StaticInt8Options.from_params(spec.params)
        if static.activation_type != "int8" or not static.symmetric_activation:
            raise CompileError(
                "TensorRT's explicit int8 needs int8 activations with symmetric ranges (zero point 0)",
                hint="use activation_type='int8' and symmetric_activation=True",
            )
        quant = quantize_static_int8(src, dst, calibration, static)
        return PassSpec(spec.name, {**static.to_params(), **quant.as_params()}), (_quant_summary(quant), *quant.notes)
    raise CompileError(f"target 'cuda' has no pass {spec.name!r}", hint=f"passes: {', '.join(PASSES)}")


def split_plan(plan: Plan) -> tuple[tuple[PassSpec, ...], EpConfig]:
    """The plan's model passes, and its EP settings (the ``ep-config`` pass, which must come last)."""
    configs = [i for i, s in enumerate(plan.passes) if s.name == "ep-config"]
    if len(configs) > 1 or (configs and configs[0] != len(plan.passes) - 1):
        raise CompileError("a plan takes at most one ep-config pass, and it comes last", hint=f"passes: {PASSES}")
    model_passes = plan.passes[: configs[0]] if configs else plan.passes
    config = EpConfig.from_params(plan.passes[-1].params) if configs else default_config(plan.precision)
    quantized = any(s.name == "quantize-static" for s in model_passes)
    if config.int8 and not quantized:
        raise CompileError(
            "trt_int8_enable needs a QDQ model: add a quantize-static pass before ep-config",
            hint="TensorRT takes int8 ranges from the Q/DQ scales; edgeopt ships no calibration tables",
        )
    if quantized and config.provider != "tensorrt":
        raise CompileError(
            "int8 QDQ models run on the TensorRT EP here (the CUDA EP would run them slower than fp16)",
            hint="use provider='tensorrt' with int8=True in ep-config",
        )
    return model_passes, config


def _load_on_gpu(path: Path, config: EpConfig, workdir: Path, batch: int) -> list[str]:
    """Load the model once on the GPU: build engines into ``workdir/trt_cache`` and say what was used."""
    from edgeopt_cuda.runner import OrtCudaRunner, cache_root_for

    began = time.perf_counter()
    runner = OrtCudaRunner(path, config=config, cache_root=cache_root_for(workdir), batch=batch)
    seconds = time.perf_counter() - began
    runner.close()
    built = f"; TensorRT engine built and cached in {seconds:.1f} s" if config.provider == "tensorrt" else ""
    return [f"loaded on the GPU in {seconds:.1f} s{built}", *runner.notes]


def _batch(graph: Graph) -> int:
    first = graph.inputs[0].shape[0] if graph.inputs and graph.inputs[0].shape else 1
    return first if isinstance(first, int) and first > 0 else 1


def compile_plan(
    graph: Graph, plan: Plan, calibration: Dataset, workdir: Path, *, status: CudaStatus | None = None
) -> Compiled:
    """Write ``workdir/model.onnx`` and ``workdir/cuda_config.json`` for ``plan``; never touch ``graph``.

    ``status`` is the target's availability: with a usable GPU the model is loaded on it once (see the
    module docstring); without one, or with None, only the CPU load check runs.
    """
    import onnxruntime as ort

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model_passes, config = split_plan(plan)
    if config.provider == "tensorrt" and status is not None and status.available and not status.tensorrt:
        raise CompileError(
            f"the TensorRT EP is not usable here: {status.tensorrt_reason}", hint="choose a CUDA EP plan"
        )
    def apply(spec: PassSpec, src: Path, dst: Path) -> tuple[PassSpec, tuple[str, ...]]:
        return _apply(spec, src, dst, calibration)

    chain = run_pass_chain(Path(graph.path), model_passes, apply, workdir, model_file=MODEL_FILE)
    final = chain.model
    applied = list(chain.applied)
    notes = [*plan.notes, *chain.notes]
    write_config(config, workdir)
    applied.append(PassSpec("ep-config", config.to_params()))
    notes.append(_config_note(config))
    if status is not None and status.available:
        notes.extend(_load_on_gpu(final, config, workdir, _batch(graph)))
        notes.extend(_gpu_note())
    else:
        notes.append(
            "not loaded on a GPU at compile time (none usable here): the runner builds the session on first use"
        )
    return Compiled(
        directory=workdir,
        model_file=MODEL_FILE,
        files=(*model_files(final), CONFIG_FILE),
        plan=plan,
        runtime=f"onnxruntime {ort.__version__} ({config.ort_provider})",
        passes=tuple(applied),
        notes=tuple(notes),
    )


def _config_note(config: EpConfig) -> str:
    flags: list[str] = []
    if config.provider == "tensorrt":
        flags += [f"trt_fp16_enable={config.fp16}", f"trt_int8_enable={config.int8}"]
    else:
        flags.append(f"use_tf32={config.tf32}")
    flags.append(f"CUDA graph {'requested' if config.cuda_graph else 'off'}")
    return f"runs on {config.ort_provider} ({', '.join(flags)})"


def _gpu_note() -> list[str]:
    from edgeopt_cuda.nvml import facts_note, gpu_facts

    facts: dict[str, Any] | None = gpu_facts()
    return [facts_note(facts)] if facts else []
