"""Calibration and evaluation data: read from the user's sources, checked against the graph's inputs.

Sources: an ``.npz`` (keys = input names, samples stacked on axis 0, optional ``labels``), a ``.npy`` for a
single-input model, a folder of images with a ``preprocess.json``/``.yaml``, a mapping of arrays, an
iterable of feed dicts, or a ``Dataset``. Pickled data is never loaded.

An input without a batch axis at 0 (a scalar, a state ``[layers, batch, hidden]``; ``edgeopt.data.stream``) is
given as one whole value per sample stacked on a new axis 0; a state input may be left out (the stream then
starts from zeros).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.data.images import NPZ_HINT, load_image_dir
from edgeopt.data.stream import compared_constants, fed_whole_inputs, resolve_state, zero_states
from edgeopt.errors import DataError
from edgeopt.types import Dataset, Graph, StatePair, TensorSpec

DataSource = str | os.PathLike | Mapping[str, np.ndarray] | Iterable[Any] | Dataset | None
StateSpec = Mapping[str, str] | Sequence[StatePair] | None
"""State pairs: output -> input names, ``StatePair`` s, ``{}`` for none, or None to detect them
(``edgeopt.data.stream.resolve_state``)."""
DEFAULT_SYNTHETIC_SAMPLES = 32
MAX_DATA_BYTES = 16 * 1024**3
"""Refuse an .npz whose arrays would take more memory than this once decompressed."""
LABELS_KEY = "labels"


def load_dataset(
    source: DataSource, graph: Graph, *, purpose: str, max_samples: int | None = None, state: StateSpec = None
) -> Dataset:
    """Read ``source`` into a Dataset that fits ``graph``'s inputs (names, per-sample dims, dtypes).

    ``purpose`` (``calibration`` or ``evaluation``) appears in messages. ``None`` gives synthetic data.
    Arrays are cast to the input dtypes where no value changes (ints to floats; floats to ints only when
    integral). At most ``max_samples`` samples are kept (the first ones). ``state`` (see ``StateSpec``) makes
    the data a stream; its state inputs may be missing from ``source`` (zeros). Raises ``DataError``, and
    ``InputSpecError`` for a ``state`` that does not fit the graph.
    """
    what = f"{purpose} data"
    if max_samples is not None and max_samples < 1:
        raise DataError(f"max_samples must be at least 1, got {max_samples}")
    pairs = resolve_state(graph, state)
    if source is None:
        return synthetic_dataset(graph, samples=max_samples or DEFAULT_SYNTHETIC_SAMPLES, state=pairs)
    synthetic = False
    if isinstance(source, Dataset):
        arrays, labels = dict(source.arrays), source.labels
        origin, synthetic = source.source or "dataset", source.synthetic
    elif isinstance(source, (str, os.PathLike)):
        arrays, labels = _load_path(Path(source), graph, what=what, max_samples=max_samples)
        origin = str(source)
    elif isinstance(source, Mapping):
        arrays = {str(k): v for k, v in source.items() if k != LABELS_KEY}
        labels, origin = source.get(LABELS_KEY), "arrays"
    elif isinstance(source, np.ndarray):
        arrays, labels, origin = {"array": source}, None, "array"
    elif isinstance(source, Iterable) and not isinstance(source, (bytes, bytearray)):
        arrays, labels = _from_feeds(source, graph, what=what, max_samples=max_samples, state=pairs)
        origin = "iterable"
    else:
        raise DataError(
            f"{what} of type {type(source).__name__} is not supported",
            hint="give an .npz path, an image folder, a dict of arrays or an iterable of feed dicts",
        )
    return _validate(arrays, labels, graph, what=what, origin=origin, synthetic=synthetic, max_samples=max_samples,
                     state=pairs)


def synthetic_dataset(
    graph: Graph, *, samples: int = DEFAULT_SYNTHETIC_SAMPLES, seed: int = 0, state: StateSpec = None,
    limits: Mapping[str, int] | None = None,
) -> Dataset:
    """Random inputs shaped ``(samples, *dims[1:])`` per graph input (dynamic dims become 1); an input fed
    whole (``edgeopt.data.stream.fed_whole_inputs``) is shaped ``(samples, *dims)``.

    Floats ~ N(0, 1) clipped to [-3, 3], integers in [0, 10) (below the table size where the input indexes
    a constant table: ``edgeopt.graph.index_bounds``), booleans fair coin flips; state inputs (``state``, see
    ``StateSpec``) zeros, so the stream starts from a fresh state; a one-element input the graph compares
    with a constant (a sample rate checked against 16000) that constant (``edgeopt.data.stream.compared_constants``).
    ``limits``: the table sizes that bound integer inputs, as recorded (an artifact's manifest); None reads
    them from ``graph.path`` when it is an ONNX file. ``synthetic=True``.
    """
    from edgeopt.graph.index_bounds import index_limits

    if samples < 1:
        raise DataError(f"synthetic data needs at least 1 sample, got {samples}")
    pairs = resolve_state(graph, state)
    whole = fed_whole_inputs(graph, pairs)
    rng = np.random.default_rng(seed)
    readable = graph.path is not None and Path(graph.path).suffix == ".onnx" and Path(graph.path).exists()
    if limits is None:
        limits = index_limits(graph.path) if readable else {}
    constants = compared_constants(graph.path) if readable else {}
    arrays: dict[str, np.ndarray] = {}
    for spec in graph.inputs:
        dims = spec.shape if spec.name in whole else _sample_dims(spec, "synthetic data")
        shape = (samples, *(d if isinstance(d, int) and d > 0 else 1 for d in dims))
        dtype = _np_dtype(spec)
        if dtype is not None and dtype.kind in "fiub" and spec.name in constants:
            arrays[spec.name] = np.full(shape, constants[spec.name]).astype(dtype)
        elif dtype is not None and dtype.kind == "f":
            arrays[spec.name] = np.clip(rng.standard_normal(shape), -3.0, 3.0).astype(dtype)
        elif dtype is not None and dtype.kind in "iu":
            arrays[spec.name] = rng.integers(0, min(10, limits.get(spec.name, 10)), size=shape).astype(dtype)
        elif dtype is not None and dtype.kind == "b":
            arrays[spec.name] = rng.random(shape) < 0.5
        else:
            raise DataError(
                f"cannot make synthetic data for input {spec.name!r} of type {spec.dtype}",
                hint="give real data (an .npz keyed by input name)",
            )
    arrays.update(zero_states(graph, samples, pairs, whole))
    return Dataset(arrays=arrays, labels=None, synthetic=True, source="synthetic", fed_whole=whole, state=pairs)


# -------------------------------------------------------------------------------------------- sources


def _load_path(
    path: Path, graph: Graph, *, what: str, max_samples: int | None
) -> tuple[dict[str, Any], np.ndarray | None]:
    if not path.exists():
        raise DataError(f"{what} not found: {path}", hint="check the path given for the data")
    if path.is_dir():
        return load_image_dir(path, graph, what=what, max_samples=max_samples)
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".npy"):
        raise DataError(f"{what} {path} is not an .npz/.npy file or an image folder", hint=NPZ_HINT)
    try:
        if suffix == ".npz":
            _check_npz_size(path, what=what)
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {path.stem: loaded}, None
        with loaded:
            found = {k: loaded[k] for k in loaded.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object arrays" in str(exc).lower():
            raise DataError(
                f"{what} {path} contains pickled (object) arrays, which edgeopt never loads",
                hint="store plain numeric arrays: numpy.savez(path, x=np.asarray(x, dtype=np.float32))",
            ) from exc
        raise DataError(f"{what} {path} is not a readable numpy file: {exc}", hint=NPZ_HINT) from exc
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{what} {path} is not a readable numpy file: {exc}", hint=NPZ_HINT) from exc
    labels = found.pop(LABELS_KEY, None)
    return found, labels


def _check_npz_size(path: Path, *, what: str) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            total = sum(info.file_size for info in zf.infolist())
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{what} {path} is not a readable .npz (zip) file: {exc}", hint=NPZ_HINT) from exc
    if total > MAX_DATA_BYTES:
        raise DataError(
            f"{what} {path} expands to {total / 1024**3:.1f} GiB, over the {MAX_DATA_BYTES / 1024**3:.0f} GiB limit",
            hint="use fewer samples (a few hundred are enough for calibration and a quick evaluation)",
        )


def _from_feeds(
    source: Iterable[Any], graph: Graph, *, what: str, max_samples: int | None, state: Sequence[StatePair]
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Stack an iterable of feeds: dicts (may hold ``labels``), arrays (single input) or ``(feed, labels)``.
    An input fed whole is one value per item, or several stacked on a new axis 0."""
    parts: dict[str, list[np.ndarray]] = {s.name: [] for s in graph.inputs}
    whole = fed_whole_inputs(graph, state)
    optional = {p.input for p in state}
    label_parts: list[np.ndarray] = []
    count = items = 0
    has_labels: bool | None = None
    for i, item in enumerate(source):
        feed, lab = item if isinstance(item, tuple) and len(item) == 2 else (item, None)
        if isinstance(feed, np.ndarray) and len(graph.inputs) == 1:
            feed = {graph.inputs[0].name: feed}
        if not isinstance(feed, Mapping):
            raise DataError(
                f"item {i} of the {what} iterable is a {type(feed).__name__}; expected a dict of input name -> array",
                hint="yield {input_name: batch_array, ...} (optionally with 'labels')",
            )
        feed = dict(feed)
        if LABELS_KEY in feed:
            lab = feed.pop(LABELS_KEY) if lab is None else lab
            feed.pop(LABELS_KEY, None)
        matched = _match_keys(feed, graph, what=f"item {i} of the {what}", optional=optional)
        sizes = set()
        for spec in graph.inputs:
            if spec.name not in matched:
                continue
            arr = _plain(matched[spec.name], f"{what}: item {i}, input {spec.name!r}")
            if arr.ndim == len(spec.shape) - (spec.name not in whole):  # one sample without its sample axis
                arr = arr[None]
            parts[spec.name].append(_fit(arr, spec, what=f"{what} (item {i})", whole=spec.name in whole))
            sizes.add(len(arr))
        if len(sizes) > 1:
            raise DataError(f"item {i} of the {what} has inputs with different batch sizes {sorted(sizes)}")
        if has_labels is None:
            has_labels = lab is not None
        elif has_labels != (lab is not None):
            raise DataError(f"item {i} of the {what}: some items carry labels and others do not")
        if lab is not None:
            label_parts.append(np.atleast_1d(_plain(lab, f"{what}: labels of item {i}")))
        items += 1
        count += sizes.pop()
        if max_samples is not None and count >= max_samples:
            break
    if not items:
        raise DataError(f"the {what} iterable yielded no samples")
    try:
        arrays = {k: np.concatenate(v, axis=0) for k, v in parts.items() if v}
        labels = np.concatenate(label_parts, axis=0) if label_parts else None
    except ValueError as exc:
        raise DataError(f"the {what} feeds cannot be stacked (their shapes differ): {exc}") from exc
    return arrays, labels


# ----------------------------------------------------------------------------------------- validation


def _validate(
    arrays: Mapping[str, Any],
    labels: Any,
    graph: Graph,
    *,
    what: str,
    origin: str,
    synthetic: bool,
    max_samples: int | None,
    state: Sequence[StatePair],
) -> Dataset:
    whole = fed_whole_inputs(graph, state)
    matched = _match_keys(arrays, graph, what=what, optional={p.input for p in state})
    fitted = {
        s.name: _fit(_plain(matched[s.name], f"{what}: input {s.name!r}"), s, what=what, whole=s.name in whole)
        for s in graph.inputs
        if s.name in matched
    }
    counts = {name: len(a) for name, a in fitted.items()}
    if len(set(counts.values())) > 1:
        raise DataError(
            f"{what} inputs hold different numbers of samples: {counts}",
            hint="every input array (and 'labels') must have one entry per sample on axis 0",
        )
    n = next(iter(counts.values()), 0)
    if n == 0:
        raise DataError(f"{what} holds no samples", hint=NPZ_HINT)
    if labels is not None:
        labels = _plain(labels, f"{what}: labels")
        if labels.ndim == 0 or len(labels) != n:
            got = len(labels) if labels.ndim else "a scalar"
            raise DataError(f"{what} has {got} labels for {n} samples", hint="give one label per sample")
    if max_samples is not None and n > max_samples:
        fitted = {k: v[:max_samples] for k, v in fitted.items()}
        labels = labels[:max_samples] if labels is not None else None
    fitted.update(zero_states(graph, len(next(iter(fitted.values()))), [p for p in state if p.input not in fitted],
                              whole))
    arrays = {s.name: fitted[s.name] for s in graph.inputs}
    return Dataset(arrays=arrays, labels=labels, synthetic=synthetic, source=origin, fed_whole=whole,
                   state=tuple(state))


def _match_keys(
    found: Mapping[str, Any], graph: Graph, *, what: str, optional: set[str] | frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Map data keys to input names: exact names (the ``optional`` ones may be missing), or any single key
    when one input is required."""
    expected = [s.name for s in graph.inputs]
    required = [n for n in expected if n not in optional]
    if set(found) <= set(expected) and set(required) <= set(found):
        return dict(found)
    if len(required) == 1 and len(found) == 1:
        return {required[0]: next(iter(found.values()))}
    missing = sorted(set(required) - set(found))
    extra = sorted(set(found) - set(expected))
    raise DataError(
        f"{what} has arrays {sorted(found)} but the model's inputs are {expected}"
        + (f"; missing {missing}" if missing else "")
        + (f"; unexpected {extra}" if extra else ""),
        hint="name each array after a model input (run `edgeopt inspect MODEL`); labels go under 'labels'",
    )


def _plain(value: Any, where: str) -> np.ndarray:
    """A numeric/string ndarray; object arrays (which could hold anything) are refused."""
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise DataError(f"{where}: cannot be read as an array ({exc})") from exc
    if arr.dtype.kind in "OV":
        raise DataError(f"{where}: object arrays are not accepted", hint="pass numeric numpy arrays")
    return arr


def _sample_dims(spec: TensorSpec, what: str) -> tuple[Any, ...]:
    if len(spec.shape) == 0:  # fed_whole_inputs always lists scalars; this guards direct callers
        raise DataError(
            f"{what}: input {spec.name!r} is a scalar, so samples cannot be stacked on a batch axis",
            hint="give one value per sample stacked on axis 0",
        )
    return tuple(spec.shape[1:])


def _shape_text(dims: Sequence[Any]) -> str:
    fixed = ["N", *(d if isinstance(d, int) and d > 0 else str(d) for d in dims)]
    return "(" + ", ".join(str(d) for d in fixed) + ("," if len(fixed) == 1 else "") + ")"


def _fits(arr: np.ndarray, dims: Sequence[Any]) -> bool:
    return arr.ndim == len(dims) + 1 and all(
        not (isinstance(d, int) and d > 0) or g == d for d, g in zip(dims, arr.shape[1:], strict=False)
    )


def _fit(arr: np.ndarray, spec: TensorSpec, *, what: str, whole: bool = False) -> np.ndarray:
    """Check per-sample dims (axis 0 is the sample axis) and cast to the input's dtype when lossless.

    ``whole``: the input has no batch axis, each sample is the input's whole shape. Otherwise a sample is the
    shape without its batch dimension; samples that kept a batch dimension of 1 are accepted too."""
    if whole:
        if not _fits(arr, spec.shape):
            example = "numpy.full(n, value)" if not spec.shape else "numpy.stack([value_1, ..., value_n])"
            raise DataError(
                f"{what}: input {spec.name!r} has no batch axis at 0, so each sample is its whole "
                f"{list(spec.shape)} value, stacked on a new axis 0: expected {_shape_text(spec.shape)}, "
                f"got {tuple(arr.shape)}",
                hint=f"give one value per sample, e.g. {example}",
            )
        return _cast(arr, spec, what=what)
    dims = _sample_dims(spec, what)
    lead = spec.shape[0]
    if arr.ndim == len(dims) + 2 and arr.shape[1] == 1 and not (isinstance(lead, int) and lead > 1):
        arr = arr[:, 0]  # samples stacked with their batch axis of 1 kept
    if not _fits(arr, dims):
        suggest = ""  # the importer fixes a dynamic dim to 1 unless told
        if arr.ndim == len(dims) + 1:
            fixed = "x".join(str(d) for d in (lead if isinstance(lead, int) and lead > 0 else 1, *arr.shape[1:]))
            suggest = f"; if the model left a dimension dynamic, fix it to the data's: --input-shape {spec.name}="
            suggest += fixed
        raise DataError(
            f"{what}: input {spec.name!r} expects samples of shape {_shape_text(dims)}, got {tuple(arr.shape)}",
            hint="stack samples on axis 0; each sample has the input's shape without its batch dimension" + suggest,
        )
    return _cast(arr, spec, what=what)


def _np_dtype(spec: TensorSpec) -> np.dtype | None:
    try:
        return np.dtype(spec.dtype)
    except TypeError:
        return None


def _cast(arr: np.ndarray, spec: TensorSpec, *, what: str) -> np.ndarray:
    target = _np_dtype(spec)
    if target is None or arr.dtype == target:
        return arr  # a dtype numpy does not know (e.g. bfloat16) is passed through for the runtime to judge
    src, tk = arr.dtype.kind, target.kind

    def refuse(why: str) -> DataError:
        return DataError(
            f"{what}: input {spec.name!r} expects {target.name}, got {arr.dtype.name} {why}; refusing to convert",
            hint=f"convert the array yourself, e.g. array.astype(numpy.{target.name})",
        )

    if tk in "UO":
        if src in "US":
            return arr
        raise refuse("(not text)")
    if src not in "biuf":
        raise refuse("(unsupported type)")
    if tk == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            out = arr.astype(target)
        if np.any(np.isinf(out) & ~np.isinf(arr)):
            raise refuse(f"(values beyond the range of {target.name})")
        return out
    if tk in "iu":
        if src == "f" and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise refuse("with non-integral values")
        if arr.size and src != "b":
            info = np.iinfo(target)
            if arr.min() < info.min or arr.max() > info.max:
                raise refuse(f"with values outside [{info.min}, {info.max}]")
        return arr.astype(target)
    if tk == "b":
        if np.all((arr == 0) | (arr == 1)):
            return arr.astype(bool)
        raise refuse("with values other than 0 and 1")
    raise refuse("(unsupported input type)")
