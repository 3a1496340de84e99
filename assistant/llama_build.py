"""Whether the installed llama.cpp suits this CPU: exit 0 when `llama_cpp` imports and uses
the CPU's AVX-512 (or the CPU has none), 1 otherwise. `scripts/install.sh` rebuilds on 1."""

from __future__ import annotations

import sys
from pathlib import Path


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first CPU's feature flags; none where /proc/cpuinfo cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return set(value.split())
    return set()


def suits(system_info: str, flags: set[str]) -> bool:
    """A build suits a CPU unless the CPU has AVX-512 and the build does not use it."""
    return "avx512f" not in flags or "AVX512 = 1" in system_info


def main() -> int:
    try:
        import llama_cpp
    except ImportError:
        return 1
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    return 0 if suits(info, cpu_flags()) else 1


if __name__ == "__main__":
    sys.exit(main())
