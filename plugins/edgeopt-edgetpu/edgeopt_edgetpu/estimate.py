"""Coral latency and energy as labelled estimates, split into the part the Edge TPU maps and the CPU part.

Used when no Coral device is attached (the runner then measures LiteRT on the host CPU, which is not the
Coral's latency). Both parts are roofline lower bounds from device profiles:

- Edge TPU part: the mapped ops' FLOPs at the Coral profile's int8 peak, or the bytes that cross its link
  per inference (model inputs and outputs, plus mapped weights beyond the 8 MiB on-chip parameter cache,
  which stream every inference) at its ``memory_bandwidth``, whichever is slower;
- CPU part: the ops from the first fallback on, on the host CPU profile (int8 peak, their weights read
  once per inference).

Energy: the Coral profile's active power over the Edge TPU part, plus the host's estimated energy
(``edgeopt.measure.energy.estimate_energy``) over the CPU part. Every figure says ``estimated``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgeopt.plugin import DeviceProfile, estimate_energy, roofline_seconds

from edgeopt_edgetpu.compat import CompatReport

ON_CHIP_CACHE_BYTES = 8 * 1024**2
"""Edge TPU SRAM for caching parameters (Coral USB Accelerator / Dev Board datasheets: 8 MB)."""
METHOD = "estimated:roofline"
NO_DEVICE_NOTE = ("lower bounds from device profiles, not measurements: no Coral device was attached, so the "
                  "measured latency of this deploy is LiteRT on the host CPU")
ATTACHED_NOTE = ("lower bounds from device profiles, for comparison with the latency measured on the attached "
                 "Coral through the Edge TPU delegate")


@dataclass(frozen=True)
class CoralEstimate:
    device: str
    host: str
    edgetpu_s: float
    cpu_s: float
    joules: float
    edgetpu_flops: float
    cpu_flops: float
    streamed_bytes: float
    """Bytes crossing the Edge TPU's link per inference (I/O plus weights beyond the on-chip cache)."""
    method: str = METHOD
    note: str = NO_DEVICE_NOTE

    @property
    def latency_s(self) -> float:
        return self.edgetpu_s + self.cpu_s

    def to_dict(self) -> dict:
        return {**asdict(self), "latency_s": self.latency_s}


def estimate(
    report: CompatReport, coral: DeviceProfile, host: DeviceProfile, *, attached: bool = False
) -> CoralEstimate:
    """The split estimate for the model ``report`` describes on ``coral`` with ``host`` running the CPU part."""
    mapped = [v for v in report.ops if v.on_edgetpu]
    rest = [v for v in report.ops if not v.on_edgetpu]
    mapped_flops = sum(v.flops for v in mapped)
    cpu_flops = sum(v.flops for v in rest)
    weights = sum(v.weight_bytes for v in mapped)
    streamed = float(report.io_bytes + max(0, weights - ON_CHIP_CACHE_BYTES)) if mapped else 0.0
    tpu_s = roofline_seconds(mapped_flops, streamed, coral, "int8") if mapped else 0.0
    cpu_s = roofline_seconds(cpu_flops, float(sum(v.weight_bytes for v in rest)), host, "int8") if rest else 0.0
    joules = coral.active_power_w * tpu_s + estimate_energy(cpu_s, host).joules
    return CoralEstimate(coral.name, host.name, tpu_s, cpu_s, joules, mapped_flops, cpu_flops, streamed,
                         f"{METHOD}({coral.name} + {host.name})", ATTACHED_NOTE if attached else NO_DEVICE_NOTE)
