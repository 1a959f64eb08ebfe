"""Typed settings of ONNX Runtime's int8 quantizer, and the report a quantization run returns.

``StaticInt8Options`` and ``DynamicInt8Options`` validate on construction (``CompileError`` for a choice ORT has no
kernels for) and round-trip through JSON-ready ``PassSpec`` params (``to_params`` / ``from_params``).
``QuantizeReport`` holds what a run did, counted from the models themselves (``edgeopt.passes.int8_nodes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Self

from edgeopt.errors import CompileError

ORT_CALIBRATION = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
"""``calibrate_method`` choices, each to the name of ONNX Runtime's ``CalibrationMethod``."""


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise CompileError(f"invalid {name} {value!r}", hint=f"choose one of {', '.join(choices)}")


class _Params:
    """JSON-ready round trip for option dataclasses (plans carry options as PassSpec params)."""

    def to_params(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Self:
        """Rebuild options from ``to_params`` output; unknown keys raise ``CompileError``."""
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(params) - known)
        if unknown:
            raise CompileError(
                f"unknown {cls.__name__} option(s): {', '.join(unknown)}", hint=f"known: {', '.join(sorted(known))}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})


@dataclass(frozen=True)
class StaticInt8Options(_Params):
    """Settings for static (calibrated) int8 QDQ quantization."""

    per_channel: bool = True
    """One scale per output channel of each weight (accurate; needs opset >= 13) instead of one per tensor."""
    activation_type: Literal["uint8", "int8"] = "uint8"
    """Activation integer type. ``uint8`` (U8S8) suits x86 kernels; ``int8`` (S8S8) suits Arm and GPUs."""
    weight_type: Literal["int8", "uint8"] = "int8"
    """Weight integer type. ``uint8`` with uint8 activations (U8U8) avoids int16 saturation on AVX2 without VNNI."""
    calibrate_method: Literal["minmax", "percentile", "entropy"] = "minmax"
    """How activation ranges come from calibration data: full range, clipped percentile, or KL entropy."""
    reduce_range: bool = False
    """Quantize weights to 7 bits, so U8S8 products cannot saturate on x86 CPUs without VNNI."""
    op_types: tuple[str, ...] | None = None
    """Op types to quantize; None quantizes every op type ORT's QDQ quantizer supports."""
    nodes_to_exclude: tuple[str, ...] = ()
    """Node names left in float (e.g. a sensitive first or last layer)."""
    symmetric_activation: bool = False
    """Force activation ranges symmetric around zero (zero point 0 for int8 activations)."""
    percentile: float = 99.999
    """Percentile of absolute activation values kept, with ``calibrate_method="percentile"``."""
    max_calibration_samples: int | None = None
    """Use at most this many calibration samples; None uses all of them."""
    float_outputs: bool = True
    """Leave the weightless tail of the graph (a final Softmax, Reshape, Sigmoid... up to the last weighted op) in
    float: quantizing it gains no speed and rounds the outputs to 8 bits (probabilities to multiples of 1/256)."""

    def __post_init__(self) -> None:
        _check_choice("activation_type", self.activation_type, ("uint8", "int8"))
        _check_choice("weight_type", self.weight_type, ("int8", "uint8"))
        _check_choice("calibrate_method", self.calibrate_method, tuple(ORT_CALIBRATION))
        if self.activation_type == "int8" and self.weight_type == "uint8":
            raise CompileError(
                "int8 activations with uint8 weights (S8U8) have no ONNX Runtime kernels", hint="use weight_type='int8'"
            )
        if not 0.0 < self.percentile <= 100.0:
            raise CompileError(f"invalid percentile {self.percentile}", hint="give a value in (0, 100]")
        if self.max_calibration_samples is not None and self.max_calibration_samples < 1:
            raise CompileError("max_calibration_samples must be at least 1", hint="or None to use every sample")


@dataclass(frozen=True)
class DynamicInt8Options(_Params):
    """Settings for dynamic int8 quantization (int8 weights, activations quantized at run time)."""

    per_channel: bool = False
    """One scale per output channel of each weight instead of one per tensor."""
    weight_type: Literal["int8", "uint8"] = "int8"
    """Weight integer type; activations are always uint8 in ORT's dynamic mode."""
    reduce_range: bool = False
    """Quantize weights to 7 bits, so products cannot saturate on x86 CPUs without VNNI."""
    op_types: tuple[str, ...] = ("MatMul", "Gemm", "Attention", "LSTM")
    """Op types to quantize. ORT has dynamic kernels for Conv, MatMul, Gemm, Attention and LSTM only (no GRU).
    Conv is left out by default: ConvInteger is usually slower than float Conv."""
    nodes_to_exclude: tuple[str, ...] = ()
    """Node names left in float."""

    def __post_init__(self) -> None:
        _check_choice("weight_type", self.weight_type, ("int8", "uint8"))


@dataclass(frozen=True)
class QuantizeReport:
    """What a quantization run did, counted from the models themselves."""

    mode: str
    """``static`` or ``dynamic``."""
    quantized_nodes: int
    """Weighted nodes (Conv, MatMul, Gemm...) that run on quantized inputs in the output model."""
    quantizable_nodes: int
    """Weighted nodes in the input that the options asked to quantize."""
    quantized_by_op: Mapping[str, int]
    """``quantized_nodes`` by op type of the input model (dynamic mode counts Gemm as MatMul: ORT rewrites it)."""
    weight_bytes_before: int
    """Bytes of the input's initializers."""
    weight_bytes_after: int
    """Bytes of the output's initializers (int8 weights, int32 biases, scales and zero points)."""
    ort_parameters: Mapping[str, Any]
    """The arguments given to ONNX Runtime's quantizer, enums as their names."""
    ort_version: str
    calibration_samples: int = 0
    """Samples the static calibration ran on (0 for dynamic)."""
    notes: tuple[str, ...] = ()

    def as_params(self) -> dict[str, Any]:
        """The report as JSON-ready manifest parameters (``ort_parameters`` under ``ort``)."""
        params = asdict(self)
        params["ort"] = params.pop("ort_parameters")
        del params["mode"], params["notes"]
        return params
