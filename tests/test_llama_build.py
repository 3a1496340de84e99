"""The check that makes `scripts/install.sh` rebuild llama.cpp for the CPU it runs on."""

from __future__ import annotations

from pathlib import Path

from assistant.llama_build import cpu_flags, suits

AVX2_BUILD = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | REPACK = 1 | "
NATIVE_BUILD = AVX2_BUILD + "AVX512 = 1 | AVX512_VNNI = 1 | "


def test_a_portable_build_on_an_avx512_cpu_is_rebuilt() -> None:
    assert not suits(AVX2_BUILD, {"avx2", "avx512f", "avx512_vnni"})
    assert suits(NATIVE_BUILD, {"avx2", "avx512f", "avx512_vnni"})


def test_a_cpu_without_avx512_keeps_its_build() -> None:
    assert suits(AVX2_BUILD, {"avx2", "fma"})
    assert suits(AVX2_BUILD, set())  # flags unknown: nothing to gain from a rebuild


def test_cpu_flags_are_read_from_the_first_processor(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n\n"
        "processor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f\n"
    )
    assert cpu_flags(info) == {"fpu", "sse2", "avx2", "avx512f"}
    assert cpu_flags(tmp_path / "missing") == set()
