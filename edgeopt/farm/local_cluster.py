"""A farm of processes on this machine, on 127.0.0.1: a head and worker nodes standing for devices.

For tests, benchmarks and trying the farm out. Every node is a ``ray start --block`` in its own process
group, so ``close`` ends exactly the processes this started (SIGTERM, then SIGKILL) and nothing else; the
Ray temp dir is private to the cluster and removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from edgeopt.errors import FarmError
from edgeopt.farm.cluster import node_env, start_command

OBJECT_STORE_BYTES = 100 * 1024 * 1024
"""Per node: enough for a few 10 MB models and their artifacts (Ray's floor is 75 MiB)."""


@dataclass
class LocalCluster:
    """``with LocalCluster([...]) as c:`` then ``edgeopt.farm.connect(c.address)``."""

    workers: Sequence[Mapping[str, float]]
    """Each worker node's Ray resources (``edgeopt.farm.resources.node_resources(...).resources``)."""
    cpus_per_worker: int = 1
    object_store_bytes: int = OBJECT_STORE_BYTES
    start_timeout_s: float = 90.0
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment for every node (e.g. Ray's ``RAY_health_check_period_ms`` to notice a lost node sooner)."""
    address: str = ""
    processes: list[subprocess.Popen] = field(default_factory=list)
    temp_dir: str = ""
    _logs: list[str] = field(default_factory=list)

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self.temp_dir = tempfile.mkdtemp(prefix="eo-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
        port = _free_port()
        self.address = f"127.0.0.1:{port}"
        self._spawn(start_command(head=True, port=port, node_ip="127.0.0.1", num_cpus=0,
                                  object_store_bytes=self.object_store_bytes, temp_dir=self.temp_dir), "head")
        _wait_port(port, self.start_timeout_s, self.processes[0])
        for res in self.workers:
            self.add_worker(res)

    def add_worker(self, resources: Mapping[str, float]) -> subprocess.Popen:
        """Start one worker node and wait until it has started (nodes started together on one temp dir race)."""
        proc = self._spawn_worker(resources)
        log = self._logs[-1]
        deadline = time.monotonic() + self.start_timeout_s
        while b"Ray runtime started" not in _read(log):
            if proc.poll() is not None:
                raise FarmError(f"a farm worker exited with status {proc.returncode} while starting: "
                                f"{_read(log).decode(errors='replace').strip().splitlines()[-1:]}")
            if time.monotonic() > deadline:
                raise FarmError(f"a farm worker did not start within {self.start_timeout_s:g} s")
            time.sleep(0.2)
        return proc

    def _spawn_worker(self, resources: Mapping[str, float]) -> subprocess.Popen:
        return self._spawn(start_command(head=False, address=self.address, node_ip="127.0.0.1",
                                         num_cpus=self.cpus_per_worker, resources=resources,
                                         object_store_bytes=self.object_store_bytes, temp_dir=self.temp_dir),
                           "worker")

    def wait_nodes(self, ray: object, count: int) -> None:
        """Block until ``count`` nodes are alive (the head included)."""
        deadline = time.monotonic() + self.start_timeout_s
        while sum(1 for n in ray.nodes() if n.get("Alive")) < count:  # type: ignore[attr-defined]
            if time.monotonic() > deadline:
                raise FarmError(f"the local farm did not reach {count} nodes in {self.start_timeout_s:g} s")
            time.sleep(0.2)

    def kill_node(self, proc: subprocess.Popen) -> None:
        """SIGKILL one node's whole process group (its raylet and workers): a device machine lost."""
        _signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=30)

    def close(self) -> None:
        for proc in reversed(self.processes):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 3  # then SIGKILL: a test farm holds nothing worth a slow shutdown
        for proc in reversed(self.processes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.processes.clear()
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _spawn(self, cmd: list[str], what: str) -> subprocess.Popen:
        path = os.path.join(self.temp_dir, f"{what}-{len(self.processes)}.log")
        self._logs.append(path)
        log = open(path, "wb")  # noqa: SIM115
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**node_env(), **self.env},
                                    start_new_session=True)
        finally:
            log.close()
        self.processes.append(proc)
        return proc


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # the node's own session: its raylet, GCS, workers; nothing else


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout_s: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FarmError(f"the farm head exited with status {proc.returncode} before it listened on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise FarmError(f"the farm head did not listen on 127.0.0.1:{port} within {timeout_s:g} s")
