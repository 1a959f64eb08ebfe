"""Train the digits CNN in seconds and write everything the example deploys.

Writes, next to this file: ``digits_cnn.safetensors`` (weights for ``model:factory``),
``digits_cnn.onnx`` (the same model exported), ``calib.npz`` (200 training images) and
``eval.npz`` (the held-out test split with ``labels``). Deterministic with a seed. ``--train-npz PATH`` only
writes the training split with labels (``--train`` data for ``edgeopt deploy --prune ...``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from examples.digits.model import DigitsCNN

HERE = Path(__file__).resolve().parent


def load_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


def train(x: np.ndarray, y: np.ndarray, *, epochs: int = 20, seed: int = 0) -> DigitsCNN:
    torch.manual_seed(seed)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=8, gamma=0.3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


def main(out: Path = HERE) -> None:
    from safetensors.torch import save_file

    x_train, x_test, y_train, y_test = load_split()
    model = train(x_train, y_train)
    with torch.no_grad():
        acc = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    out.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(out / "digits_cnn.safetensors"))
    torch.onnx.export(
        model,
        (torch.from_numpy(x_test[:1]),),
        str(out / "digits_cnn.onnx"),
        input_names=["input"],
        output_names=["logits"],
        opset_version=17,
        dynamo=False,
    )
    np.savez(out / "calib.npz", input=x_train[:200])
    np.savez(out / "eval.npz", input=x_test, labels=y_test)
    print(f"trained digits CNN: test accuracy {acc * 100:.2f}% on {len(y_test)} images; wrote {out}")


def write_train_npz(path: Path) -> None:
    """The training split (``input`` + ``labels``), as ``--train`` data for fine-tuning; no training."""
    x_train, _, y_train, _ = load_split()
    np.savez(path, input=x_train, labels=y_train)
    print(f"wrote {path}: {len(y_train)} training images with labels")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--train-npz", type=Path, help="only write the training split to this .npz and stop")
    args = parser.parse_args()
    if args.train_npz is not None:
        write_train_npz(args.train_npz)
    else:
        main(args.out)
