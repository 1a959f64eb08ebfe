"""Starting farm nodes and connecting to a farm: thin wrappers over ``ray start`` and ``ray.init``.

``start_command`` builds the ``ray start`` command line for a head (``edgeopt farm head``) or a worker
(``edgeopt farm join``): the node's resources (``edgeopt.farm.resources``), usage stats off, the dashboard off
and bound to 127.0.0.1 when Ray starts it anyway, ``--block`` so the node lives exactly as long as the
command. ``connect`` attaches this process to a running farm; ``status`` reads its nodes and devices.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeopt.errors import FarmError
from edgeopt.extras import import_optional
from edgeopt.farm.resources import FarmDevice, farm_devices

NAMESPACE = "edgeopt-farm"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def ray_module(feature: str = "--farm") -> Any:
    """``ray``, or ``MissingExtraError`` naming ``edgeopt[farm]``."""
    return import_optional("ray", extra="farm", feature=feature)


def start_command(
    *, head: bool, address: str | None = None, port: int = 6379, node_ip: str | None = None,
    num_cpus: int | None = None, resources: Mapping[str, float] | None = None, object_store_bytes: int | None = None,
    temp_dir: str | None = None,
) -> list[str]:
    """The ``ray start ... --block`` command for a head (``head=True``, listening on ``port``) or a worker joining
    ``address``."""
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--disable-usage-stats"]
    if head:
        cmd += ["--head", "--port", str(port), "--include-dashboard", "false", "--dashboard-host", "127.0.0.1"]
    else:
        if not address:
            raise FarmError("joining a farm needs the head's ADDRESS (host:port)")
        cmd += ["--address", address]
    if node_ip:
        cmd += ["--node-ip-address", node_ip]
    if num_cpus is not None:
        cmd += ["--num-cpus", str(num_cpus)]
    if resources:
        cmd += ["--resources", json.dumps(dict(resources), sort_keys=True)]
    if object_store_bytes:
        cmd += ["--object-store-memory", str(int(object_store_bytes))]
    if temp_dir:
        cmd += ["--temp-dir", temp_dir]
    return cmd


def node_env() -> dict[str, str]:
    """The environment a node runs in: Ray's usage stats off."""
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}


def connect_ray(address: str) -> Any:
    """``ray.init`` to the farm at ``address`` (``host:port`` of the head, or ``ray://host:10001`` through Ray
    Client); reuses a connection this process already has. ``FarmError`` when nothing answers there."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    host, _, port = address.removeprefix("ray://").rpartition(":")
    _probe(host, port, address)
    kwargs: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False, "logging_level": "ERROR",
                              "configure_logging": False}
    if host in LOOPBACK and not address.startswith("ray://"):
        kwargs["_node_ip_address"] = "127.0.0.1"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise FarmError(f"cannot connect to the farm at {address}: {str(exc).splitlines()[0][:300]}",
                        hint="start one with `edgeopt farm head`, and give its host:port") from exc
    return ray


def _probe(host: str, port: str, address: str, timeout_s: float = 5.0) -> None:
    """Fail in one line when nothing listens at ``address`` (``ray.init`` would wait a minute, then abort)."""
    if not host or not port.isdigit():
        raise FarmError(f"farm address {address!r} is not host:port", hint="give the head's host:port, e.g. "
                        "10.0.0.5:6379")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise FarmError(f"cannot connect to the farm at {address}: {exc.strerror or exc}",
                        hint="start one with `edgeopt farm head` (and check the host, port and firewall)") from exc


@dataclass(frozen=True)
class NodeStatus:
    node_id: str
    address: str
    alive: bool
    cpus: float
    devices: tuple[str, ...]
    targets: tuple[str, ...]
    facts: Mapping[str, Any] = field(default_factory=dict)
    """``edgeopt.farm.worker.describe()`` from the node (ISA, memory, versions); empty if it did not answer."""


@dataclass(frozen=True)
class FarmStatus:
    address: str
    nodes: tuple[NodeStatus, ...]
    devices: Mapping[str, FarmDevice]
    measuring: tuple[str, ...]
    """Devices whose timing slot is taken right now."""
    cpus_busy: float
    cpus_total: float

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"address": self.address, "nodes": [asdict(n) for n in self.nodes],
                "devices": {k: asdict(v) for k, v in self.devices.items()}, "measuring": list(self.measuring),
                "cpus_busy": self.cpus_busy, "cpus_total": self.cpus_total}


def status(ray: Any, address: str, *, describe_timeout_s: float = 20.0) -> FarmStatus:
    """Nodes (alive or gone), their devices and targets, which devices are measuring, CPUs busy."""
    from edgeopt.farm.book import devices_with_gone

    nodes = list(ray.nodes())
    devices = devices_with_gone(ray, farm_devices(nodes))
    facts = _describe(ray, [n for n in nodes if n.get("Alive")], describe_timeout_s)
    out: list[NodeStatus] = []
    for n in nodes:
        res = n.get("Resources") or {}
        devs = tuple(sorted(k.split(":", 2)[2] for k in res if k.startswith("edgeopt:device:")))
        targets = tuple(sorted({k.removeprefix("edgeopt:build:").split("@")[0] for k in res
                                if k.startswith("edgeopt:build:")}))
        out.append(NodeStatus(str(n.get("NodeID", "")), str(n.get("NodeManagerAddress", "")), bool(n.get("Alive")),
                              float(res.get("CPU", 0)), devs, targets, facts.get(str(n.get("NodeID", "")), {})))
    total, free = ray.cluster_resources(), ray.available_resources()
    measuring = tuple(sorted(k.split(":", 2)[2] for k, v in total.items()
                             if k.startswith("edgeopt:device:") and free.get(k, 0) < v))
    return FarmStatus(address, tuple(out), devices, measuring, float(total.get("CPU", 0)) - float(free.get("CPU", 0)),
                      float(total.get("CPU", 0)))


def _describe(ray: Any, nodes: Sequence[Mapping[str, Any]], timeout_s: float) -> dict[str, dict]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from edgeopt.farm import worker

    remote = ray.remote(worker.describe)
    refs = {str(n["NodeID"]): remote.options(
        num_cpus=0, max_retries=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=n["NodeID"], soft=False)).remote() for n in nodes}
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s) if refs else ([], [])
    found: dict[str, dict] = {}
    for node, ref in refs.items():
        if ref in ready:
            try:
                found[node] = ray.get(ref)
            except ray.exceptions.RayError as exc:
                found[node] = {"error": type(exc).__name__}
        else:
            ray.cancel(ref, force=True)
    return found
