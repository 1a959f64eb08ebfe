"""What the device farm costs per job, and how its throughput scales from one worker process to two.

Jobs: N ONNX models of ~10 MB each (a MatMul MLP, different seeds so no build is shared), target cpu, fp32,
``cache=False`` (every job really compiles), 0.2 s of timing each. The same jobs run three ways:

1. locally, in this process, through the farm's own job functions without Ray (``LocalExecutor``);
2. on a local Ray farm with one worker node (1 CPU);
3. on a local Ray farm with two worker nodes (1 CPU each), both offering the same device name.

Per-job overhead = (farm wall time with 1 worker - local wall time) / N: scheduling, moving the 10 MB model
and the artifact through Ray's object store, the worker's unpack/verify, and the client's hash check, atomic
install and registration. Also measured: ``ray.put`` of one 10 MB model, connecting, starting the cluster.

Run: ``python bench/farm_overhead.py [--jobs 4]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeopt.farm.jobs import DeployOptions  # noqa: E402

OPTIONS = DeployOptions(precision="fp32", timing_s=0.2, cache=False)


def model_10mb(path: Path, seed: int) -> Path:
    """x[1,256] -> MatMul 256x1600 -> Relu -> MatMul 1600x1280 -> y[1,1280]: ~9.8 MB of fp32 weights."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array((rng.standard_normal((256, 1600)) * 0.05).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((rng.standard_normal((1600, 1280)) * 0.02).astype(np.float32), "w2")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "big_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1280])], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def run_jobs(executor: object, models: list[Path], out: Path) -> tuple[float, list]:
    from edgeopt.farm.scheduler import run_matrix

    began = time.perf_counter()
    result = run_matrix(models, executor=executor, targets=["cpu"], options=OPTIONS, out_dir=out, timeout_s=600)
    wall = time.perf_counter() - began
    bad = [(c.model, c.status, c.reason) for c in result.cells if not c.done]
    if bad:
        raise SystemExit(f"jobs failed: {bad}")
    return wall, list(result.cells)


def on_farm(workers: int, models: list[Path], out: Path) -> dict:
    import ray

    import edgeopt.farm
    from edgeopt.farm.local_cluster import LocalCluster
    from edgeopt.farm.resources import DeviceSpec, node_resources

    res = node_resources([DeviceSpec("bench")], targets=["cpu"]).resources
    began = time.perf_counter()
    with LocalCluster([res] * workers, cpus_per_worker=1) as cluster:
        t0 = time.perf_counter()
        farm = edgeopt.farm.connect(cluster.address)
        connect_s = time.perf_counter() - t0
        try:
            cluster.wait_nodes(ray, 1 + workers)
            start_s = time.perf_counter() - began
            data = models[0].read_bytes()
            t0 = time.perf_counter()
            ref = ray.put(data)
            put_s = time.perf_counter() - t0
            del ref
            wall, cells = run_jobs(farm.executor, models, out)
        finally:
            farm.close()
    return {"wall": wall, "cells": cells, "connect_s": connect_s, "start_s": start_s, "put_s": put_s,
            "put_mb": len(data) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("EDGEOPT_REGISTRY", "off")
    from edgeopt.farm.executors import LocalExecutor
    from edgeopt.measure.host import cpu_isa, cpu_name

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="farm-bench-") as tmp:
        root = Path(tmp)
        models = [model_10mb(root / f"big_{i}.onnx", seed=i) for i in range(args.jobs)]
        local_wall, _ = run_jobs(LocalExecutor("bench"), models, root / "local")
        one = on_farm(1, models, root / "farm1")
        two = on_farm(2, models, root / "farm2")
    n = args.jobs
    print(f"host: {cpu_name()}, {os.cpu_count()} logical CPUs, ISA {','.join(cpu_isa())}; Python "
          f"{platform.python_version()}; both farm workers share this machine's CPUs with the client and Ray")
    print(f"load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    print(f"jobs: {n} x (build + measure) of a {one['put_mb']:.1f} MB ONNX model, target cpu, fp32, no cache\n")
    print("| run | wall s | s per job | jobs per min |")
    print("|---|---|---|---|")
    for name, wall in (("local (same job functions, no Ray)", local_wall), ("farm, 1 worker (1 CPU)", one["wall"]),
                       ("farm, 2 workers (1 CPU each)", two["wall"])):
        print(f"| {name} | {wall:.1f} | {wall / n:.2f} | {60 * n / wall:.1f} |")
    print(f"\nfarm overhead per job (1 worker vs local): {(one['wall'] - local_wall) / n:+.2f} s")
    print(f"throughput 2 workers / 1 worker: {one['wall'] / two['wall']:.2f}x")
    print(f"ray.put of one {one['put_mb']:.1f} MB model: {one['put_s'] * 1e3:.1f} ms; connect: "
          f"{one['connect_s']:.2f} s; cluster start (head + 1 worker): {one['start_s']:.1f} s")


if __name__ == "__main__":
    main()
