"""Train the digits CNN in seconds and deploy the live ``nn.Module`` to CPU int8 through the SDK.

Prints accuracy before and after, latency and size. Run: python -m examples.digits.deploy_sdk
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import edgeopt
from examples.digits.train import load_split, train


def main(out: Path | None = None) -> edgeopt.Deployment:
    x_train, x_test, y_train, y_test = load_split()
    model = train(x_train, y_train)
    out = out or Path(tempfile.mkdtemp(prefix="edgeopt-digits-")) / "digits-cpu.edgeopt"
    deployment = edgeopt.deploy(
        model,
        target="cpu",
        precision="int8",
        input_shapes=(1, 1, 8, 8),
        calib=[{"input": x} for x in x_train[:200, None]],  # any iterable of feed dicts
        eval={"input": x_test, "labels": y_test},
        max_drop=1.0,
        batch=(1, 8),
        out=out,
        timing_s=0.5,
    )
    m, profile = deployment.metrics, deployment.profile
    print(f"accuracy: torch/ONNX fp32 {m['reference']:.2f}% → deployed {m['candidate']:.2f}% (drop {m['drop']:.2f})")
    for batch, stats in sorted(profile["latency"].items(), key=lambda kv: int(kv[0])):
        if "error" in stats:
            print(f"batch {batch}: not supported ({stats['error']})")
            continue
        print(f"batch {batch}: p50 {stats['p50'] * 1e6:.1f} µs, p90 {stats['p90'] * 1e6:.1f} µs ({stats['method']})")
    print(
        f"size {profile['size_bytes'] / 1024:.1f} KiB; energy {profile['energy']['joules_per_inference'] * 1e3:.3f} "
        f"mJ/inference ({profile['energy']['method']})"
    )
    print(f"artifact: {deployment.path} ({deployment.manifest['plan']['label']})")
    return deployment


if __name__ == "__main__":
    main()
