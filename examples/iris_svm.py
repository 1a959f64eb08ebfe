"""Deploy a scikit-learn SVM (iris) to the CPU target through the SDK and print its figures.

Run: python -m examples.iris_svm
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import edgeopt


def main(out: Path | None = None) -> edgeopt.Deployment:
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    model = make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)).fit(x_train, y_train)
    print(f"scikit-learn accuracy: {model.score(x_test, y_test) * 100:.2f}%")
    out = out or Path(tempfile.mkdtemp(prefix="edgeopt-iris-")) / "iris-svm.edgeopt"
    deployment = edgeopt.deploy(
        model,
        target="cpu",
        precision="auto",
        calib={"X": x_train},
        eval={"X": x_test, "labels": y_test},
        input_shapes={"": (1, 4)},
        out=out,
        timing_s=0.5,
    )
    m = deployment.metrics
    latency = deployment.profile["latency"]["1"]
    print(f"deployed {deployment.manifest['plan']['label']} to {deployment.path}")
    print(f"{m['metric']}: original {m['reference']:.2f}, deployed {m['candidate']:.2f}, drop {m['drop']:.2f}")
    print(f"latency p50 {latency['p50'] * 1e6:.1f} µs, p90 {latency['p90'] * 1e6:.1f} µs ({latency['method']})")
    with edgeopt.load(deployment.path) as predict:
        outputs = predict({predict.inputs[0].name: x_test[:1]})
    print("first test sample →", {k: np.asarray(v).tolist() for k, v in outputs.items()})
    return deployment


if __name__ == "__main__":
    main()
