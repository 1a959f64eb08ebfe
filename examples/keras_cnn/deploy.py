"""Train a Keras CNN, save it as ``.keras``, deploy the file to CPU int8 (and to the Edge TPU when that target
is available), and print how closely each deployed model agrees with Keras' own predictions.

Run: python -m examples.keras_cnn.deploy [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import edgeopt
from edgeopt.errors import EdgeoptError
from edgeopt.evaluate.fidelity import fidelity
from examples.keras_cnn.model import load_split, save, train

EDGE_TPU_TARGETS = ("edgetpu", "tflite")


def agreement(keras_probs: np.ndarray, deployed_probs: np.ndarray) -> dict[str, float]:
    """Fidelity of the deployed model to Keras: top-1 agreement (%), cosine, SQNR (dB), max |error|."""
    return fidelity([keras_probs], [deployed_probs])


def predict_artifact(path: Path, x: np.ndarray) -> np.ndarray:
    """Run the artifact at ``path`` one sample at a time (the batch it was built for); stack the outputs."""
    with edgeopt.load(path) as predictor:
        name = predictor.inputs[0].name
        return np.concatenate([next(iter(predictor({name: x[i : i + 1]}).values())) for i in range(len(x))])


def deploy_and_compare(
    model_file: Path, out: Path, keras_probs: np.ndarray, data: tuple[np.ndarray, ...], *, target: str
) -> dict[str, Any]:
    x_train, x_test, _, y_test = data
    deployment = edgeopt.deploy(
        str(model_file),
        target=target,
        precision="int8",
        calib={"image": x_train[:200]},
        eval={"image": x_test, "labels": y_test},
        max_drop=2.0,
        force_precision=True,  # ship int8 even where this tiny model runs as fast in fp32
        out=out,
        timing_s=0.5,
    )
    m = deployment.metrics
    fid = agreement(keras_probs, predict_artifact(deployment.path, x_test))
    layout = deployment.manifest["graph"]["inputs"][0].get("layout", "?")
    latency = deployment.profile["latency"]["1"]
    print(f"[{target}] deployed {deployment.manifest['plan']['label']} → {deployment.path} (input layout {layout})")
    print(f"[{target}] accuracy: original {m['reference']:.2f}%, deployed {m['candidate']:.2f}% (drop {m['drop']:.2f})")
    print(
        f"[{target}] fidelity to Keras' predictions: top-1 agreement {fid.get('top1_agreement', float('nan')):.2f}%, "
        f"cosine {fid['cosine']:.5f}, SQNR {fid['sqnr_db']:.1f} dB, max |error| {fid['max_abs_error']:.4f}"
    )
    print(f"[{target}] latency p50 {latency['p50'] * 1e6:.1f} µs ({latency['method']})")
    return {"deployment": deployment, "fidelity": fid}


def edge_tpu_target() -> tuple[str | None, str]:
    """The first available Edge TPU/TFLite target, or None with the reason it cannot run here."""
    known = {t.name: t for t in edgeopt.targets()}
    for name in EDGE_TPU_TARGETS:
        info = known.get(name)
        if info is not None and info.available:
            return name, ""
    reasons = [f"{n}: {known[n].reason}" for n in EDGE_TPU_TARGETS if n in known]
    return None, "; ".join(reasons) or "no edgetpu/tflite target installed (pip install plugins/edgeopt-edgetpu)"


def main(out: Path | None = None, *, epochs: int = 6) -> dict[str, Any]:
    out = out or Path(tempfile.mkdtemp(prefix="edgeopt-keras-"))
    data = load_split()
    x_train, x_test, y_train, y_test = data
    began = time.perf_counter()
    model = train(x_train, y_train, epochs=epochs)
    keras_probs = np.asarray(model.predict(x_test, verbose=0))
    print(
        f"trained the Keras CNN in {time.perf_counter() - began:.1f} s; Keras accuracy "
        f"{np.mean(keras_probs.argmax(1) == y_test) * 100:.2f}%"
    )
    model_file = save(model, out / "digits_cnn.keras")
    results = {"cpu": deploy_and_compare(model_file, out / "digits-cpu-int8.edgeopt", keras_probs, data, target="cpu")}
    name, reason = edge_tpu_target()
    if name is None:
        print(f"[edgetpu] skipped: {reason}")
        results["edgetpu"] = {"skipped": reason}
    else:
        try:
            path = out / f"digits-{name}.edgeopt"
            results[name] = deploy_and_compare(model_file, path, keras_probs, data, target=name)
        except EdgeoptError as exc:  # report the step that failed; the CPU deployment above still stands
            print(f"[{name}] failed: {exc} ({exc.hint})")
            results[name] = {"error": f"{exc}"}
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the .keras file and the artifacts")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    main(args.out, epochs=args.epochs)
