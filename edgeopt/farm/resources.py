"""What a farm node advertises to Ray, derived from the installed plugins and the host, and how it is read back.

Ray schedules on custom resources (plain numbers per node), so every fact the scheduler needs is a resource:

- ``edgeopt:<target>@<device>`` = 1: this node can measure ``target`` on the device named ``device`` (a
  device is its node's own CPU, named after the host by default, or a named device profile such as
  ``coral-devboard`` attached to it);
- ``edgeopt:device:<device>`` = 1: the device's timing slot; every measure job takes it, so one timing job
  runs per device at a time, whoever submitted it;
- ``edgeopt:profile:<device>=<profile>`` = 1: the device profile a build for this device uses (``host-<sig>``
  for a node's own CPU, ``sig`` being a short hash of its ISA flags and core count);
- ``edgeopt:build:<target>`` and ``edgeopt:build:<target>@host-<sig>`` = ``BUILD_CAPACITY``: this node has
  the target's toolchain and can compile for a named profile, or for a CPU like its own.

Targets that only emulate their device here (``TargetInfo.emulated``) are advertised only when named.
"""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from edgeopt.errors import DeviceError

PREFIX = "edgeopt:"
BUILD_CAPACITY = 1000
"""Builds are bounded by CPUs (one per build job), not by this: the resource only says the toolchain is there."""
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class DeviceSpec:
    """One device a node offers: its farm-wide name and the device profile builds for it use."""

    name: str
    profile: str = "host"
    """A profile name from ``edgeopt devices``, or ``host``: the node's own CPU."""


@dataclass(frozen=True)
class FarmDevice:
    """A device as the scheduler sees it in the cluster's resources."""

    name: str
    profile_key: str
    """``host-<sig>`` (a node's own CPU, built on any node with the same signature) or a profile name."""
    targets: tuple[str, ...]
    nodes: tuple[str, ...] = ()
    """Ray node ids that advertise it and are alive."""
    cpus: float = 1.0
    """CPUs of the (first) node holding it: a measure job takes them all, so no build shares its node."""
    gone: bool = False
    """Advertised only by nodes that have left the cluster."""

    @property
    def is_host(self) -> bool:
        return self.profile_key.startswith("host-")


@dataclass(frozen=True)
class NodeResources:
    """What ``edgeopt farm join`` passes to ``ray start --resources``."""

    resources: dict[str, float] = field(default_factory=dict)
    devices: tuple[DeviceSpec, ...] = ()
    targets: tuple[str, ...] = ()
    signature: str = ""


def check_name(name: str, what: str = "device name") -> str:
    if not _NAME_RE.fullmatch(name):
        raise DeviceError(f"invalid {what} {name!r}", hint="use letters, digits, '.', '_' and '-' (at most 64)")
    return name


def host_signature(isa: Iterable[str], cores: int | None) -> str:
    """``host-<12 hex>``: CPUs with the same ISA flags and core count get the same build (and cache)."""
    text = ",".join(sorted(isa)) + f"/{cores or 0}"
    return "host-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def default_device_name() -> str:
    """This machine's host name, reduced to a valid device name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname()).strip("-._") or "host"
    return name[:64]


def parse_device(text: str) -> DeviceSpec:
    """``NAME`` (the node's own CPU) or ``NAME=PROFILE`` (a device profile attached to this node)."""
    name, _, profile = text.partition("=")
    return DeviceSpec(check_name(name.strip()), check_name(profile.strip() or "host", "device profile"))


def node_resources(
    devices: Sequence[DeviceSpec] = (), *, targets: Sequence[str] = (), pm: object = None
) -> NodeResources:
    """The resources this node advertises: its available targets (``targets`` narrows them and admits emulated
    ones) for each of ``devices`` (default: this host's CPU under its host name)."""
    from edgeopt.measure.devices import get_profile, host_profile
    from edgeopt.plugin.manager import get_plugin_manager

    pm = pm or get_plugin_manager()
    host = host_profile()
    sig = host_signature(host.isa, host.cores)
    named = {check_name(t, "target") for t in targets}
    infos = [t for t in pm.targets() if t.available and (t.name in named if named else not t.emulated)]  # type: ignore[attr-defined]
    unknown = named - {t.name for t in infos}
    if unknown:
        raise DeviceError(f"target(s) {', '.join(sorted(unknown))} not available on this node",
                          hint="run `edgeopt targets` here to see why")
    res: dict[str, float] = {}
    for t in infos:
        res[f"{PREFIX}build:{t.name}"] = BUILD_CAPACITY
        if "cpu" in t.device_kinds:
            res[f"{PREFIX}build:{t.name}@{sig}"] = BUILD_CAPACITY
    chosen = list(devices) or [DeviceSpec(default_device_name())]
    for dev in chosen:
        profile = host if dev.profile == "host" else get_profile(dev.profile)
        key = sig if dev.profile == "host" else profile.name
        res[f"{PREFIX}device:{dev.name}"] = 1
        res[f"{PREFIX}profile:{dev.name}={key}"] = 1
        for t in infos:
            if profile.kind in t.device_kinds:
                res[f"{PREFIX}{t.name}@{dev.name}"] = 1
    return NodeResources(res, tuple(chosen), tuple(t.name for t in infos), sig)


def build_resource(target: str, profile_key: str) -> str:
    """The resource a build for ``profile_key`` needs: a CPU like the device's own, or just the toolchain."""
    if profile_key.startswith("host-"):
        return f"{PREFIX}build:{target}@{profile_key}"
    return f"{PREFIX}build:{target}"


def measure_resources(target: str, device: str) -> dict[str, float]:
    return {f"{PREFIX}{target}@{device}": 1, f"{PREFIX}device:{device}": 1}


def farm_devices(nodes: Sequence[Mapping]) -> dict[str, FarmDevice]:
    """Devices advertised in ``ray.nodes()``-shaped records (``NodeID``, ``Alive``, ``Resources``); a device
    whose every node is dead is ``gone``."""
    found: dict[str, dict] = {}
    for node in nodes:
        res = node.get("Resources") or {}
        alive = bool(node.get("Alive"))
        for key in res:
            if key.startswith(f"{PREFIX}profile:"):
                name, _, profile_key = key.removeprefix(f"{PREFIX}profile:").partition("=")
                entry = found.setdefault(name, {"profile": profile_key, "targets": set(), "alive": [], "cpus": 0.0})
                if alive:
                    entry["alive"].append(node.get("NodeID", ""))
                    entry["cpus"] = entry["cpus"] or float(res.get("CPU", 1) or 1)
        for key in res:
            if key.startswith(PREFIX) and "@" in key and not key.startswith(f"{PREFIX}build:"):
                target, _, name = key.removeprefix(PREFIX).partition("@")
                if name in found:
                    found[name]["targets"].add(target)
    return {
        name: FarmDevice(name, e["profile"], tuple(sorted(e["targets"])), tuple(e["alive"]),
                         max(e["cpus"], 1.0), gone=not e["alive"])
        for name, e in sorted(found.items())
    }
