"""Calibration and evaluation data from a folder of images, decoded as its ``preprocess.json``/``.yaml`` says.

Images at the top level (no labels) or in class subfolders (labels by sorted folder name or the spec's
``classes``); resized (optionally shorter side then center crop), scaled, normalized by mean/std and laid out
NCHW or NHWC for a model with one 4-D image input. Used by ``edgeopt.data.datasets.load_dataset``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.errors import DataError
from edgeopt.graph.layouts import read_layouts
from edgeopt.types import Graph

NPZ_HINT = "save with numpy.savez(path, **{input_name: samples, 'labels': labels}); samples on axis 0"

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
PREPROCESS_FILES = ("preprocess.json", "preprocess.yaml", "preprocess.yml")
_PREPROCESS_KEYS = frozenset({"size", "mean", "std", "layout", "scale", "resize", "classes"})
_PREPROCESS_HINT = (
    'add preprocess.json, e.g. {"size": [224, 224], "mean": [0.485, 0.456, 0.406], '
    '"std": [0.229, 0.224, 0.225], "layout": "NCHW", "scale": "1/255"}'
)


def load_image_dir(
    root: Path, graph: Graph, *, what: str, max_samples: int | None
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Decode a folder of images (optionally in class subfolders) as its ``preprocess`` spec says."""
    spec = _read_preprocess(root, what=what)
    if len(graph.inputs) != 1 or len(graph.inputs[0].shape) != 4:
        raise DataError(
            f"{what}: an image folder fits a model with one 4-D image input, this one has "
            f"{[(s.name, s.shape) for s in graph.inputs]}",
            hint=NPZ_HINT,
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
