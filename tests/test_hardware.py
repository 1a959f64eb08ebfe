"""Device profiles: shipped files, validation, search path, host detection, roofline."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeopt.errors import DeviceError
from edgeopt.measure.devices import (
    PROFILES_ENV,
    default_profile_for,
    get_profile,
    host_profile,
    list_profiles,
    load_profile,
    roofline_seconds,
    search_path,
)

SHIPPED = {"x86-avx2-2core", "x86-avx512-vnni", "x86-avx512-bf16", "x86-amx", "nvidia-h100", "jetson-orin-nano",
           "coral-edgetpu-usb", "raspberry-pi-5"}

GOOD = """\
schema_version: 1
name: {name}
kind: cpu
description: a test board
isa: [avx2]
cores: 4
peak_ops:
  fp32: 1.0e+11
  int8: 4.0e+11
memory_bandwidth: 1.0e+10
idle_power_w: 1.0
active_power_w: 5.0
sources:
  cores: assumed
  peak_ops.fp32: assumed
  peak_ops.int8: assumed
  memory_bandwidth: assumed
  idle_power_w: assumed
  active_power_w: assumed
"""


def write(directory: Path, name: str, text: str | None = None) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text if text is not None else GOOD.format(name=name), encoding="utf-8")
    return path


def test_shipped_profiles_load_and_cite_every_figure() -> None:
    profiles = {p.name: p for p in list_profiles()}
    assert set(profiles) >= SHIPPED
    for p in profiles.values():
        for precision, ops in p.peak_ops.items():
            assert ops > 0
            assert p.sources[f"peak_ops.{precision}"].strip()
        for key in ("memory_bandwidth", "idle_power_w", "active_power_w"):
            assert p.sources[key].strip()
        assert p.active_power_w >= p.idle_power_w
        if p.kind == "cpu":
            assert p.isa and p.cores


def test_h100_figures_match_the_sxm_datasheet() -> None:
    h100 = get_profile("nvidia-h100")
    assert h100.kind == "gpu"
    assert h100.peak_ops["fp32"] == pytest.approx(67e12)
    assert h100.peak_ops["fp16"] == pytest.approx(989.5e12)
    assert h100.peak_ops["int8"] == pytest.approx(1979e12)
    assert h100.memory_bandwidth == pytest.approx(3.35e12)
    assert h100.active_power_w == 700


def test_edge_profiles_have_their_headline_figures() -> None:
    orin = get_profile("jetson-orin-nano")
    assert orin.peak_ops["int8"] == pytest.approx(20e12) and orin.memory_bandwidth == pytest.approx(68e9)
    assert (orin.idle_power_w, orin.active_power_w) == (7.0, 15.0)
    coral = get_profile("coral-edgetpu-usb")
    assert coral.kind == "tpu" and set(coral.peak_ops) == {"int8"} and coral.peak_ops["int8"] == pytest.approx(4e12)
    pi = get_profile("raspberry-pi-5")
    assert pi.cores == 4 and "neon" in pi.isa
    vnni = get_profile("x86-avx512-vnni")
    assert "avx512_vnni" in vnni.isa and vnni.peak_ops["int8"] > vnni.peak_ops["fp32"]
    assert "avx512f" not in get_profile("x86-avx2-2core").isa


def test_unknown_profile_lists_known_names() -> None:
    with pytest.raises(DeviceError) as info:
        get_profile("no-such-board")
    assert "nvidia-h100" in info.value.message and "host" in info.value.message
    assert info.value.hint


def test_profile_by_path(tmp_path: Path) -> None:
    path = write(tmp_path, "my-board")
    profile = get_profile(str(path))
    assert profile.name == "my-board" and profile.path == path
    assert profile.peak_ops == {"fp32": 1e11, "int8": 4e11}


def test_env_dirs_come_first_and_can_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "extra-board")
    override = GOOD.format(name="nvidia-h100").replace("kind: cpu", "kind: gpu")
    write(tmp_path, "nvidia-h100", override)
    monkeypatch.setenv(PROFILES_ENV, str(tmp_path))
    assert search_path()[0] == tmp_path
    names = [p.name for p in list_profiles()]
    assert "extra-board" in names and names.count("nvidia-h100") == 1
    assert get_profile("nvidia-h100").peak_ops["fp32"] == 1e11


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda t: t.replace("memory_bandwidth: 1.0e+10\n", ""), "memory_bandwidth"),
        (lambda t: t.replace("fp32: 1.0e+11", "fp32: -5"), "peak_ops.fp32"),
        (lambda t: t.replace("fp32: 1.0e+11", "fp32: fast"), "peak_ops.fp32"),
        (lambda t: t.replace("  peak_ops.int8: assumed\n", ""), "sources.peak_ops.int8"),
        (lambda t: t.replace("kind: cpu", "kind: fpga"), "kind"),
        (lambda t: t.replace("schema_version: 1", "schema_version: 2"), "schema_version"),
        (lambda t: t.replace("cores: 4", "cores: 0"), "cores"),
        (lambda t: t.replace("active_power_w: 5.0", "active_power_w: 0.5"), "active_power_w"),
        (lambda t: t + "peak_flops: 3\n", "peak_flops"),
        (lambda t: t.replace("isa: [avx2]\n", ""), "isa"),
    ],
)
def test_invalid_profiles_name_file_and_field(tmp_path: Path, edit, field: str) -> None:
    path = write(tmp_path, "bad-board", edit(GOOD.format(name="bad-board")))
    with pytest.raises(DeviceError) as info:
        load_profile(path)
    assert str(path) in info.value.message
    assert repr(field) in info.value.message


def test_name_must_match_file_and_yaml_errors_are_device_errors(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="file name"):
        load_profile(write(tmp_path, "board-a", GOOD.format(name="board-b")))
    with pytest.raises(DeviceError, match="not valid YAML"):
        load_profile(write(tmp_path, "broken", "name: [unclosed\n"))
    with pytest.raises(DeviceError, match="cannot read"):
        load_profile(tmp_path / "missing.yaml")


def _cpuinfo_flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    for line in text.splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_host_profile_matches_this_machine() -> None:
    from edgeopt.measure import host as hostinfo
    host = host_profile()
    assert host.name == "host" and host.kind == "cpu" and host.path is None
    assert host.isa == tuple(hostinfo.cpu_isa())
    assert host.cores == hostinfo.physical_cores()
    flags = _cpuinfo_flags()
    if "avx2" in flags and "avx512_vnni" not in flags:
        assert "x86-avx2-2core" in host.description
        base = get_profile("x86-avx2-2core")
        assert host.peak_ops["fp32"] == pytest.approx(base.peak_ops["fp32"] * host.cores / base.cores)
    assert all(host.sources[f"peak_ops.{p}"].startswith("scaled from") for p in host.peak_ops)
    assert get_profile("host") == host
    assert default_profile_for("cpu") == host


@pytest.mark.parametrize(
    ("isa", "base"),
    [(("avx2", "fma", "avx512f", "avx512_vnni"), "x86-avx512-vnni"), (("avx2", "amx_tile"), "x86-amx"),
     (("avx2", "avx512f", "avx512_vnni", "avx512_bf16"), "x86-avx512-bf16"),
     (("avx2", "fma"), "x86-avx2-2core"), (("neon", "dotprod"), "raspberry-pi-5")],
)
def test_host_profile_picks_base_by_isa_and_scales_by_cores(monkeypatch: pytest.MonkeyPatch, isa, base) -> None:
    from edgeopt.measure import host as hostinfo
    monkeypatch.setattr(hostinfo, "cpu_isa", lambda: isa)
    monkeypatch.setattr(hostinfo, "physical_cores", lambda: 16)
    host = host_profile()
    ref = get_profile(base)
    assert host.isa == isa and host.cores == 16
    for precision, ops in ref.peak_ops.items():
        assert host.peak_ops[precision] == pytest.approx(ops * 16 / ref.cores)
        assert f"scaled from {base} by detected cores" in host.sources[f"peak_ops.{precision}"]
    assert host.memory_bandwidth == ref.memory_bandwidth


def test_default_profiles_by_kind() -> None:
    assert default_profile_for("gpu").name == "nvidia-h100"
    assert default_profile_for("tpu").name == "coral-edgetpu-usb"
    with pytest.raises(DeviceError):
        default_profile_for("quantum")


def test_roofline_is_the_slower_of_compute_and_memory() -> None:
    h100 = get_profile("nvidia-h100")
    # compute-bound: 1 TFLOP at fp16 dense rate
    assert roofline_seconds(1e12, 1e3, h100, "fp16") == pytest.approx(1e12 / 989.5e12)
    # memory-bound: 3.35 GB over 3.35 TB/s
    assert roofline_seconds(1e3, 3.35e9, h100, "fp16") == pytest.approx(1e-3)
    # int8-dynamic uses int8; an unknown precision falls back to fp32
    assert roofline_seconds(1979e9, 0, h100, "int8-dynamic") == pytest.approx(1e-3)
    assert roofline_seconds(67e9, 0, h100, "int4") == pytest.approx(1e-3)


def test_roofline_without_a_usable_precision_is_a_device_error() -> None:
    coral = get_profile("coral-edgetpu-usb")
    assert roofline_seconds(4e9, 0, coral, "int8") == pytest.approx(1e-3)
    with pytest.raises(DeviceError, match="fp32"):
        roofline_seconds(1e9, 0, coral, "fp32")
    with pytest.raises(ValueError):
        roofline_seconds(-1, 0, coral, "int8")
