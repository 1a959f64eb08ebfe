"""Run a plan's model passes in order, each on the previous pass's file, into a target's work directory."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeopt.passes.ort_optimize import check_loads_on_cpu, copy_model, model_files
from edgeopt.types import PassSpec

ApplyPass = Callable[[PassSpec, Path, Path], tuple[PassSpec, Sequence[str]]]
"""``apply(spec, src, dst)`` runs one pass from the model file ``src`` into ``dst`` (its directory may not exist
yet) and returns the pass with its final parameters, and notes; it raises ``EdgeoptError`` for what it refuses."""


@dataclass(frozen=True)
class ChainResult:
    """The chain's model in the work directory, the passes as applied (final parameters) and their notes."""

    model: Path
    applied: tuple[PassSpec, ...]
    notes: tuple[str, ...]


def run_pass_chain(
    source: Path, passes: Sequence[PassSpec], apply: ApplyPass, workdir: Path, *, model_file: str = "model.onnx"
) -> ChainResult:
    """Apply ``passes`` in order and leave the result at ``workdir/model_file`` (external data beside it).

    Pass *i* reads pass *i-1*'s output (the first reads ``source``) and writes into a temporary directory
    inside ``workdir``, removed afterwards whatever happens; with no passes ``source`` is copied. ``source`` is
    never written. The result is opened once in a plain ONNX Runtime CPU session, so a graph ORT refuses
    fails here (``CompileError``) and not on the device.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    applied: list[PassSpec] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix=".edgeopt-passes-", dir=workdir) as tmp:
        current = Path(source)
        for index, spec in enumerate(passes):
            out = Path(tmp) / f"step{index}" / model_file
            done, pass_notes = apply(spec, current, out)
            applied.append(done)
            notes.extend(pass_notes)
            current = out
        if current == Path(source):
            copy_model(current, workdir, name=model_file)
        else:
            for name in model_files(current):
                shutil.move(str(current.parent / name), str(workdir / name))
    final = workdir / model_file
    check_loads_on_cpu(final)
    return ChainResult(final, tuple(applied), tuple(notes))
