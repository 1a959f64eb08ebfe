"""Deploy a fitted scikit-learn pipeline and print its task metrics before and after deployment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import edgeopt
from edgeopt.evaluate.task_metrics import METRICS, metric_suite


def artifact_outputs(path: Path, x: np.ndarray) -> list[np.ndarray]:
    """Run the artifact at ``path`` over ``x`` one row at a time (the batch it was built for)."""
    with edgeopt.load(path) as predictor:
        name = predictor.inputs[0].name
        rows = [list(predictor({name: x[i : i + 1]}).values()) for i in range(len(x))]
    return [np.concatenate([row[k] for row in rows]) for k in range(len(rows[0]))]


def _fmt(name: str, value: float) -> str:
    unit = METRICS[name].unit
    return f"{value:.2f}%" if unit == "points" else f"{value:.4g}"


def deploy_pipeline(
    model: Any, data: tuple[np.ndarray, ...], *, kind: str, out: Path, title: str, precision: str = "auto"
) -> dict[str, Any]:
    """Deploy ``model`` to the CPU target with ``data`` = (x_train, x_test, y_train, y_test) and print every
    ``kind`` metric of scikit-learn's own predictions (before) and of the deployed artifact (after)."""
    x_train, x_test, _, y_test = data
    before = metric_suite(model.predict(x_test), y_test, kind=kind)
    deployment = edgeopt.deploy(
        model,
        target="cpu",
        precision=precision,
        calib={"input": x_train},
        eval={"input": x_test, "labels": y_test},
        out=out,
        timing_s=0.3,
    )
    after = metric_suite(artifact_outputs(deployment.path, x_test), y_test, kind=kind)
    print(f"{title}: deployed {deployment.manifest['plan']['label']} → {deployment.path}")
    for name in before:
        print(f"  {name:>15}: scikit-learn {_fmt(name, before[name])} → deployed {_fmt(name, after[name])}")
    m = deployment.metrics
    print(f"  guarded metric {m['metric']}: original {m['reference']:.4g}, deployed {m['candidate']:.4g}")
    latency = deployment.profile["latency"]["1"]
    print(f"  latency p50 {latency['p50'] * 1e6:.1f} µs, size {deployment.profile['size_bytes']} bytes")
    return {"deployment": deployment, "before": before, "after": after}
