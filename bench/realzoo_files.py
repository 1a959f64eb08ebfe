"""Files of known formats for the file-type classifier (Magika) of the real-model corpus, and its features.

Each file is written by the library that owns the format (Pillow for images and PDF, zipfile/gzip/bz2/lzma/
tarfile for archives, sqlite3, wave, numpy, onnx, json/csv/configparser/yaml/ElementTree for text formats),
or is a real file of the running Python installation (its ``.py`` sources, compiled bytecode, ELF extension
modules). Its label is the format it was written in, so labels are known by construction. Features are
Magika's ``_extract_features_from_seekable`` (v2): the first and last 1024 bytes of the stripped
4096-byte head and tail, padded with token 256.
"""

from __future__ import annotations

import bz2
import configparser
import csv
import gzip
import importlib.machinery
import importlib.util
import io
import json
import lzma
import sqlite3
import sys
import sysconfig
import tarfile
import tempfile
import wave
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from PIL import Image


def _text(rng: np.random.Generator, sentences: tuple[str, ...], k: int) -> str:
    return " ".join(sentences[int(i)] for i in rng.integers(len(sentences), size=k))


def _records(rng: np.random.Generator, sentences: tuple[str, ...]) -> list[dict]:
    words = [w.strip(".,") for w in _text(rng, sentences, 6).split()]
    return [{"id": int(rng.integers(1, 10**6)), "name": words[int(rng.integers(len(words)))],
             "score": round(float(rng.normal(50, 20)), 3), "tags": words[: int(rng.integers(0, 4))],
             "active": bool(rng.random() < 0.5)} for _ in range(int(rng.integers(3, 40)))]  # fmt: skip


def _image(rng: np.random.Generator, photos: list[Image.Image]) -> Image.Image:
    photo = photos[int(rng.integers(len(photos)))]
    w = int(rng.integers(32, min(400, photo.width)))
    return photo.resize((w, max(8, w * photo.height // photo.width)))


def _pil(fmt: str, **kw: object) -> Callable:
    def make(rng: np.random.Generator, sentences: tuple[str, ...], photos: list[Image.Image]) -> bytes:
        buf = io.BytesIO()
        img = _image(rng, photos)
        if fmt == "GIF":
            img = img.convert("P")
        if fmt == "ICO":
            img = img.resize((64, 64))
        img.save(buf, format=fmt, **kw)
        return buf.getvalue()

    return make


def _stdlib_files(pattern: str) -> list[Path]:
    roots = [Path(sysconfig.get_paths()["stdlib"])]
    return sorted(p for root in roots for p in root.glob(pattern) if p.is_file() and p.stat().st_size > 64)


def _python(rng: np.random.Generator, sentences: tuple[str, ...], photos: list[Image.Image]) -> bytes:
    files = _stdlib_files("*.py")
    return files[int(rng.integers(len(files)))].read_bytes()


def _pyc(rng: np.random.Generator, sentences: tuple[str, ...], photos: list[Image.Image]) -> bytes:
    import marshal

    src = _python(rng, sentences, photos)
    code = compile(src, "<realzoo>", "exec")
    return importlib.util.MAGIC_NUMBER + b"\0" * 12 + marshal.dumps(code)


def _elf(rng: np.random.Generator, sentences: tuple[str, ...], photos: list[Image.Image]) -> bytes:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    files = sorted((Path(sysconfig.get_paths()["platstdlib"]) / "lib-dynload").glob(f"*{suffix}"))
    return files[int(rng.integers(len(files)))].read_bytes() if files else Path(sys.executable).read_bytes()


def _json(rng, sentences, photos) -> bytes:  # noqa: ANN001
    return json.dumps(_records(rng, sentences), indent=[None, 2, 4][int(rng.integers(3))]).encode()


def _csv(rng, sentences, photos) -> bytes:  # noqa: ANN001
    buf = io.StringIO()
    rows = _records(rng, sentences)
    writer = csv.DictWriter(buf, fieldnames=["id", "name", "score", "active"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def _html(rng, sentences, photos) -> bytes:  # noqa: ANN001
    paras = "\n".join(f"  <p>{_text(rng, sentences, 3)}</p>" for _ in range(int(rng.integers(2, 8))))
    title = _text(rng, sentences, 1)[:40]
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  <title>{title}</title>\n"
            f"</head>\n<body>\n  <h1>{title}</h1>\n{paras}\n</body>\n</html>\n").encode()  # fmt: skip


def _xml(rng, sentences, photos) -> bytes:  # noqa: ANN001
    root = ElementTree.Element("catalog")
    for rec in _records(rng, sentences):
        item = ElementTree.SubElement(root, "item", id=str(rec["id"]))
        ElementTree.SubElement(item, "name").text = rec["name"]
        ElementTree.SubElement(item, "score").text = str(rec["score"])
    ElementTree.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root)


def _ini(rng, sentences, photos) -> bytes:  # noqa: ANN001
    cfg = configparser.ConfigParser()
    for rec in _records(rng, sentences)[:6]:
        cfg[f"section_{rec['name']}_{rec['id']}"] = {"score": str(rec["score"]), "active": str(rec["active"])}
    buf = io.StringIO()
    cfg.write(buf)
    return buf.getvalue().encode()


def _yaml(rng, sentences, photos) -> bytes:  # noqa: ANN001
    import yaml

    return yaml.safe_dump({"version": int(rng.integers(1, 4)), "items": _records(rng, sentences)}).encode()


def _txt(rng, sentences, photos) -> bytes:  # noqa: ANN001
    return "\n\n".join(_text(rng, sentences, 4) for _ in range(int(rng.integers(1, 12)))).encode()


def _zip(rng, sentences, photos) -> bytes:  # noqa: ANN001
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(int(rng.integers(1, 5))):
            zf.writestr(f"doc{i}.txt", _txt(rng, sentences, photos))
    return buf.getvalue()


def _tar(rng, sentences, photos) -> bytes:  # noqa: ANN001
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for i in range(int(rng.integers(1, 4))):
            data = _txt(rng, sentences, photos)
            info = tarfile.TarInfo(f"notes/doc{i}.txt")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _sqlite(rng, sentences, photos) -> bytes:  # noqa: ANN001
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "db.sqlite"
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
        con.executemany("INSERT INTO items VALUES (?, ?, ?)",
                        [(r["id"], r["name"], r["score"]) for r in _records(rng, sentences)])  # fmt: skip
        con.commit()
        con.close()
        return path.read_bytes()


def _wav(rng, sentences, photos) -> bytes:  # noqa: ANN001
    t = np.arange(int(rng.integers(4000, 32000))) / 16000
    tone = (np.sin(2 * np.pi * rng.uniform(100, 2000) * t) * 12000).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(tone.tobytes())
    return buf.getvalue()


def _npy(rng, sentences, photos) -> bytes:  # noqa: ANN001
    buf = io.BytesIO()
    np.save(buf, rng.normal(size=tuple(int(d) for d in rng.integers(2, 40, size=2))).astype(np.float32))
    return buf.getvalue()


def _onnx(rng, sentences, photos) -> bytes:  # noqa: ANN001
    from onnx import TensorProto, helper, numpy_helper

    k = int(rng.integers(4, 64))
    w = numpy_helper.from_array(rng.normal(size=(k, k)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, k])], [w])  # fmt: skip
    return helper.make_model(graph).SerializeToString()


def _compressed(module, label: str) -> Callable:  # noqa: ANN001
    return lambda rng, sentences, photos: module.compress(_txt(rng, sentences, photos))


# Magika label -> writer. Each writes a complete, valid file of that format.
WRITERS: Mapping[str, Callable] = {
    "python": _python, "pythonbytecode": _pyc, "elf": _elf, "json": _json, "csv": _csv, "html": _html,
    "xml": _xml, "ini": _ini, "yaml": _yaml, "txt": _txt, "zip": _zip, "tar": _tar, "sqlite": _sqlite,
    "wav": _wav, "npy": _npy, "onnx": _onnx, "gzip": _compressed(gzip, "gzip"), "bzip": _compressed(bz2, "bzip"),
    "xz": _compressed(lzma, "xz"), "png": _pil("PNG"), "jpeg": _pil("JPEG", quality=85), "gif": _pil("GIF"),
    "bmp": _pil("BMP"), "tiff": _pil("TIFF"), "webp": _pil("WEBP"), "ico": _pil("ICO"), "pdf": _pil("PDF"),
}  # fmt: skip


def features(content: bytes, *, beg: int = 1024, end: int = 1024, block: int = 4096, pad: int = 256) -> np.ndarray:
    """Magika's v2 features of one file: ``beg`` ints from the left-stripped head block, then ``end`` ints from
    the right-stripped tail block (a file no longer than ``block`` is stripped on both sides), padded with
    ``pad`` (after the head, before the tail)."""
    size = min(block, len(content))
    head = content[:size].lstrip()[:beg]
    tail = content[len(content) - size :].rstrip()
    tail = tail[len(tail) - end :] if len(tail) > end else tail
    ints = list(head) + [pad] * (beg - len(head)) + [pad] * (end - len(tail)) + list(tail)
    return np.asarray(ints, np.int32)


def magika_data(rng: np.random.Generator, n: int, files: Mapping[str, Path],
                *, sentences: tuple[str, ...], photos: list[Image.Image]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``n`` files cycling through :data:`WRITERS` in a shuffled order, as Magika's ``bytes`` input [2048]
    (int32); labels are indices into the model config's ``target_labels_space``."""
    space = json.loads(Path(files["config"]).read_text())["target_labels_space"]
    kinds = [k for k in sorted(WRITERS) if k in space]
    order = rng.permutation(np.arange(n) % len(kinds))
    rows, labels = [], []
    for i in order:
        rows.append(features(WRITERS[kinds[i]](rng, sentences, photos)))
        labels.append(space.index(kinds[i]))
    return {"bytes": np.stack(rows)}, np.asarray(labels, np.int64)
