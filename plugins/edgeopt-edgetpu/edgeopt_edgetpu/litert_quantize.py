"""Quantize an fp32 ``.tflite`` with ai-edge-quantizer, in the converter toolchain (no edgeopt).

- ``int8``: ``static_wi8_ai8`` recipe (int8 per-channel weights, int8 activations, int8 model I/O), activation
  ranges the global min/max over the calibration samples; ``granularity == "per-tensor"`` gives one weight scale
  per tensor instead;
- ``int8-dynamic``: ``dynamic_wi8_afp32`` (int8 weights, activations quantized on the fly);
- ``fp16``: fp16 weights (``FLOAT_CASTING``, 16 bits) dequantized to fp32 at load time.

Calibration feeds are cast to the converted model's own input types (LiteRT keeps int64 graph inputs as int32).
They are read from the ``.npz`` and run one sample at a time (``read_samples``), so the calibration set is never
held whole beside the calibrating interpreter.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterator
from pathlib import Path


def recipe_for(precision: str, granularity: str = "per-channel"):  # noqa: ANN201 - ai-edge-quantizer's recipe
    from ai_edge_quantizer import qtyping, recipe, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    if precision == "int8" and granularity == "per-tensor":
        manager = recipe_manager.RecipeManager()
        manager.add_static_config(".*", recipe.TFLOperationName.ALL_SUPPORTED, 8, 8,
                                  weight_granularity=qtyping.QuantGranularity.TENSORWISE)
        return manager.get_quantization_recipe()
    if precision == "int8":
        return recipe.static_wi8_ai8()
    if precision == "int8-dynamic":
        return recipe.dynamic_wi8_afp32()
    if precision == "fp16":
        manager = recipe_manager.RecipeManager()
        manager.add_weight_only_config(".*", recipe.TFLOperationName.ALL_SUPPORTED, 16,
                                       algorithm_key=AlgorithmName.FLOAT_CASTING)
        return manager.get_quantization_recipe()
    raise ValueError(f"no quantization recipe for precision {precision!r}")


def _calibrate(float_path: Path, recipe: object, signature: str, feeds: Iterator[dict]) -> tuple[dict, int]:
    """Activation ranges as the global min/max over every sample (ai-edge-quantizer's ``Quantizer.calibrate``
    keeps a moving average of per-sample ranges instead, which clips the extremes of in-range data), and the
    number of samples. One ``calibrate`` call per sample: the calibrator lists a dataset before running it, which
    would hold every feed at once; ranges only accumulate, so calls of one sample give the same ranges."""
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe)
    calib = calibrator.Calibrator(float_path.read_bytes(), num_threads=1, qsv_update_func=qsv_utils.min_max_update)
    samples = 0
    for feed in feeds:
        calib.calibrate({signature: [feed]}, manager)
        samples += 1
    return calib.get_model_qsvs(), samples


def read_samples(calibration: str, names: list[str]) -> Iterator[list]:
    """The samples of the ``.npz`` at ``calibration``, one ``[1, ...]`` array per name (in order) at a time, read
    sequentially from each member (an ``NpzFile`` item reads the whole array)."""
    import numpy as np

    fmt = np.lib.format
    with zipfile.ZipFile(calibration) as archive:
        members, specs = [], []
        for name in names:
            member = archive.open(f"{name}.npy")
            members.append(member)
            version = fmt.read_magic(member)
            shape, fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(
                member)
            if fortran or dtype.hasobject or not shape:
                raise ValueError(f"calibration array {name!r} is not a C-ordered numeric batch")
            specs.append(((1, *shape[1:]), dtype, dtype.itemsize * math.prod(shape[1:]), shape[0]))
        for _ in range(min((spec[3] for spec in specs), default=0)):
            sample = []
            for member, (shape, dtype, size, _count) in zip(members, specs, strict=True):
                buffer = bytearray(size)
                if member.readinto(buffer) != size:
                    raise ValueError("the calibration file ended early")
                sample.append(np.frombuffer(buffer, dtype=dtype).reshape(shape))
            yield sample


def input_types(path: Path, signature: str) -> dict:
    """``{input key: numpy dtype}`` of ``signature`` in the model at ``path``."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner(signature)
    return {key: detail["dtype"] for key, detail in runner.get_input_details().items()}


def quantize(float_path: Path, out: Path, *, precision: str, granularity: str, calibration: str,
             signature: dict, names: list[str]) -> int:
    """Write the quantized model of ``float_path`` to ``out``; return the calibration samples used.

    ``signature`` is ``{"name", "inputs": [keys in graph input order]}``; ``calibration`` an ``.npz`` holding one
    array per graph input (``names``), used when the recipe needs calibration."""
    from ai_edge_quantizer import quantizer

    recipe = recipe_for(precision, granularity)
    qt = quantizer.Quantizer(str(float_path), recipe)
    ranges, samples = None, 0
    if qt.need_calibration:
        keys = signature["inputs"]
        types = input_types(float_path, signature["name"])
        feeds = ({key: array.astype(types[key], copy=False) for key, array in zip(keys, sample, strict=True)}
                 for sample in read_samples(calibration, names))
        ranges, samples = _calibrate(float_path, recipe, signature["name"], feeds)
    qt.quantize(ranges).export_model(str(out), overwrite=True)
    return samples
