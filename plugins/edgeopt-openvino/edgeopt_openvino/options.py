"""Typed settings of the ``nncf-quantize`` pass, carried in a plan as JSON-ready ``PassSpec`` params."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, Self

from edgeopt.plugin import CompileError, Plan

PRESETS = ("performance", "mixed")
OVERFLOW_FIXES = ("first_layer_only", "enable", "disable")
MODEL_TYPES = ("", "transformer")
CALIBRATIONS = ("", "minmax", "percentile", "entropy")
GRANULARITIES = ("", "per-channel", "per-tensor")
TARGET_DEVICES = ("ANY", "CPU", "GPU", "NPU")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise CompileError(f"invalid nncf-quantize {name} {value!r}", hint=f"choose one of {shown}")


@dataclass(frozen=True)
class NncfInt8Options:
    """How ``nncf.quantize`` builds an int8 OpenVINO model (post-training, calibrated)."""

    preset: Literal["performance", "mixed"] = "performance"
    """``performance``: symmetric int8 weights and activations (NNCF's default, the fastest kernels);
    ``mixed``: asymmetric activations, closer for activations not centred on zero (GELU, Swish, inputs)."""
    target_device: Literal["ANY", "CPU", "GPU", "NPU"] = "CPU"
    """Hardware whose quantization rules NNCF follows (which ops and patterns it quantizes)."""
    overflow_fix: Literal["first_layer_only", "enable", "disable"] = "first_layer_only"
    """7-bit weights where u8*s8 products could saturate (x86 CPUs without VNNI): first layer only (NNCF's
    default), every layer, or none."""
    fast_bias_correction: bool = True
    """Correct the bias shift of quantized layers with NNCF's fast method; False runs full bias correction
    (slower to build, sometimes more accurate)."""
    model_type: Literal["", "transformer"] = ""
    """``transformer`` applies NNCF's transformer scheme (SmoothQuant, float LayerNorm/Softmax paths)."""
    subset_size: int | None = None
    """Calibration samples NNCF uses; None uses every calibration sample given."""
    nodes_to_exclude: tuple[str, ...] = ()
    """Node names of the normalized ONNX graph left in float (merged with the plan's ``keep_fp32``)."""
    calibration: Literal["", "minmax", "percentile", "entropy"] = ""
    """Activation ranges: ``minmax`` (global min/max), ``percentile`` (mean of 1e-4/1-1e-4 quantiles),
    ``entropy`` (NNCF's histogram-optimal ranges); empty keeps NNCF's default (mean of per-sample min/max)."""
    granularity: Literal["", "per-channel", "per-tensor"] = ""
    """Weight scales per output channel or one per tensor; empty keeps NNCF's default (per channel)."""

    def __post_init__(self) -> None:
        _check_choice("preset", self.preset, PRESETS)
        _check_choice("target_device", self.target_device, TARGET_DEVICES)
        _check_choice("overflow_fix", self.overflow_fix, OVERFLOW_FIXES)
        _check_choice("model_type", self.model_type, MODEL_TYPES)
        _check_choice("calibration", self.calibration, CALIBRATIONS)
        _check_choice("granularity", self.granularity, GRANULARITIES)
        if not isinstance(self.fast_bias_correction, bool):
            raise CompileError("nncf-quantize fast_bias_correction must be true or false")
        if self.subset_size is not None and (not isinstance(self.subset_size, int) or self.subset_size < 1):
            raise CompileError(
                f"nncf-quantize subset_size must be a positive integer, got {self.subset_size!r}",
                hint="or leave it out to calibrate on every sample",
            )
        if not all(isinstance(n, str) and n for n in self.nodes_to_exclude):
            raise CompileError("nncf-quantize nodes_to_exclude must be a list of node names")

    def to_params(self) -> dict[str, Any]:
        """JSON-ready parameters (tuples as lists), the inverse of ``from_params``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Self:
        """Options from plan params; unknown keys or invalid values raise ``CompileError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise CompileError(
                f"unknown nncf-quantize option(s): {', '.join(unknown)}", hint=f"known: {', '.join(sorted(known))}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})

    def for_plan(self, plan: Plan) -> NncfInt8Options:
        """These options with the plan's generic fields applied: ``keep_fp32`` joins ``nodes_to_exclude``,
        a non-empty ``calibration``/``granularity`` replaces the option's own."""
        keep = tuple(dict.fromkeys((*self.nodes_to_exclude, *plan.keep_fp32)))
        return replace(
            self,
            nodes_to_exclude=keep,
            calibration=plan.calibration or self.calibration,
            granularity=plan.granularity or self.granularity,
        )
