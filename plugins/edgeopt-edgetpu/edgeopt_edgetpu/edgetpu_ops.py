"""The Edge TPU's op support, as data: which TFLite builtin ops the Edge TPU compiler maps, from which
Edge TPU runtime version, with the limitations Coral publishes.

Source: Coral, "TensorFlow models on the Edge TPU", sections "Model requirements" and "Supported
operations": https://coral.ai/docs/edgetpu/models-intro/#supported-operations (the table for Edge TPU
compiler 16 / runtime 14, the last release). Runtime ``0`` below means "all versions".

Model requirements on the same page, checked by ``compat.py`` for every op:

- tensor parameters are quantized to 8 bits (int8 or uint8); int32 is allowed only where TFLite keeps
  it for biases and shape/axis operands;
- tensor sizes are constant at compile time (no dynamic sizes);
- tensors have 1, 2 or 3 dimensions; a tensor with more than 3 dimensions may have a size above 1 only
  in its 3 innermost dimensions;
- only the operations below; the compiler partitions the graph once, so from the first op it cannot
  map onward everything runs on the CPU, even ops it supports.
"""

from __future__ import annotations

from dataclasses import dataclass

DOC_URL = "https://coral.ai/docs/edgetpu/models-intro/#supported-operations"
LATEST_RUNTIME = 14
"""Edge TPU runtime version of the last release (libedgetpu 16.0, compiler 16)."""
MAX_INNER_DIMS = 3
SOFTMAX_MAX_ELEMENTS = 16000


@dataclass(frozen=True)
class EdgeTpuOp:
    """One row of Coral's table: TFLite builtin name, first runtime version, published limitation."""

    tflite: str
    runtime: int
    limitation: str = ""
    check: str = ""
    """Name of the extra check ``compat.py`` applies (empty: only the model-wide requirements)."""


SUPPORTED: dict[str, EdgeTpuOp] = {
    op.tflite: op
    for op in (
        EdgeTpuOp("ADD", 0),
        EdgeTpuOp("AVERAGE_POOL_2D", 0, "No fused activation function.", "no_fused_activation"),
        EdgeTpuOp("CONCATENATION", 0, "No fused activation function. A compile-time constant input is allowed only "
                  "as one of exactly 2 inputs and must be all zeros (a zero-padding op).", "no_fused_activation"),
        EdgeTpuOp("CONV_2D", 0, "Must use the same dilation in x and y dimensions.", "same_dilation"),
        EdgeTpuOp("DEPTHWISE_CONV_2D", 0, "Must use the same dilation in x and y dimensions (runtime >= 13; "
                  "dilated kernels are not supported before).", "same_dilation"),
        EdgeTpuOp("EXPAND_DIMS", 13),
        EdgeTpuOp("FULLY_CONNECTED", 0, "Only the default format is supported for fully-connected weights. "
                  "Output tensor is one-dimensional.", "one_dimensional_output"),
        EdgeTpuOp("L2_NORMALIZATION", 0),
        EdgeTpuOp("LOGISTIC", 0),
        EdgeTpuOp("UNIDIRECTIONAL_SEQUENCE_LSTM", 14, "Unidirectional LSTM only."),
        EdgeTpuOp("MAXIMUM", 0),
        EdgeTpuOp("MAX_POOL_2D", 0, "No fused activation function.", "no_fused_activation"),
        EdgeTpuOp("MEAN", 0, "Supports reduction along x-, y- and/or z-dimensions only (runtime >= 13; x/y only "
                  "before).", "not_batch_axis"),
        EdgeTpuOp("MINIMUM", 0),
        EdgeTpuOp("MUL", 0),
        EdgeTpuOp("PACK", 13, "No packing in batch dimension.", "not_batch_axis"),
        EdgeTpuOp("PAD", 0, "No padding in batch dimension (runtime >= 13; x/y only before).", "no_batch_padding"),
        EdgeTpuOp("PADV2", 0, "No padding in batch dimension.", "no_batch_padding"),
        EdgeTpuOp("PRELU", 13, "Alpha needs to be constant."),
        EdgeTpuOp("QUANTIZE", 13),
        EdgeTpuOp("REDUCE_MAX", 14, "Cannot operate on the batch dimension.", "not_batch_axis"),
        EdgeTpuOp("REDUCE_MIN", 14, "Cannot operate on the batch dimension.", "not_batch_axis"),
        EdgeTpuOp("RELU", 0),
        EdgeTpuOp("RELU6", 0),
        EdgeTpuOp("RELU_N1_TO_1", 0),
        EdgeTpuOp("RESHAPE", 0, "Certain reshapes might not be mapped for large tensor sizes."),
        EdgeTpuOp("RESIZE_BILINEAR", 0, "Input/output is a 3-dimensional tensor. Depending on input/output size, "
                  "this operation may not be mapped to the Edge TPU to avoid loss in precision."),
        EdgeTpuOp("RESIZE_NEAREST_NEIGHBOR", 0, "Input/output is a 3-dimensional tensor. Depending on input/output "
                  "size, this operation may not be mapped to the Edge TPU to avoid loss in precision."),
        EdgeTpuOp("RSQRT", 14),
        EdgeTpuOp("SLICE", 0),
        EdgeTpuOp("SOFTMAX", 0, "Supports only 1-D input tensor with a max of 16,000 elements.", "softmax_1d"),
        EdgeTpuOp("SPACE_TO_DEPTH", 0),
        EdgeTpuOp("SPLIT", 0, "No splitting in batch dimension.", "not_batch_axis"),
        EdgeTpuOp("SQUARED_DIFFERENCE", 14),
        EdgeTpuOp("SQUEEZE", 0, "Runtime <= 12: only when the squeezed dimensions are leading 1s."),
        EdgeTpuOp("STRIDED_SLICE", 0, "Supported only when all strides are equal to 1 (that is, effectively a "
                  "Stride op), and with ellipsis-axis-mask == 0, and new-axis-max == 0.", "unit_strides"),
        EdgeTpuOp("SUB", 0),
        EdgeTpuOp("SUM", 13, "Cannot operate on the batch dimension.", "not_batch_axis"),
        EdgeTpuOp("TANH", 0),
        EdgeTpuOp("TRANSPOSE", 14),
        EdgeTpuOp("TRANSPOSE_CONV", 13),
    )
}

INTEGER_TYPES = ("int8", "uint8")
"""Activation and weight types the Edge TPU computes with."""
AUXILIARY_TYPES = ("int32", "int64")
"""Types TFLite keeps for biases and shape/axis/size operands; allowed beside int8 data."""
