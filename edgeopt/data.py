"""Calibration and evaluation data: read from the user's sources, checked against the graph's inputs.

Sources: an ``.npz`` (keys = input names, samples stacked on axis 0, optional ``labels``), a ``.npy`` for a
single-input model, a folder of images with a ``preprocess.json``/``.yaml``, a mapping of arrays, an
iterable of feed dicts, or a ``Dataset``. Pickled data is never loaded.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.errors import DataError
from edgeopt.layouts import read_layouts
from edgeopt.types import Dataset, Graph, TensorSpec

DataSource = str | os.PathLike | Mapping[str, np.ndarray] | Iterable[Any] | Dataset | None
DEFAULT_SYNTHETIC_SAMPLES = 32
MAX_DATA_BYTES = 16 * 1024**3
"""Refuse an .npz whose arrays would take more memory than this once decompressed."""
LABELS_KEY = "labels"
_NPZ_HINT = "save with numpy.savez(path, **{input_name: samples, 'labels': labels}); samples on axis 0"


def load_dataset(source: DataSource, graph: Graph, *, purpose: str, max_samples: int | None = None) -> Dataset:
    """Read ``source`` into a Dataset that fits ``graph``'s inputs (names, per-sample dims, dtypes).

    ``purpose`` (``calibration`` or ``evaluation``) appears in messages. ``None`` gives synthetic data.
    Arrays are cast to the input dtypes where no value changes (ints to floats; floats to ints only when
    integral). At most ``max_samples`` samples are kept (the first ones). Raises ``DataError``.
    """
    what = f"{purpose} data"
    if max_samples is not None and max_samples < 1:
        raise DataError(f"max_samples must be at least 1, got {max_samples}")
    if source is None:
        return synthetic_dataset(graph, samples=max_samples or DEFAULT_SYNTHETIC_SAMPLES)  # checks the axis itself
    check_shared_batch_axis(graph, what=what)
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
        arrays, labels = _from_feeds(source, graph, what=what, max_samples=max_samples)
        origin = "iterable"
    else:
        raise DataError(
            f"{what} of type {type(source).__name__} is not supported",
            hint="give an .npz path, an image folder, a dict of arrays or an iterable of feed dicts",
        )
    return _validate(arrays, labels, graph, what=what, origin=origin, synthetic=synthetic, max_samples=max_samples)


def synthetic_dataset(graph: Graph, *, samples: int = DEFAULT_SYNTHETIC_SAMPLES, seed: int = 0) -> Dataset:
    """Random inputs shaped ``(samples, *dims[1:])`` per graph input (dynamic dims become 1).

    Floats ~ N(0, 1) clipped to [-3, 3], integers in [0, 10) (below the table size where the input indexes
    a constant table: ``edgeopt.index_inputs``), booleans fair coin flips. ``synthetic=True``.
    """
    from edgeopt.index_inputs import index_limits

    if samples < 1:
        raise DataError(f"synthetic data needs at least 1 sample, got {samples}")
    check_shared_batch_axis(graph, what="synthetic data")
    rng = np.random.default_rng(seed)
    limits = index_limits(graph.path) if graph.path is not None and Path(graph.path).exists() else {}
    arrays: dict[str, np.ndarray] = {}
    for spec in graph.inputs:
        shape = (samples, *(d if isinstance(d, int) and d > 0 else 1 for d in _sample_dims(spec, "synthetic data")))
        dtype = _np_dtype(spec)
        if dtype is not None and dtype.kind == "f":
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
    return Dataset(arrays=arrays, labels=None, synthetic=True, source="synthetic")


# -------------------------------------------------------------------------------------------- sources


def _load_path(
    path: Path, graph: Graph, *, what: str, max_samples: int | None
) -> tuple[dict[str, Any], np.ndarray | None]:
    if not path.exists():
        raise DataError(f"{what} not found: {path}", hint="check the path given for the data")
    if path.is_dir():
        return _load_image_dir(path, graph, what=what, max_samples=max_samples)
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".npy"):
        raise DataError(f"{what} {path} is not an .npz/.npy file or an image folder", hint=_NPZ_HINT)
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
        raise DataError(f"{what} {path} is not a readable numpy file: {exc}", hint=_NPZ_HINT) from exc
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{what} {path} is not a readable numpy file: {exc}", hint=_NPZ_HINT) from exc
    labels = found.pop(LABELS_KEY, None)
    return found, labels


def _check_npz_size(path: Path, *, what: str) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            total = sum(info.file_size for info in zf.infolist())
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{what} {path} is not a readable .npz (zip) file: {exc}", hint=_NPZ_HINT) from exc
    if total > MAX_DATA_BYTES:
        raise DataError(
            f"{what} {path} expands to {total / 1024**3:.1f} GiB, over the {MAX_DATA_BYTES / 1024**3:.0f} GiB limit",
            hint="use fewer samples (a few hundred are enough for calibration and a quick evaluation)",
        )


def _from_feeds(
    source: Iterable[Any], graph: Graph, *, what: str, max_samples: int | None
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Stack an iterable of feeds: dicts (may hold ``labels``), arrays (single input) or ``(feed, labels)``."""
    parts: dict[str, list[np.ndarray]] = {s.name: [] for s in graph.inputs}
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
        matched = _match_keys(feed, graph, what=f"item {i} of the {what}")
        sizes = set()
        for spec in graph.inputs:
            arr = _plain(matched[spec.name], f"{what}: item {i}, input {spec.name!r}")
            if arr.ndim == len(spec.shape) - 1:  # one sample without its batch axis
                arr = arr[None]
            parts[spec.name].append(_fit(arr, spec, what=f"{what} (item {i})"))
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
        arrays = {k: np.concatenate(v, axis=0) for k, v in parts.items()}
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
) -> Dataset:
    matched = _match_keys(arrays, graph, what=what)
    fitted = {s.name: _fit(_plain(matched[s.name], f"{what}: input {s.name!r}"), s, what=what) for s in graph.inputs}
    counts = {name: len(a) for name, a in fitted.items()}
    if len(set(counts.values())) > 1:
        raise DataError(
            f"{what} inputs hold different numbers of samples: {counts}",
            hint="every input array (and 'labels') must have one entry per sample on axis 0",
        )
    n = next(iter(counts.values()), 0)
    if n == 0:
        raise DataError(f"{what} holds no samples", hint=_NPZ_HINT)
    if labels is not None:
        labels = _plain(labels, f"{what}: labels")
        if labels.ndim == 0 or len(labels) != n:
            got = len(labels) if labels.ndim else "a scalar"
            raise DataError(f"{what} has {got} labels for {n} samples", hint="give one label per sample")
    if max_samples is not None and n > max_samples:
        fitted = {k: v[:max_samples] for k, v in fitted.items()}
        labels = labels[:max_samples] if labels is not None else None
    return Dataset(arrays=fitted, labels=labels, synthetic=synthetic, source=origin)


def _match_keys(found: Mapping[str, Any], graph: Graph, *, what: str) -> dict[str, Any]:
    """Map data keys to input names: exact names, or any single key for a single-input model."""
    expected = [s.name for s in graph.inputs]
    if set(found) == set(expected):
        return dict(found)
    if len(expected) == 1 and len(found) == 1:
        return {expected[0]: next(iter(found.values()))}
    missing = sorted(set(expected) - set(found))
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


def check_shared_batch_axis(graph: Graph, *, what: str) -> None:
    """``DataError`` when the graph's inputs do not share a leading (batch) dimension: samples are stacked on
    axis 0 of every input, so an input without a batch axis (a weight-like operand, a recurrent state laid out
    ``[layers, batch, hidden]``) cannot be fed. Dynamic leading dimensions are taken as shared."""
    static = [(spec.name, spec.shape[0]) for spec in graph.inputs
              if spec.shape and isinstance(spec.shape[0], int) and spec.shape[0] > 0]  # fmt: skip
    if not static:
        return
    first, batch = static[0]
    for name, lead in static[1:]:
        if lead != batch:
            raise DataError(
                f"{what}: input {name!r} leads with {lead} while input {first!r} leads with {batch}: edgeopt stacks "
                "samples on axis 0 of every input, so a model whose inputs do not share a batch axis is not supported",
                hint="export the model with a batch axis first on every input, or with that input as a constant",
            )


def _sample_dims(spec: TensorSpec, what: str) -> tuple[Any, ...]:
    if len(spec.shape) == 0:
        raise DataError(
            f"{what}: input {spec.name!r} is a scalar, so samples cannot be stacked on a batch axis",
            hint="export the model with a leading batch dimension",
        )
    return tuple(spec.shape[1:])


def _fit(arr: np.ndarray, spec: TensorSpec, *, what: str) -> np.ndarray:
    """Check per-sample dims (axis 0 is the sample axis) and cast to the input's dtype when lossless."""
    dims = _sample_dims(spec, what)
    fixed = ["N", *(d if isinstance(d, int) and d > 0 else str(d) for d in dims)]
    shape_text = "(" + ", ".join(str(d) for d in fixed) + ("," if len(fixed) == 1 else "") + ")"
    if arr.ndim != len(dims) + 1 or any(
        isinstance(d, int) and d > 0 and g != d for d, g in zip(dims, arr.shape[1:], strict=False)
    ):
        raise DataError(
            f"{what}: input {spec.name!r} expects samples of shape {shape_text}, got {tuple(arr.shape)}",
            hint="stack samples on axis 0; each sample has the input's shape without its batch dimension",
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


# --------------------------------------------------------------------------------------------- images

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
PREPROCESS_FILES = ("preprocess.json", "preprocess.yaml", "preprocess.yml")
_PREPROCESS_KEYS = frozenset({"size", "mean", "std", "layout", "scale", "resize", "classes"})
_PREPROCESS_HINT = (
    'add preprocess.json, e.g. {"size": [224, 224], "mean": [0.485, 0.456, 0.406], '
    '"std": [0.229, 0.224, 0.225], "layout": "NCHW", "scale": "1/255"}'
)


def _load_image_dir(
    root: Path, graph: Graph, *, what: str, max_samples: int | None
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Decode a folder of images (optionally in class subfolders) as its ``preprocess`` spec says."""
    spec = _read_preprocess(root, what=what)
    if len(graph.inputs) != 1 or len(graph.inputs[0].shape) != 4:
        raise DataError(
            f"{what}: an image folder fits a model with one 4-D image input, this one has "
            f"{[(s.name, s.shape) for s in graph.inputs]}",
            hint=_NPZ_HINT,
        )
    inp = graph.inputs[0]
    declared = read_layouts(graph.path).get(inp.name)  # e.g. NHWC from a Keras model
    guessed = "NHWC" if inp.shape[3] in (1, 3) and inp.shape[1] not in (1, 3) else "NCHW"
    layout = str(spec.get("layout") or declared or guessed)
    if layout.upper() not in ("NCHW", "NHWC"):
        raise DataError(f"{what}: preprocess layout must be NCHW or NHWC, got {layout!r}", hint=_PREPROCESS_HINT)
    nchw = layout.upper() == "NCHW"
    channels = inp.shape[1] if nchw else inp.shape[3]
    channels = channels if isinstance(channels, int) and channels > 0 else 3
    if channels not in (1, 3):
        raise DataError(f"{what}: the model's image input has {channels} channels; images give 1 or 3")
    size = spec.get("size") or (inp.shape[2:4] if nchw else inp.shape[1:3])
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(d, int) and d > 0 for d in size)):
        raise DataError(f"{what}: preprocess 'size' must be [height, width], got {size!r}", hint=_PREPROCESS_HINT)
    scale = _number(spec.get("scale", 1 / 255), "scale", what)
    mean = _per_channel(spec.get("mean", 0.0), channels, "mean", what)
    std = _per_channel(spec.get("std", 1.0), channels, "std", what)
    if np.any(std == 0):
        raise DataError(f"{what}: preprocess 'std' must not contain 0", hint=_PREPROCESS_HINT)
    resize = spec.get("resize")
    if resize is not None and not (isinstance(resize, int) and resize > 0):
        raise DataError(f"{what}: preprocess 'resize' (shorter side) must be a positive integer", hint=_PREPROCESS_HINT)
    files, labels = _image_files(root, spec.get("classes"), what=what)
    if max_samples is not None:
        files = files[:max_samples]
        labels = labels[:max_samples] if labels is not None else None
    try:
        from PIL import Image
    except ImportError as exc:
        raise DataError(f"{what}: reading an image folder needs Pillow", hint="pip install pillow") from exc
    samples = []
    for f in files:
        try:
            with Image.open(f) as im:
                img = _resize(im.convert("L" if channels == 1 else "RGB"), (size[0], size[1]), resize, Image)
                arr = np.asarray(img, dtype=np.float32)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"{what}: cannot read image {f}: {exc}", hint="remove or fix the file") from exc
        arr = (arr.reshape(size[0], size[1], channels) * scale - mean) / std
        samples.append(arr.transpose(2, 0, 1) if nchw else arr)
    return {inp.name: np.stack(samples).astype(np.float32)}, labels


def _read_preprocess(root: Path, *, what: str) -> dict[str, Any]:
    for name in PREPROCESS_FILES:
        path = root / name
        if path.is_file():
            break
    else:
        raise DataError(f"{what}: {root} is a folder without preprocess.json/.yaml", hint=_PREPROCESS_HINT)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            spec = json.loads(text)
        else:
            import yaml

            spec = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - json/yaml/OS errors all mean the same to the user
        raise DataError(f"{what}: cannot read {path}: {exc}", hint=_PREPROCESS_HINT) from exc
    if not isinstance(spec, dict):
        raise DataError(f"{what}: {path} must hold a mapping of settings", hint=_PREPROCESS_HINT)
    unknown = sorted(set(spec) - _PREPROCESS_KEYS)
    if unknown:
        raise DataError(
            f"{what}: {path} has unknown settings {unknown}; known: {sorted(_PREPROCESS_KEYS)}", hint=_PREPROCESS_HINT
        )
    return spec


def _number(value: Any, key: str, what: str) -> float:
    """A float, also written as a fraction string such as ``"1/255"``."""
    try:
        if isinstance(value, str) and "/" in value:
            num, den = value.split("/", 1)
            return float(num) / float(den)
        return float(value)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise DataError(f"{what}: preprocess {key!r} must be a number, got {value!r}", hint=_PREPROCESS_HINT) from exc


def _per_channel(value: Any, channels: int, key: str, what: str) -> np.ndarray:
    values = value if isinstance(value, (list, tuple)) else [value]
    if len(values) not in (1, channels):
        raise DataError(f"{what}: preprocess {key!r} needs 1 or {channels} values, got {len(values)}")
    return np.broadcast_to(np.array([_number(v, key, what) for v in values], np.float32), (channels,))


def _resize(img: Any, size: tuple[int, int], shorter: int | None, image_module: Any) -> Any:
    """Resize to ``size`` (h, w); with ``shorter``, first scale the shorter side to it, then center-crop."""
    h, w = size
    if shorter is None:
        return img.resize((w, h), image_module.BILINEAR)
    iw, ih = img.size
    k = shorter / min(iw, ih)
    img = img.resize((max(w, round(iw * k)), max(h, round(ih * k))), image_module.BILINEAR)
    iw, ih = img.size
    left, top = (iw - w) // 2, (ih - h) // 2
    return img.crop((left, top, left + w, top + h))


def _image_files(root: Path, classes: Any, *, what: str) -> tuple[list[Path], np.ndarray | None]:
    """Images at the top level (no labels) or in class subfolders (labels by sorted folder name or
    ``classes``), interleaved across classes so that a sample limit keeps every class."""

    def images(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

    top = images(root)
    sub = {d.name: images(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    sub = {k: v for k, v in sub.items() if v}
    if top and sub:
        raise DataError(f"{what}: {root} mixes images at the top level with class subfolders {sorted(sub)}")
    if not top and not sub:
        raise DataError(f"{what}: no images in {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    if top:
        return top, None
    names = list(classes) if classes is not None else sorted(sub)
    unknown = sorted(set(sub) - set(names))
    if unknown:
        raise DataError(f"{what}: class folders {unknown} are not in preprocess 'classes' {names}")
    files: list[Path] = []
    labels: list[int] = []
    queues = [(names.index(c), sub[c]) for c in sorted(sub, key=names.index)]
    for i in range(max(len(q) for _, q in queues)):
        for label, q in queues:
            if i < len(q):
                files.append(q[i])
                labels.append(label)
    return files, np.array(labels, dtype=np.int64)
