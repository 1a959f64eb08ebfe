"""Host CPU facts: flag parsing from real /proc/cpuinfo layouts, and sane values on this machine."""

from __future__ import annotations

import pytest

from edgeopt.measure import host as hostinfo
from edgeopt.measure.host import int8_family

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 avx avx2 fma f16c avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8 avx_vnni
"""

ARM = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp i8mm
CPU implementer\t: 0x41
"""


def test_parse_x86_flags_in_canonical_order() -> None:
    assert hostinfo.parse_cpuinfo(X86) == (
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512_vnni",
        "avx_vnni",
        "avx512_bf16",
        "amx_tile",
        "amx_int8",
        "amx_bf16",
    )


def test_parse_arm_features_normalized() -> None:
    assert hostinfo.parse_cpuinfo(ARM) == ("neon", "dotprod", "i8mm")
    assert hostinfo.parse_cpuinfo(ARM.replace("i8mm", "i8mm bf16")) == ("neon", "dotprod", "i8mm", "bf16")


@pytest.mark.parametrize(
    ("isa", "bf16"),
    [(("avx2", "fma"), False), (("avx512f", "avx512_vnni"), False), (("avx512f", "avx512_bf16"), True),
     (("amx_tile", "amx_bf16"), True), (("neon", "dotprod"), False), (("neon", "bf16"), True)],
)
def test_computes_bf16_only_with_native_bf16_dot_products(isa, bf16) -> None:
    assert hostinfo.computes_bf16(isa) is bf16


def test_parse_without_flags_is_empty() -> None:
    assert hostinfo.parse_cpuinfo("processor : 0\n") == ()


def test_host_values_are_well_formed() -> None:
    isa = hostinfo.cpu_isa()
    assert set(isa) <= set(hostinfo.ISA_FLAGS)
    assert list(isa) == sorted(isa, key=hostinfo.ISA_FLAGS.index)
    assert hostinfo.physical_cores() >= 1
    assert hostinfo.cpu_name().strip()


@pytest.mark.parametrize(
    ("isa", "family"),
    [
        (("avx2", "fma", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"), "AMX"),
        (("avx2", "fma", "avx512f", "avx512_vnni"), "VNNI"),
        (("avx2", "fma", "avx_vnni"), "VNNI"),  # client cores: 256-bit VNNI without AVX-512
        (("avx2", "fma", "f16c"), "AVX2"),
        (("neon", "dotprod", "i8mm"), "NEON"),
        ((), "CPU"),
    ],
)
def test_int8_family(isa: tuple[str, ...], family: str) -> None:
    assert int8_family(isa) == family
