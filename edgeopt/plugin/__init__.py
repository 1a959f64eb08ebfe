"""The plugin surface: everything a target plugin imports from edgeopt, and nothing else.

A plugin (first-party or a vendor's own distribution) imports only this module, plus ``edgeopt.testing`` in its
tests; ``tests/test_architecture.py`` enforces it for the plugins in this repository and the scaffold. What is
here, by job:

- hook contracts: ``hookimpl`` marks an implementation of a hook in ``edgeopt.plugin.hookspecs``;
  ``HOOK_API_VERSION`` is what a plugin declares as ``EDGEOPT_HOOK_API``. ``TargetRegister`` and
  ``MetricRegister`` are what the discovery hooks receive.
- the types between stages (``Graph``, ``Plan``, ``Compiled``, ``Runner``...), the errors a hook raises, and the
  plugin's own folders (``cache_dir("<plugin>")``, ``data_dir("<plugin>")``).
- helpers a target may build on: loading and inspecting the graph and its model family, feeds checks, synthetic
  data and the fp32 reference, the hardware-neutral passes (pass chain, ORT quantization, optimization and
  transformer fusion, batch rewrites), worker-process isolation, device profiles with the roofline, host facts,
  the timing harness and energy estimates.

Names load on first use (module ``__getattr__``), so importing this module costs nothing until a name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeopt.lazy import lazy_names

if TYPE_CHECKING:
    from edgeopt.data.datasets import synthetic_dataset
    from edgeopt.data.feeds import ORT_DTYPES, feeds_mismatch, ort_signature
    from edgeopt.errors import (
        AccuracyBudgetExceeded,
        CompileError,
        ConversionError,
        DataError,
        DeviceError,
        EdgeoptError,
        InputSpecError,
        ModelError,
        PluginError,
        TargetError,
        TargetUnavailable,
        UnsupportedModelError,
    )
    from edgeopt.evaluate.reference import ReferenceRunner, batch_size_of
    from edgeopt.graph.inspect import inspect_model
    from edgeopt.graph.model_family import (
        CONV_OPS,
        MATMUL_OPS,
        WEIGHTED_OPS,
        Family,
        detect_family,
        op_histogram,
        refuse_int8_without_weighted_ops,
    )
    from edgeopt.graph.model_io import load_model
    from edgeopt.measure.devices import default_profile_for, get_profile, host_profile, roofline_seconds
    from edgeopt.measure.energy import estimate_energy, metered
    from edgeopt.measure.harness import measure
    from edgeopt.measure.host import computes_bf16, int8_family, physical_cores
    from edgeopt.passes.batch import batch_agnostic_reshapes, batch_matches, with_batch
    from edgeopt.passes.chain import run_pass_chain
    from edgeopt.passes.ort_optimize import BIG_MODEL_BYTES, LEVELS, model_bytes, model_files, optimize_offline
    from edgeopt.passes.ort_quantize import quantize_dynamic_int8, quantize_static_int8
    from edgeopt.passes.ort_quantize_options import DynamicInt8Options, QuantizeReport, StaticInt8Options
    from edgeopt.passes.transformer_fusion import TransformerFusionOptions, fuse_transformer
    from edgeopt.plugin.hookspecs import HOOK_API_VERSION, hookimpl
    from edgeopt.plugin.metrics import MetricRegister
    from edgeopt.plugin.register import TargetRegister
    from edgeopt.process.isolation import IsolatedWorker, isolation_enabled, stop_child
    from edgeopt.process.worker_main import in_isolated_worker
    from edgeopt.settings import cache_dir, data_dir
    from edgeopt.types import (
        Compiled,
        Dataset,
        DeploymentRecord,
        DeviceProfile,
        EnergyMeter,
        EnergyReading,
        Feeds,
        Graph,
        ImportOptions,
        LatencyStats,
        PassSpec,
        Plan,
        Runner,
        RunSettings,
        TargetInfo,
        TensorSpec,
    )

_WHERE = {
    "HOOK_API_VERSION": "edgeopt.plugin.hookspecs",
    "hookimpl": "edgeopt.plugin.hookspecs",
    "TargetRegister": "edgeopt.plugin.register",
    "MetricRegister": "edgeopt.plugin.metrics",
    "cache_dir": "edgeopt.settings",
    "data_dir": "edgeopt.settings",
    "Compiled": "edgeopt.types",
    "Dataset": "edgeopt.types",
    "DeploymentRecord": "edgeopt.types",
    "DeviceProfile": "edgeopt.types",
    "EnergyMeter": "edgeopt.types",
    "EnergyReading": "edgeopt.types",
    "Feeds": "edgeopt.types",
    "Graph": "edgeopt.types",
    "ImportOptions": "edgeopt.types",
    "LatencyStats": "edgeopt.types",
    "PassSpec": "edgeopt.types",
    "Plan": "edgeopt.types",
    "RunSettings": "edgeopt.types",
    "Runner": "edgeopt.types",
    "TargetInfo": "edgeopt.types",
    "TensorSpec": "edgeopt.types",
    "AccuracyBudgetExceeded": "edgeopt.errors",
    "CompileError": "edgeopt.errors",
    "ConversionError": "edgeopt.errors",
    "DataError": "edgeopt.errors",
    "DeviceError": "edgeopt.errors",
    "EdgeoptError": "edgeopt.errors",
    "InputSpecError": "edgeopt.errors",
    "ModelError": "edgeopt.errors",
    "PluginError": "edgeopt.errors",
    "TargetError": "edgeopt.errors",
    "TargetUnavailable": "edgeopt.errors",
    "UnsupportedModelError": "edgeopt.errors",
    "inspect_model": "edgeopt.graph.inspect",
    "load_model": "edgeopt.graph.model_io",
    "CONV_OPS": "edgeopt.graph.model_family",
    "MATMUL_OPS": "edgeopt.graph.model_family",
    "WEIGHTED_OPS": "edgeopt.graph.model_family",
    "Family": "edgeopt.graph.model_family",
    "detect_family": "edgeopt.graph.model_family",
    "op_histogram": "edgeopt.graph.model_family",
    "refuse_int8_without_weighted_ops": "edgeopt.graph.model_family",
    "ORT_DTYPES": "edgeopt.data.feeds",
    "feeds_mismatch": "edgeopt.data.feeds",
    "ort_signature": "edgeopt.data.feeds",
    "synthetic_dataset": "edgeopt.data.datasets",
    "ReferenceRunner": "edgeopt.evaluate.reference",
    "batch_size_of": "edgeopt.evaluate.reference",
    "run_pass_chain": "edgeopt.passes.chain",
    "DynamicInt8Options": "edgeopt.passes.ort_quantize_options",
    "QuantizeReport": "edgeopt.passes.ort_quantize_options",
    "StaticInt8Options": "edgeopt.passes.ort_quantize_options",
    "quantize_dynamic_int8": "edgeopt.passes.ort_quantize",
    "quantize_static_int8": "edgeopt.passes.ort_quantize",
    "BIG_MODEL_BYTES": "edgeopt.passes.ort_optimize",
    "LEVELS": "edgeopt.passes.ort_optimize",
    "model_bytes": "edgeopt.passes.ort_optimize",
    "model_files": "edgeopt.passes.ort_optimize",
    "optimize_offline": "edgeopt.passes.ort_optimize",
    "TransformerFusionOptions": "edgeopt.passes.transformer_fusion",
    "fuse_transformer": "edgeopt.passes.transformer_fusion",
    "batch_agnostic_reshapes": "edgeopt.passes.batch",
    "batch_matches": "edgeopt.passes.batch",
    "with_batch": "edgeopt.passes.batch",
    "IsolatedWorker": "edgeopt.process.isolation",
    "isolation_enabled": "edgeopt.process.isolation",
    "stop_child": "edgeopt.process.isolation",
    "in_isolated_worker": "edgeopt.process.worker_main",
    "default_profile_for": "edgeopt.measure.devices",
    "get_profile": "edgeopt.measure.devices",
    "host_profile": "edgeopt.measure.devices",
    "roofline_seconds": "edgeopt.measure.devices",
    "computes_bf16": "edgeopt.measure.host",
    "int8_family": "edgeopt.measure.host",
    "physical_cores": "edgeopt.measure.host",
    "measure": "edgeopt.measure.harness",
    "estimate_energy": "edgeopt.measure.energy",
    "metered": "edgeopt.measure.energy",
}

__all__ = [
    "BIG_MODEL_BYTES",
    "CONV_OPS",
    "HOOK_API_VERSION",
    "LEVELS",
    "MATMUL_OPS",
    "ORT_DTYPES",
    "WEIGHTED_OPS",
    "AccuracyBudgetExceeded",
    "CompileError",
    "Compiled",
    "ConversionError",
    "DataError",
    "Dataset",
    "DeploymentRecord",
    "DeviceError",
    "DeviceProfile",
    "DynamicInt8Options",
    "EdgeoptError",
    "EnergyMeter",
    "EnergyReading",
    "Family",
    "Feeds",
    "Graph",
    "ImportOptions",
    "InputSpecError",
    "IsolatedWorker",
    "LatencyStats",
    "MetricRegister",
    "ModelError",
    "PassSpec",
    "Plan",
    "PluginError",
    "QuantizeReport",
    "ReferenceRunner",
    "RunSettings",
    "Runner",
    "StaticInt8Options",
    "TargetError",
    "TargetInfo",
    "TargetRegister",
    "TargetUnavailable",
    "TensorSpec",
    "TransformerFusionOptions",
    "UnsupportedModelError",
    "batch_agnostic_reshapes",
    "batch_matches",
    "batch_size_of",
    "cache_dir",
    "computes_bf16",
    "data_dir",
    "default_profile_for",
    "detect_family",
    "estimate_energy",
    "feeds_mismatch",
    "fuse_transformer",
    "get_profile",
    "hookimpl",
    "host_profile",
    "in_isolated_worker",
    "inspect_model",
    "int8_family",
    "isolation_enabled",
    "load_model",
    "measure",
    "metered",
    "model_bytes",
    "model_files",
    "op_histogram",
    "optimize_offline",
    "ort_signature",
    "physical_cores",
    "quantize_dynamic_int8",
    "quantize_static_int8",
    "refuse_int8_without_weighted_ops",
    "roofline_seconds",
    "run_pass_chain",
    "stop_child",
    "synthetic_dataset",
    "with_batch",
]

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
