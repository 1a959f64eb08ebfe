"""Built-in importer: a Keras 3 model -> ONNX (Keras' own exporter on the torch backend) -> Graph.

Sources it claims: a ``.keras`` file, and an in-memory ``keras.Model``. A file is untrusted data: its
``config.json`` is read here first (plain JSON, Keras is not imported) and anything that would run code
from outside Keras — Lambda layers, Python lambdas, custom layers or functions, wrapped torch/TF/JAX
modules — is refused unless ``options.trust_code``. Keras then loads it in safe mode (``safe_mode=False``
only when trusted) and exports it with ``model.export(format="onnx")`` on the torch backend, in a child
process with a time limit (``edgeopt.process.isolation``): no TensorFlow is needed, and ``KERAS_BACKEND`` is set
there, whatever the user's environment says. The inputs keep Keras' layout (channels-last by default);
the layout is recorded in the model (``edgeopt.graph.layouts``) and from there in the manifest.

An in-memory model is the caller's own code: it is exported in this process when Keras already runs on
the torch backend here, else saved to a ``.keras`` file and exported in the child like a trusted file.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import sys
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgeopt.errors import InputSpecError, ModelError, ResourceLimitError, UnsafeModelError
from edgeopt.extras import require
from edgeopt.graph.layouts import layout_for_rank, stamp_layouts
from edgeopt.graph.model_io import load_onnx
from edgeopt.graph.normalize import normalize
from edgeopt.graph.safety import with_env_limits
from edgeopt.hashing import sha256_file
from edgeopt.plugin import hookimpl
from edgeopt.process.isolation import default_timeout_s, run_isolated
from edgeopt.types import Graph, ImportOptions

EDGEOPT_HOOK_API = 1
EXPORT_OPSET = 18
"""Opset asked of the exporter (torch's dynamo exporter's native one); normalize raises it if needed."""
KERAS_PACKAGES = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp"})
"""Top-level packages whose classes a ``.keras`` file may name without ``--trust-code``."""
FOREIGN_LAYERS = frozenset({"TorchModuleWrapper", "TFSMLayer", "JaxLayer", "FlaxLayer"})
"""Keras layers that wrap a module of another framework (pickled or saved outside Keras' config)."""
MAX_CONFIG_BYTES = 64 * 1024**2
_INSTALL_HINT = "install Keras 3 with `pip install 'edgeopt[keras]'` (it runs on the torch backend)"
_TRUST_HINT = (
    "pass --trust-code (SDK: trust_code=True) only if you trust where the file came from; custom classes "
    "must then be importable (installed, decorated with @keras.saving.register_keras_serializable)"
)
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


# ------------------------------------------------------------------------------------ the archive


@dataclass(frozen=True)
class KerasArchive:
    """What the ``config.json`` of a ``.keras`` file declares, read without Keras."""

    path: Path
    unsafe: tuple[str, ...] = ()
    """Parts that run code from outside Keras, described for the user (empty: safe-mode loadable)."""
    modules: tuple[str, ...] = ()
    """Python modules the file's custom classes come from (imported only when trusted)."""
    data_format: str | None = None
    """``channels_last`` or ``channels_first`` as the model's spatial layers declare it; None without any."""
    keras_version: str | None = None


def is_keras_path(source: object) -> bool:
    """True for a str or path-like whose name ends in ``.keras`` (case-insensitive)."""
    return isinstance(source, str | os.PathLike) and os.fspath(source).lower().endswith(".keras")


def is_keras_model(source: object) -> bool:
    """True for a ``keras.Model``; never imports Keras (no Model exists before Keras was imported)."""
    if "keras" not in sys.modules:
        return False
    import keras

    return isinstance(source, keras.Model)


def _walk(node: Any, layer: str = "") -> Iterator[tuple[dict[str, Any], str]]:
    """Every serialized object (a dict with ``class_name``) in ``node`` with the name of its layer."""
    if isinstance(node, dict):
        if "class_name" in node:
            config = node.get("config")
            if isinstance(config, dict) and isinstance(config.get("name"), str) and "module" in node:
                layer = config["name"]
            yield node, layer
        for value in node.values():
            yield from _walk(value, layer)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, layer)


def _is_keras_module(module: str) -> bool:
    return module.split(".", 1)[0] in KERAS_PACKAGES


def describe_config(config: Any, path: Path, *, keras_version: str | None = None) -> KerasArchive:
    """Scan a model's serialized config for code from outside Keras and for its spatial data format."""
    unsafe: list[str] = []
    modules: list[str] = []
    formats: list[str] = []
    lambda_layers: set[str] = set()
    for obj, layer in _walk(config):
        cls, module, registered = obj.get("class_name"), obj.get("module"), obj.get("registered_name")
        where = f" in layer {layer!r}" if layer else ""
        inner = obj.get("config")
        if isinstance(inner, dict) and inner.get("data_format") in ("channels_last", "channels_first"):
            formats.append(inner["data_format"])
        custom_module = isinstance(module, str) and module not in ("", "builtins") and not _is_keras_module(module)
        if cls == "Lambda":
            lambda_layers.add(layer)
            unsafe.append(f"Lambda layer {layer!r}")
        elif cls == "__lambda__":
            if layer not in lambda_layers:
                unsafe.append(f"a Python lambda (stored bytecode){where}")
        elif cls in FOREIGN_LAYERS:
            unsafe.append(f"{cls} layer {layer!r} (a module of another framework)")
        elif module == "builtins" and cls == "function":
            if isinstance(inner, str) and ">" in inner:
                unsafe.append(f"custom function {inner!r}{where}")
        elif custom_module or (isinstance(registered, str) and ">" in registered):
            origin = f" from module {module}" if custom_module else ""
            kind = "layer" if "build_config" in obj else "object"
            unsafe.append(f"custom {kind} {registered or cls!r}{origin}{where}")
            if custom_module and module not in modules:
                modules.append(module)
    unique = tuple(dict.fromkeys(unsafe))
    return KerasArchive(
        path=path,
        unsafe=unique,
        modules=tuple(modules),
        data_format=formats[0] if formats else None,
        keras_version=keras_version,
    )


def read_archive(path: Path, options: ImportOptions) -> KerasArchive:
    """Open ``path`` as a Keras 3 zip archive and describe its ``config.json``; ModelError when it is not one."""
    if not path.exists():
        raise ModelError(f"model file {path} not found", hint="check the path (and the current directory)")
    if not path.is_file():
        raise ModelError(f"{path} is not a file", hint="give the path of the .keras file itself")
    if not zipfile.is_zipfile(path):
        raise ModelError(
            f"{path} is not a Keras 3 .keras archive (not a zip file)",
            hint="save the model with Keras 3: model.save('model.keras'); Keras 2 .h5 files are not read",
        )
    limit = 4 * with_env_limits(options).max_tensor_bytes
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            declared = sum(info.file_size for info in infos.values())
            if declared > limit:
                raise ResourceLimitError(f"{path} declares {declared} bytes once unpacked, over the limit of {limit}")
            info = infos.get("config.json")
            if info is None:
                raise ModelError(f"{path} holds no config.json, so it is not a Keras 3 model archive")
            if info.file_size > MAX_CONFIG_BYTES:
                raise ResourceLimitError(f"{path}: config.json declares {info.file_size} bytes; refusing to parse it")
            config = json.loads(archive.read(info).decode("utf-8"))
            metadata = json.loads(archive.read("metadata.json").decode("utf-8")) if "metadata.json" in infos else {}
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"cannot read {path} as a Keras archive: {exc}") from exc
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelError(f"{path}: config.json does not describe a Keras model")
    version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    return describe_config(config, path, keras_version=version if isinstance(version, str) else None)


def check_trust(archive: KerasArchive, options: ImportOptions) -> None:
    """Refuse an archive that would run code from outside Keras unless ``options.trust_code``."""
    if archive.unsafe and not options.trust_code:
        more = len(archive.unsafe) - 4
        listed = "; ".join(archive.unsafe[:4]) + (f"; and {more} more" if more > 0 else "")
        raise UnsafeModelError(
            f"{archive.path.name} runs code from outside Keras when loaded ({listed}); edgeopt loads .keras files "
            "in Keras' safe mode",
            hint=_TRUST_HINT,
        )


# ------------------------------------------------------------------------------- the export job


@dataclass(frozen=True)
class KerasExport:
    """One load-and-export job for the child process (plain data)."""

    source: str
    """The ``.keras`` file."""
    out: str
    """Where the ONNX file is written."""
    trust_code: bool = False
    modules: tuple[str, ...] = ()
    """Modules imported before loading (only when ``trust_code``), so custom classes are registered."""
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    dynamic_dim_default: int = 1


@dataclass(frozen=True)
class KerasExported:
    """What an export produced: the ONNX input names with their ranks, and notes for the user."""

    inputs: tuple[tuple[str, int], ...]
    notes: tuple[str, ...] = ()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:240]


def _keras() -> Any:
    """Keras on the torch backend (set here, before the import); ModelError when that cannot be had."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"
    require("keras", feature="importing a Keras model")
    import keras

    if int(keras.__version__.split(".", 1)[0]) < 3:
        raise ModelError(f"Keras {keras.__version__} is installed; edgeopt needs Keras 3", hint=_INSTALL_HINT)
    backend = keras.backend.backend()
    if backend != "torch":
        raise ModelError(
            f"Keras is already running on the {backend} backend in this process; edgeopt exports on torch",
            hint="leave EDGEOPT_ISOLATION on (the export then runs in its own process)",
        )
    return keras


def _fixed_shape(name: str, shape: tuple[Any, ...], job: KerasExport, notes: list[str]) -> tuple[int, ...]:
    given = job.input_shapes.get(name)
    if given is None and len(job.input_shapes) == 1:
        given = job.input_shapes.get("")
    if given is not None:
        given = tuple(int(d) for d in given)
        if len(given) != len(shape) or any(d is not None and d != g for d, g in zip(shape, given, strict=False)):
            raise InputSpecError(f"input {name!r} has shape {tuple(shape)} in Keras, given {given}")
        if any(d < 1 for d in given):
            raise InputSpecError(f"input {name!r}: every dimension must be >= 1, given {given}")
        return given
    fixed = []
    for axis, dim in enumerate(shape):
        if dim is None:
            dim = job.dynamic_dim_default
            if axis:  # a free batch axis is the rule in Keras; say so only for the others
                notes.append(
                    f"input {name} dim {axis} was dynamic; fixed to {dim}, pass --input-shape to choose"
                )
        fixed.append(int(dim))
    return tuple(fixed)


def export_model(model: Any, job: KerasExport) -> KerasExported:
    """Export a loaded ``keras.Model`` to ``job.out`` with static input shapes; ModelError when Keras cannot."""
    keras = _keras()
    from keras.src.export.export_utils import get_input_signature

    notes: list[str] = []
    try:
        signature = get_input_signature(model)
    except (ValueError, TypeError) as exc:
        raise ModelError(
            f"cannot tell the inputs of {type(model).__name__}: {_reason(exc)}",
            hint="give a Functional or Sequential model with keras.Input layers",
        ) from exc
    names: list[tuple[str, int]] = []

    def fix(spec: Any) -> Any:
        name = getattr(spec, "name", None) or f"input_{len(names)}"
        shape = _fixed_shape(name, tuple(spec.shape), job, notes)
        names.append((name, len(shape)))
        return keras.InputSpec(shape=shape, dtype=spec.dtype, name=name)

    fixed = keras.tree.map_structure(fix, signature)
    try:
        model.export(job.out, format="onnx", input_signature=fixed, verbose=False, opset_version=EXPORT_OPSET)
    except (InputSpecError, ModelError):
        raise
    except Exception as exc:  # the exporters raise many types; the user needs the first line
        raise ModelError(
            f"Keras could not export {model.name!r} to ONNX: {_reason(exc)}",
            hint="keras.Model.export(format='onnx') must work on the torch backend for this model",
        ) from exc
    if not Path(job.out).is_file():
        raise ModelError(f"Keras wrote no ONNX file for {model.name!r}")
    return KerasExported(inputs=tuple(names), notes=tuple(notes))


def export_keras_file(job: KerasExport) -> KerasExported:
    """Load ``job.source`` (safe mode unless trusted) and export it; runs in the isolated child process."""
    keras = _keras()
    if job.trust_code:
        for module in job.modules:
            _import_custom(module, job.source)
    try:
        model = keras.saving.load_model(job.source, compile=False, safe_mode=not job.trust_code)
    except Exception as exc:  # Keras raises ValueError/TypeError/... for anything it cannot rebuild
        text = _reason(exc)
        if "safe_mode" in str(exc) or "arbitrary code execution" in str(exc):
            raise UnsafeModelError(f"Keras refused to load {Path(job.source).name}: {text}", hint=_TRUST_HINT) from exc
        raise ModelError(f"Keras cannot load {Path(job.source).name}: {text}", hint=_TRUST_HINT) from exc
    if not isinstance(model, keras.Model):
        raise ModelError(f"{Path(job.source).name} holds a {type(model).__name__}, not a keras.Model")
    exported = export_model(model, job)
    if job.trust_code:
        return replace(exported, notes=(*exported.notes, "loaded with --trust-code: code from the model ran"))
    return exported


def _import_custom(module: str, source: str) -> None:
    if module == "__main__" or not _MODULE_NAME.match(module):
        raise ModelError(
            f"{Path(source).name} uses a custom class defined in {module!r}, which no other process can import",
            hint="move custom layers into an importable module and register them with "
            "@keras.saving.register_keras_serializable",
        )
    try:
        importlib.import_module(module)
    except Exception as exc:  # importing user code can raise anything
        raise ModelError(
            f"cannot import {module!r}, which {Path(source).name} needs for its custom classes: {_reason(exc)}",
            hint="install the package that defines the model's custom layers",
        ) from exc


# ----------------------------------------------------------------------------------------- the hook


def _export_file(archive: KerasArchive, options: ImportOptions, out: Path, *, trusted: bool) -> KerasExported:
    require("keras", feature=f"importing the Keras model {archive.path}")
    job = KerasExport(
        source=str(archive.path),
        out=str(out),
        trust_code=trusted,
        modules=archive.modules,
        input_shapes=dict(options.input_shapes),
        dynamic_dim_default=options.dynamic_dim_default,
    )
    return run_isolated(
        "edgeopt.importers.keras:export_keras_file",
        job,
        timeout_s=default_timeout_s(),
        what="Keras (loading and exporting the model)",
    )


def _export_object(model: Any, options: ImportOptions, export_dir: Path) -> tuple[KerasArchive, KerasExported]:
    """Export the caller's own model here when Keras runs on torch, else through a saved file."""
    import keras

    out = export_dir / "exported.onnx"
    try:
        config = json.loads(model.to_json())
    except Exception as exc:  # an unbuilt or unserializable model
        raise ModelError(f"cannot serialize {type(model).__name__}: {_reason(exc)}") from exc
    archive = describe_config(config, Path(f"{model.name}.keras"))
    job = KerasExport(
        source="", out=str(out), input_shapes=dict(options.input_shapes),
        dynamic_dim_default=options.dynamic_dim_default,
    )
    if keras.backend.backend() == "torch":
        return archive, export_model(model, job)
    saved = export_dir / "source.keras"
    try:
        model.save(str(saved))
    except Exception as exc:  # Keras raises many types when a model cannot be saved
        raise ModelError(f"cannot save {model.name!r} for export: {_reason(exc)}") from exc
    return archive, _export_file(replace(archive, path=saved), options, out, trusted=True)


@hookimpl
def edgeopt_import(source: object, options: ImportOptions, workdir: Path) -> Graph | None:
    """Export a ``.keras`` file (or a keras.Model) to ONNX under ``workdir`` and normalize it; None otherwise."""
    if is_keras_path(source):
        path = Path(os.fspath(source))  # type: ignore[call-overload]
        archive = read_archive(path, options)
        check_trust(archive, options)
        fingerprint = sha256_file(path)
    elif is_keras_model(source):
        archive, fingerprint = None, None
    else:
        return None
    workdir = Path(workdir)
    export_dir = workdir / "keras-export"
    export_dir.mkdir(parents=True, exist_ok=True)
    out = export_dir / "exported.onnx"
    try:
        if archive is None:
            archive, exported = _export_object(source, options, export_dir)
        else:
            exported = _export_file(archive, options, out, trusted=options.trust_code)
        data = out.with_name(out.name + ".data")
        fingerprint = fingerprint or (sha256_file(out, data) if data.exists() else sha256_file(out))
        model = load_onnx(out, options=options)
        layouts = {}
        if archive.data_format is not None:
            ranks = dict(exported.inputs)
            layouts = {
                vi.name: layout
                for vi in model.graph.input
                if (layout := layout_for_rank(archive.data_format, ranks.get(vi.name, -1)))
            }
        stamp_layouts(model, layouts)
        graph = normalize(
            model, source_fingerprint=fingerprint, source_format="keras", options=options, workdir=workdir
        )
    finally:
        shutil.rmtree(export_dir, ignore_errors=True)
    notes = exported.notes
    return replace(graph, notes=(*notes, *graph.notes)) if notes else graph
