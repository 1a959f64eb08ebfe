"""A converted ncnn model behind edgeopt's ``Runner`` protocol; no timing here (the core's harness times).

ncnn has no batch dimension, so a batch of ``n`` samples is ``n`` extractions of the same ``Net``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from edgeopt.plugin import CompileError, InputSpecError

from edgeopt_ncnn.convert import BIN_FILE, IO_FILE, PARAM_FILE


class NcnnRunner:
    """Loads ``model.ncnn.param``/``.bin`` from a compiled directory with the options its ``io.json`` records.

    Feeds must be float32, named as the graph's inputs, shaped ``(batch, *sample_shape)``; anything else
    raises ``InputSpecError`` naming the input. A failure inside ncnn raises ``CompileError``.
    """

    def __init__(self, directory: Path, *, threads: int | None = None) -> None:
        import ncnn

        directory = Path(directory)
        self._io = json.loads((directory / IO_FILE).read_text())
        fp16 = bool(self._io["fp16"])
        net = ncnn.Net()
        net.opt.num_threads = max(int(threads or 1), 1)
        net.opt.use_fp16_storage = fp16
        net.opt.use_fp16_packed = fp16
        net.opt.use_fp16_arithmetic = fp16
        net.opt.use_bf16_storage = False
        net.opt.use_vulkan_compute = False
        if net.load_param(str(directory / PARAM_FILE)) != 0 or net.load_model(str(directory / BIN_FILE)) != 0:
            raise CompileError(
                f"ncnn cannot load the model in {directory}",
                hint="the conversion produced layers this ncnn build lacks; upgrade ncnn or try another target",
            )
        self._ncnn: Any = ncnn
        self._net: Any = net

    def _batch(self, feeds: Mapping[str, np.ndarray]) -> int:
        names = [i["name"] for i in self._io["inputs"]]
        missing, extra = sorted(set(names) - set(feeds)), sorted(set(feeds) - set(names))
        if missing or extra:
            raise InputSpecError(
                f"inputs do not match the model: missing {missing or 'none'}, unexpected {extra or 'none'}"
            )
        batches = set()
        for spec in self._io["inputs"]:
            value = np.asarray(feeds[spec["name"]])
            want = ["batch", *spec["sample_shape"]]
            if value.dtype != np.float32 or value.ndim != len(want) or list(value.shape[1:]) != spec["sample_shape"]:
                got = f"{value.dtype}{list(value.shape)}"
                raise InputSpecError(f"input {spec['name']!r} is {got}, the model expects float32{want}")
            batches.add(value.shape[0])
        if len(batches) != 1 or 0 in batches:
            raise InputSpecError(f"inputs must share one non-zero batch size, got {sorted(batches)}")
        return batches.pop()

    def _sample(self, feeds: Mapping[str, np.ndarray], index: int) -> list[np.ndarray]:
        extractor = self._net.create_extractor()
        kept = []  # ncnn.Mat may borrow the numpy buffer: keep it alive until extraction is done
        for spec in self._io["inputs"]:
            array = np.ascontiguousarray(feeds[spec["name"]][index], dtype=np.float32)
            kept.append(array)
            extractor.input(spec["blob"], self._ncnn.Mat(array))
        outputs = []
        for spec in self._io["outputs"]:
            status, mat = extractor.extract(spec["blob"])
            if status != 0:
                raise CompileError(f"ncnn failed computing output {spec['name']!r} (status {status})")
            values = np.array(mat, dtype=np.float32)
            if values.size != int(np.prod(spec["sample_shape"], dtype=np.int64)):
                raise CompileError(
                    f"ncnn output {spec['name']!r} has {values.size} values per sample, the graph's "
                    f"{spec['sample_shape']} has {int(np.prod(spec['sample_shape']))}",
                    hint="pnnx changed this output's layout; try another target",
                )
            outputs.append(values.reshape(spec["sample_shape"]))
        return outputs

    def run(self, feeds: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
        """One inference of every sample in the batch; outputs in graph order, batch first."""
        if self._net is None:
            raise RuntimeError("NcnnRunner.run called after close()")
        samples = [self._sample(feeds, i) for i in range(self._batch(feeds))]
        return [np.stack([s[j] for s in samples]) for j in range(len(self._io["outputs"]))]

    def check(self) -> None:
        """Run one sample of zeros and close: proves the converted model runs and its outputs fit the graph."""
        feeds = {i["name"]: np.zeros((1, *i["sample_shape"]), np.float32) for i in self._io["inputs"]}
        try:
            self.run(feeds)
        finally:
            self.close()

    def close(self) -> None:
        if self._net is not None:
            self._net.clear()
        self._net = None
