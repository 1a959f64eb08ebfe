"""Built-in importer: a PyTorch model -> ONNX (torch.onnx.export) -> Graph.

Sources it claims: a ``torch.nn.Module`` (shapes from ``options.input_shapes``), a ``TorchSource``
(module plus example inputs), a ``"package.module:factory"`` string (weights from
``options.weights``), or a ``.pt``/``.pth`` file holding a whole pickled module (only with
``options.trust_pickle``). torch is imported only inside these functions.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import logging
import os
import pickle
import re
import shutil
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from edgeopt import settings
from edgeopt.errors import InputSpecError, ModelError, UnsafeModelError
from edgeopt.extras import import_optional, is_factory_spec, require
from edgeopt.graph.model_io import load_onnx
from edgeopt.graph.normalize import normalize
from edgeopt.hashing import sha256_file
from edgeopt.plugin import hookimpl
from edgeopt.types import Graph, ImportOptions

if TYPE_CHECKING:
    import torch

EDGEOPT_HOOK_API = 1
EXPORT_OPSET = 18
"""Opset asked of torch's exporter (the dynamo exporter's native one); normalize raises it if needed."""
_PICKLE_SUFFIXES = (".pt", ".pth")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SHAPE_HINT = "torch models need --input-shape (e.g. 1x3x224x224), or pass a TorchSource with example inputs"


@dataclass(frozen=True)
class TorchSource:
    """A module with the example inputs to export it with (any dtypes, several inputs)."""

    module: torch.nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    input_names: Sequence[str] | None = None
    """Names of the ONNX inputs; ``input`` for a single input, the forward parameter names otherwise."""
    output_names: Sequence[str] | None = None
    """Names of the ONNX outputs; ``output`` / ``output_<i>`` by default."""


def _is_module(source: object) -> bool:
    if "torch" not in sys.modules:  # nothing can be a Module before torch was imported
        return False
    import torch

    return isinstance(source, torch.nn.Module)


def _forward_params(module: torch.nn.Module) -> list[str]:
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds]


def _example_inputs(module: torch.nn.Module, shapes: Mapping[str, tuple[int, ...]]) -> TorchSource:
    """Random float32 inputs of the shapes the user gave, named after ``forward``'s parameters."""
    import torch

    if not shapes:
        raise InputSpecError(f"cannot export {type(module).__name__}: no input shape given", hint=_SHAPE_HINT)
    params = _forward_params(module)
    if "" in shapes:
        if len(shapes) > 1:
            raise InputSpecError("give either one unnamed input shape or named ones, not both", hint=_SHAPE_HINT)
        names, dims = ["input"], [shapes[""]]
    elif set(shapes) <= set(params):
        names = [p for p in params if p in shapes]
        dims = [shapes[n] for n in names]
    elif len(shapes) == 1:
        names, dims = list(shapes), list(shapes.values())
    else:
        raise InputSpecError(
            f"input names {sorted(shapes)} do not match {type(module).__name__}.forward parameters {params}",
            hint="name each shape after a forward() parameter, e.g. --input-shape x=1x3x224x224",
        )
    generator = torch.Generator().manual_seed(0)
    try:
        tensors = tuple(torch.randn(*(int(d) for d in shape), generator=generator) for shape in dims)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InputSpecError(f"invalid input shape {dims}: {exc}") from exc
    return TorchSource(module=module, example_inputs=tensors, input_names=names)


def _read_weights(path: Path, options: ImportOptions) -> Any:
    """A state dict (or, only with ``trust_pickle``, a pickled module) read from ``path``."""
    import torch

    if not path.is_file():
        raise ModelError(f"file {path} not found", hint="check the path (and the current directory)")
    if path.suffix.lower() == ".safetensors":
        load_file = import_optional("safetensors.torch", extra="torch", feature=f"reading {path}").load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own SafetensorError / OSError
            raise ModelError(f"cannot read safetensors file {path}: {exc}") from exc
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():
            raise ModelError(f"{path} is not a readable torch checkpoint") from exc
        if not options.trust_pickle:
            raise UnsafeModelError(
                f"{path} holds pickled Python objects (a whole model, not just weights); loading it runs code "
                "from the file",
                hint="use --trust-pickle only if you trust where the file came from, or save a state_dict "
                "(.safetensors) and give package.module:factory",
            ) from exc
        try:
            return torch.load(str(path), map_location="cpu", weights_only=False)
        except Exception as trusted_exc:  # unpickling raises whatever the pickled code raises
            raise ModelError(f"cannot unpickle {path}: {_reason(trusted_exc)}") from trusted_exc
    except (RuntimeError, OSError, EOFError) as exc:
        raise ModelError(f"{path} is not a readable torch checkpoint: {str(exc).splitlines()[0]}") from exc


def _apply_weights(module: torch.nn.Module, path: Path, options: ImportOptions) -> torch.nn.Module:
    import torch

    loaded = _read_weights(path, options)
    if isinstance(loaded, torch.nn.Module):
        return loaded
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ModelError(f"{path} holds a {type(loaded).__name__}, not a state_dict")
    try:
        module.load_state_dict(loaded, strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0] if lines else "")[:200]
        raise ModelError(f"weights in {path} do not fit {type(module).__name__}: {detail}") from exc
    return module


def _from_factory(spec: str) -> torch.nn.Module:
    import torch

    module_name, attr = spec.split(":", 1)
    try:
        factory: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            factory = getattr(factory, part)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot find {spec!r}: {exc}", hint="is the package importable (pip install -e .)?") from exc
    module = factory()
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"{spec}() returned a {type(module).__name__}, not a torch.nn.Module")
    return module


def _from_pickle(path: Path, options: ImportOptions) -> torch.nn.Module:
    import torch

    loaded = _read_weights(path, options)
    if not isinstance(loaded, torch.nn.Module):
        raise ModelError(
            f"{path} holds weights only, not a model",
            hint="give the architecture as package.module:factory and this file as --weights",
        )
    return loaded


def _output_names(module: torch.nn.Module, inputs: tuple[Any, ...]) -> list[str] | None:
    import torch

    with torch.no_grad():
        result = module(*inputs)
    if isinstance(result, torch.Tensor):
        return ["output"]
    if isinstance(result, list | tuple) and all(isinstance(r, torch.Tensor) for r in result):
        return [f"output_{i}" for i in range(len(result))]
    return None


def _reason(exc: BaseException) -> str:
    """First line of the innermost cause, without terminal colours, at most 200 characters."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = _ANSI.sub("", str(exc)).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


@contextlib.contextmanager
def _quiet() -> Iterator[list[warnings.WarningMessage]]:
    """Hold back the exporters' chatter (torch logs, graph dumps on stderr) and collect their warnings.

    With ``EDGEOPT_DEBUG`` set everything goes through unchanged.
    """
    if settings.flag("EDGEOPT_DEBUG"):
        yield []
        return
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught
    finally:
        logger.setLevel(level)


def _run_exporters(module: torch.nn.Module, inputs: tuple[Any, ...], path: Path, options: dict[str, Any]) -> list[str]:
    """The dynamo exporter, or the TorchScript one (with a note) when dynamo fails; return notes."""
    import torch

    notes: list[str] = []
    with torch.no_grad(), _quiet() as caught:
        try:
            torch.onnx.export(module, inputs, str(path), dynamo=True, external_data=True, verbose=False, **options)
        except Exception as dynamo_exc:  # the exporter raises many types; the fallback reports the reason
            reason = _reason(dynamo_exc)
            try:
                torch.onnx.export(module, inputs, str(path), dynamo=False, **options)
            except Exception as exc:
                raise ModelError(
                    f"torch.onnx.export failed for {type(module).__name__}: {reason}",
                    hint="see https://pytorch.org/docs/stable/onnx.html for what the exporters support",
                ) from exc
            notes.append(f"dynamo exporter failed ({reason}); exported with the TorchScript exporter")
    traced = {str(w.message).splitlines()[0] for w in caught if w.category.__name__ == "TracerWarning"}
    notes.extend(f"TorchScript tracer: {message}" for message in sorted(traced))
    return notes


def export_onnx(source: TorchSource, path: Path) -> list[str]:
    """Export ``source`` to ``path`` in eval mode without grad; return notes. ModelError when it cannot.

    Only ``path`` and its ``.data`` sibling are written; the module's training flag is restored.
    """
    module, inputs = source.module, tuple(source.example_inputs)
    names = list(source.input_names or (["input"] if len(inputs) == 1 else _forward_params(module)[: len(inputs)]))
    if len(names) != len(inputs):
        names = [f"input_{i}" for i in range(len(inputs))]
    was_training = module.training
    module.eval()
    try:
        try:
            outputs = list(source.output_names) if source.output_names else _output_names(module, inputs)
        except Exception as exc:  # forward() itself failed on the example inputs
            raise InputSpecError(
                f"{type(module).__name__} failed on inputs of shape {[tuple(t.shape) for t in inputs]}: {_reason(exc)}",
                hint=_SHAPE_HINT,
            ) from exc
        options = {"input_names": names, "output_names": outputs, "opset_version": EXPORT_OPSET}
        notes = _run_exporters(module, inputs, path, options)
    finally:
        module.train(was_training)
    if not path.is_file() or not onnx.load(str(path), load_external_data=False).graph.output:
        raise ModelError(
            f"torch.onnx.export produced no outputs for {type(module).__name__}",
            hint="forward() must return a tensor or a tuple of tensors",
        )
    return notes


def _resolve(source: object, options: ImportOptions) -> TorchSource | None:
    """The module and example inputs for ``source``; None when ``source`` is not a torch model."""
    if isinstance(source, TorchSource):
        return source
    if is_factory_spec(source):
        require("torch", feature=f"importing the torch model {source}")
        module = _from_factory(str(source))
    elif isinstance(source, str | os.PathLike) and os.fspath(source).lower().endswith(_PICKLE_SUFFIXES):
        require("torch", feature=f"importing the torch model {os.fspath(source)}")
        module = _from_pickle(Path(os.fspath(source)), options)  # type: ignore[call-overload]
    elif _is_module(source):
        module = source  # type: ignore[assignment]
    else:
        return None
    if options.weights is not None:
        module = _apply_weights(module, Path(options.weights), options)
    return _example_inputs(module, options.input_shapes)


@hookimpl
def edgeopt_import(source: object, options: ImportOptions, workdir: Path) -> Graph | None:
    """Export a torch model to ONNX under ``workdir`` and normalize it; None for other sources."""
    resolved = _resolve(source, options)
    if resolved is None:
        return None
    workdir = Path(workdir)
    export_dir = workdir / "torch-export"
    export_dir.mkdir(parents=True, exist_ok=True)
    path = export_dir / "exported.onnx"
    try:
        notes = export_onnx(resolved, path)
        data = path.with_name(path.name + ".data")
        fingerprint = sha256_file(path, data) if data.exists() else sha256_file(path)
        model = load_onnx(path, options=options)
        graph = normalize(
            model, source_fingerprint=fingerprint, source_format="torch", options=options, workdir=workdir
        )
    finally:
        shutil.rmtree(export_dir, ignore_errors=True)
    return replace(graph, notes=(*notes, *graph.notes)) if notes else graph
